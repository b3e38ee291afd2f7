"""Grad-CAM++, closed form.

Chattopadhay et al., "Grad-CAM++: Generalized Gradient-based Visual Explanations for Deep
Convolutional Networks", WACV 2018, eq. 19 with the exponential score, written with ``g = dy_c/dA``:
``a_k,ij = g² / (2 g² + Σ_ab A_k,ab · g³)`` (a zero denominator counts as 1),
``w_k = Σ_ij a_k,ij · ReLU(g_k,ij)``, ``M_c = ReLU(Σ_k w_k A_k)``. The powers are the closed forms
``g²``, ``g³``, not nested tapes over a non-scalar target (which compute something else).
"""

from __future__ import annotations

import tensorflow as tf

from camkit.methods.base import Batch, Method, register_method
from camkit.methods.smoothing import SMOOTHINGS


def gradcampp_weights(acts: tf.Tensor, grads: tf.Tensor, g2: tf.Tensor | None = None,
                      g3: tf.Tensor | None = None) -> tf.Tensor:
    """(B, *spatial, K) activations and gradients -> (B, K) Grad-CAM++ channel weights.

    ``g2``, ``g3``: the terms that stand for ``g²`` and ``g³`` (default those powers of ``grads``; Smooth Grad-CAM++
    passes their means over noisy copies).
    """
    axes = list(range(1, grads.shape.rank - 1))
    g2 = tf.square(grads) if g2 is None else g2
    g3 = g2 * grads if g3 is None else g3
    denom = 2 * g2 + tf.reduce_sum(acts, axis=axes, keepdims=True) * g3
    alpha = g2 / tf.where(denom == 0, 1.0, denom)
    return tf.reduce_sum(alpha * tf.nn.relu(grads), axis=axes)


@register_method("gradcam++")
class GradCAMPlusPlus(Method):
    """Channel weights ``w_k = Σ_ij a_k,ij ReLU(g_k,ij)``, ``M = ReLU(Σ_k w_k A_k)``."""

    title = "Grad-CAM++"
    notebook_panels = ("cam", "guided-backprop", "guided-gradcam++")
    smooths = SMOOTHINGS

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        return gradcampp_weights(batch.acts, batch.grads)
