"""CAM: class activation mapping.

Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016. The model must
end ``target layer -> GlobalAveragePooling -> Dense`` (the class logits, softmax allowed): then
``M_c = Σ_k W[k, c] · A_k`` with the Dense kernel ``W`` (no bias, no ReLU). The map is signed, so
``maps`` are min-max normalised.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable

import keras
import tensorflow as tf

from camkit.methods.base import Batch, Method, MethodNotApplicable, register_method
from camkit.methods.layers import LayerRef, ScoreFn, pre_softmax, same_tensor, trace_calls, walk

POOLS = (keras.layers.GlobalAveragePooling1D, keras.layers.GlobalAveragePooling2D)

# (layer path, sample shape, scores key) -> the head's Dense layer, per model: found by tracing once
_HEADS: weakref.WeakKeyDictionary[keras.Model, dict[Hashable, keras.layers.Dense]] = weakref.WeakKeyDictionary()


class NoCamHead(MethodNotApplicable):
    """The model has no ``layer -> GlobalAveragePooling -> Dense`` head: CAM does not apply; Grad-CAM does."""

    fallback = "gradcam"


def cam_head(model: keras.Model, ref: LayerRef, batch_shape: tuple[int, ...], score_fn: ScoreFn) -> keras.layers.Dense:
    """The Dense layer that makes the class logits from GAP(``ref``'s output).

    Checked on a traced forward pass (tensor identity), so it works for nested and subclassed models.
    """
    heads = [r for r in walk(model) if isinstance(r.layer, (*POOLS, keras.layers.Dense)) and r.layer is not ref.layer]
    calls, scores = trace_calls(model, batch_shape, [ref, *heads], score_fn)
    acts = [c.output for c in calls if c.ref is ref]
    pooled = [c.output for c in calls if isinstance(c.ref.layer, POOLS) and any(same_tensor(c.inputs, a) for a in acts)]
    dense = [
        c.ref.layer
        for c in calls
        if isinstance(c.ref.layer, keras.layers.Dense)
        and any(same_tensor(c.inputs, p) for p in pooled)
        and same_tensor(pre_softmax(c.output), scores)
    ]
    if not dense:
        found = "a GlobalAveragePooling layer" if pooled else "no GlobalAveragePooling layer"
        raise NoCamHead(
            f"cam needs {ref.path!r} -> GlobalAveragePooling -> Dense (the class logits) with nothing in between; "
            f"found {found} on its output{' but no Dense giving the class scores after it' if pooled else ''}. "
            "Use gradcam, which works for any layer"
        )
    return dense[0]


@register_method("cam")
class CAM(Method):
    """``M_c = Σ_k W[k, c] A_k``; the channel weights are the Dense kernel's column of the target class."""

    relu = False
    needs_grads = False  # the weights are the head's kernel: no backward pass
    title = "CAM"
    box_threshold = 0.20  # Zhou et al.

    def setup(self, model: keras.Model, ref: LayerRef | None, batch_shape: tuple[int, ...]) -> None:
        heads = _HEADS.setdefault(model, {})
        key = (ref.path, tuple(batch_shape[1:]), self.step_key())
        if key not in heads:
            heads[key] = cam_head(model, ref, batch_shape, self.class_scores)
        self.kernel = tf.cast(keras.ops.convert_to_tensor(heads[key].kernel), tf.float32)  # current weights

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        return tf.transpose(tf.gather(self.kernel, batch.targets, axis=1))
