"""The two smoothings every gradient method takes (``smooth="aug"``, ``smooth="eigen"``), and Eigen-CAM's projection.

- ``smooth="eigen"``: the map is the projection of the weighted activations ``w_k A_k`` (positions × channels,
  centred per channel) on their first principal component instead of their sum ``Σ_k w_k A_k``
  (pytorch-grad-cam's ``eigen_smooth``). :func:`first_component` fixes the component's sign (see there).
- ``smooth="aug"``: the mean of the maps of six copies of the input, ``{identity, horizontal flip} × {×0.9, ×1,
  ×1.1}`` intensity (pytorch-grad-cam's ``aug_smooth``: ttach's ``HorizontalFlip`` and ``Multiply``). A series is
  flipped in time. Each copy's raw map is flipped back (at the layer's resolution: bilinear upsampling with
  half-pixel centres commutes with the flip), normalised to [0, 1] as a map is, and the six are averaged:
  ``raw`` is that mean and ``maps`` its upsampled, normalised self. The class explained on every copy is the one
  chosen on the input itself.
"""

from __future__ import annotations

import tensorflow as tf

SMOOTHINGS = ("aug", "eigen")
SIGN_TOLERANCE = 1e-3  # relative: loadings sums and magnitudes closer than this count as equal
AUG_COPIES = tuple((flip, factor) for flip in (False, True) for factor in (0.9, 1.0, 1.1))


def first_component(weighted: tf.Tensor) -> tf.Tensor:
    """(B, *spatial, K) -> (B, *spatial): each sample's positions × channels matrix ``X``, centred per channel,
    projected on its first principal component (right singular vector ``v`` of the largest singular value).

    Sign rule (:func:`component_sign`): ``v`` is oriented so that its loadings sum to a positive number, i.e. the
    projection correlates positively with the centred channel sum ``Σ_k X_k`` (``⟨X v, X 1⟩ = σ₁² ⟨v, 1⟩``); when
    they sum to about zero, its largest-magnitude loading (the first channel among near-equal ones) is made
    positive. The centring subtracts each channel's first value before its mean, so that a constant channel is
    exactly zero: a sample with no variance gives zeros, not the rounding noise of its mean. When ``σ₁ = σ₂`` the
    component itself is not unique and no rule can fix it.
    """
    spatial = tf.shape(weighted)[:-1]
    b, k = tf.shape(weighted)[0], tf.shape(weighted)[-1]
    flat = tf.reshape(tf.cast(weighted, tf.float32), tf.stack([b, -1, k]))
    shifted = flat - flat[:, :1]
    centred = shifted - tf.reduce_mean(shifted, axis=1, keepdims=True)
    s, u, v = tf.linalg.svd(centred, full_matrices=False)
    projection = u[:, :, 0] * (s[:, :1] * component_sign(v[:, :, 0])[:, None])
    return tf.reshape(projection, spatial)


def component_sign(loadings: tf.Tensor) -> tf.Tensor:
    """(B, K) unit loadings -> (B,) ±1: the sign of their sum; when ``|Σ v| ≤ SIGN_TOLERANCE · Σ|v|`` (a sum that
    float32 rounding could flip), the sign of the first loading whose magnitude is within ``SIGN_TOLERANCE`` of
    the largest (so that an exact tie such as ``(1, −1)/√2`` is not decided by rounding either)."""
    magnitude = tf.abs(loadings)
    total = tf.reduce_sum(loadings, axis=1)
    near_peak = magnitude >= (1 - SIGN_TOLERANCE) * tf.reduce_max(magnitude, axis=1, keepdims=True)
    index = tf.range(tf.shape(loadings)[1])
    first = tf.reduce_min(tf.where(near_peak, index[None, :], tf.shape(loadings)[1]), axis=1)
    lead = tf.gather(loadings, first, batch_dims=1)
    balanced = tf.abs(total) <= SIGN_TOLERANCE * tf.reduce_sum(magnitude, axis=1)
    return tf.where(balanced, tf.sign(lead), tf.sign(total))


def flip_spatial(t: tf.Tensor, rank: int) -> tf.Tensor:
    """Flip the horizontal axis (W of (B, H, W, ...), T of (B, T, ...)); ``rank``: 1 for series, 2 for images."""
    return tf.reverse(t, axis=[rank])


def aug_copy(x: tf.Tensor, flip: bool, factor: float) -> tf.Tensor:
    """The input ``(B, *spatial, C)`` times ``factor``, flipped horizontally (in time) when ``flip``."""
    copy = x * factor
    return flip_spatial(copy, x.shape.rank - 2) if flip else copy
