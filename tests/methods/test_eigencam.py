"""Eigen-CAM and Eigen-Grad-CAM against NumPy's SVD; the sign rule; class-agnostic; no variance; no backward pass."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from cam_reference import KINDS, inputs, np_first_pc, np_sign, tiny

import camkit
from camkit.errors import CamkitError
from camkit.methods import Passes, method_class
from camkit.methods.base import make_method
from camkit.methods.mapmath import normalise, upsample
from camkit.methods.smoothing import component_sign, first_component

L = keras.layers
CASES = [pytest.param(kind, nested, id=f"{kind}{'-nested' if nested else ''}") for kind in KINDS
         for nested in (False, True)]


def expected_maps(raw: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    return np.asarray(normalise(upsample(np.float32(raw), size), signed=False))


@pytest.mark.parametrize(("kind", "nested"), CASES)
def test_eigencam_and_eigengradcam_against_numpy_svd(kind: str, nested: bool) -> None:
    net, x = tiny(kind, nested), inputs(kind, n=4)
    targets = np.array([0, 2, 1, 2])
    acts, grads = net.acts_and_grads(x, targets)
    for method, weighted in (("eigencam", acts), ("eigengradcam", grads * acts)):
        exp = camkit.explain(net.model, x, method=method, layer=net.path, targets=targets, batch_size=3)
        expected = np.maximum(np_first_pc(weighted), 0)
        assert exp.layer == net.path and exp.raw.shape == acts.shape[:-1]
        scale = expected.reshape(4, -1).max(axis=1)
        assert (scale > 0).all()  # real maps, not all zero
        np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-5 * scale.max())
        np.testing.assert_allclose(exp.maps, expected_maps(expected, x.shape[1:-1]), atol=1e-5)
        np.testing.assert_array_equal(exp.targets, targets)
        np.testing.assert_allclose(exp.scores, net.logits(x)[np.arange(4), targets], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["eigencam", "eigengradcam"])
@pytest.mark.parametrize("kind", KINDS)
def test_batch_independence(method: str, kind: str) -> None:
    net, x = tiny(kind), inputs(kind, n=5, seed=4)
    batched = camkit.explain(net.model, x, method=method, layer=net.path, batch_size=2)  # the last batch is padded
    for i in range(5):
        alone = camkit.explain(net.model, x[i:i + 1], method=method, layer=net.path)
        np.testing.assert_allclose(alone.raw[0], batched.raw[i], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(alone.maps[0], batched.maps[i], atol=1e-6)


def unsigned_sums(weighted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Σ_k v_k of the first right singular vector as NumPy's and TensorFlow's SVDs return it, per sample."""
    centred = weighted - weighted.mean(axis=tuple(range(1, weighted.ndim - 1)), keepdims=True)
    flat = centred.reshape(len(weighted), -1, weighted.shape[-1])
    v = tf.linalg.svd(tf.constant(flat, tf.float32), full_matrices=False)[2]
    return np.array([np.linalg.svd(m, full_matrices=False)[2][0].sum() for m in flat]), np.asarray(v[:, :, 0]).sum(1)


def test_sign_rule_against_numpy_either_sign_of_v() -> None:
    """The projection correlates positively with the centred channel sum, whatever sign the SVD gives ``v``."""
    rng = np.random.default_rng(7)
    latent, signs = rng.normal(size=(12, 9, 1)), rng.choice([-1, 1], size=(12, 1, 5))
    weighted = latent * signs * rng.random(5) * 2 + 0.3 * rng.normal(size=(12, 9, 5)) + rng.normal(size=5)
    ours = np.asarray(first_component(tf.constant(weighted, tf.float32)))
    np.testing.assert_allclose(ours, np_first_pc(weighted), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours, np_first_pc(weighted, flip_v=True), rtol=1e-4, atol=1e-5)
    centred_sum = (weighted - weighted.mean(axis=1, keepdims=True)).sum(axis=-1)
    assert ((ours * centred_sum).sum(axis=1) > 0).all()
    for sums in unsigned_sums(weighted):  # either SVD alone would have given some of these maps negated
        assert min(sums) < 0 < max(sums)


