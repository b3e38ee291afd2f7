"""XGrad-CAM (method ``xgradcam``).

Fu, Hu, Gao, Zhang, Zhang, "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs",
BMVC 2020. With ``A`` the layer's activations and ``g = dy_c/dA`` (``y_c`` the logit), the channel weights are the
activation-weighted mean of the gradient, ``w_k = Σ_ij A_k,ij g_k,ij / (Σ_ij A_k,ij + ε)``, and
``M_c = ReLU(Σ_k w_k A_k)``. Weights are per sample.

``ε = 1e-7``, as pytorch-grad-cam's XGradCAM. A channel with ``Σ_ij A_k,ij = 0`` after a ReLU (the paper's
setting, non-negative activations) is all zero: its numerator is 0 too, so ``w_k = 0`` and it adds nothing. The
division is guarded (a denominator of exactly 0, ``Σ A_k = −ε``, gives ``w_k = 0``), never NaN or inf; with signed
activations (a layer before its ReLU) a sum near ``−ε`` still gives large weights, so explain a post-ReLU layer.
"""

from __future__ import annotations

import tensorflow as tf

from camkit.methods.base import Batch, Method, register_method
from camkit.methods.smoothing import SMOOTHINGS

EPS = 1e-7


def xgradcam_weights(acts: tf.Tensor, grads: tf.Tensor, eps: float = EPS) -> tf.Tensor:
    """(B, *spatial, K) activations and gradients -> (B, K) ``Σ A g / (Σ A + ε)`` (0 where the denominator is 0)."""
    axes = list(range(1, acts.shape.rank - 1))
    return tf.math.divide_no_nan(tf.reduce_sum(acts * grads, axis=axes), tf.reduce_sum(acts, axis=axes) + eps)


@register_method("xgradcam")
class XGradCAM(Method):
    """``w_k = Σ_ij A_k,ij g_k,ij / (Σ_ij A_k,ij + ε)``, ``M = ReLU(Σ_k w_k A_k)``."""

    title = "XGrad-CAM"
    smooths = SMOOTHINGS

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        return xgradcam_weights(batch.acts, batch.grads)
