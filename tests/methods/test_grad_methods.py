"""XGrad-CAM, LayerCAM (one layer and fused), HiResCAM, element-wise Grad-CAM and Smooth Grad-CAM++ against NumPy.

``A`` and ``g = dy_c/dA`` are computed here without the engine: the tiny models are chains of layers, so the test
runs the layers below the explained one, then the layers above it under its own ``GradientTape``.
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import ok
from test_methods_formulas import np_normalise, np_resize_1d, np_resize_2d

import camkit
from camkit.data.timeseries import load_timeseries
from camkit.errors import CamkitError
from camkit.methods import Passes, explain, method_class
from camkit.methods.smoothgradcampp import unit_noise
from camkit.methods.smoothing import AUG_COPIES

L = keras.layers
SHAPES = {1: (12, 2), 2: (8, 8, 2)}
N_CLASSES = 3


def chain(rank: int) -> list[L.Layer]:
    """conv1 (relu) -> pool -> conv2 (relu) -> mix (1x1 conv) -> flatten -> logits: seeded weights and biases.

    The Flatten head makes ``g`` differ from position to position (a GAP head would make HiResCAM Grad-CAM); with
    seed 6 no sample's map is all zero at conv1 or conv2.
    """
    keras.utils.set_random_seed(6)
    conv, pool = (L.Conv1D, L.MaxPooling1D) if rank == 1 else (L.Conv2D, L.MaxPooling2D)
    bias = keras.initializers.RandomNormal(mean=0.1, stddev=0.3)
    return [conv(4, 3, padding="same", activation="relu", bias_initializer=bias, name="conv1"), pool(2, name="pool"),
            conv(6, 3, padding="same", activation="relu", bias_initializer=bias, name="conv2"),
            conv(3, 1, bias_initializer=bias, name="mix"), L.Flatten(name="flat"),
            L.Dense(N_CLASSES, bias_initializer=bias, name="logits")]


@functools.cache
def tiny(rank: int) -> tuple[keras.Model, list[L.Layer]]:
    """The chain as a Functional model (built once per rank, so its compiled steps are reused) and its layers."""
    layers = chain(rank)
    x = inputs_ = keras.Input(SHAPES[rank])
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs_, x), layers


def nested(rank: int) -> tuple[keras.Model, list[L.Layer]]:
    """stem -> inner[conv, conv_b] -> flatten -> logits, explained at ``inner/conv``; its chain of layers too."""
    keras.utils.set_random_seed(5)
    conv = L.Conv1D if rank == 1 else L.Conv2D
    bias = keras.initializers.RandomNormal(stddev=0.3)
    stem = conv(3, 1, activation="relu", bias_initializer=bias, name="stem")
    inner_conv = conv(4, 3, padding="same", activation="relu", bias_initializer=bias, name="conv")
    conv_b = conv(2, 3, padding="same", activation="relu", bias_initializer=bias, name="conv_b")
    inner = keras.Sequential([keras.Input((*SHAPES[rank][:-1], 3)), inner_conv, conv_b], name="inner")
    head = [L.Flatten(name="flat"), L.Dense(N_CLASSES, bias_initializer=bias, name="logits")]
    inputs = keras.Input(SHAPES[rank])
    x = inner(stem(inputs))
    for layer in head:
        x = layer(x)
    return keras.Model(inputs, x), [stem, inner_conv, conv_b, *head]


def inputs(rank: int, n: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *SHAPES[rank])).astype(np.float32)


def acts_grads(layers: list[L.Layer], at: int, x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    """A = output of ``layers[at]``, g = d logit_t / dA (own tape), and the logits."""
    acts = tf.constant(x)
    for layer in layers[: at + 1]:
        acts = layer(acts)
    with tf.GradientTape() as tape:
        tape.watch(acts)
        y = acts
        for layer in layers[at + 1 :]:
            y = layer(y)
        picked = tf.reduce_sum(tf.gather(y, tf.constant(targets), batch_dims=1))
    return acts.numpy(), tape.gradient(picked, acts).numpy(), y.numpy()


def positions(a: np.ndarray) -> tuple[int, ...]:
    return tuple(range(1, a.ndim - 1))


def np_xgradcam(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    w = (a * g).sum(positions(a)) / (a.sum(positions(a)) + 1e-7)
    return np.maximum(np.einsum("n...k,nk->n...", a, w), 0)


def np_weighted(method: str, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The per-channel terms whose channel sum is the method's map (before its final ReLU)."""
    if method == "xgradcam":
        w = (a * g).sum(positions(a)) / (a.sum(positions(a)) + 1e-7)
        return a * w.reshape(len(a), *[1] * (a.ndim - 2), -1)
    return {"layercam": np.maximum(g, 0) * a, "hirescam": g * a, "gradcam-elementwise": np.maximum(g * a, 0)}[method]


