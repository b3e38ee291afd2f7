"""Compiled forward runners for methods that run the model many times (Score-CAM, Ablation-CAM), and their cache.

A method that needs the model's class scores on many modified copies of a few samples (one copy per sample and
channel, say) hands the copies' recipe to a runner: the samples, one row per copy (which sample, the copy's
mask or code, the class to read) and a traced hook that makes the copies. The runner feeds them through ONE
``tf.function`` in chunks of ``chunk`` copies; the last chunk is padded to ``chunk`` copies, so the function is
traced once per input shape and chunk size. The copies are made inside the function, chunk by chunk, from the
samples: memory is bounded by the chunk (``chunk`` inputs and their activations), not by the number of copies.
Both runners return the target's class score (the method's ``class_scores``: logits, a final softmax read past,
as in ``step.py``) and its probability (softmax over the classes) for every copy.

- :func:`masked_scores`: the model on ``x[sample] · prepare(mask)``, each mask broadcast over the input's
  channels (Score-CAM: a channel of ``A`` upsampled to the input and min-max normalised).
- :func:`upper_scores`: the model with the explained layer's output ``A`` replaced by ``edit(A[sample], code)``
  (Ablation-CAM: ``A`` with channel ``code`` set to zero), the layers above ``A`` only. While the function is
  traced, the layer's ``call`` is patched on the instance to return the injected tensor (``layers.patch``,
  restored in ``finally``: the user's model is left as it was), for Functional, Sequential, nested and
  subclassed models alike. The model is called on the copies' inputs ``x[sample]``, so a layer above ``A`` that
  also reads an activation from below ``A`` (a skip connection around the layer, as in a ResNet block) gets the
  right one. Nothing else of the lower part runs: TensorFlow executes only the ops a function's outputs depend
  on, and the original ``A`` (computed, then discarded, by the patched call) feeds nothing. Measured on CPU:
  four 3×3 convolutions on 64×64 inputs, the last one replaced, cost 0.009 s per 32 copies against 0.76 s for
  the full forward pass; on VGG16 at ``block5_conv3`` see ``scripts/bench_perturbation.py``. With a skip
  connection the lower layers feeding it do run, once per copy: correct, and as costly as that part of the
  model.

The functions are cached per model through a weak reference (as the gradient step): dropping the model drops its
runners.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import keras
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.methods.layers import LayerRef, ScoreFn, find_path, patch

Prepare = Callable[[tf.Tensor, tuple[int, ...]], tf.Tensor]  # (chunk, *mask shape), input spatial -> multipliers
Edit = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]  # (chunk, *A shape) copies of A, (chunk,) codes -> edited
_CACHE: weakref.WeakKeyDictionary[keras.Model, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def picked_scores(scores: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The (chunk,) class score and probability of each copy's target."""
    scores = tf.cast(scores, tf.float32)
    return (tf.gather(scores, targets, batch_dims=1),
            tf.gather(tf.nn.softmax(scores, axis=-1), targets, batch_dims=1))


def cached_function(model: keras.Model, key: Hashable, build: Callable[[weakref.ref], Callable[..., Any]]) -> Any:
    runners = _CACHE.setdefault(model, {})
    if key not in runners:
        runners[key] = tf.function(build(weakref.ref(model)), autograph=False, reduce_retracing=True)
    return runners[key]


def _padded(t: tf.Tensor, size: int) -> tf.Tensor:
    n = int(t.shape[0])
    return t if n == size else tf.concat([t, tf.zeros((size - n, *t.shape[1:]), t.dtype)], 0)


