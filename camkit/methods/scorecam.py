"""Score-CAM (method ``scorecam``), and Faster Score-CAM.

Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu, "Score-CAM: Score-Weighted Visual Explanations for Convolutional
Neural Networks", CVPR Workshops 2020, Algorithm 1. For each channel ``k`` of ``A``:

- ``H_k = s(Up(A_k))``: the channel upsampled to the input's size with camkit's resize (``mapmath.upsample``:
  bilinear, half-pixel centres), then min-max normalised to [0, 1] (``s``); a constant channel gives a zero mask,
  never NaN (its masked input is all zero);
- ``S_k = y_c(x ∘ H_k)``: the target's logit on the masked input (the mask broadcast over the input's channels);
- ``w = softmax_k(S)``, ``M_c = ReLU(Σ_k w_k A_k)``.

The paper subtracts the baseline's score ``y_c(x_b)`` from every ``S_k``; softmax over the channels does not see a
shift common to all of them, so it is left out. The target is the engine's (chosen on the input itself by the
gradient-free step). Options:

- ``weights="probability"``: tf-keras-vis's ``Scorecam``: ``w_k = softmax_classes(y(x ∘ H_k))_c``, the target's
  probability on each masked input, no softmax over the channels. tf-keras-vis applies the softmax to whatever
  the model outputs (the logits only when the model ends without one, e.g. after its ``ReplaceToLinear``); camkit
  takes it over the logits, a final softmax read past. Its masks differ slightly where the layer is smaller than
  the input: scipy's ``zoom(order=1)`` aligns corners, and it adds 1e-7 to the normaliser's range.
- ``max_channels=N``: Faster Score-CAM (tabayashi0117): only the ``N`` channels of ``A`` with the largest variance
  over positions (per sample; ties: the lower channel first) are masked and weighted, the others get weight 0
  (the softmax is over the kept channels).
- ``chunk``: masked copies per compiled forward call (``forward.masked_scores``), which bounds the memory.

No backward pass runs: one forward pass gives ``A`` and the target, then at most ``K`` (or ``N``) forward passes
per sample. Fewer where channels are constant on a sample (dead ReLU channels, common in late layers): their
masks are zero, so their masked inputs are all the zero input, whatever the sample; its score is computed once
per target class in the batch and shared, which gives the same weights as one pass per channel.
"""

from __future__ import annotations

import numbers
import weakref
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.methods.base import Batch, Method, Passes, register_method
from camkit.methods.forward import masked_scores
from camkit.methods.layers import LayerRef
from camkit.methods.mapmath import normalise, pad_batch, upsample

WEIGHTS = ("softmax", "probability")
CHUNK = 64  # masked copies per forward call: scripts/bench_perturbation.py


def positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """``value`` checked to be a positive integer (or None when ``allow_none``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise CamkitError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def unit_masks(low: tf.Tensor, size: tuple[int, ...]) -> tf.Tensor:
    """(M, *layer spatial) channels -> (M, *size) masks: upsampled, min-max normalised (no range: zeros)."""
    return normalise(upsample(low, size), signed=True)


def per_channel(acts: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
    """(B, *spatial, K) activations, (B, N) channel indices -> (B·N, *spatial) those channels, sample-major."""
    rank = acts.shape.rank
    channels_first = tf.transpose(acts, [0, rank - 1, *range(1, rank - 1)])
    picked = tf.gather(channels_first, keep, batch_dims=1)
    return tf.reshape(picked, (-1, *picked.shape[2:]))


def shared_zero_copies(low: tf.Tensor, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The copies to run, given the (M, *spatial) channels and (M,) target of each copy (module docstring).

    Returns ``run``: the copies whose channel has a range, run as they are; ``zero_targets``: the classes whose
    score on the zero input is run once (the constant channels' targets); ``where``: (M,) the position of each
    copy's score in the results of ``run`` followed by ``zero_targets``.
    """
    flat = tf.reshape(low, (int(low.shape[0]), -1))
    constant = np.asarray(tf.reduce_max(flat, axis=1) <= tf.reduce_min(flat, axis=1))
    run = np.flatnonzero(~constant)
    zero_targets = np.unique(targets[constant])
    where = np.empty(len(targets), np.int64)
    where[run] = np.arange(len(run))
    where[constant] = len(run) + np.searchsorted(zero_targets, targets[constant])
    return run, zero_targets, where


def scatter_weights(values: tf.Tensor, keep: tf.Tensor, channels: int) -> tf.Tensor:
    """(B, N) weights of the kept channels ``keep`` (B, N) -> (B, K), zero elsewhere."""
    return tf.einsum("bn,bnk->bk", values, tf.one_hot(keep, channels, dtype=values.dtype))


@register_method("scorecam")
class ScoreCAM(Method):
    """``w = softmax_k(y_c(x ∘ s(Up(A_k))))``, ``M = ReLU(Σ_k w_k A_k)`` (see the module docstring)."""

    title = "Score-CAM"
    needs_grads = False
    quick_options: ClassVar[dict[str, Any]] = {"chunk": 4}

    def __init__(self, weights: str = "softmax", max_channels: int | None = None, chunk: int = CHUNK) -> None:
        super().__init__()
        if weights not in WEIGHTS:
            raise CamkitError(f"method scorecam: weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
        self.weights = weights
        self.max_channels = positive_int("max_channels", max_channels, allow_none=True)
        self.chunk = positive_int("chunk", chunk)

    def map_passes(self, channels: int) -> Passes:
        """One forward pass for ``A``, one per masked channel (at most: constant channels share one)."""
        return Passes(1 + min(channels, self.max_channels or channels))

    def setup(self, model: keras.Model, ref: LayerRef | None, batch_shape: tuple[int, ...]) -> None:
        self.model = weakref.ref(model)  # the runners' cache holds this method's class_scores: no cycle to the model
        self.size = int(batch_shape[0])

    def kept(self, acts: tf.Tensor) -> tf.Tensor:
        """(B, N) the channels to mask: all, or the ``max_channels`` of largest variance over positions."""
        b, k = tf.shape(acts)[0], int(acts.shape[-1])
        if self.max_channels is None or self.max_channels >= k:
            return tf.tile(tf.range(k)[None], tf.stack([b, 1]))
        variance = tf.math.reduce_variance(acts, axis=list(range(1, acts.shape.rank - 1)))
        return tf.math.top_k(variance, self.max_channels).indices

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        keep = self.kept(batch.acts)
        n_kept, channels = int(keep.shape[1]), int(batch.acts.shape[-1])
        low = per_channel(batch.acts, keep)
        sample = np.repeat(np.arange(int(keep.shape[0])), n_kept)
        targets = np.repeat(np.asarray(batch.targets, np.int32), n_kept)
        run, zero_targets, where = shared_zero_copies(low, targets)
        masks = tf.concat([tf.gather(low, run), tf.zeros((len(zero_targets), *low.shape[1:]), low.dtype)], 0)
        scores, probs = masked_scores(self.model(), self.class_scores, self.step_key(),
                                      pad_batch(batch.inputs, self.size), masks,
                                      np.concatenate([sample[run], np.zeros(len(zero_targets), np.int64)]),
                                      np.concatenate([targets[run], zero_targets]),
                                      min(self.chunk, self.size * n_kept), prepare=unit_masks)
        if self.weights == "probability":
            values = tf.reshape(tf.gather(probs, where), (-1, n_kept))
        else:
            values = tf.nn.softmax(tf.reshape(tf.gather(scores, where), (-1, n_kept)), axis=1)
        return values if n_kept == channels else scatter_weights(values, keep, channels)
