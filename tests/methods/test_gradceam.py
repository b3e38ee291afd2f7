"""Grad-CeAM against NumPy: the per-cluster scalar, the channel weights, the maps, smoothing, guided, faithfulness."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import camkit
from camkit.errors import CamkitError
from camkit.methods.gradceam import feature_weights, smooth, smoothing_kernel
from camkit.metrics.cluster_faithfulness import faithfulness

T, C, K_CHANNELS, D = 12, 2, 3, 2
MU = np.array([[0.3, -0.2], [-0.4, 0.5], [0.6, 0.4]], np.float32)


def tiny_encoder(relu: bool = True) -> tuple[keras.Model, dict[str, np.ndarray]]:
    """x (T, C) -> Conv1D(3, k3, 'same') [ReLU] named conv -> GAP -> Dense(2) latent, fixed weights."""
    rng = np.random.default_rng(7)
    inputs = keras.Input((T, C))
    acts = keras.layers.Conv1D(K_CHANNELS, 3, padding="same", activation="relu" if relu else None, name="conv")(inputs)
    z = keras.layers.Dense(D, name="latent")(keras.layers.GlobalAveragePooling1D()(acts))
    model = keras.Model(inputs, z)
    weights = {"conv_k": rng.normal(size=(3, C, K_CHANNELS)), "conv_b": rng.normal(size=K_CHANNELS) * 0.1,
               "dense_k": rng.normal(size=(K_CHANNELS, D)), "dense_b": rng.normal(size=D) * 0.1}
    weights = {k: v.astype(np.float32) for k, v in weights.items()}
    model.get_layer("conv").set_weights([weights["conv_k"], weights["conv_b"]])
    model.get_layer("latent").set_weights([weights["dense_k"], weights["dense_b"]])
    return model, weights


def np_acts(x: np.ndarray, w: dict[str, np.ndarray], relu: bool = True) -> np.ndarray:
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (0, 0)))
    out = sum(np.einsum("ntc,ck->ntk", padded[:, i:i + T], w["conv_k"][i]) for i in range(3)) + w["conv_b"]
    return np.maximum(out, 0) if relu else out


def np_latent(acts: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    return acts.mean(axis=1) @ w["dense_k"] + w["dense_b"]


def np_scores(z: np.ndarray, mu: np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """(N, K) L_k written out with loops over clusters and features."""
    n, k_count, d = len(z), len(mu), mu.shape[1]
    out = np.zeros((n, k_count))
    for k in range(k_count):
        others = [o for o in range(k_count) if o != k]
        spread = np.array([sum(abs(mu[o, j] - mu[k, j]) for o in others) / d for j in range(d)])
        w = (spread - spread.min()) / (spread.max() - spread.min())
        for i in range(n):
            dist = np.abs(mu - z[i])
            r = (dist.max(0) - dist.min(0)) / (dist[k] - dist.min(0) + eps)
            out[i, k] = np.sum(w * r ** 2 * np.abs(z[i]))
    return out


@pytest.fixture(scope="module")
def setup():
    model, w = tiny_encoder()
    x = np.random.default_rng(3).normal(size=(6, T, C)).astype(np.float32)
    return model, w, x


def test_feature_weights_by_hand():
    mu = np.array([[0.0, 0.0], [1.0, 3.0], [2.0, 1.0]])
    # k=0: (|1|+|2|, |3|+|1|)/2 = (1.5, 2) -> (0, 1); k=1: (2, 5)/2 -> (0, 1); k=2: (3, 3)/2, constant -> ones
    np.testing.assert_allclose(feature_weights(mu), [[0, 1], [0, 1], [1, 1]])


def test_scalar_channel_weights_and_map_against_numpy(setup):
    model, w, x = setup
    acts = np_acts(x, w)
    z = np_latent(acts, w)
    scores = np_scores(z, MU.astype(np.float64))
    nearest = ((z[:, None] - MU[None]) ** 2).sum(-1).argmin(1)
    exp = camkit.explain(model, x, method="gradceam", centroids=MU)
    assert exp.layer == "conv"
    np.testing.assert_array_equal(exp.targets, nearest)  # default target: the sample's own (nearest) cluster
    np.testing.assert_allclose(exp.scores, scores[np.arange(len(x)), nearest], rtol=1e-4)
    for k in range(len(MU)):
        exp = camkit.explain(model, x, method="gradceam", centroids=MU, targets=k)
        np.testing.assert_allclose(exp.scores, scores[:, k], rtol=1e-4)
        # dL/dz by central differences in float64; dz_j/dA_tc = W[c, j] / T, so α_c = 2 Σ_t Σ_j dL/dz_j W[c, j] / T
        h = 1e-6
        grad_z = np.stack([(np_scores(z + h * e, MU.astype(np.float64))[:, k]
                            - np_scores(z - h * e, MU.astype(np.float64))[:, k]) / (2 * h) for e in np.eye(D)], 1)
        alpha = 2 * grad_z @ w["dense_k"].T  # (N, channels)
        raw = np.einsum("ntc,nc->nt", acts, alpha)  # no ReLU
        np.testing.assert_allclose(exp.raw, raw, rtol=2e-3, atol=2e-3 * np.abs(raw).max())
        unsmoothed = camkit.explain(model, x, method="gradceam", centroids=MU, targets=k, smooth=False).maps
        low, high = raw.min(1, keepdims=True), raw.max(1, keepdims=True)
        np.testing.assert_allclose(unsmoothed, (raw - low) / (high - low), atol=2e-3)


def test_smoothing_by_hand():
    np.testing.assert_allclose(smoothing_kernel(20), [0.5, 1, 0.5])  # D = ceil(20/20) = 1
    np.testing.assert_allclose(smoothing_kernel(21), [0.25, 0.5, 1, 0.5, 0.25])  # D = 2
    h = np.zeros((2, 40))
    h[0, 10] = 1.0
    h[1, 0], h[1, 39] = 1.0, 2.0
    expected = np.zeros((2, 40))
    expected[0, 8:13] = [0.25, 0.5, 1, 0.5, 0.25]
    expected[1, :3] = [1, 0.5, 0.25]
    expected[1, 37:] = [0.5, 1.0, 2.0]
    np.testing.assert_allclose(smooth(h).numpy(), expected, atol=1e-6)


def test_smoothed_maps_are_min_max_of_the_smoothed_unsmoothed_maps(setup):
    model, _, x = setup
    plain = camkit.explain(model, x, method="gradceam", centroids=MU, smooth=False).maps
    smoothed = camkit.explain(model, x, method="gradceam", centroids=MU).maps
    kernel = smoothing_kernel(T)
    reach = len(kernel) // 2
    by_hand = np.stack([[sum(kernel[reach + o] * m[i + o] for o in range(-reach, reach + 1) if 0 <= i + o < T)
                         for i in range(T)] for m in plain])
    by_hand = (by_hand - by_hand.min(1, keepdims=True)) / np.ptp(by_hand, axis=1, keepdims=True)
    np.testing.assert_allclose(smoothed, by_hand, atol=1e-5)
    assert smoothed.min() == 0 and smoothed.max() == 1


def test_different_centroids_do_not_share_a_compiled_step(setup):
    model, w, x = setup
    z = np_latent(np_acts(x, w), w)
    other = MU[::-1] * 1.5
    for mu in (MU, other, MU):
        exp = camkit.explain(model, x, method="gradceam", centroids=mu, targets=0)
        np.testing.assert_allclose(exp.scores, np_scores(z, mu.astype(np.float64))[:, 0], rtol=1e-4)


def test_guided_gradceam_on_a_linear_encoder():
    """No ReLU: the guided gradient is the plain gradient of L'_k = Σ_j w_kj r'|r'| z_j w.r.t. x."""
    model, _ = tiny_encoder(relu=False)
    x = np.random.default_rng(5).normal(size=(6, T, C)).astype(np.float32)
    k = 2
    weights = tf.constant(feature_weights(MU), tf.float32)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        z = model(xt)
        dist = tf.abs(MU[None] - z[:, None])
        low, high = tf.reduce_min(dist, 1), tf.reduce_max(dist, 1)
        r = (dist[:, k] - low) / (high - low)
        total = tf.reduce_sum(weights[k] * r * tf.abs(r) * z)
    grad = tape.gradient(total, xt).numpy()
    cam = camkit.explain(model, x, method="gradceam", centroids=MU, targets=k, smooth=False).maps
    guided = camkit.explain(model, x, method="guided-gradceam", centroids=MU, targets=k)
    np.testing.assert_allclose(guided.raw, grad * cam[..., None], rtol=1e-4, atol=1e-6)
    prod = (grad * cam[..., None]).astype(np.float64)
    assert (np.abs(prod).max(axis=(1, 2)) > 0).sum() >= 2  # not vacuous: some samples have a guided gradient
    low, span = prod.min(axis=(1, 2), keepdims=True), np.ptp(prod, axis=(1, 2), keepdims=True)
    expected = np.where(span > 0, (prod - low) / np.where(span > 0, span, 1), 0).max(-1)  # constant -> zeros
    np.testing.assert_allclose(guided.maps, expected, atol=1e-5)


