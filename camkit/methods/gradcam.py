"""Grad-CAM and the counterfactual map.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017. With ``g = dy_c/dA`` (``y_c`` the logit): ``α_k = mean over positions of g_k``,
``M_c = ReLU(Σ_k α_k A_k)``. The counterfactual map (same paper, section 4) uses ``α_k = −mean(g_k)``:
regions whose removal would raise the class score. Weights are per sample (never averaged over the
batch).
"""

from __future__ import annotations

import tensorflow as tf

from camkit.methods.base import Batch, Method, register_method
from camkit.methods.smoothing import SMOOTHINGS


def spatial_mean(grads: tf.Tensor) -> tf.Tensor:
    """(B, *spatial, K) -> (B, K) mean over the spatial axes."""
    return tf.reduce_mean(grads, axis=list(range(1, grads.shape.rank - 1)))


@register_method("gradcam")
class GradCAM(Method):
    """``α_k = mean(g_k)``, ``M = ReLU(Σ_k α_k A_k)``."""

    title = "Grad-CAM"
    smooths = SMOOTHINGS

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        return spatial_mean(batch.grads)


@register_method("counterfactual")
class Counterfactual(Method):
    """``α_k = −mean(g_k)``, ``M = ReLU(Σ_k α_k A_k)``."""

    title = "counterfactual"
    smooths = SMOOTHINGS

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        return -spatial_mean(batch.grads)
