"""Models of the faithfulness tests: a linear softmax whose ideal map is known."""

from __future__ import annotations

import keras
import numpy as np

W = np.array([1.0, -2.0, 3.0, 0.5])  # class 1's logit minus class 0's, per time step


def linear_model(weights: np.ndarray = W) -> keras.Model:
    """(*weights.shape, 1) inputs -> softmax over 2 classes with logits (0, Σ weights ⊙ x): p(class 1) =
    sigmoid(Σ weights ⊙ x)."""
    weights = np.asarray(weights, np.float32)
    inputs = keras.Input((*weights.shape, 1))
    flat = keras.layers.Flatten()(inputs)
    out = keras.layers.Dense(2, activation="softmax")(flat)
    model = keras.Model(inputs, out)
    kernel = np.stack([np.zeros(weights.size, np.float32), weights.reshape(-1)], axis=1)
    model.layers[-1].set_weights([kernel, np.zeros(2, np.float32)])
    return model


def ideal_maps(weights: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(N, *spatial) the positive contributions to class 1's logit, ``weights ⊙ x`` clipped at 0, scaled to [0, 1]
    per sample (``x``: (N, *spatial, 1))."""
    positive = np.maximum(weights[None] * x[..., 0], 0.0)
    peak = positive.reshape(len(x), -1).max(axis=1)
    return (positive / peak.reshape(-1, *(1,) * weights.ndim)).astype(np.float32)
