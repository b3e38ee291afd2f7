"""Eigen-CAM and Eigen-Grad-CAM: the first principal component of the activations instead of a weighted sum.

Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020. Per sample, ``A``
as a matrix ``X`` (positions × channels) centred per channel; ``v`` its first right singular vector;
``M = ReLU(X v)`` at the layer's resolution (``smoothing.first_component``). Eigen-Grad-CAM (pytorch-grad-cam's
``EigenGradCAM``, no paper of its own) takes the same projection of ``g ⊙ A``, ``g = dy_c/dA``.

Decisions where the paper is silent (all as pytorch-grad-cam's ``get_2d_projection``, except the sign):

- The centring per channel (as pytorch-grad-cam: uncentred, the first component mostly follows the channels'
  mean levels, and a map of non-negative activations would be positive everywhere).
- The sign: an SVD's ``v`` is defined up to sign, and the ReLU keeps one half of the map, so an unsigned SVD
  returns a map or its complement by chance. ``v`` is oriented so that its loadings sum to a positive number:
  the projection correlates positively with the centred channel sum (Eigen-CAM: the total activation ``Σ_k A_k``;
  Eigen-Grad-CAM: ``Σ_k g_k A_k``); loadings that sum to about zero get their largest one positive
  (``smoothing.component_sign``).
- ReLU applied (pytorch-grad-cam applies ``np.maximum(cam, 0)`` to every method), maps divided by their max.
  The projection of a centred matrix has mean zero, so after the ReLU its minimum is 0 and pytorch-grad-cam's
  min-max scaling is this max scaling. A sample with no variance gives an all-zero map.

Eigen-CAM is class-agnostic: its map does not depend on the target (targets and scores are still reported);
it runs no backward pass. Eigen-Grad-CAM's map does depend on the target, through ``g``. Both take
``smooth="aug"`` (six flipped / rescaled copies, ``smoothing.py``); ``smooth="eigen"`` would change nothing.
"""

from __future__ import annotations

import tensorflow as tf

from camkit.methods.base import Batch, Method, register_method
from camkit.methods.smoothing import first_component


@register_method("eigencam")
class EigenCAM(Method):
    """``M = ReLU(X v₁)``, ``X`` = ``A`` centred per channel (positions × channels), ``v₁`` its first component."""

    title = "Eigen-CAM"
    needs_grads = False  # gradient-free: the step runs no backward pass
    smooths = ("aug",)

    def weighted_activations(self, batch: Batch) -> tf.Tensor:
        """The matrix whose first component is the map: ``A``."""
        return batch.acts

    def raw_maps(self, batch: Batch) -> tf.Tensor:
        return tf.nn.relu(first_component(self.weighted_activations(batch)))


@register_method("eigengradcam")
class EigenGradCAM(EigenCAM):
    """``M = ReLU(X v₁)`` with ``X`` = ``g ⊙ A`` centred per channel."""

    title = "Eigen-Grad-CAM"
    needs_grads = True

    def weighted_activations(self, batch: Batch) -> tf.Tensor:
        return batch.grads * batch.acts
