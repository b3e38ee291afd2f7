"""FullGrad: the full-gradient saliency map (method ``fullgrad``).

Srinivas & Fleuret, "Full-Gradient Representation for Neural Network Visualization", NeurIPS 2019. For a network
whose layers are affine maps and piecewise-linear activations, the logit ``y`` of the target class is exactly
``y = Σ (∇ₓy ⊙ x) + Σ_layers Σ (b ⊙ ∇_b y)`` (completeness), where, for a layer with bias ``b`` and pre-activation
output ``z = W·a + b``, the bias-gradient is spatial: ``(b ⊙ ∇_b y)_k(p) = b_k · ∂y/∂z_k(p)`` at each position ``p``.
The saliency map is ``ψ(∇ₓy ⊙ x) + Σ_layers ψ(b ⊙ ∂y/∂z)`` with ``ψ`` the post-processing of the authors' code
(github idiap/fullgrad-saliency, ``FullGrad.saliency``): the absolute value, min-max normalised per sample over all
its positions and channels together, summed over the channels, upsampled to the input.

Which layers count (:func:`layer_bias`), as in the authors' ``FullGradExtractor``: every Conv layer of
``layers.CONV_TYPES`` (1-D, 2-D, 3-D, depthwise, separable, transposed) and every Dense layer with a bias, and every
BatchNormalization layer, whose inference-mode implicit bias is ``β − μ·γ/√(σ²+ε)`` (moving mean ``μ`` and variance
``σ²``; ``β = 0`` without ``center``, ``γ = 1`` without ``scale``). A layer called several times gives one term per
call. ``z`` is the layer's output before its activation: a layer with a fused activation (``Conv2D(...,
activation="relu")``) is traced with its activation swapped for linear and the original activation applied after,
on the layer instance and only while the step is traced (``layers.patch``), so the user's model is not changed.
Other layers' implicit biases (a ``Rescaling`` offset, LayerNormalization, non-homogeneous activations such as
sigmoid) are not terms: completeness then no longer holds, and the map is still the authors' recipe.

Only terms whose ``z`` has the input's rank (a spatial map, the authors' "select only Conv layers" test
``len(bias_grad.size()) == len(im_size)``) enter the map: a Dense layer on a flat vector (the classifier head) has
no position to show, so its bias term counts in :func:`full_gradient`'s decomposition and not in the map; a Dense
layer applied per position of a (B, T, K) tensor is a 1×1 convolution and counts. The channel axis summed over is
the bias's axis (``channels_first`` convolutions: axis 1).

Decisions where the sources differ: the normalisation of a term is min-max over the whole (positions × channels)
tensor of a sample, then the channel sum (the authors' order; pytorch-grad-cam's ``FullGrad`` min-max normalises
each channel apart before summing); a term with no range is all zero (the authors divide by ``max + 1e-6``); the
upsampling is camkit's bilinear with half-pixel centres (the authors' ``align_corners=True``). ``raw`` is the summed
map at the input's resolution, (N, *input spatial), non-negative; ``maps`` is it min-max normalised per sample (as
the authors' ``save_saliency_map`` and pytorch-grad-cam's ``scale_cam_image`` do), hence ``relu = False``.

It uses no explained layer (``uses_layer = False``, ``layer`` None) and runs its own compiled step, cached per model
through a weak reference: one forward pass recording every ``z``, one tape giving ``∇ₓy`` and every ``∂y/∂z`` in one
backward pass; the targets are the engine's (``step.pick_targets`` on the same class scores).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.methods.base import ChunkResult, Method, Passes, register_method
from camkit.methods.columns import check_classes, column_codes
from camkit.methods.layers import CONV_TYPES, LayerRef, patch, walk
from camkit.methods.mapmath import normalise, upsample
from camkit.methods.step import RankFn, checked_scores, pick_targets
from camkit.methods.targets import parse_targets

BIASED_TYPES = (*CONV_TYPES, keras.layers.Dense)  # plus BatchNormalization, whose bias is implicit
_STEPS: weakref.WeakKeyDictionary[keras.Model, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def _value(variable: Any) -> tf.Tensor:
    return tf.cast(keras.ops.convert_to_tensor(variable), tf.float32)


def layer_bias(layer: keras.layers.Layer) -> tuple[tf.Tensor, int] | None:
    """The layer's bias (C,) as float32 and the axis of its output it lies on; None for a layer without one.

    BatchNormalization: the inference-mode implicit bias ``β − μ·γ/√(σ²+ε)``. Read when called (in a trace: the
    variables' current values at every run).
    """
    if isinstance(layer, keras.layers.BatchNormalization):
        gamma = _value(layer.gamma) if layer.scale else 1.0
        beta = _value(layer.beta) if layer.center else 0.0
        std = tf.sqrt(_value(layer.moving_variance) + layer.epsilon)
        return beta - _value(layer.moving_mean) * gamma / std, int(layer.axis)
    if isinstance(layer, BIASED_TYPES) and getattr(layer, "bias", None) is not None:
        return _value(layer.bias), 1 if getattr(layer, "data_format", None) == "channels_first" else -1
    return None


def record_z(ref: LayerRef, sink: list[tuple[LayerRef, tf.Tensor]], tape: tf.GradientTape) -> Any:
    """Wrap ``ref.layer.call`` so that every call records (and watches) its pre-activation output ``z``.

    A fused activation (any but linear) is swapped for linear while the layer computes ``z``, then applied to it.
    """
    layer, call = ref.layer, ref.layer.call
    activation = getattr(layer, "activation", None)
    fused = activation is not None and activation is not keras.activations.linear

    def z_call(*args: Any, **kwargs: Any) -> Any:
        with patch(layer, "activation", keras.activations.linear) if fused else contextlib.nullcontext():
            z = call(*args, **kwargs)
        tape.watch(z)
        sink.append((ref, z))
        return activation(z) if fused else z

    return patch(layer, "call", z_call)


def saliency(input_term: tf.Tensor, terms: list[tuple[tf.Tensor, int]]) -> tf.Tensor:
    """(B, *input spatial): ``ψ(x ⊙ ∇ₓy)`` plus ``ψ(term)`` upsampled for each spatial (term, channel axis)."""
    size = tuple(input_term.shape[1:-1])
    raw = tf.reduce_sum(normalise(tf.abs(input_term), signed=True), axis=-1)
    for term, axis in terms:
        if term.shape.rank == input_term.shape.rank:
            raw += upsample(tf.reduce_sum(normalise(tf.abs(term), signed=True), axis=axis), size)
    return raw


def fullgrad_step(model: keras.Model, class_scores: Callable[[Any], tf.Tensor], ranking: RankFn, key: Hashable,
                  with_terms: bool = False) -> Any:
    """The compiled ``step(x, spec) -> dict`` (raw, targets, scores, n_classes; ``with_terms``: also input_term,
    bias_terms, paths) for ``model`` and the score functions named by ``key``, cached per model (weakly)."""
    steps = _STEPS.setdefault(model, {})
    if (key, with_terms) not in steps:
        steps[key, with_terms] = _build_step(weakref.ref(model), class_scores, ranking, with_terms)
    return steps[key, with_terms]


def _build_step(model_ref: weakref.ref, class_scores: Callable[[Any], tf.Tensor], ranking: RankFn,
                with_terms: bool) -> Any:
    def step(x: tf.Tensor, spec: tf.Tensor) -> dict[str, Any]:
        model = model_ref()
        biased = [ref for ref in walk(model) if layer_bias(ref.layer) is not None]
        sink: list[tuple[LayerRef, tf.Tensor]] = []
        with contextlib.ExitStack() as stack:
            tape = stack.enter_context(tf.GradientTape(watch_accessed_variables=False))
            tape.watch(x)
            for ref in biased:
                stack.enter_context(record_z(ref, sink, tape))
            outputs = model(x, training=False)
            scores = checked_scores(class_scores(outputs))
            targets, picked = pick_targets(scores, spec, ranking(outputs, scores))
        grads = tape.gradient(picked, [x, *(z for _, z in sink)], unconnected_gradients=tf.UnconnectedGradients.ZERO)
        input_term = x * tf.cast(grads[0], tf.float32)
        terms = []
        for (ref, z), grad in zip(sink, grads[1:], strict=True):
            bias, axis = layer_bias(ref.layer)
            shape = [1] * z.shape.rank
            shape[axis] = -1
            terms.append((tf.cast(grad, tf.float32) * tf.reshape(bias, shape), axis))
        out = {"raw": saliency(input_term, terms), "targets": targets, "scores": picked,
               "n_classes": tf.shape(scores)[-1]}
        if with_terms:
            out.update(input_term=input_term, bias_terms=[t for t, _ in terms],
                       paths=tf.constant([ref.path for ref, _ in sink], tf.string, shape=[len(sink)]))
        return out

    return tf.function(step, autograph=False, reduce_retracing=True)


@dataclass(frozen=True)
class Decomposition:
    """The full-gradient decomposition of the target logits: ``scores ≈ Σ input_term + Σ_l Σ bias_terms[l]``.

    input_term: (N, *input spatial, C) ``x ⊙ ∇ₓy``; bias_terms: per biased layer call, in call order, (N, *z shape)
    ``b ⊙ ∂y/∂z`` (signed, before any post-processing); paths: their layer paths; targets, scores: the explained
    class and its logit.
    """

    input_term: np.ndarray
    bias_terms: list[np.ndarray]
    paths: list[str]
    targets: np.ndarray
    scores: np.ndarray


def full_gradient(model: keras.Model, x: Any, targets: Any = None) -> Decomposition:
    """The decomposition of ``model``'s logits on ``x`` (one batch) for ``targets`` (one column of the target
    grammar: None = predicted, a class, one class per sample, ``"lowest"``)."""
    x = tf.convert_to_tensor(np.asarray(x, np.float32))
    plan = parse_targets(targets)
    if plan.stacked:
        raise CamkitError(f"targets: full_gradient explains one target per sample, not {targets!r}")
    spec = column_codes(plan)[0].chunk(0, int(x.shape[0]), int(x.shape[0]))
    meth = FullGrad()
    out = fullgrad_step(model, meth.class_scores, meth.target_ranking, meth.step_key(), with_terms=True)(
        x, tf.constant(spec))
    check_classes(spec, int(out["n_classes"]))
    return Decomposition(np.asarray(out["input_term"]), [np.asarray(t) for t in out["bias_terms"]],
                         [p.decode() for p in np.asarray(out["paths"])], np.asarray(out["targets"], np.int64),
                         np.asarray(out["scores"], np.float32))


@register_method("fullgrad")
class FullGrad(Method):
    """``ψ(x ⊙ ∇ₓy) + Σ_layers ψ(b ⊙ ∂y/∂z)``, min-max normalised (see the module docstring)."""

    title = "FullGrad"
    relu = False  # raw is non-negative; maps are min-max normalised, as the authors' figures
    uses_layer = False  # every biased layer, no explained layer

    def map_passes(self, channels: int) -> Passes:
        """One forward pass, one backward pass to the input (giving every bias-gradient on the way)."""
        return Passes(1, 1, backward_to="input")

    def setup(self, model: keras.Model, ref: LayerRef | None, batch_shape: tuple[int, ...]) -> None:
        self.step = fullgrad_step(model, self.class_scores, self.target_ranking, self.step_key())

    def explain_chunk(self, step: Any, x: tf.Tensor, spec: np.ndarray, n: int) -> ChunkResult:
        """One chunk through FullGrad's own step (the engine's ``step`` is not used)."""
        out = self.step(x, tf.constant(spec, tf.int32))
        check_classes(spec[:n], int(out["n_classes"]))
        raw = out["raw"][:n]
        return ChunkResult(np.asarray(normalise(raw, signed=True), np.float32), np.asarray(raw, np.float32),
                           np.asarray(out["targets"][:n], np.int64), np.asarray(out["scores"][:n], np.float32))
