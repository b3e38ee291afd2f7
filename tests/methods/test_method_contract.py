"""Every registered method keeps the engine's contract, on the models and inputs its own metadata asks for.

No method name appears here: the cases come from ``camkit.methods()`` and each class's declared metadata
(``task``, ``requires_model``, ``input_kinds``, ``quick_options``, ``variants``, ``all_variants``, ``display``).
"""

from __future__ import annotations

import functools
import inspect

import keras
import numpy as np
import pytest

import camkit
from camkit.methods import Passes, method_class, parse_targets
from camkit.methods.cam import CAM
from camkit.methods.smoothing import SMOOTHINGS
from camkit.models import model_names

L = keras.layers
SHAPES = {"series": (12, 2), "images": (32, 32, 3)}  # 32x32: the smallest densenet-full input
N_CLASSES = 3
LATENT = 2


def _body(inputs: keras.KerasTensor, kind: str) -> keras.KerasTensor:
    """conv -> conv (ReLU) -> GAP, 1-D or 2-D, seeded weights."""
    conv, gap = (L.Conv1D, L.GlobalAveragePooling1D) if kind == "series" else (L.Conv2D, L.GlobalAveragePooling2D)
    x = conv(6, 3, padding="same", activation="relu", name="conv1")(inputs)
    return gap(name="gap")(conv(5, 3, padding="same", activation="relu", name="conv2")(x))


def model_for(method: str, kind: str) -> keras.Model:
    """The model the method's metadata asks for: an encoder (cluster task), its builder's model, or a classifier."""
    return _model(method_class(method).task, method_class(method).requires_model, kind)


@functools.cache
def _model(task: str, builder: str | None, kind: str) -> keras.Model:
    keras.utils.set_random_seed(1)
    if builder is not None:
        return camkit.build_model(builder, SHAPES[kind], N_CLASSES)
    inputs = keras.Input(SHAPES[kind])
    if task == "cluster":
        return keras.Model(inputs, L.Dense(LATENT, name="latent")(_body(inputs, kind)))
    return keras.Model(inputs, L.Dense(N_CLASSES, activation="softmax", name="predictions")(_body(inputs, kind)))


def options_for(method: str, kind: str) -> dict:
    """The method's quick options; a cluster method also gets 3 centroids: latent codes of other inputs."""
    cls = method_class(method)
    if cls.task != "cluster":
        return dict(cls.quick_options)
    codes = model_for(method, kind).predict(inputs(kind, seed=9), verbose=0)
    return {**cls.quick_options, "centroids": codes[:N_CLASSES]}


def inputs(kind: str, n: int = 4, seed: int = 2) -> np.ndarray:
    """Noise with a bright block at a different place in each sample."""
    x = np.random.default_rng(seed).random((n, *SHAPES[kind])).astype(np.float32)
    for i in range(n):
        x[i, 3 * i + seed % 3 : 3 * i + seed % 3 + 5, ..., i % x.shape[-1]] += 2.0
    return x


CASES = [pytest.param(m, kind, id=f"{m}-{kind}") for m in camkit.methods() for kind in method_class(m).input_kinds]


def check_maps(maps: np.ndarray, shape: tuple[int, ...]) -> None:
    assert maps.shape == shape and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize(("method", "kind"), CASES)