def even_chunk(total: int, chunk: int) -> int:
    """The size of equal chunks of at most ``chunk`` copies that hold ``total``: 202 copies in chunks of 64 run as 4
    of 51, not 4 of 64 with 54 padded copies. For runs whose totals vary (a new size retraces, so the methods'
    runners, traced once per chunk size, keep ``chunk``)."""
    return -(-total // -(-total // chunk)) if total > 0 else chunk


def run_chunks(fn: Any, shared: Sequence[tf.Tensor], per_copy: Sequence[tf.Tensor],
               chunk: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``fn(*shared, *per-copy slices)`` over chunks of ``chunk`` copies (the last one padded); outputs joined."""
    total = int(per_copy[0].shape[0])
    scores, probs = [], []
    for start in range(0, total, chunk):
        part = [_padded(t[start : start + chunk], chunk) for t in per_copy]
        got = fn(*shared, *part)
        scores.append(got[0][: min(chunk, total - start)])
        probs.append(got[1][: min(chunk, total - start)])
    return tf.concat(scores, 0), tf.concat(probs, 0)


def masked_scores(model: keras.Model, class_scores: ScoreFn, key: Hashable, x: tf.Tensor, masks: tf.Tensor,
                  sample: tf.Tensor, targets: tf.Tensor, chunk: int,
                  prepare: Prepare | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """(M,) target score and probability of the model on ``x[sample[i]] · prepare(masks[i])`` for each copy ``i``.

    ``x``: (B, *spatial, C) samples; ``masks``: (M, *mask shape), turned into (M, *spatial) multipliers by
    ``prepare(masks, spatial)`` inside the function (None: they already are); ``sample``, ``targets``: (M,) int.
    ``key`` names ``class_scores`` in the cache (a method's ``step_key``).
    """

    def build(model_ref: weakref.ref) -> Callable[..., Any]:
        def run(x: tf.Tensor, masks: tf.Tensor, sample: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, ...]:
            copies = tf.gather(x, sample)
            factors = masks if prepare is None else prepare(masks, tuple(int(d) for d in x.shape[1:-1]))
            copies = copies * tf.cast(factors[..., None], copies.dtype)
            return picked_scores(class_scores(model_ref()(copies, training=False)), targets)

        return run

    fn = cached_function(model, ("masked", key, prepare), build)
    ints = [tf.cast(sample, tf.int32), tf.cast(targets, tf.int32)]
    return run_chunks(fn, [tf.convert_to_tensor(x, tf.float32)], [tf.cast(masks, tf.float32), *ints], chunk)


def _inject(ref: LayerRef, value: tf.Tensor, sink: list[int]) -> Any:
    """While tracing: ``ref.layer``'s calls return ``value`` (cast to the layer's output dtype) instead of ``A``."""
    call = ref.layer.call

    def injected_call(*args: Any, **kwargs: Any) -> Any:
        out = call(*args, **kwargs)  # its dtype and shape; the computation itself is pruned at run time
        sink.append(1)
        if not isinstance(out, tf.Tensor) or tuple(out.shape[1:]) != tuple(value.shape[1:]):
            got = tuple(out.shape) if isinstance(out, tf.Tensor) else type(out).__name__
            raise CamkitError(f"layer: {ref.path!r} gives {got}; the replacement has shape {tuple(value.shape)}")
        return tf.cast(value, out.dtype)

    return patch(ref.layer, "call", injected_call)


def upper_scores(model: keras.Model, path: str, class_scores: ScoreFn, key: Hashable, x: tf.Tensor,
                 acts: tf.Tensor, sample: tf.Tensor, code: tf.Tensor, targets: tf.Tensor, chunk: int,
                 edit: Edit | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """(M,) target score and probability with the output of the layer at ``path`` replaced by
    ``edit(acts[sample], code)`` (None: ``acts[sample]`` as it is), the layers above it only (module docstring).

    ``x``: (B, *spatial, C) the samples (skip connections around the layer read them); ``acts``: (B, *layer
    spatial, K) the layer's output on them; ``sample``, ``code``, ``targets``: (M,) int, one row per copy.
    """

    def build(model_ref: weakref.ref) -> Callable[..., Any]:
        def run(x: tf.Tensor, acts: tf.Tensor, sample: tf.Tensor, code: tf.Tensor,
                targets: tf.Tensor) -> tuple[tf.Tensor, ...]:
            model = model_ref()
            copies = tf.gather(acts, sample)
            sink: list[int] = []
            with _inject(find_path(model, path), copies if edit is None else edit(copies, code), sink):
                outputs = model(tf.gather(x, sample), training=False)
            if len(sink) != 1:
                raise CamkitError(f"layer: {path!r} is called {len(sink)} times in the forward pass; choose a "
                                  "layer called exactly once")
            return picked_scores(class_scores(outputs), targets)

        return run

    fn = cached_function(model, ("upper", path, key, edit), build)
    ints = [tf.cast(t, tf.int32) for t in (sample, code, targets)]
    return run_chunks(fn, [tf.convert_to_tensor(x, tf.float32), tf.convert_to_tensor(acts, tf.float32)], ints, chunk)