def test_errors_name_what_is_wrong(setup):
    model, _, x = setup
    with pytest.raises(CamkitError, match="needs centroids"):
        camkit.explain(model, x, method="gradceam")
    with pytest.raises(CamkitError, match="not a latent code"):
        camkit.explain(model, x, method="gradceam", centroids=np.zeros((2, 5)))
    with pytest.raises(CamkitError, match="out of range"):
        camkit.explain(model, x, method="gradceam", centroids=MU, targets=3)


def test_faithfulness_shares(setup):
    model, w, x = setup
    x = np.concatenate([x, np.random.default_rng(9).normal(size=(14, T, C)).astype(np.float32)])
    report = faithfulness(model, x, MU, batch_size=8)
    after = np.array(report["after"])
    np.testing.assert_allclose(after.sum(axis=0), 1.0)  # every column is a distribution over clusters
    z = np_latent(np_acts(x, w), w)
    nearest = ((z[:, None] - MU[None]) ** 2).sum(-1).argmin(1)
    np.testing.assert_allclose(report["before"], np.bincount(nearest, minlength=3) / len(x))
    # after[:, k] by hand: A ⊙ α_k through GAP and the Dense layer
    acts = np_acts(x, w)
    h = 1e-6
    for k in range(3):
        grad_z = np.stack([(np_scores(z + h * e, MU.astype(np.float64))[:, k]
                            - np_scores(z - h * e, MU.astype(np.float64))[:, k]) / (2 * h) for e in np.eye(D)], 1)
        alpha = 2 * grad_z @ w["dense_k"].T
        moved = np_latent(acts * alpha[:, None, :], w)
        assigned = ((moved[:, None] - MU[None]) ** 2).sum(-1).argmin(1)
        np.testing.assert_allclose(after[:, k], np.bincount(assigned, minlength=3) / len(x))
    assert [r["after"] for r in report["per_cluster"]] == [after[k, k] for k in range(3)]
