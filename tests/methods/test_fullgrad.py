"""FullGrad against an independent computation: the forward pass rewritten in TF ops from the layers' weights, its
own tape for ``∇ₓy`` and every ``∂y/∂z``, and the authors' post-processing in NumPy."""

from __future__ import annotations

import gc
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

from camkit.methods import Passes, explain, method_class
from camkit.methods.fullgrad import full_gradient
from camkit.methods.layers import walk

L = keras.layers
SHAPES = {"series": (16, 2), "images": (8, 8, 3)}
EPS = 1e-3  # the BatchNormalization layers' epsilon


def layer_kit(kind: str) -> tuple:
    if kind == "series":
        return L.Conv1D, L.MaxPooling1D, L.GlobalAveragePooling1D
    return L.Conv2D, L.MaxPooling2D, L.GlobalAveragePooling2D


def stack(kind: str, bn: bool) -> list[keras.layers.Layer]:
    """c1 (bias, fused ReLU) -> [bn] -> max-pool 2 -> c2 (bias, fused ReLU) -> GAP -> head (Dense + softmax)."""
    conv, pool, gap = layer_kit(kind)
    layers = [conv(3, 3, padding="same", activation="relu", name="c1")]
    layers += [L.BatchNormalization(epsilon=EPS, name="bn")] if bn else []
    return [*layers, pool(2, name="pool"), conv(4, 3, padding="same", activation="relu", name="c2"),
            gap(name="gap"), L.Dense(3, activation="softmax", name="head")]


def set_weights(model: keras.Model) -> keras.Model:
    """Seeded kernels and biases (non-zero), non-trivial BatchNormalization statistics."""
    rng = np.random.default_rng(3)
    for ref in walk(model):
        if ref.layer.name == "bn":
            ref.layer.set_weights([np.array(v, np.float32) for v in
                                   ([1.5, 0.5, 2.0], [0.1, -0.2, 0.3], [0.2, -0.1, 0.4], [0.5, 2.0, 1.2])])
        elif ref.layer.name in ("c1", "c2", "head"):
            ref.layer.set_weights([rng.normal(0, 0.6, w.shape).astype(np.float32) for w in ref.layer.get_weights()])
    return model


def functional(kind: str, bn: bool = True) -> keras.Model:
    inputs = x = keras.Input(SHAPES[kind])
    for layer in stack(kind, bn):
        x = layer(x)
    return set_weights(keras.Model(inputs, x))


def nested(kind: str) -> keras.Model:
    """c1 -> bn inside a nested Sequential ("inner"), the rest outside."""
    layers = stack(kind, bn=True)
    inner = keras.Sequential([keras.Input(SHAPES[kind]), *layers[:2]], name="inner")
    inputs = keras.Input(SHAPES[kind])
    x = inner(inputs)
    for layer in layers[2:]:
        x = layer(x)
    return set_weights(keras.Model(inputs, x))


class Subclassed(keras.Model):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.parts = stack(kind, bn=True)

    def call(self, x):
        for layer in self.parts:
            x = layer(x)
        return x


def subclassed(kind: str) -> keras.Model:
    model = Subclassed(kind)
    model(np.zeros((1, *SHAPES[kind]), np.float32))
    return set_weights(model)


def inputs(kind: str, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, *SHAPES[kind])).astype(np.float32)


def weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    return {ref.layer.name: ref.layer.get_weights() for ref in walk(model)}


def reference_terms(model: keras.Model, x: np.ndarray, targets: np.ndarray | None = None) -> dict:
    """x ⊙ ∇ₓy and b ⊙ ∂y/∂z of every biased layer, from the weights, with a tape of our own."""
    w = weights(model)
    rank = x.ndim - 2
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = {"c1": tf.nn.convolution(x, w["c1"][0], padding="SAME") + w["c1"][1]}
        a = tf.nn.relu(z["c1"])
        if "bn" in w:
            gamma, beta, mean, var = w["bn"]
            z["bn"] = (a - mean) / np.sqrt(var + EPS) * gamma + beta
            a = z["bn"]
        a = tf.nn.pool(a, [2] * rank, "MAX", strides=[2] * rank, padding="VALID")
        z["c2"] = tf.nn.convolution(a, w["c2"][0], padding="SAME") + w["c2"][1]
        pooled = tf.reduce_mean(tf.nn.relu(z["c2"]), axis=list(range(1, rank + 1)))
        z["head"] = pooled @ w["head"][0] + w["head"][1]
        t = np.argmax(z["head"].numpy(), axis=1) if targets is None else targets
        y = tf.reduce_sum(tf.gather(z["head"], t, batch_dims=1))
    grads = tape.gradient(y, [x, *z.values()])
    bias = {name: w[name][1] for name in z}
    if "bn" in w:
        bias["bn"] = beta - mean * gamma / np.sqrt(var + EPS)
    terms = {name: g.numpy() * bias[name] for name, g in zip(z, grads[1:], strict=True)}
    return {"input": (x * grads[0]).numpy(), "terms": terms, "targets": t, "logits": z["head"].numpy()}


def psi(term: np.ndarray) -> np.ndarray:
    """|term|, min-max over each sample's positions and channels, summed over channels."""
    a = np.abs(term).reshape(len(term), -1)
    low, high = a.min(1, keepdims=True), a.max(1, keepdims=True)
    return ((a - low) / (high - low)).reshape(term.shape).sum(-1)


