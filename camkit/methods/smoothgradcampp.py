"""Smooth Grad-CAM++ (method ``smoothgradcam++``).

Omeiza, Speakman, Cintas, Weldemariam, "Smooth Grad-CAM++: An Enhanced Inference Level Visualization Technique for
Deep Convolutional Neural Network Models", arXiv 1908.01224, 2019. Grad-CAM++ (``gradcampp.py``) with its gradient
terms replaced by their means over ``n`` noisy copies ``x_m = x + N(0, s²)`` of the input, as SmoothGrad does. With
``A`` the clean input's activations and ``g_m = dy_c/dA`` at copy ``m`` (``y_c`` the logit), the paper averages
each derivative order separately, ``D_p = (1/n) Σ_m g_m^p`` (Grad-CAM++'s closed form, as ``gradcampp.py``: the
p-th derivative of the exponential score ``exp(y_c)`` is ``exp(y_c)·g^p``; the factor is left out there and here,
so every copy counts alike), and

    a_k,ij = D_2 / (2 D_2 + Σ_ab A_k,ab · D_3)   (a zero denominator counts as 1)
    w_k = Σ_ij a_k,ij · ReLU(D_1),   M_c = ReLU(Σ_k w_k A_k).

The paper prints ``D_1`` in the numerator of ``a`` (torch-cam's reading); as torch-cam's ``SmoothGradCAMpp`` we
use ``D_2``, the numerator of Grad-CAM++, so that ``sigma=0`` gives Grad-CAM++ exactly. Unlike torch-cam, the
``ReLU`` term is the mean gradient ``D_1`` (torch-cam's is the last copy's gradient) and the denominator keeps
Grad-CAM++'s ``(Σ_ab A_k,ab) · D_3,ij`` (torch-cam's sums ``A · D_3`` over the positions).

The class explained is chosen on the clean input (its forward pass: no backward) and used for every copy.
``sigma`` is a **fraction of each sample's value range**, SmoothGrad's convention (tf-keras-vis's
``smooth_noise``): ``s = sigma · (max x − min x)`` over all the sample's values (a constant sample gets no noise).
The unit noise ``ε_m`` (:func:`unit_noise`) is drawn once from ``seed`` for the sample shape and shared by every
sample, so a sample's map does not depend on its batch. The copies go through the compiled gradient step in
batches of the step's size and only the running sums of ``g, g², g³`` per sample are kept: memory grows with the
batch, not with ``n``. Cost per map: ``n + 1`` forward passes, ``n`` of them with a backward pass.
"""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.methods.base import Batch, ChunkResult, Passes, register_method, run_step
from camkit.methods.gradcampp import GradCAMPlusPlus, gradcampp_weights
from camkit.methods.layers import LayerRef
from camkit.methods.mapmath import pad_batch
from camkit.methods.step import compiled_step


def unit_noise(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """(n, *shape) float32 standard normal draws ``ε_m``: copy ``m`` of every sample is ``x + s·ε_m``."""
    return np.random.default_rng(seed).standard_normal((n, *shape), dtype=np.float32)


def noise_scale(x: tf.Tensor, sigma: float) -> tf.Tensor:
    """(B,) ``sigma · (max − min)`` of each sample of ``x`` (B, *spatial, C)."""
    axes = list(range(1, x.shape.rank))
    return sigma * (tf.reduce_max(x, axis=axes) - tf.reduce_min(x, axis=axes))


@register_method("smoothgradcam++")
class SmoothGradCAMPlusPlus(GradCAMPlusPlus):
    """Grad-CAM++ weights from the gradient powers averaged over ``n`` noisy copies (see the module docstring).

    Its ``Batch.grads`` is (B, *spatial, K, 3): the means of ``g``, ``g²`` and ``g³`` over the copies.
    """

    title = "Smooth Grad-CAM++"
    quick_options: ClassVar[dict[str, Any]] = {"n": 3}

    def __init__(self, n: int = 20, sigma: float = 0.15, seed: int = 0, smooth: str | None = None) -> None:
        super().__init__(smooth)
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise CamkitError(f"n: expected a positive number of noisy copies, got {n!r}")
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 <= sigma < np.inf:
            raise CamkitError(f"sigma: expected a noise level >= 0 (a fraction of each sample's range), got {sigma!r}")
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise CamkitError(f"seed: expected an integer, got {seed!r}")
        self.n, self.sigma, self.seed = int(n), float(sigma), int(seed)
        self.forward: Any = None  # the clean input's forward-only step, set by setup
        self._noise: dict[tuple[int, ...], tf.Tensor] = {}

    def setup(self, model: keras.Model, ref: LayerRef | None, batch_shape: tuple[int, ...]) -> None:
        """Build the forward-only step (``A``, targets, scores; no backward pass) for the clean input."""
        self.forward = compiled_step(model, ref.path, False, False, self.class_scores, self.step_key(),
                                     self.target_ranking, self.guided_scores)

    def map_passes(self, channels: int) -> Passes:
        """The clean forward pass and ``n`` noisy copies with their backward passes."""
        return Passes(self.n + 1, self.n)

    def noise(self, shape: tuple[int, ...]) -> tf.Tensor:
        """The (n, *shape) unit noise for samples of ``shape``, drawn once per shape."""
        if shape not in self._noise:
            self._noise[shape] = tf.constant(unit_noise(self.n, shape, self.seed))
        return self._noise[shape]

    def mean_powers(self, step: Any, x: tf.Tensor, targets: tf.Tensor, size: int) -> tf.Tensor:
        """(n_samples, *spatial, K, 3): the means over the noisy copies of ``x``'s samples of ``g``, ``g²``, ``g³``
        for ``targets``, the copies run through ``step`` in batches of ``size``."""
        n_samples, rank = int(x.shape[0]), x.shape.rank
        sample = np.repeat(np.arange(n_samples), self.n)  # sample-major: copy m of sample i at i·n + m
        copy = np.tile(np.arange(self.n), n_samples)
        classes = np.repeat(np.asarray(targets, np.int32), self.n)
        eps, scale = self.noise(tuple(int(d) for d in x.shape[1:])), noise_scale(x, self.sigma)
        total = None
        for start in range(0, len(sample), size):
            part = slice(start, start + size)
            m = len(sample[part])
            spread = tf.reshape(tf.gather(scale, sample[part]), [-1] + [1] * (rank - 1))
            copies = tf.gather(x, sample[part]) + spread * tf.gather(eps, copy[part])
            spec = np.zeros(size, np.int32)
            spec[:m] = classes[part]
            g = run_step(step, pad_batch(copies, size), spec, m).grads
            sums = tf.math.unsorted_segment_sum(tf.stack([g, g * g, g * g * g], axis=-1), sample[part], n_samples)
            total = sums if total is None else total + sums
        return total / self.n

    def explain_chunk(self, step: Any, x: tf.Tensor, spec: np.ndarray, n: int) -> ChunkResult:
        """Grad-CAM++'s chunk, on a step that gives the clean ``A`` and the noisy copies' mean gradient powers."""

        def smoothed(inputs: tf.Tensor, codes: tf.Tensor) -> dict[str, tf.Tensor]:
            out = dict(self.forward(inputs, codes))
            out["grads"] = self.mean_powers(step, inputs[:n], out["targets"][:n], int(inputs.shape[0]))
            return out

        return super().explain_chunk(smoothed, x, spec, n)

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        g = batch.grads
        return gradcampp_weights(batch.acts, g[..., 0], g[..., 1], g[..., 2])
