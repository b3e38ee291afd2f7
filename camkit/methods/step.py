"""The compiled gradient step shared by every method, and its cache.

The step is a ``tf.function`` whose Python body runs only while it is traced. During that trace the
chosen layer's ``call`` is wrapped on the instance to record its output ``A`` (``layers.record_calls``,
restored in ``finally``: the traced graph keeps the recording, the user's model is left as it was).
Under a ``GradientTape``: ``model(x, training=False)``, class scores (logits: a final softmax is read
past in the traced graph), one target per sample, ``score = Σ_i scores[i, t_i]``, then
``g = d score / dA`` (unless the method needs no gradient: CAM's weights are the head's kernel, so its
step captures ``A`` and runs no backward pass). The backward pass stops at ``A``: only ``A`` is watched,
so nothing below the layer is differentiated. Guided methods trace that same forward pass with guided ReLU gradients
(``layers.guided_relus``, an override that ``tf.gradients`` honours and ``GradientTape`` does not) and
take ``d score / dx`` with ``tf.gradients``: one forward pass gives both the ordinary ``g`` (tape) and
the guided input gradient. ``A`` and ``g`` are returned as float32. Nothing mixes samples, so a
sample's result does not depend on its batch. The engine pads batches to one size, so a step is traced
once per input shape; calls with other batch sizes (a whole-folder run's ``true`` subset, short inputs) share one
more trace whose batch axis is left open (``reduce_retracing``), instead of one trace per size.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Hashable
from typing import Any

import keras
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.methods.layers import ScoreFn, find_path, guided_relus, is_spatial, record_calls
from camkit.methods.targets import LOWEST

RankFn = Callable[[Any, tf.Tensor], tf.Tensor]
_CACHE: weakref.WeakKeyDictionary[keras.Model, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def compiled_step(model: keras.Model, path: str | None, guided: bool, needs_grads: bool, class_scores: ScoreFn,
                  key: Hashable, ranking: RankFn | None = None, guided_scores: RankFn | None = None) -> Any:
    """The ``tf.function`` for (model, layer path, guided, needs_grads, ``key`` naming the score functions), built
    on first use. ``needs_grads`` False: ``A`` is captured but ``g = dy/dA`` is not computed (no ``grads``).

    ``ranking(outputs, scores)``: (B, classes) values that rank the classes for the target codes (predicted
    = highest, top-k, lowest); default the scores. ``guided_scores(outputs, scores)``: (B, classes) scores
    whose guided input gradient is taken; default the scores. Cached per model through a weak reference:
    the step holds no reference to the model, so dropping the model drops its steps.
    """
    steps = _CACHE.setdefault(model, {})
    cache_key = (path, guided, needs_grads, key)
    if cache_key not in steps:
        steps[cache_key] = _build_step(weakref.ref(model), path, (guided, needs_grads), class_scores, ranking,
                                       guided_scores)
    return steps[cache_key]


def pick_targets(scores: tf.Tensor, spec: tf.Tensor, ranking: tf.Tensor | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """Target class per sample from its code (class, rank or LOWEST, ranked by ``ranking``, default the scores)
    and its score."""
    ranking = scores if ranking is None else ranking
    n = tf.shape(scores)[-1]
    order = tf.argsort(ranking, axis=-1, direction="DESCENDING", stable=True)
    ranked = tf.gather(order, tf.clip_by_value(-1 - spec, 0, n - 1), batch_dims=1)
    lowest = tf.argmin(ranking, axis=-1, output_type=tf.int32)
    targets = tf.where(spec >= 0, tf.minimum(spec, n - 1), tf.where(spec == LOWEST, lowest, ranked))
    return targets, tf.cast(tf.gather(scores, targets, batch_dims=1), tf.float32)


def checked_scores(scores: tf.Tensor) -> tf.Tensor:
    """``scores`` if they are (batch, classes), else a CamkitError."""
    if scores.shape.rank != 2:
        raise CamkitError(f"model: its output has shape {tuple(scores.shape)}; methods need (batch, classes)")
    return scores


def _captured(sink: list[Any], path: str) -> tf.Tensor:
    if len(sink) != 1:
        used = f"is called {len(sink)} times" if sink else "is not used"
        raise CamkitError(f"layer: {path!r} {used} in the forward pass; choose a layer called exactly once")
    acts = sink[0].output
    if not is_spatial(acts):
        shape = tuple(acts.shape) if isinstance(acts, tf.Tensor) else type(acts).__name__
        raise CamkitError(
            f"layer: {path!r} gives {shape}, no spatial axes; choose a layer with output (batch, steps, channels) "
            "or (batch, height, width, channels), or layer=None for the last one"
        )
    return acts


def _build_step(model_ref: weakref.ref, path: str | None, flags: tuple[bool, bool], class_scores: ScoreFn,
                ranking: RankFn | None, guided_scores: RankFn | None) -> Any:
    """``step(x, spec) -> dict`` of acts, grads (``flags[1]``, needs_grads), input_grads (``flags[0]``, guided),
    targets, scores, n_classes."""
    guided, needs_grads = flags

    def step(x: tf.Tensor, spec: tf.Tensor) -> dict[str, tf.Tensor]:
        model = model_ref()
        out: dict[str, tf.Tensor] = {}
        sink: list[Any] = []
        with contextlib.ExitStack() as stack:
            if guided:  # Relu ops get the guided gradient for tf.gradients; the tape keeps the ordinary one
                stack.enter_context(guided_relus())
            tape = stack.enter_context(tf.GradientTape(watch_accessed_variables=False))
            if path is not None:
                stack.enter_context(record_calls(find_path(model, path), sink, tape))
            outputs = model(x, training=False)
            scores = checked_scores(class_scores(outputs))
            targets, picked = pick_targets(scores, spec, ranking(outputs, scores) if ranking else None)
            if guided and guided_scores is not None:
                guided_picked = tf.gather(guided_scores(outputs, scores), targets, batch_dims=1)
        if path is not None:
            acts = _captured(sink, path)
            out["acts"] = tf.cast(acts, tf.float32)
        if path is not None and needs_grads:
            grads = tape.gradient(picked, acts)
            if grads is None:
                raise CamkitError(f"layer: the class scores do not depend on {path!r}")
            out["grads"] = tf.cast(grads, tf.float32)
        if guided:
            out["input_grads"] = tf.gradients(guided_picked if guided_scores else picked, x)[0]
        out.update(targets=targets, scores=picked, n_classes=tf.shape(scores)[-1])
        return out

    return tf.function(step, autograph=False, reduce_retracing=True)  # batch sizes that vary: one more trace