def upsample(m: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Bilinear with half-pixel centres, axis by axis (np.interp clamps at the edges, as TF does)."""
    for axis, out in enumerate(size, start=1):
        n = m.shape[axis]
        src = np.clip((np.arange(out) + 0.5) * n / out - 0.5, 0, n - 1)
        m = np.apply_along_axis(lambda v, src=src, n=n: np.interp(src, np.arange(n), v), axis, m)
    return m


def reference_raw(ref: dict) -> np.ndarray:
    """ψ(x ⊙ ∇ₓy) + Σ ψ(b ⊙ ∂y/∂z) upsampled, over the spatial terms (the Dense head's has no positions)."""
    size = ref["input"].shape[1:-1]
    spatial = [t for t in ref["terms"].values() if t.ndim == ref["input"].ndim]
    return psi(ref["input"]) + sum(upsample(psi(t), size) for t in spatial)


def minmax(m: np.ndarray) -> np.ndarray:
    flat = m.reshape(len(m), -1)
    low, high = flat.min(1, keepdims=True), flat.max(1, keepdims=True)
    return ((flat - low) / (high - low)).reshape(m.shape)


def check_against_reference(model: keras.Model, x: np.ndarray, **kwargs) -> None:
    ref = reference_terms(model, x, kwargs.get("targets"))
    exp = explain(model, x, method="fullgrad", batch_size=3, **kwargs)
    assert exp.layer is None and exp.raw.shape == x.shape[:-1] and exp.maps.shape == x.shape[:-1]
    np.testing.assert_array_equal(exp.targets, ref["targets"])
    # batch_size=3 against the whole batch: float32 sums in another order (|logits| ~ 20: a few 1e-6 apart)
    np.testing.assert_allclose(exp.scores, np.take_along_axis(ref["logits"], ref["targets"][:, None], 1)[:, 0],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(exp.raw, reference_raw(ref), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(exp.maps, minmax(reference_raw(ref)), atol=1e-5)


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_fullgrad_formula(kind: str) -> None:
    model = functional(kind)
    x = inputs(kind, n=5)
    check_against_reference(model, x)
    check_against_reference(model, x, targets=np.array([2, 0, 1, 1, 2]))


@pytest.mark.parametrize(("kind", "bn"), [("series", False), ("images", False), ("images", True)])
def test_completeness_and_terms(kind: str, bn: bool) -> None:
    """y = Σ(x ⊙ ∇ₓy) + Σ_layers Σ(b ⊙ ∇_b y) for a ReLU network (also with BN in inference mode: affine)."""
    model = functional(kind, bn)
    x = inputs(kind, seed=1)
    dec = full_gradient(model, x, targets=1)
    ref = reference_terms(model, x, np.full(len(x), 1))
    assert dec.paths == (["c1", "bn", "c2", "head"] if bn else ["c1", "c2", "head"])
    np.testing.assert_array_equal(dec.targets, 1)
    np.testing.assert_allclose(dec.scores, ref["logits"][:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dec.input_term, ref["input"], rtol=1e-4, atol=1e-6)
    for path, term in zip(dec.paths, dec.bias_terms, strict=True):
        np.testing.assert_allclose(term, ref["terms"][path], rtol=1e-4, atol=1e-6)
    total = dec.input_term.reshape(len(x), -1).sum(1) + sum(t.reshape(len(x), -1).sum(1) for t in dec.bias_terms)
    np.testing.assert_allclose(total, dec.scores, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(SHAPES))
def test_nested_and_subclassed(kind: str) -> None:
    x = inputs(kind, seed=2)
    model = nested(kind)
    check_against_reference(model, x)
    assert full_gradient(model, x).paths == ["inner/c1", "inner/bn", "c2", "head"]
    check_against_reference(subclassed(kind), x)


def test_batch_independence_and_model_untouched() -> None:
    model = functional("images")
    x = inputs("images", n=7, seed=4)
    fused = {ref.path: ref.layer.activation for ref in walk(model) if hasattr(ref.layer, "activation")}
    attrs = {ref.path: sorted(ref.layer.__dict__) for ref in walk(model)}
    together = explain(model, x, method="fullgrad", batch_size=4)
    for i in (0, 3, 6):
        alone = explain(model, x[i : i + 1], method="fullgrad", batch_size=4)
        np.testing.assert_allclose(alone.raw[0], together.raw[i], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(alone.maps[0], together.maps[i], atol=1e-6)
    assert all(walk_ref.layer.activation is fused[walk_ref.path] for walk_ref in walk(model) if walk_ref.path in fused)
    assert {ref.path: sorted(ref.layer.__dict__) for ref in walk(model)} == attrs
    assert model.get_layer("c1").activation is keras.activations.relu


def test_cached_steps_do_not_keep_the_model_alive() -> None:
    model = functional("series", bn=False)
    explain(model, inputs("series", n=2), method="fullgrad")
    full_gradient(model, inputs("series", n=2))
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


def test_metadata() -> None:
    cls = method_class("fullgrad")
    assert not cls.uses_layer and cls.display == "overlay" and not cls.relu
    assert cls().passes(512) == Passes(1, 1, backward_to="input")
