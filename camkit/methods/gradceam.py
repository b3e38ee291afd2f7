"""Grad-CeAM: gradient-weighted centroid activation maps for a clustering of an encoder's latent codes.

Lafabregue, Weber, Gançarski & Forestier, "Grad Centroid Activation Mapping for Convolutional Neural
Networks", ICTAI 2021. The model is an encoder whose output is the latent code ``z`` (dimension d);
``μ_1..μ_K`` are k-means centroids of the codes. For target cluster ``k``, with ε = 1e-3:

- feature weights ``w_kj = minmax_j( Σ_{l≠k} |μ_lj − μ_kj| / d )`` (a constant vector -> all ones);
- ``D_kj = |μ_kj − z_j|``, ``m_j = min_l |μ_lj − z_j|``, ``M_j = max_l |μ_lj − z_j|``,
  ``r_kj = (M_j − m_j) / (D_kj − m_j + ε)``;
- the differentiated scalar ``L_k = Σ_j w_kj r_kj² |z_j|``;
- channel weights ``α_c = 2 Σ_t dL_k/dA_tc`` (a sum over positions), map ``Σ_c α_c A_c`` **without** ReLU,
  upsampled and min-max normalised. 1-D maps are then smoothed as the original does,
  ``h_i + Σ_{0<|i−j|≤D} 0.5/|i−j| · h_j`` with ``D = ceil(T/20)`` (zero outside the series), and min-max
  normalised again so that maps stay in [0, 1] (``smooth=False`` skips this).

Guided Grad-CeAM: the input gradient, through guided ReLUs, of ``L'_k = Σ_j w_kj r'_kj |r'_kj| z_j`` with
``r'_kj = (D_kj − m_j) / (M_j − m_j)`` (0 where ``M_j = m_j``), times the un-smoothed [0, 1] map, channel
by channel; ``raw`` is that (N, *input spatial, C) product, ``maps`` its per-instance min-max over all
positions and channels, reduced to the largest value over channels.

``targets=None`` explains each sample's own cluster: its nearest centroid (Euclidean, as k-means assigns).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.methods.base import Batch, Method, register_method
from camkit.methods.mapmath import normalise, upsample

EPS = 1e-3


def feature_weights(centroids: np.ndarray) -> np.ndarray:
    """(K, d) ``w_kj = minmax_j(Σ_{l≠k} |μ_lj − μ_kj| / d)``; a row with no range becomes all ones."""
    mu = np.asarray(centroids, dtype=np.float64)
    spread = np.abs(mu[None, :, :] - mu[:, None, :]).sum(axis=1) / mu.shape[1]  # the l = k term is 0
    low, high = spread.min(axis=1, keepdims=True), spread.max(axis=1, keepdims=True)
    span = high - low
    return np.where(span > 0, (spread - low) / np.where(span > 0, span, 1.0), 1.0)


def _distances(z: tf.Tensor, centroids: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """``D`` (B, K, d) and ``m``, ``M`` (B, 1, d) of the module docstring."""
    dist = tf.abs(centroids[None, :, :] - z[:, None, :])
    return dist, tf.reduce_min(dist, axis=1, keepdims=True), tf.reduce_max(dist, axis=1, keepdims=True)


def cluster_scores(z: tf.Tensor, centroids: tf.Tensor, weights: tf.Tensor, eps: float = EPS) -> tf.Tensor:
    """(B, K): ``L_k = Σ_j w_kj r_kj² |z_j|`` for every cluster ``k``, from latent codes ``z`` (B, d)."""
    dist, low, high = _distances(z, centroids)
    ratio = (high - low) / (dist - low + eps)
    return tf.reduce_sum(weights[None] * tf.square(ratio) * tf.abs(z)[:, None, :], axis=-1)


def guided_cluster_scores(z: tf.Tensor, centroids: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """(B, K): ``L'_k = Σ_j w_kj r'_kj |r'_kj| z_j`` with ``r'_kj = (D_kj − m_j)/(M_j − m_j)``."""
    dist, low, high = _distances(z, centroids)
    span = high - low
    ratio = tf.where(span > 0, (dist - low) / tf.where(span > 0, span, tf.ones_like(span)), tf.zeros_like(dist))
    return tf.reduce_sum(weights[None] * ratio * tf.abs(ratio) * z[:, None, :], axis=-1)


def nearest_ranking(z: tf.Tensor, centroids: tf.Tensor) -> tf.Tensor:
    """(B, K) minus the squared distance to every centroid: the highest is the sample's own cluster."""
    return -tf.reduce_sum(tf.square(z[:, None, :] - centroids[None, :, :]), axis=-1)