FORMULAS = {
    "xgradcam": np_xgradcam,
    "layercam": lambda a, g: np.maximum((np.maximum(g, 0) * a).sum(-1), 0),
    "hirescam": lambda a, g: np.maximum((g * a).sum(-1), 0),
    "gradcam-elementwise": lambda a, g: np.maximum(g * a, 0).sum(-1),
}


def unit(raw: np.ndarray) -> np.ndarray:
    """Each map divided by its max over the last axis; an all-zero map stays zero."""
    high = raw.max(axis=-1, keepdims=True)
    return np.where(high > 0, raw / np.where(high > 0, high, 1), 0)


def np_maps(raw: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Upsampled (bilinear, half-pixel centres) and divided by the max, as the engine's maps."""
    up = np_resize_1d(raw, size[0]) if len(size) == 1 else np_resize_2d(raw, size)
    return np_normalise(up, signed=False, spatial=len(size))


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("method", sorted(FORMULAS))
def test_formula_against_numpy(method: str, rank: int) -> None:
    (model, layers), x = tiny(rank), inputs(rank)
    targets = np.array([0, 2, 1, 1, 0])
    exp = explain(model, x, method=method, layer="mix", targets=targets, batch_size=2)  # padded last batch
    a, g, logits = acts_grads(layers, 3, x, targets)  # mix: signed activations, a position-dependent g
    expected = FORMULAS[method](a, g)
    assert exp.raw.shape == a.shape[:-1] and exp.layer == "mix"
    assert (expected.reshape(len(x), -1).max(1) > 0).all()  # a real map for every sample
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(exp.maps, np_maps(expected, x.shape[1:-1]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(exp.scores, logits[np.arange(5), targets], rtol=1e-5, atol=1e-6)
    predicted = explain(model, x, method=method, layer="mix")
    np.testing.assert_array_equal(predicted.targets, logits.argmax(1))


def test_the_formulas_differ() -> None:
    """At ``mix`` the four maps differ (a test of one would not pass for another); after a ReLU (``A >= 0``)
    LayerCAM's ``ReLU(g)·A`` is element-wise Grad-CAM's ``ReLU(g·A)``."""
    model, x = tiny(1)[0], inputs(1)
    raws = {m: explain(model, x, method=m, layer="mix").raw for m in FORMULAS}
    names = sorted(raws)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            assert not np.allclose(raws[first], raws[second], atol=1e-2), (first, second)
    np.testing.assert_allclose(explain(model, x, method="layercam", layer="conv2").raw,
                               explain(model, x, method="gradcam-elementwise", layer="conv2").raw, rtol=1e-6)


@pytest.mark.parametrize("rank", [1, 2])
def test_nested_model_path(rank: int) -> None:
    model, layers = nested(rank)
    x = inputs(rank, 3)
    for method, formula in FORMULAS.items():
        exp = explain(model, x, method=method, layer="inner/conv", targets=1)
        a, g, _ = acts_grads(layers, 1, x, np.ones(3, int))
        assert exp.layer == "inner/conv"
        np.testing.assert_allclose(exp.raw, formula(a, g), rtol=1e-4, atol=1e-6, err_msg=method)


def test_xgradcam_zero_channel() -> None:
    """A channel that is all zero (Σ A_k = 0) gets weight 0, not NaN: the map is that of the other channels."""
    inputs_ = keras.Input((6, 1))
    conv = L.Conv1D(2, 1, activation="relu", name="conv")
    model = keras.Model(inputs_, L.Dense(2, name="logits")(L.Flatten()(conv(inputs_))))
    conv.set_weights([np.array([[[1.0, -1.0]]], np.float32), np.zeros(2, np.float32)])  # channel 1 = ReLU(-x) = 0
    x = np.linspace(0.5, 2.0, 6, dtype=np.float32)[None, :, None]
    exp = explain(model, x, method="xgradcam", layer="conv", targets=0)
    a, g, _ = acts_grads([conv, *model.layers[2:]], 0, x, np.zeros(1, int))
    assert a[..., 1].max() == 0 and np.isfinite(exp.raw).all()
    np.testing.assert_allclose(exp.raw, np_xgradcam(a, g), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", [*sorted(FORMULAS), "smoothgradcam++"])
def test_batch_independence(method: str) -> None:
    model, x = tiny(2)[0], inputs(2, 5)
    options = {"layers": ["conv1", "conv2"]} if method == "layercam" else {"layer": "conv1"}
    options |= {"n": 4} if method == "smoothgradcam++" else {}
    together = explain(model, x, method=method, batch_size=3, **options)
    for i in range(5):
        alone = explain(model, x[i : i + 1], method=method, **options)
        np.testing.assert_allclose(alone.raw[0], together.raw[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(alone.maps[0], together.maps[i], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- LayerCAM fusion


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("gamma", [None, 2.0])
def test_layercam_fuses_two_layers(rank: int, gamma: float | None) -> None:
    (model, layers), x = tiny(rank), inputs(rank, 4)
    exp = explain(model, x, method="layercam", layers=["conv2", "conv1"], targets="top2", gamma=gamma)
    size = x.shape[1:-1]
    assert exp.layer == "conv2" and exp.raw.shape == (4, 2, *size) and exp.maps.shape == (4, 2, *size)
    for column in range(2):
        t = exp.targets[:, column]
        deep = FORMULAS["layercam"](*acts_grads(layers, 2, x, t)[:2])  # the first layer: the engine's
        shallow = np_maps(FORMULAS["layercam"](*acts_grads(layers, 0, x, t)[:2]), size)
        shallow = np.tanh(gamma * shallow) if gamma else shallow
        fused = np.maximum(np_maps(deep, size), shallow)
        np.testing.assert_allclose(exp.raw[:, column], fused, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(exp.maps[:, column], np_normalise(fused, False, rank), rtol=1e-4, atol=1e-5)
    single = explain(model, x, method="layercam", layer="conv2", targets="top2")
    np.testing.assert_array_equal(exp.targets, single.targets)  # the first layer's step chooses the classes
    np.testing.assert_allclose(exp.scores, single.scores, rtol=1e-6)
    assert single.raw.shape == (4, 2, *acts_grads(layers, 2, x, single.targets[:, 0])[0].shape[1:-1])


def test_layercam_layers_option() -> None:
    model, x = tiny(1)[0], inputs(1, 2)
    by_index = explain(model, x, method="layercam", layers=[-3])  # conv1 (convs: conv1, conv2, mix)
    by_name = explain(model, x, method="layercam", layers="conv1")  # one entry, not a list
    np.testing.assert_allclose(by_index.raw, by_name.raw, rtol=1e-6)
    assert by_name.layer == "conv1"  # exactly the layers given, the first one the engine's
    same = explain(model, x, method="layercam", layers=["conv2", "conv2"])  # repeats are dropped
    np.testing.assert_allclose(same.raw, explain(model, x, method="layercam", layer="conv2").raw, rtol=1e-6)
    both = explain(model, x, method="layercam", layer="conv2", layers=["conv1"])  # layer=, then the entries
    np.testing.assert_allclose(both.raw, explain(model, x, method="layercam", layers=["conv2", "conv1"]).raw,
                               rtol=1e-6)
    cls = method_class("layercam")
    assert cls(layers=["conv1", "conv2"]).passes(5) == Passes(2, 2)
    assert cls(smooth="aug").passes(5) == Passes(6, 6)
    for bad, culprit in [(["nope"], "no layer named 'nope'"), ([-9], "-9 counts conv layers"), ([None], "None"),
                         (["flat"], "no spatial axes"), ([{"a": 1}], "entry")]:
        with pytest.raises(CamkitError, match="layers") as err:
            explain(model, x, method="layercam", layers=bad)
        assert culprit in str(err.value)
    with pytest.raises(CamkitError, match="gamma"):
        explain(model, x, method="layercam", gamma=-1)


# --------------------------------------------------------------------------- Smooth Grad-CAM++


def np_smoothgradcampp(layers: list[L.Layer], at: int, x: np.ndarray, n: int, sigma: float, seed: int) -> tuple:
    """An explicit loop over samples and copies: raw maps, the targets and the per-channel terms ``w_k A_k``."""
    eps = unit_noise(n, x.shape[1:], seed)
    a, _, logits = acts_grads(layers, at, x, np.zeros(len(x), int))
    targets = logits.argmax(1)
    raws, weighted = [], []
    for i in range(len(x)):
        spread = sigma * (x[i].max() - x[i].min())
        grads = [acts_grads(layers, at, x[i : i + 1] + spread * eps[m : m + 1], targets[i : i + 1])[1][0]
                 for m in range(n)]
        d1, d2, d3 = (np.mean([g**p for g in grads], axis=0) for p in (1, 2, 3))
        total = a[i].sum(axis=tuple(range(a.ndim - 2)))  # (K,) Σ over positions
        denom = 2 * d2 + total * d3
        alpha = d2 / np.where(denom == 0, 1.0, denom)
        w = (alpha * np.maximum(d1, 0)).sum(axis=tuple(range(a.ndim - 2)))
        weighted.append(a[i] * w)
        raws.append(np.maximum(weighted[-1].sum(-1), 0))
    return np.stack(raws), targets, np.stack(weighted)


@pytest.mark.parametrize("rank", [1, 2])
def test_smoothgradcampp_against_a_loop(rank: int) -> None:
    (model, layers), x = tiny(rank), inputs(rank, 3)
    x[1] *= 3.0  # a larger range: more noise for that sample
    exp = explain(model, x, method="smoothgradcam++", layer="conv1", n=5, sigma=0.3, seed=7, batch_size=2)
    expected, targets, _ = np_smoothgradcampp(layers, 0, x, 5, 0.3, 7)  # conv1: g depends on the input
    np.testing.assert_array_equal(exp.targets, targets)
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(exp.maps, np_maps(expected, x.shape[1:-1]), rtol=1e-4, atol=1e-5)
    clean = explain(model, x, method="gradcam++", layer="conv1")
    assert not np.allclose(exp.raw, clean.raw, atol=1e-2)  # the noise matters
    other_seed = explain(model, x, method="smoothgradcam++", layer="conv1", n=5, sigma=0.3, seed=8)
    assert not np.allclose(exp.raw, other_seed.raw, atol=1e-2)


def test_smoothgradcampp_without_noise_is_gradcampp() -> None:
    model, x = tiny(1)[0], inputs(1, 4)
    smooth = explain(model, x, method="smoothgradcam++", n=2, sigma=0.0, targets="top2", batch_size=3)
    plain = explain(model, x, method="gradcam++", targets="top2", batch_size=3)
    np.testing.assert_array_equal(smooth.targets, plain.targets)
    np.testing.assert_allclose(smooth.raw, plain.raw, rtol=1e-5, atol=1e-7)
    cls = method_class("smoothgradcam++")
    assert cls(n=4).passes(8) == Passes(5, 4) and cls(n=4, smooth="aug").passes(8) == Passes(30, 24)
    np.testing.assert_array_equal(unit_noise(3, (4, 2), 1), unit_noise(3, (4, 2), 1))
    for bad in [{"n": 0}, {"n": 2.5}, {"sigma": -0.1}, {"seed": "a"}]:
        with pytest.raises(CamkitError, match=f"^{next(iter(bad))}:"):
            explain(model, x, method="smoothgradcam++", **bad)


# --------------------------------------------------------------------------- smooth="eigen" / "aug"


def np_first_component(weighted: np.ndarray) -> np.ndarray:
    """Each sample's positions x channels matrix, centred, on its first principal component (smoothing.py's sign)."""
    out = []
    for w in weighted:
        flat = w.reshape(-1, w.shape[-1])
        centred = flat - flat.mean(0)
        v = np.linalg.svd(centred, full_matrices=False)[2][0]
        sign = np.sign(v.sum()) if abs(v.sum()) > 1e-6 * np.abs(v).max() else np.sign(v[np.abs(v).argmax()])
        out.append((centred @ v * sign).reshape(w.shape[:-1]))
    return np.stack(out)


@pytest.mark.parametrize("method", [*sorted(FORMULAS), "smoothgradcam++"])
def test_eigen_smoothing(method: str) -> None:
    (model, layers), x = tiny(1), inputs(1, 3)
    options = {"n": 3, "sigma": 0.2} if method == "smoothgradcam++" else {}
    layer, at = ("conv1", 0) if method == "smoothgradcam++" else ("mix", 3)
    exp = explain(model, x, method=method, layer=layer, smooth="eigen", **options)
    if method == "smoothgradcam++":
        weighted = np_smoothgradcampp(layers, at, x, 3, 0.2, 0)[2]
    else:
        a, g, logits = acts_grads(layers, at, x, np.zeros(3, int))
        a, g, _ = acts_grads(layers, at, x, logits.argmax(1))
        weighted = np_weighted(method, a, g)
    expected = np.maximum(np_first_component(weighted), 0)
    assert expected.max() > 0
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("method", [*sorted(FORMULAS), "smoothgradcam++"])
def test_aug_smoothing(method: str) -> None:
    """The raw map is the mean of the copies' normalised raw maps, each flipped back, for the input's class."""
    model, x = tiny(1)[0], inputs(1, 3)
    options = {"n": 3} if method == "smoothgradcam++" else {"layers": ["conv1"]} if method == "layercam" else {}
    exp = explain(model, x, method=method, smooth="aug", **options)
    plain = explain(model, x, method=method, **options)
    np.testing.assert_array_equal(exp.targets, plain.targets)
    copies = []
    for flip, factor in AUG_COPIES:
        copy = x * factor
        raw = explain(model, copy[:, ::-1] if flip else copy, method=method, targets=plain.targets, **options).raw
        copies.append(unit(raw[:, ::-1] if flip else raw))
    np.testing.assert_allclose(exp.raw, np.mean(copies, axis=0), rtol=1e-4, atol=1e-5)
    assert not np.allclose(exp.raw, unit(plain.raw), atol=1e-3)


# --------------------------------------------------------------------------- CLI


def test_cli_layercam_layers(tmp_path, data_root) -> None:
    """``camkit explain --method layercam -o layers=[...]`` on GunPoint with an untrained FCN."""
    keras.utils.set_random_seed(0)
    model_path = tmp_path / "fcn.keras"
    camkit.build_model("fcn", (150, 1), 2).save(model_path)
    out = tmp_path / "out"
    result = ok("explain", "--model-path", model_path, "--dataset", "GunPoint", "--data-root", data_root,
                "--method", "layercam", "-o", "layers=[block1_relu, block2_relu]", "--n-images", 3,
                "--save-dir", out, "--no-progress")
    assert "with layercam at block1_relu" in result.output
    with np.load(out / "explanation.npz", allow_pickle=False) as npz:
        maps, raw, targets = npz["maps"], npz["raw"], npz["targets"]
    assert maps.shape == raw.shape == (3, 150) and maps.min() >= 0 and maps.max() == pytest.approx(1)
    x = load_timeseries("GunPoint", data_root).x_test[:3]
    direct = explain(keras.models.load_model(model_path, compile=False), x, method="layercam",
                     layers=["block1_relu", "block2_relu"])
    np.testing.assert_allclose(maps, direct.maps, atol=1e-5)
    np.testing.assert_array_equal(targets, direct.targets)
    assert len(list(out.glob("series_*.png"))) == 4