# unit loadings -> the sign the rule gives them: the sign of Σv; Σv ≈ 0: the first near-largest loading's sign
SIGNS = {
    "sum decides": ([0.9, -0.3, 0.3, -0.1], 1.0),
    "tie, larger second by rounding": ([0.7071067, -0.7071068], 1.0),
    "tie, larger first by rounding": ([-0.7071068, 0.7071067], -1.0),
    "balanced, largest leads": ([-1.0, 2.0, -1.0], 1.0),
    "balanced within tolerance": ([-2.0, 1.0, 1.0005], -1.0),
}


@pytest.mark.parametrize("case", SIGNS, ids=list(SIGNS))
def test_component_sign(case: str) -> None:
    v, sign = SIGNS[case]
    v = np.array(v, np.float32) / np.linalg.norm(v)
    got = np.asarray(component_sign(tf.constant(np.stack([v, -v]))))
    np.testing.assert_array_equal(got, [sign, -sign])  # v and −v oriented alike
    assert np_sign(v) == sign


def one_by_one(kernel: list[float], bias: list[float], length: int = 9) -> keras.Model:
    """Series (length, 1) -> 1x1 Conv1D ``conv`` (ReLU) with hand-set weights -> GAP -> Dense(2)."""
    keras.utils.set_random_seed(0)
    inputs_ = keras.Input((length, 1))
    x = L.GlobalAveragePooling1D()(L.Conv1D(len(kernel), 1, activation="relu", name="conv")(inputs_))
    model = keras.Model(inputs_, L.Dense(2, name="logits")(x))
    model.get_layer("conv").set_weights([np.array([[kernel]], np.float32), np.array(bias, np.float32)])
    return model


# channel values from s in [0, 1] (the ReLU is the identity there) -> the expected projection, in (s − mean s):
# loadings (1, −1)/√2: sum 0, a tie, so the first channel is made positive; (2, −1, −1)/√6: sum 0, channel 0 leads
BALANCED = {
    "tie, first channel s": ([1.0, -1.0], [0.0, 1.0], np.sqrt(2)),
    "tie, first channel 1 - s": ([-1.0, 1.0], [1.0, 0.0], -np.sqrt(2)),
    "sum zero, largest leads": ([1.0, -0.5, -0.5], [0.0, 0.5, 0.5], np.sqrt(1.5)),
}


@pytest.mark.parametrize("case", BALANCED, ids=list(BALANCED))
def test_sign_rule_when_the_loadings_sum_to_zero(case: str) -> None:
    kernel, bias, factor = BALANCED[case]
    s = np.random.default_rng(1).random((3, 9, 1)).astype(np.float32)
    exp = camkit.explain(one_by_one(kernel, bias), s, method="eigencam", layer="conv")
    expected = np.maximum(factor * (s[..., 0] - s[..., 0].mean(axis=1, keepdims=True)), 0)
    np.testing.assert_allclose(exp.raw, expected, rtol=1e-4, atol=1e-5)


def test_eigencam_sign_where_the_svd_would_negate_the_map() -> None:
    """A linear 1x1 layer whose unsigned SVDs give some samples the negated map; ``−x`` gives ``−A`` and the same
    component, so ``raw(x) − raw(−x) = ReLU(p) − ReLU(−p)`` recovers the signed projection ``p``."""
    kernel = np.array([[1.0, -1.0, 0.5, -0.3], [0.2, 0.8, -1.0, 0.4], [-0.6, 0.1, 0.3, 1.0]], np.float32)
    inputs_ = keras.Input((12, 3))
    conv = L.Conv1D(4, 1, use_bias=False, name="conv")
    model = keras.Model(inputs_, L.Dense(2)(L.GlobalAveragePooling1D()(conv(inputs_))))
    conv.set_weights([kernel[None]])
    x = np.random.default_rng(0).normal(size=(8, 12, 3)).astype(np.float32)
    acts = np.float64(x) @ kernel
    for sums in unsigned_sums(acts):
        assert min(sums) < 0 < max(sums)
    plus, minus = (camkit.explain(model, v, method="eigencam", layer="conv").raw for v in (x, -x))
    np.testing.assert_allclose(plus, np.maximum(np_first_pc(acts), 0), rtol=1e-4, atol=1e-5)
    projection = plus - minus
    np.testing.assert_allclose(projection, np_first_pc(acts), rtol=1e-4, atol=1e-5)
    centred_sum = (acts - acts.mean(axis=1, keepdims=True)).sum(axis=-1)
    assert ((projection * centred_sum).sum(axis=1) > 0).all()


