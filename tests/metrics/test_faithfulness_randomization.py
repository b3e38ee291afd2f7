"""Model randomisation: the cascade's layers and re-initialisation, a map that ignores the weights (ρ = SSIM = 1)
against Grad-CAM (decorrelated once the model is random), the user's model untouched, parts, files, the figure."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

import camkit
from camkit.data.boxes import ClassMap
from camkit.errors import CamkitError
from camkit.methods import Method, base, mapmath, register_method
from camkit.metrics import BoxSettings, MapBatch, MethodRun
from camkit.metrics.faithfulness.base import Explained
from camkit.metrics.faithfulness.randomization import (
    Randomization,
    cascade_models,
    map_ssim,
    rank_correlation,
    weighted_layers,
)
from camkit.plots import save_figure
from camkit.plots.faithfulness import randomization_figure, shown_steps

INPUT_MAP = "test-input-map"
LAYERS = ["head", "conv2", "conv1"]  # the cascade of the series models, from the top


def series_layers() -> list[keras.layers.Layer]:
    return [keras.layers.Conv1D(8, 5, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv1D(8, 5, padding="same", activation="relu", name="conv2"),
            keras.layers.GlobalAveragePooling1D(name="gap"), keras.layers.Dense(3, name="head")]


def functional() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 2))
    h = inputs
    for layer in series_layers():
        h = layer(h)
    return keras.Model(inputs, h)


def sequential() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((32, 2)), *series_layers()])


def image_model() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((9, 9, 3))
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    h = keras.layers.GlobalAveragePooling2D()(h)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(h))


def nested() -> keras.Model:
    """Normalization (adapted) -> Sequential backbone (conv1, bn, conv2) -> GAP -> Dropout -> head (constants)."""
    keras.utils.set_random_seed(2)
    norm = keras.layers.Normalization(name="norm")
    norm.adapt(np.random.default_rng(0).normal(3.0, 2.0, size=(16, 12, 2)).astype(np.float32))
    backbone = keras.Sequential([keras.Input((12, 2)), keras.layers.Conv1D(4, 3, name="conv1"),
                                 keras.layers.BatchNormalization(name="bn"), keras.layers.Conv1D(4, 3, name="conv2")],
                                name="backbone")
    inputs = keras.Input((12, 2))
    h = keras.layers.GlobalAveragePooling1D()(backbone(norm(inputs)))
    h = keras.layers.Dropout(0.5)(h)
    head = keras.layers.Dense(2, kernel_initializer=keras.initializers.Constant(0.25),
                              bias_initializer=keras.initializers.Constant(-1.0), name="head")
    model = keras.Model(inputs, head(h))
    rng = np.random.default_rng(3)  # "trained" weights (positive: a valid variance): none is its initial value
    model.set_weights([w if v.path.startswith("norm/") else rng.uniform(0.5, 1.5, w.shape).astype(w.dtype)
                       for w, v in zip(model.get_weights(), model.weights, strict=True)])
    return model


@pytest.fixture(scope="module")
def input_method() -> Iterator[str]:
    """A method whose map is the input itself (channel mean, min-max normalised): it ignores the weights."""

    @register_method(INPUT_MAP)
    class InputMap(Method):
        relu = False

        def explain_batch(self, batch: base.Batch, size: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
            raw = tf.reduce_mean(batch.inputs, axis=-1)
            return raw, mapmath.normalise(raw, signed=True)

    yield INPUT_MAP
    base._METHODS.pop(INPUT_MAP)


def explained(model: keras.Model, x: np.ndarray, method: str, layer: str) -> Explained:
    targets = np.arange(len(x)) % 3 % model.output_shape[-1]
    exp = camkit.explain(model, x, method=method, layer=layer, targets=targets, progress=False)
    return Explained(model, x, exp.maps, exp.targets, MethodRun(method, {}, layer))


def series_inputs(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 32, 2)).astype(np.float32)


def test_layers_from_the_top_through_nested_models() -> None:
    model = nested()
    # the adapted Normalization (mean, variance: no initialiser, not trainable) and the weightless layers are no step
    assert [r.path for r in weighted_layers(model)] == ["head", "backbone/conv2", "backbone/bn", "backbone/conv1"]
    assert [r.path for r in weighted_layers(functional())] == LAYERS == [r.path for r in weighted_layers(sequential())]


def test_cascade_redraws_from_each_layers_initialisers() -> None:
    model = nested()
    before = [w.copy() for w in model.get_weights()]
    paths = [v.path for v in model.weights]
    original = dict(zip(paths, before, strict=True))
    seen: list[str] = []
    for path, clone in cascade_models(model, seed=5):
        seen.append(path)
        now = {p: np.asarray(v) for p, v in zip(paths, clone.weights, strict=True)}  # a clone's paths may differ
        randomised = [p for p in paths if not np.array_equal(now[p], original[p])]
        if path == "head":
            assert sorted(randomised) == ["head/bias", "head/kernel"]
            assert (now["head/kernel"] == 0.25).all() and (now["head/bias"] == -1.0).all()
        if path == "backbone/conv2":
            kernel = now["backbone/conv2/kernel"]
            limit = np.sqrt(6 / (3 * 4 + 3 * 4))  # Glorot uniform, fans 3·4 and 3·4
            assert np.abs(kernel).max() <= limit and np.abs(kernel).max() > limit / 2
            assert (now["backbone/conv2/bias"] == 0).all()
            assert not any(p.startswith(("backbone/bn", "backbone/conv1")) for p in randomised)
            conv2 = kernel.copy()
        if path == "backbone/bn":  # back to its initial state
            assert [now[f"backbone/bn/{k}"].tolist() for k in ("gamma", "beta", "moving_mean", "moving_variance")] \
                == [[1.0] * 4, [0.0] * 4, [0.0] * 4, [1.0] * 4]
    assert seen == ["head", "backbone/conv2", "backbone/bn", "backbone/conv1"]
    assert now["norm/mean"].tolist() == original["norm/mean"].tolist()  # adapted statistics kept
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True))  # the user's model
    # the same seed gives the same weights whatever the number of steps; another seed other weights
    again = dict(list(cascade_models(model, layers=2, seed=5)))["backbone/conv2"]
    assert np.array_equal(np.asarray(again.get_layer("backbone").get_layer("conv2").kernel), conv2)
    other = dict(list(cascade_models(model, layers=2, seed=6)))["backbone/conv2"]
    assert not np.array_equal(np.asarray(other.get_layer("backbone").get_layer("conv2").kernel), conv2)


@pytest.mark.parametrize("build", [functional, sequential])
def test_a_map_that_ignores_the_weights_never_changes(build, input_method: str) -> None:
    model = build()
    got = Randomization().score(explained(model, series_inputs(), input_method, "conv2"))
    assert got.curve.shape == (8, 3) and got.curve_x.tolist() == [1, 2, 3]
    assert got.curve == pytest.approx(np.ones((8, 3)), abs=1e-9)
    assert got.values == pytest.approx(np.ones(8), abs=1e-9)
    assert got.extra["randomization_ssim"] == pytest.approx(np.ones(8), abs=1e-6)


def test_image_maps_that_ignore_the_weights(input_method: str) -> None:
    x = np.random.default_rng(1).uniform(size=(3, 9, 9, 3)).astype(np.float32)
    got = Randomization().score(explained(image_model(), x, input_method, "conv"))
    assert got.curve.shape == (3, 2) and got.extra["randomization_ssim"] == pytest.approx(np.ones(3), abs=1e-6)


@pytest.mark.parametrize("build", [functional, sequential])
def test_gradcam_decorrelates_once_the_model_is_random(build) -> None:
    model = build()
    before = [w.copy() for w in model.get_weights()]
    data = explained(model, series_inputs(), "gradcam", "conv2")
    metric = Randomization()
    got = metric.score(data)
    assert np.abs(got.values).mean() < 0.5 and got.extra["randomization_ssim"].mean() < 0.5
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), before, strict=True))
    layers, maps = metric.cascade(data, 1)  # sample 1 alone gives the same maps, checked with SciPy and skimage
    assert layers == LAYERS and maps.shape == (3, 32)
    assert all(np.ptp(m) > 0 for m in maps)  # no constant map here: SciPy's ρ is defined at every step
    assert got.curve[1] == pytest.approx([spearmanr(data.maps[1], m).statistic for m in maps], abs=1e-5)
    ssim = structural_similarity(data.maps[1].astype(np.float64), maps[-1].astype(np.float64), data_range=1.0)
    assert got.extra["randomization_ssim"][1] == pytest.approx(ssim, abs=1e-5)


def test_options_and_errors(input_method: str) -> None:
    data = explained(functional(), series_inputs(4), input_method, "conv2")
    assert Randomization(layers=1).score(data).curve.shape == (4, 1)
    assert Randomization(layers=10).score(data).curve.shape == (4, 3)  # more than there are: all
    for options, message in [({"layers": 0}, "layers: expected the layers randomised from the top, an integer of at "
                                             "least 1, got 0"),
                             ({"layers": "2"}, "layers: expected the layers randomised from the top, an integer"),
                             ({"seed": -1}, "seed: expected the random seed, an integer of at least 0")]:
        with pytest.raises(CamkitError, match=message):
            Randomization(**options)
    with pytest.raises(CamkitError, match="needs the method that made the maps"):
        Randomization().score(Explained(data.model, data.inputs, data.maps, data.targets))


def test_correlation_and_ssim_by_hand() -> None:
    assert rank_correlation(np.array([1.0, 2, 3, 4]), np.array([0.9, 0.5, 0.2, 0.1])) == pytest.approx(-1)
    assert rank_correlation(np.array([0.0, 1, 1, 2]), np.array([0.0, 1, 2, 3])) == pytest.approx(0.9486833)
    assert rank_correlation(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0  # unchanged constant map
    assert rank_correlation(np.zeros(4), np.arange(4.0)) == 0.0  # undefined: no rank agreement
    a, b = np.linspace(0, 1, 5), np.array([0.0, 1.0, 0.5, 0.2, 0.9])
    assert map_ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0, win_size=5))
    assert map_ssim(a, a) == pytest.approx(1.0)
    with pytest.raises(CamkitError, match="at least 3 positions"):
        map_ssim(np.zeros((2, 8)), np.zeros((2, 8)))


def test_parts_merge_and_files(input_method: str) -> None:
    x = series_inputs(6)
    data = explained(functional(), x, "gradcam", "conv2")
    classes = ClassMap.from_names(["a", "b", "c"])

    def batch(rows: slice) -> MapBatch:
        names = tuple(f"s{i}" for i in range(6))[rows]
        return MapBatch("gradcam", names, data.maps[rows, None], ("top1",), data.targets[rows, None],
                        np.zeros((len(names), 3), np.int64), classes, BoxSettings(0.5), model=data.model,
                        inputs=x[rows], method=data.method)

    parts = [json.loads(json.dumps(Randomization().evaluate_batch(batch(s)))) for s in (slice(0, 4), slice(4, 6))]
    whole = Randomization().score(data)
    summary = Randomization().summarise(parts)
    assert summary["randomization"] == pytest.approx(whole.values.mean(), abs=1e-9)
    assert summary["randomization_ssim"] == pytest.approx(whole.extra["randomization_ssim"].mean(), abs=1e-9)
    layers, rho, ssim = Randomization().step_curves(parts)
    assert layers == LAYERS and rho == pytest.approx(whole.curve.mean(axis=0), abs=1e-9)
    files = Randomization().files(parts, "gradcam", classes)
    assert set(files) == {Path("curves/gradcam_randomization.csv"), Path("randomization/gradcam.csv")}
    rows = list(csv.DictReader(io.StringIO(files[Path("randomization/gradcam.csv")])))
    assert [(r["step"], r["layer"]) for r in rows] == [("1", "head"), ("2", "conv2"), ("3", "conv1")]
    assert float(rows[-1]["spearman"]) == pytest.approx(summary["randomization"], abs=1e-5)
    assert float(rows[-1]["ssim"]) == pytest.approx(summary["randomization_ssim"], abs=1e-5)
    assert [float(r["ssim"]) for r in rows] == pytest.approx(ssim, abs=1e-5)
    cascades = [Randomization().cascade(data, j)[1] for j in range(6)]  # the per-step means, independently
    expected = [[structural_similarity(data.maps[j].astype(np.float64), m.astype(np.float64), data_range=1.0)
                 for m in maps] for j, maps in enumerate(cascades)]
    assert ssim == pytest.approx(np.mean(expected, axis=0), abs=1e-5)
    expected = [[spearmanr(data.maps[j], m).statistic if np.ptp(m) > 0 else 0.0 for m in maps]
                for j, maps in enumerate(cascades)]  # a constant (all-zero) map after a step: ρ = 0
    assert rho == pytest.approx(np.mean(expected, axis=0), abs=1e-5)


def test_figures_are_written(tmp_path: Path, input_method: str) -> None:
    assert shown_steps(3, 8) == [0, 1, 2] and shown_steps(10, 4) == [0, 3, 6, 9]
    data = explained(functional(), series_inputs(2), "gradcam", "conv2")
    metric = Randomization()
    layers, maps = metric.cascade(data, 0)
    fig = randomization_figure(data.inputs[0], data.maps[0], layers, maps, [0.5, 0.1, 0.0], [0.4, 0.2, 0.1], "gradcam")
    assert len(fig.axes) == 2 + 3 + 1 + 1  # input, original, 3 steps, curves, colour bar
    path = save_figure(fig, tmp_path / "series.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = np.random.default_rng(0).normal(size=(9, 9, 3))
    fig = randomization_figure(image, np.eye(9), [f"l{k}" for k in range(12)], np.zeros((12, 9, 9)),
                               np.linspace(1, 0, 12), np.linspace(1, 0, 12), max_steps=4)
    assert len(fig.axes) == 2 + 4 + 1 + 1
    assert save_figure(fig, tmp_path / "image.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CamkitError, match="3 layers, 2 maps"):
        randomization_figure(data.inputs[0], data.maps[0], layers, maps[:2], [0, 0, 0], [0, 0, 0])
