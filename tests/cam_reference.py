"""Tiny seeded models and NumPy references for the Eigen-CAM and smoothing tests.

``A`` and ``g = dy_t/dA`` are computed here by calling the model's own layers on the input (no camkit code): the
layers below the explained one give ``A``, those above it give the logits, under a ``tf.GradientTape`` of our own.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

L = keras.layers
SHAPES = {"series": (16, 2), "images": (10, 12, 2)}
KINDS = ("series", "images")
N_CLASSES = 3


@dataclass
class Tiny:
    """A model, the path of its explained layer, and the layers below / above it (to recompute A and g)."""

    model: keras.Model
    path: str
    below: list[keras.layers.Layer]
    above: list[keras.layers.Layer]

    def acts_and_grads(self, x: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A`` and ``dy_t/dA`` (y the logits), float64."""
        a = tf.constant(x, tf.float32)
        for layer in self.below:
            a = layer(a)
        with tf.GradientTape() as tape:
            tape.watch(a)
            y = a
            for layer in self.above:
                y = layer(y)
            picked = tf.reduce_sum(tf.gather(y, tf.constant(targets, tf.int32), batch_dims=1))
        return np.float64(a), np.float64(tape.gradient(picked, a))

    def logits(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model(tf.constant(x, tf.float32)), np.float64)


@functools.cache
def tiny(kind: str, nested: bool = False, seed: int = 3) -> Tiny:
    """conv (valid, ReLU; the explained layer) -> top conv (same, ReLU) -> GAP -> Dense logits, seeded weights;
    cached, so that a model's compiled steps are reused across tests.

    ``nested``: the two convs are a Sequential ``inner`` inside the model (layer path ``inner/conv``).
    The top conv makes ``g`` vary over positions.
    """
    keras.utils.set_random_seed(seed)
    conv, gap = (L.Conv1D, L.GlobalAveragePooling1D) if kind == "series" else (L.Conv2D, L.GlobalAveragePooling2D)
    below = [conv(4, 3, activation="relu", name="conv")]
    top, pool, dense = conv(3, 3, padding="same", activation="relu", name="top"), gap(name="gap"), L.Dense(N_CLASSES)
    inputs = keras.Input(SHAPES[kind])
    if nested:
        inner = keras.Sequential([keras.Input(SHAPES[kind]), below[0], top], name="inner")
        return Tiny(keras.Model(inputs, dense(pool(inner(inputs)))), "inner/conv", below, [top, pool, dense])
    return Tiny(keras.Model(inputs, dense(pool(top(below[0](inputs))))), "conv", below, [top, pool, dense])


def inputs(kind: str, n: int = 4, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SHAPES[kind])).astype(np.float32)


def np_sign(v: np.ndarray, tol: float = 1e-3) -> float:
    """The documented sign rule: sign of Σv; if |Σv| ≤ tol Σ|v|, the sign of the first near-largest |v_k|."""
    if abs(v.sum()) > tol * np.abs(v).sum():
        return float(np.sign(v.sum()))
    magnitude = np.abs(v)
    return float(np.sign(v[np.flatnonzero(magnitude >= (1 - tol) * magnitude.max())[0]]))


def np_first_pc(weighted: np.ndarray, flip_v: bool = False) -> np.ndarray:
    """(B, *spatial, K) -> (B, *spatial): X v with X centred per channel, v = np.linalg.svd's first right singular
    vector (negated first when ``flip_v``), oriented by :func:`np_sign`."""
    out = []
    for sample in np.float64(weighted):
        x = sample.reshape(-1, sample.shape[-1])
        x = x - x.mean(axis=0)
        v = np.linalg.svd(x, full_matrices=False)[2][0] * (-1 if flip_v else 1)
        out.append((x @ (v * np_sign(v))).reshape(sample.shape[:-1]))
    return np.stack(out)


def np_max_normalise(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its max (over all but the first axis); a map whose max is 0 stays zero."""
    high = maps.reshape(len(maps), -1).max(axis=1).reshape((-1,) + (1,) * (maps.ndim - 1))
    return np.where(high > 0, maps / np.where(high > 0, high, 1), 0.0)
