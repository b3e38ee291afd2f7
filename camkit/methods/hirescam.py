"""HiResCAM (method ``hirescam``) and element-wise Grad-CAM (method ``gradcam-elementwise``).

**HiResCAM**: Draelos, Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional neural
networks", arXiv 2011.08891, 2020. With ``A`` the layer's activations and ``g = dy_c/dA`` (``y_c`` the logit), the
gradient multiplies the activations position by position instead of being averaged first:
``M_c = ReLU(Σ_k g_k ⊙ A_k)``. For a model ending ``A -> flatten -> Dense`` it is exactly the logit's
decomposition over positions (the bias left out); when the head global-average-pools ``A``, ``g_k`` is the same at
every position and HiResCAM equals Grad-CAM.

HiResCAM is **not** ``hires`` (``camkit/methods/hires.py``: Tagaris et al.'s High-Resolution CAM, ICIP 2019, a
DenseNet-FCN's full-resolution CAM and its refinement); only the names are alike.

**Element-wise Grad-CAM** (``gradcam-elementwise``, pytorch-grad-cam's ``GradCAMElementWise``): the products are
clipped at zero before the channel sum, ``M_c = Σ_k ReLU(g_k ⊙ A_k)`` (non-negative already; no further ReLU
changes it). With ``smooth="eigen"`` the first principal component is taken of ``g ⊙ A`` (HiResCAM) or of
``ReLU(g ⊙ A)`` (element-wise), the per-channel terms of each sum.
"""

from __future__ import annotations

import tensorflow as tf

from camkit.methods.base import Batch, Method, register_method
from camkit.methods.smoothing import SMOOTHINGS


@register_method("hirescam")
class HiResCAM(Method):
    """``M = ReLU(Σ_k g_k ⊙ A_k)``: per-position weights, the gradient itself."""

    title = "HiResCAM"
    smooths = SMOOTHINGS

    def weighted_activations(self, batch: Batch) -> tf.Tensor:
        return batch.grads * batch.acts


@register_method("gradcam-elementwise")
class GradCAMElementWise(Method):
    """``M = Σ_k ReLU(g_k ⊙ A_k)``."""

    title = "Grad-CAM element-wise"
    smooths = SMOOTHINGS

    def weighted_activations(self, batch: Batch) -> tf.Tensor:
        return tf.nn.relu(batch.grads * batch.acts)
