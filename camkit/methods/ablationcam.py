"""Ablation-CAM (method ``ablationcam``).

Desai & Ramaswamy, "Ablation-CAM: Visual Explanations for Deep Convolutional Network via Gradient-free
Localization", WACV 2020. With ``y_c`` the target's logit and ``y_c^(k)`` the logit when channel ``k`` of ``A``
is set to zero: ``w_k = (y_c − y_c^(k)) / y_c``, ``M_c = ReLU(Σ_k w_k A_k)``.

``y_c`` comes from the gradient-free step (one forward pass, which also gives ``A`` and the target);
``y_c^(k)`` from ``forward.upper_scores``: the ``K`` ablated copies of ``A`` (per sample) run through the layers
above ``A`` only, in chunks of ``chunk`` copies, without changing the user's model.

The denominator. The paper divides by ``y_c`` and does not discuss ``y_c ≤ 0`` (it explains the predicted
class, whose logit is usually positive); pytorch-grad-cam divides by ``y_c`` as it is (inf/NaN at 0). Dividing
by a positive number changes ``raw``'s scale, not the normalised map; dividing by a negative one flips every
weight, so the ReLU would keep the regions whose removal *raises* the class score: an inverted map, for
exactly the targets (``lowest``, lower ``topK`` ranks, a wrong ``true`` class) whose logit is often negative.
camkit divides by ``max(|y_c|, 1e-6)``: ``w_k`` is the drop of the score when channel ``k`` is removed, relative
to its size, positive when the channel supports the class, for any sign of ``y_c``; the same as the paper's when
``y_c ≥ 1e-6``, and finite (a large ``raw``, the same map) when ``y_c`` is zero or tiny.
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

import keras
import tensorflow as tf

from camkit.methods.base import Batch, Method, Passes, register_method
from camkit.methods.forward import upper_scores
from camkit.methods.layers import LayerRef
from camkit.methods.mapmath import pad_batch
from camkit.methods.scorecam import positive_int

EPS = 1e-6  # smallest |y_c| divided by
CHUNK = 256  # ablated copies per call: copies of A, not of the input (scripts/bench_perturbation.py)


def zero_channel(copies: tf.Tensor, code: tf.Tensor) -> tf.Tensor:
    """(M, *spatial, K) copies of ``A`` with channel ``code[i]`` of copy ``i`` set to zero."""
    keep = 1 - tf.one_hot(code, int(copies.shape[-1]), dtype=copies.dtype)
    return copies * tf.reshape(keep, (-1, *[1] * (copies.shape.rank - 2), keep.shape[-1]))


def ablated_scores(model: keras.Model, path: str, method: Method, batch: Batch, size: int,
                   chunk: int) -> tf.Tensor:
    """(B, K) ``y_c^(k)``: the target's logit with channel ``k`` of ``A`` zeroed, the layers above ``A`` only.

    ``size``: the step's batch size (the samples are padded to it, so the runner traces once).
    """
    channels = int(batch.acts.shape[-1])
    n = tf.shape(batch.acts)[0]
    sample = tf.repeat(tf.range(n), channels)
    code = tf.tile(tf.range(channels), tf.reshape(n, [1]))
    scores, _ = upper_scores(model, path, method.class_scores, method.step_key(), pad_batch(batch.inputs, size),
                             pad_batch(batch.acts, size), sample, code, tf.repeat(batch.targets, channels),
                             min(chunk, size * channels), edit=zero_channel)
    return tf.reshape(scores, (-1, channels))


@register_method("ablationcam")
class AblationCAM(Method):
    """``w_k = (y_c − y_c^(k)) / max(|y_c|, ε)``, ``M = ReLU(Σ_k w_k A_k)`` (see the module docstring)."""

    title = "Ablation-CAM"
    needs_grads = False
    quick_options: ClassVar[dict[str, Any]] = {"chunk": 4}

    def __init__(self, chunk: int = CHUNK) -> None:
        super().__init__()
        self.chunk = positive_int("chunk", chunk)

    def map_passes(self, channels: int) -> Passes:
        """One forward pass for ``A``, ``y_c`` and the target; one run of the layers above ``A`` per channel."""
        return Passes(1, upper=channels)

    def setup(self, model: keras.Model, ref: LayerRef | None, batch_shape: tuple[int, ...]) -> None:
        self.model = weakref.ref(model)  # the runners' cache holds this method's class_scores: no cycle to the model
        self.path, self.size = ref.path, int(batch_shape[0])

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        ablated = ablated_scores(self.model(), self.path, self, batch, self.size, self.chunk)
        scores = batch.scores[:, None]
        return (scores - ablated) / tf.maximum(tf.abs(scores), EPS)
