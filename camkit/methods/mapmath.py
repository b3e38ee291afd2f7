"""The map arithmetic every method shares, as TF ops: ``Σ_k w_k A_k``, the upsampling to the input's size
(bilinear, half-pixel centres; a 1-D map as a (T, 1) image), the per-sample normalisation to [0, 1], and the
zero padding of a short last batch to the compiled step's batch size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError


def weighted_sum(acts: tf.Tensor, weights: tf.Tensor) -> tf.Tensor:
    """``Σ_k w_k A_k``: (B, *spatial, K) activations, (B, K) weights -> (B, *spatial)."""
    spatial = "hwdxyz"[: acts.shape.rank - 2]
    return tf.einsum(f"b{spatial}k,bk->b{spatial}", acts, weights)


def upsample(raw: tf.Tensor | np.ndarray, size: Sequence[int]) -> tf.Tensor:
    """(B, *layer spatial) -> (B, *size), bilinear with half-pixel centres; 1-D maps as (T, 1) images."""
    raw = tf.convert_to_tensor(raw, tf.float32)
    size = tuple(int(s) for s in size)
    if raw.shape.rank - 1 != len(size) or len(size) not in (1, 2):
        shape = tuple(raw.shape[1:])
        raise CamkitError(f"layer: a map of shape {shape} cannot be upsampled to an input of shape {size}")
    if tuple(raw.shape[1:]) == size:
        return raw
    if len(size) == 1:
        return tf.image.resize(raw[:, :, None, None], (size[0], 1), method="bilinear")[:, :, 0, 0]
    return tf.image.resize(raw[..., None], size, method="bilinear")[..., 0]


def normalise(maps: tf.Tensor | np.ndarray, signed: bool) -> tf.Tensor:
    """Per sample to [0, 1]: min-max when ``signed``, else divided by the max; a map with no range -> zeros."""
    maps = tf.convert_to_tensor(maps, tf.float32)
    flat = tf.reshape(maps, tf.stack([tf.shape(maps)[0], -1]))
    high = tf.reduce_max(flat, axis=1, keepdims=True)
    low = tf.reduce_min(flat, axis=1, keepdims=True) if signed else tf.zeros_like(high)
    span = high - low
    ok = span > 0
    out = tf.where(ok, (flat - low) / tf.where(ok, span, tf.ones_like(span)), tf.zeros_like(flat))
    return tf.reshape(out, tf.shape(maps))


def pad_batch(x: np.ndarray | tf.Tensor, size: int) -> tf.Tensor:
    """``x`` padded with zero samples to ``size`` samples (the compiled step's batch shape)."""
    x = tf.convert_to_tensor(x, tf.float32)
    n = int(x.shape[0])
    if n == size:
        return x
    return tf.concat([x, tf.zeros((size - n, *x.shape[1:]), tf.float32)], 0)