def smoothing_kernel(length: int) -> np.ndarray:
    """The (2D+1,) smoothing weights ``0.5/|i−j|`` (1 at the centre), ``D = ceil(length/20)``."""
    reach = math.ceil(length / 20)
    offsets = np.abs(np.arange(-reach, reach + 1))
    return np.where(offsets == 0, 1.0, 0.5 / np.maximum(offsets, 1))


def smooth(maps: tf.Tensor | np.ndarray) -> tf.Tensor:
    """(B, T) -> (B, T): ``h_i + Σ_{0<|i−j|≤D} 0.5/|i−j| · h_j`` (values outside the series count 0)."""
    maps = tf.convert_to_tensor(maps, tf.float32)
    kernel = tf.constant(smoothing_kernel(int(maps.shape[1])), tf.float32)[:, None, None]
    return tf.nn.conv1d(maps[:, :, None], kernel, stride=1, padding="SAME")[:, :, 0]


@register_method("gradceam")
class GradCeAM(Method):
    """Grad-CeAM: target = a cluster; ``centroids`` (K, d) of the encoder's latent codes are required."""

    relu = False
    title = "Grad-CeAM"
    task = "cluster"

    def __init__(self, centroids: Any = None, smooth: bool = True, eps: float = EPS) -> None:
        if smooth not in (True, False):  # its own 1-D smoothing, not the gradient methods' smooth="aug"/"eigen"
            raise CamkitError(f"method {self.name}: smooth={smooth!r}: expected true or false (its 1-D smoothing "
                              "of the maps); the aug and eigen smoothings are not taken by this method")
        if centroids is None:
            raise CamkitError(f"method {self.name}: needs centroids=(K, d) array of the clusters' latent centroids")
        mu = np.asarray(centroids, dtype=np.float32)
        if mu.ndim != 2 or len(mu) < 1 or not np.isfinite(mu).all():
            raise CamkitError(f"method {self.name}: centroids must be a finite (K, d) array, got shape {mu.shape}")
        self.centroids_array = mu
        self.centroids = tf.constant(mu)
        self.weights = tf.constant(feature_weights(mu), tf.float32)
        self.smooth, self.eps = bool(smooth), float(eps)
        self._key = hashlib.sha1(mu.tobytes() + str(mu.shape).encode() + repr(self.eps).encode()).hexdigest()

    def latent(self, outputs: Any) -> tf.Tensor:
        """The latent codes (B, d) from the model's first output; a clear error if they do not fit the centroids."""
        z = keras.tree.flatten(outputs)[0]
        d = self.centroids_array.shape[1]
        if z.shape.rank != 2 or z.shape[-1] != d:
            raise CamkitError(f"method {self.name}: the model's output {tuple(z.shape)} is not a latent code (batch, "
                              f"{d}) matching the centroids; explain the encoder, not the whole autoencoder")
        return tf.cast(z, tf.float32)

    def class_scores(self, outputs: Any) -> tf.Tensor:
        return cluster_scores(self.latent(outputs), self.centroids, self.weights, self.eps)

    def target_ranking(self, outputs: Any, scores: tf.Tensor) -> tf.Tensor:
        return nearest_ranking(self.latent(outputs), self.centroids)

    def guided_scores(self, outputs: Any, scores: tf.Tensor) -> tf.Tensor:
        return guided_cluster_scores(self.latent(outputs), self.centroids, self.weights)

    def step_key(self) -> Hashable:
        return type(self), self._key

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        return 2.0 * tf.reduce_sum(batch.grads, axis=list(range(1, batch.grads.shape.rank - 1)))

    def unsmoothed(self, batch: Batch, size: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
        """(raw, min-max normalised upsampled map) before any smoothing."""
        raw = self.raw_maps(batch)
        return raw, normalise(upsample(raw, size), signed=True)

    def explain_batch(self, batch: Batch, size: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
        raw, maps = self.unsmoothed(batch, size)
        if self.smooth and len(size) == 1:
            maps = normalise(smooth(maps), signed=True)
        return raw, maps


@register_method("guided-gradceam")
class GuidedGradCeAM(GradCeAM):
    """Guided gradient of ``L'_k`` × the un-smoothed Grad-CeAM map, min-max per instance."""

    guided = True
    title = "guided Grad-CeAM"
    display = "guided"

    def explain_batch(self, batch: Batch, size: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
        _, cam = self.unsmoothed(batch, size)
        raw = batch.input_grads * cam[..., None]
        return raw, tf.reduce_max(normalise(raw, signed=True), axis=-1)
