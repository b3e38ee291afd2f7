"""Guided backpropagation, guided Grad-CAM and guided Grad-CAM++.

Springenberg et al., "Striving for Simplicity: The All Convolutional Net", ICLR 2015 (workshop):
the gradient of the logit w.r.t. the input, with every ReLU's gradient replaced by
``dy · [dy > 0] · [x > 0]``: every ``Relu`` and ``Relu6`` op of the forward pass, whatever made it
(activation arguments, ``Activation``/``ReLU`` layers, nested models, ``tf.nn.relu`` in a subclassed
``call``; ``layers.guided_relus``). Leaky and thresholded ReLUs keep their ordinary gradient.
Selvaraju et al., ICCV 2017: guided Grad-CAM = guided gradient × upsampled Grad-CAM map; guided
Grad-CAM++ likewise with the Grad-CAM++ map.

Shapes differ from the other methods: ``raw`` is (N, *input spatial, C), the guided gradient
(guided-backprop) or the guided gradient times the upsampled [0, 1] Grad-CAM(++) map, channel by
channel (guided variants); ``maps`` is the per-position max over channels of ``|raw|``, divided by
its max.
"""

from __future__ import annotations

import tensorflow as tf

from camkit.methods.base import Batch, Method, register_method
from camkit.methods.gradcam import GradCAM
from camkit.methods.gradcampp import GradCAMPlusPlus
from camkit.methods.mapmath import normalise


def guided_maps(raw: tf.Tensor) -> tf.Tensor:
    """(B, *spatial, C) -> (B, *spatial): max over channels of |raw|, divided by its max."""
    return normalise(tf.reduce_max(tf.abs(raw), axis=-1), signed=False)


@register_method("guided-backprop")
class GuidedBackprop(Method):
    """The guided gradient of the logit w.r.t. the input; no layer involved."""

    uses_layer = False
    guided = True
    title = "guided backprop"
    display = "guided"

    def explain_batch(self, batch: Batch, size: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
        return batch.input_grads, guided_maps(batch.input_grads)


class GuidedProduct(Method):
    """Mixin: guided gradient × the upsampled, normalised map of the next method in the MRO."""

    guided = True
    display = "guided"
    smooths = ("eigen",)  # "aug" would average the copies' CAMs without the guided product (raw is the product)

    def explain_batch(self, batch: Batch, size: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
        _, cam = super().explain_batch(batch, size)
        raw = batch.input_grads * cam[..., None]
        return raw, guided_maps(raw)


@register_method("guided-gradcam")
class GuidedGradCAM(GuidedProduct, GradCAM):
    """Guided gradient × Grad-CAM."""

    title = "guided Grad-CAM"


@register_method("guided-gradcam++")
class GuidedGradCAMPlusPlus(GuidedProduct, GradCAMPlusPlus):
    """Guided gradient × Grad-CAM++."""

    title = "guided Grad-CAM++"
    notebook_panels = ("cam", "guided-backprop", "guided-gradcam++")