def test_method_contract(method: str, kind: str) -> None:
    cls, model, options, x = method_class(method), model_for(method, kind), options_for(method, kind), inputs(kind)
    spatial = x.shape[1:-1]
    one = camkit.explain(model, x, method=method, batch_size=3, **options)
    check_maps(one.maps, (4, *spatial))
    assert one.method == method and one.targets.shape == (4,) and one.targets.dtype == np.int64
    assert one.scores.shape == (4,) and one.scores.dtype == np.float32 and one.raw.shape[0] == 4
    assert (one.raw.shape == x.shape) == (cls.display == "guided")  # guided: raw is an input-gradient image
    assert (one.layer is None) == (not cls.uses_layer)
    assert set(one.variants) <= set(cls.variants) and set(one.variant_raw) <= set(one.variants)

    alone = camkit.explain(model, x[2:3], method=method, **options)  # a sample alone equals it in a batch
    np.testing.assert_allclose(alone.maps[0], one.maps[2], atol=1e-5)
    np.testing.assert_array_equal(alone.targets, one.targets[2:3])

    y_true = (one.targets + 1) % N_CLASSES  # never the predicted class
    every = camkit.explain(model, x, method=method, targets="top2,true", y_true=y_true, batch_size=3,
                           **{**options, **cls.all_variants})
    check_maps(every.maps, (4, 3, *spatial))
    assert every.maps.max() == pytest.approx(1)  # real maps, not all zero (which a map with no range becomes)
    np.testing.assert_array_equal(every.targets[:, 0], one.targets)
    np.testing.assert_array_equal(every.targets[:, 2], y_true)
    assert (every.targets[:, 1] != every.targets[:, 0]).all()
    np.testing.assert_allclose(every.maps[:, 0], one.maps, atol=1e-5)
    np.testing.assert_allclose(every.scores[:, 0], one.scores, rtol=1e-5, atol=1e-6)
    assert list(every.variants) == list(cls.variants)  # every variant, in display order
    for maps in every.variants.values():
        check_maps(maps, every.maps.shape)
    assert not cls.variants or any(np.array_equal(v, every.maps) for v in every.variants.values())
    assert all(r.shape[:2] == (4, 3) for r in [*every.variant_raw.values(), *every.stats.values()])

    per_sample = camkit.explain(model, x, method=method, targets=y_true, **options)
    np.testing.assert_array_equal(per_sample.targets, y_true)
    np.testing.assert_allclose(per_sample.maps, every.maps[:, 2], atol=1e-5)


@pytest.mark.parametrize("method", camkit.methods())
def test_method_metadata(method: str) -> None:
    cls = method_class(method)
    assert isinstance(cls.title, str) and cls.title.strip()
    assert isinstance(cls.box_threshold, float) and 0 < cls.box_threshold < 1
    assert cls.box_threshold == (0.20 if issubclass(cls, CAM) else 0.15)  # Zhou et al.; Selvaraju et al.
    assert cls.display in ("overlay", "guided") and (cls.display == "guided") == cls.guided
    assert cls.task in ("classify", "cluster")
    assert isinstance(cls.input_kinds, tuple) and cls.input_kinds and set(cls.input_kinds) <= set(SHAPES)
    assert isinstance(cls.variants, dict) and all(isinstance(t, str) and t for t in cls.variants.values())
    assert isinstance(cls.all_variants, dict) and bool(cls.all_variants) == bool(cls.variants)
    assert set(cls.all_variants) <= set(inspect.signature(cls).parameters)
    assert set(cls.quick_options) <= set(inspect.signature(cls).parameters)
    assert isinstance(cls.needs_grads, bool) and isinstance(cls.streams, bool)
    assert parse_targets(cls.default_columns).needs_truth and parse_targets(cls.default_columns).stacked
    assert isinstance(cls.notebook_panels, tuple) and set(cls.notebook_panels) <= set(camkit.methods())
    assert cls.requires_model is None or cls.requires_model in model_names()
    assert set(cls.smooths) <= set(SMOOTHINGS) and (not cls.smooths or "smooth" in inspect.signature(cls).parameters)
    assert not cls.smooths or cls.uses_layer  # methods that weight a layer's activations
    passes = cls(**cls.quick_options).passes(channels=7) if cls.task != "cluster" else None
    if passes is not None:
        assert isinstance(passes, Passes) and passes.forward >= 1 and 0 <= passes.backward <= passes.forward
        assert (passes.backward == 0) == (not cls.needs_grads and not cls.guided) and passes.backward_to in (
            "layer", "input")
        for smooth in cls.smooths:  # aug explains six copies; eigen changes only how the map is made
            smoothed = cls(smooth=smooth, **cls.quick_options).passes(channels=7)
            assert smoothed == (passes.times(6) if smooth == "aug" else passes)

