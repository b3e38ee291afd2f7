"""The attribution engine: ``explain(model, x, method=...)``, the :class:`Method` base class, the registry.

Every method runs on one compiled gradient step (``step.py``: capture of ``A``, ``g = dy_t/dA``, guided
input gradients, targets); a method file mostly overrides :meth:`Method.channel_weights`. Layers are
chosen and addressed as in ``layers.py``.

What the step gives stays in TensorFlow: channel weights, ``Σ_k w_k A_k``, the upsampling and the
normalisation are TF ops on the step's tensors (on the GPU when the model runs there), and only a
batch's ``raw``, ``maps``, targets and scores come back to NumPy. The layer that ``layer=None`` picks
and CAM's classifier head are found by tracing the model once per (model, input shape), then cached.

Conventions, for every method:

- Inference mode and no quantity mixes samples, so a sample's map is the same alone or in a batch.
- ``raw`` is at the layer's resolution. ``maps`` is ``raw`` upsampled to the input's spatial size with
  ``tf.image.resize(method="bilinear")`` (Keras 3 / TF2: half-pixel centres, no antialiasing; a 1-D
  map is resized as a (T, 1) image), then normalised per sample to [0, 1]: divided by its max for
  methods with a ReLU (non-negative maps), min-max for signed maps (CAM). A map with no range (all
  zero, constant) becomes all zero, never NaN.
- Inputs are ``(N, T, C)`` or ``(N, H, W, C)`` arrays (cast to float32), or a ``tf.data.Dataset`` of such
  batches (``x`` or ``(x, y, ...)`` elements), streamed.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from camkit.errors import CamkitError
from camkit.methods.columns import ChunkResult, ColumnCodes, check_classes, column_codes, stack_results
from camkit.methods.inputs import input_batches, rechunk
from camkit.methods.layers import LayerRef, pre_softmax, resolve_layer
from camkit.methods.mapmath import normalise, pad_batch, upsample, weighted_sum
from camkit.methods.smoothing import AUG_COPIES, aug_copy, first_component, flip_spatial
from camkit.methods.step import compiled_step
from camkit.methods.targets import parse_targets

DEFAULT_METHOD = "gradcam"  # the method explain (and the CLI) use when none is named


@dataclass(frozen=True)
class Explanation:
    """Maps for N samples; with a stacked target plan (``"topK"``, comma lists) every array gets a K axis after N.

    maps: float32 (N, *input spatial) in [0, 1]. raw: float32 (N, *layer spatial), unnormalised, as the
    formula gives (guided methods: (N, *input spatial, C), see ``guided.py``). targets: int64 (N,) the
    explained class; scores: float32 (N,) its logit. layer: path of the layer used (None for
    guided-backprop, which explains the input). method: the method's name. variants: name -> maps of each
    map variant computed (each shaped like ``maps``, in the method's :attr:`Method.variants` order; augmented
    Grad-CAM: its aggregations, hires ``output="all"``: low, high, refined); ``{}`` for one-map methods.
    stats: per-sample solver statistics (augmented Grad-CAM with sr: ``sr_iterations``, ``sr_objective``,
    ``sr_gap``). variant_raw: name -> raw of each variant where they differ in shape (hires ``output="all"``).
    """

    maps: np.ndarray
    raw: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    layer: str | None
    method: str
    variants: dict[str, np.ndarray] = field(default_factory=dict)
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    variant_raw: dict[str, np.ndarray] = field(default_factory=dict)


class MethodNotApplicable(CamkitError):
    """The method cannot explain this model (e.g. CAM without a GAP -> Dense head); ``fallback``: a method that can."""

    fallback: str | None = None

    def __init__(self, message: str, fallback: str | None = None) -> None:
        super().__init__(message)
        if fallback is not None:
            self.fallback = fallback


@dataclass(frozen=True)
class Batch:
    """What the compiled step gives a method for one batch, as eager tensors, padding removed.

    Use TF ops on them (``tf.*``, ``keras.ops``), so that the work stays on the model's device; they
    also convert to NumPy (``np.asarray``) for a method written in NumPy, at the cost of a copy to the
    host. :meth:`Method.channel_weights` and :meth:`Method.explain_batch` may return tensors or arrays.
    """

    acts: tf.Tensor | None  # A, (B, *layer spatial, K), float32
    grads: tf.Tensor | None  # g = dy_t / dA, same shape
    input_grads: tf.Tensor | None  # dy_t / dx through guided ReLUs, (B, *input spatial, C); guided methods only
    targets: tf.Tensor  # (B,) int32, class explained
    scores: tf.Tensor  # (B,) float32, its logit
    inputs: tf.Tensor | None = None  # x, (B, *input spatial, C), for methods that run more of the model (hires)


@dataclass(frozen=True)
class Passes:
    """The model passes one map costs: what the README's method table and the speed benchmark's floor count.

    forward: passes of the whole model; backward: how many of them also run a backward pass (to the layer, or to
    the input: ``backward_to``); upper: runs of only the layers above the explained layer (Ablation-CAM).
    """

    forward: int
    backward: int = 0
    upper: int = 0
    backward_to: str = "layer"

    def times(self, k: int) -> Passes:
        """The passes of ``k`` maps of this kind (``smooth="aug"``: six copies)."""
        return Passes(self.forward * k, self.backward * k, self.upper * k, self.backward_to)


class Method:
    """An attribution method. Subclasses usually override :meth:`channel_weights` and set the flags.

    The class variables below describe the method to the layers above the engine (workflows, plots, CLI),
    so that they need not know method names; a method file overrides those that differ.
    """

    name: ClassVar[str] = ""
    relu: ClassVar[bool] = True  # ReLU on Σ_k w_k A_k and max-normalised maps; False: signed, min-max
    uses_layer: ClassVar[bool] = True  # needs A at a layer
    guided: ClassVar[bool] = False  # needs dy/dx through guided ReLUs
    needs_grads: ClassVar[bool] = True  # needs g = dy/dA (False: the step runs no backward pass to the layer)
    title: ClassVar[str] = ""  # figure title; register_method defaults it to the name
    box_threshold: ClassVar[float] = 0.15  # box threshold, fraction of the map's max (Selvaraju et al.)
    variants: ClassVar[dict[str, str]] = {}  # map variants it can return: name -> figure title, display order
    all_variants: ClassVar[dict[str, Any]] = {}  # options that make it return every variant
    task: ClassVar[str] = "classify"  # "classify" (class scores) or "cluster" (an encoder's clusters)
    input_kinds: ClassVar[tuple[str, ...]] = ("series", "images")
    display: ClassVar[str] = "overlay"  # "overlay": maps over the input; "guided": raw is an input-gradient image
    streams: ClassVar[bool] = False  # image folders are explained batch by batch into the store by default
    default_columns: ClassVar[str] = "top5,true"  # target columns of whole-folder and localization runs
    notebook_panels: ClassVar[tuple[str, ...]] = ("cam", "guided-backprop", "guided-gradcam")  # after the input
    quick_options: ClassVar[dict[str, Any]] = {}  # options for a fast run (tests, smoke runs)
    requires_model: ClassVar[str | None] = None  # a model builder the method needs
    smooths: ClassVar[tuple[str, ...]] = ()  # the smooth= options it takes (gradient methods: smoothing.SMOOTHINGS)
    smoothing: str | None = None  # the chosen one

    def __init__(self, smooth: str | None = None) -> None:
        if smooth is not None and smooth not in self.smooths:
            allowed = f"choose one of {', '.join(self.smooths)}" if self.smooths else "not taken by this method"
            raise CamkitError(f"method {self.name}: smooth={smooth!r}: {allowed}")
        self.smoothing = smooth

    def setup(self, model: keras.Model, ref: LayerRef | None, batch_shape: tuple[int, ...]) -> None:
        """Called once per ``explain`` before the batches (CAM reads its classifier head here)."""

    def layer_for(self, model: keras.Model, layer: Any, batch_shape: tuple[int, ...]) -> LayerRef:
        """The layer explained: ``layer=`` resolved (the default one cached per model and sample shape); a method
        that picks its own layers (LayerCAM's ``layers``) overrides it."""
        return _resolve(model, layer, batch_shape, self)

    def passes(self, channels: int) -> Passes:
        """The model passes one map costs when the layer has ``channels`` channels (``smooth="aug"``: six maps)."""
        one = self.map_passes(channels)
        return one.times(len(AUG_COPIES)) if self.smoothing == "aug" else one

    def map_passes(self, channels: int) -> Passes:
        """The passes of one map without smoothing: one forward pass, and a backward one if it needs gradients
        (override where it differs)."""
        if self.guided:
            return Passes(1, 1, backward_to="input")
        return Passes(1, int(self.needs_grads and self.uses_layer))

    def class_scores(self, outputs: Any) -> tf.Tensor:
        """(B, classes) scores to explain, from the model's outputs while tracing: logits of the first output."""
        return pre_softmax(keras.tree.flatten(outputs)[0])

    def target_ranking(self, outputs: Any, scores: tf.Tensor) -> tf.Tensor:
        """(B, classes) values that rank the targets (None: the highest, topK, lowest); default the class scores."""
        return scores

    def guided_scores(self, outputs: Any, scores: tf.Tensor) -> tf.Tensor:
        """(B, classes) scores whose guided input gradient guided methods take; default the class scores."""
        return scores

    def step_key(self) -> Hashable:
        """Part of the compiled-step cache key; override if the score methods depend on instance state."""
        return type(self).class_scores

    def channel_weights(self, batch: Batch) -> tf.Tensor:
        """(B, K) weight of each channel of ``A`` (a tensor, or anything ``tf.cast`` takes)."""
        raise NotImplementedError

    def weighted_activations(self, batch: Batch) -> tf.Tensor:
        """(B, *layer spatial, K) ``w_k A_k``; methods with per-position weights (LayerCAM, HiResCAM) override it."""
        weights = tf.cast(self.channel_weights(batch), tf.float32)
        return batch.acts * tf.reshape(weights, [-1] + [1] * (batch.acts.shape.rank - 2) + [weights.shape[-1]])

    def raw_maps(self, batch: Batch) -> tf.Tensor:
        """``Σ_k w_k A_k`` (``smooth="eigen"``: their first principal component), ReLU'd if ``relu``, at the layer's
        resolution."""
        if self.smoothing == "eigen":
            maps = first_component(self.weighted_activations(batch))
        elif type(self).weighted_activations is Method.weighted_activations:
            maps = weighted_sum(batch.acts, tf.cast(self.channel_weights(batch), tf.float32))
        else:
            maps = tf.reduce_sum(self.weighted_activations(batch), axis=-1)
        return tf.nn.relu(maps) if self.relu else maps

    def explain_batch(self, batch: Batch, size: tuple[int, ...]) -> tuple[tf.Tensor, tf.Tensor]:
        """(raw, maps) of one batch; ``size`` is the input's spatial shape."""
        raw = self.raw_maps(batch)
        return raw, normalise(upsample(raw, size), signed=not self.relu)

    def explain_chunk(self, step: Any, x: tf.Tensor, spec: np.ndarray, n: int) -> ChunkResult:
        """One padded chunk (``x``: the step's batch size, the first ``n`` samples real; ``spec``: target codes).

        Override to call the step several times per chunk (augmented Grad-CAM explains warped copies).
        """
        batch = run_step(step, x, spec, n)
        if self.smoothing == "aug":
            raw = self.aug_raw(step, x, batch)
            maps = normalise(upsample(raw, tuple(x.shape[1:-1])), signed=not self.relu)
        else:
            raw, maps = self.explain_batch(batch, tuple(x.shape[1:-1]))
        return ChunkResult(np.asarray(maps, np.float32), np.asarray(raw, np.float32),
                           np.asarray(batch.targets, np.int64), np.asarray(batch.scores, np.float32))

    def aug_raw(self, step: Any, x: tf.Tensor, batch: Batch) -> tf.Tensor:
        """``smooth="aug"``: the mean of the normalised raw maps of the copies (``smoothing.py``), each mapped back."""
        n, size, rank = int(batch.targets.shape[0]), int(x.shape[0]), x.shape.rank - 2
        spec = np.zeros(size, np.int32)
        spec[:n] = np.asarray(batch.targets)
        raws = []
        for flip, factor in AUG_COPIES:
            raw = self.raw_maps(batch if (flip, factor) == (False, 1.0) else run_step(step, aug_copy(x, flip, factor),
                                                                                      spec, n))
            raws.append(normalise(flip_spatial(raw, rank) if flip else raw, signed=not self.relu))
        return tf.reduce_mean(tf.stack(raws), axis=0)


M = TypeVar("M", bound=type[Method])
_METHODS: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: make a :class:`Method` available as ``explain(..., method=name)``."""

    def wrap(cls: M) -> M:
        if name in _METHODS:
            raise ValueError(f"method {name!r} is registered twice")
        cls.name = name
        if "title" not in cls.__dict__:
            cls.title = name
        _METHODS[name] = cls
        return cls

    return wrap


def methods() -> list[str]:
    """The registered method names."""
    return sorted(_METHODS)


def method_class(name: str) -> type[Method]:
    """The registered class of method ``name`` (its metadata: :class:`Method`'s class variables)."""
    if name not in _METHODS:
        raise CamkitError(f"method: unknown method {name!r}; choose one of {', '.join(methods())}")
    return _METHODS[name]


def make_method(method: str | Method, **options: Any) -> Method:
    """A method instance from a registered name (with its options) or an instance."""
    if isinstance(method, Method):
        if options:
            raise CamkitError(f"method: options {', '.join(options)} go to the method's constructor")
        return method
    cls = method_class(method)
    try:
        return cls(**options)
    except TypeError:
        raise CamkitError(f"method {method}: unexpected option(s) {', '.join(options)}") from None


def _head(t: tf.Tensor | None, n: int, size: int) -> tf.Tensor | None:
    return t if t is None or n == size else t[:n]


def run_step(step: Any, x: tf.Tensor, spec: np.ndarray, n: int) -> Batch:
    """The compiled step on a padded batch ``x`` with target codes ``spec``; the first ``n`` samples kept."""
    size = int(x.shape[0])
    out = step(x, tf.constant(spec, tf.int32))
    check_classes(spec[:n], int(out["n_classes"]))
    return Batch(
        acts=_head(out.get("acts"), n, size),
        grads=_head(out.get("grads"), n, size),
        input_grads=_head(out.get("input_grads"), n, size),
        targets=_head(out["targets"], n, size),
        scores=_head(out["scores"], n, size),
        inputs=_head(x, n, size),
    )


_LAYERS: weakref.WeakKeyDictionary[keras.Model, dict[Hashable, LayerRef]] = weakref.WeakKeyDictionary()


def _resolve(model: keras.Model, layer: Any, batch_shape: tuple[int, ...], method: Method) -> LayerRef:
    """``resolve_layer``; the default layer (found by tracing the model) is cached per model and sample shape."""
    if layer is not None:
        return resolve_layer(model, layer, batch_shape, method.class_scores)
    cache = _LAYERS.setdefault(model, {})
    key = (tuple(batch_shape[1:]), method.step_key())
    if key not in cache:
        cache[key] = resolve_layer(model, None, batch_shape, method.class_scores)
    return cache[key]


def _explain_chunks(meth: Method, step: Any, chunks: Iterable[np.ndarray], codes: Sequence[ColumnCodes],
                    size: int, bar: tqdm) -> tuple[list[list[ChunkResult]], int]:
    """Every column of every chunk (padded to ``size``): ``parts[chunk][column]``, and the number of samples."""
    parts: list[list[ChunkResult]] = []
    offset = 0
    for chunk in chunks:
        x_chunk = pad_batch(chunk, size)
        parts.append([meth.explain_chunk(step, x_chunk, c.chunk(offset, len(chunk), size), len(chunk)) for c in codes])
        offset += len(chunk)
        bar.update(len(chunk))
    return parts, offset


def explain(
    model: keras.Model,
    x: Any,
    method: str | Method = DEFAULT_METHOD,
    layer: str | int | None = None,
    targets: Any = None,
    batch_size: int = 32,
    progress: bool | None = None,
    y_true: Any = None,
    **options: Any,
) -> Explanation:
    """Explain ``model``'s class scores on ``x`` with an attribution method (see :func:`methods`).

    ``layer``: None (last layer with spatial output feeding the scores), a name, an ``"outer/inner"`` path,
    or -n (n-th conv layer from the end, across nesting). Unused by guided-backprop.
    ``targets``: the target grammar of ``targets.py``: None (predicted class), a class index, one index per
    sample, ``"lowest"``, ``"true"``, ``"topK"`` (``"top3"``, ``"top-3"``: the K best classes) or a comma list
    (``"top5,true"``); ``topK`` and lists add a K axis after N to every array of the result.
    ``batch_size``: samples per compiled step; batches are padded to ``min(batch_size, N)`` (datasets:
    ``batch_size``) and trimmed, so the step is traced once per input shape.
    ``progress``: show a progress bar (None: when there are more than a few batches).
    ``y_true``: (N,) true classes, for a ``"true"`` column.
    ``options`` go to the method (e.g. ``aggregate=`` for augmented Grad-CAM).
    """
    meth = make_method(method, **options)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise CamkitError(f"batch_size: expected a positive integer, got {batch_size!r}")
    plan = parse_targets(targets)
    codes = column_codes(plan, y_true)
    batches, total, n_batches = input_batches(x)
    for column in codes if total is not None else ():
        column.check_count(total)
    size = batch_size if total is None else max(1, min(batch_size, total))
    chunks = rechunk(batches, size)
    first = next(chunks, None)
    if first is None:
        raise CamkitError("x: no samples to explain")
    batch_shape = (size, *first.shape[1:])
    ref = meth.layer_for(model, layer, batch_shape) if meth.uses_layer else None
    meth.setup(model, ref, batch_shape)
    step = compiled_step(model, ref.path if ref else None, meth.guided, meth.needs_grads, meth.class_scores,
                         meth.step_key(), meth.target_ranking, meth.guided_scores)
    if progress is None:  # more than a few batches, or a dataset of unknown length
        progress = (total or 0) > 4 * size or (total is None and (n_batches is None or n_batches > 4))
    with tqdm(total=total, unit="sample", desc=f"explain {meth.name}", disable=not progress, leave=False) as bar:
        parts, n_samples = _explain_chunks(meth, step, itertools.chain([first], chunks), codes, size, bar)
    for column in codes:
        column.check_count(n_samples)
    result = stack_results(parts, plan.stacked)
    return Explanation(result.maps, result.raw, result.targets, result.scores, layer=ref.path if ref else None,
                       method=meth.name, variants=result.variants, stats=result.stats, variant_raw=result.variant_raw)