def test_eigencam_is_class_agnostic_and_eigengradcam_is_not() -> None:
    net, x = tiny("images"), inputs("images", n=3, seed=5)
    maps = {}
    for method in ("eigencam", "eigengradcam"):
        for target in (0, 1):
            exp = camkit.explain(net.model, x, method=method, layer=net.path, targets=target)
            np.testing.assert_array_equal(exp.targets, [target] * 3)
            np.testing.assert_allclose(exp.scores, net.logits(x)[:, target], rtol=1e-5, atol=1e-6)
            maps[method, target] = exp.maps
    np.testing.assert_array_equal(maps["eigencam", 0], maps["eigencam", 1])
    assert not np.allclose(maps["eigengradcam", 0], maps["eigengradcam", 1], atol=1e-3)


@pytest.mark.parametrize("method", ["eigencam", "eigengradcam"])
def test_a_sample_with_no_variance_gives_zeros(method: str) -> None:
    model = one_by_one([1.0, -0.5, 2.0], [0.1, 1.0, 0.3])
    x = np.random.default_rng(3).random((3, 9, 1)).astype(np.float32)
    x[1] = 0.1  # constant input: every channel of A (and of g ⊙ A: g is constant under GAP) constant
    exp = camkit.explain(model, x, method=method, layer="conv")
    assert np.isfinite(exp.raw).all() and np.isfinite(exp.maps).all()
    np.testing.assert_array_equal(exp.raw[1], 0)
    np.testing.assert_array_equal(exp.maps[1], 0)
    assert exp.maps[0].max() == pytest.approx(1) and exp.maps[2].max() == pytest.approx(1)


def test_eigencam_runs_no_backward_pass() -> None:
    """With the scores cut from ``A`` by a stop-gradient, a gradient method fails; Eigen-CAM is unchanged."""
    keras.utils.set_random_seed(2)
    x = inputs("series", n=2)
    inputs_ = keras.Input(x.shape[1:])
    acts = L.Conv1D(4, 3, activation="relu", name="conv")(inputs_)
    head = [L.GlobalAveragePooling1D(), L.Dense(3)]
    cut = keras.Model(inputs_, head[1](head[0](L.Lambda(keras.ops.stop_gradient)(acts))))
    plain = keras.Model(inputs_, head[1](head[0](acts)))
    with pytest.raises(CamkitError, match="do not depend"):
        camkit.explain(cut, x, method="eigengradcam", layer="conv")
    np.testing.assert_array_equal(camkit.explain(cut, x, method="eigencam", layer="conv").maps,
                                  camkit.explain(plain, x, method="eigencam", layer="conv").maps)
    assert method_class("eigencam").needs_grads is False
    assert make_method("eigencam").passes(512) == Passes(1, 0)
    assert make_method("eigengradcam").passes(512) == Passes(1, 1)
    assert make_method("eigencam", smooth="aug").passes(512) == Passes(6, 0)


@pytest.mark.parametrize("method", ["eigencam", "eigengradcam"])
def test_smooth_eigen_is_refused(method: str) -> None:
    with pytest.raises(CamkitError, match=r"smooth='eigen': choose one of aug"):
        make_method(method, smooth="eigen")
