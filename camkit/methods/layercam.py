"""LayerCAM (method ``layercam``), one layer or several fused.

Jiang, Zhang, Hou, Cheng, Wei, "LayerCAM: Exploring Hierarchical Class Activation Maps for Localization", IEEE
Transactions on Image Processing, 2021. With ``A`` the layer's activations and ``g = dy_c/dA`` (``y_c`` the logit),
each position keeps its own positive gradient as the weight: ``M_c = ReLU(Σ_k ReLU(g_k) ⊙ A_k)``
(``smooth="eigen"``: the first principal component of ``ReLU(g_k) ⊙ A_k`` instead of their sum).

**Several layers** (``layers=[...]``, each entry a name, an ``"outer/inner"`` path or a negative int, as ``layer=``
takes; from the CLI ``-o layers=[block3_conv3,block5_conv3]``): exactly those layers are explained, after ``layer=``
when it is given too (the default layer is not added). The first of them chooses the targets and gives the scores
(``Explanation.layer`` is its path); an entry naming a layer already in the list is dropped; every other layer runs
its own compiled step (one more forward and backward pass each) for those same classes. As the paper fuses them:
each layer's map is upsampled to the input and normalised to [0, 1] (divided by its max), and the fused map is their
pixelwise max. ``raw`` is then that fused map, at the **input's** resolution (the layers' resolutions differ); with
one layer ``raw`` is at the layer's resolution, as for every method. ``smooth="aug"`` averages the fused maps of the
copies.

``gamma``: the paper scales the maps of shallow layers, whose values are small, by ``tanh(γ·M / max M)`` (γ = 2)
before fusing. Given a number, it scales the maps of the entries after the first (list the deepest layer first),
not the first one's. Default off (None): every map is already normalised to [0, 1] before the max, which is what the
issue's fusion asks for, and the tanh only lifts the added layers' mid values against the first layer's.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.methods.base import Batch, ChunkResult, Method, Passes, register_method, run_step
from camkit.methods.layers import LayerRef, resolve_layer
from camkit.methods.mapmath import normalise, pad_batch, upsample
from camkit.methods.smoothing import SMOOTHINGS
from camkit.methods.step import compiled_step

LAYER_ENTRY = "a name, an 'outer/inner' path or a negative int"


def parse_layers(layers: Any) -> tuple[str | int, ...]:
    """``layers=``: None, one entry or a list of entries (names, paths, negative ints) -> a tuple of entries."""
    if layers is None:
        return ()
    entries = list(layers) if isinstance(layers, (list, tuple)) else [layers]
    for entry in entries:
        if isinstance(entry, bool) or not isinstance(entry, (str, numbers.Integral)):
            raise CamkitError(f"layers: entry {entry!r} is not {LAYER_ENTRY}; give a list of them")
    return tuple(int(e) if isinstance(e, numbers.Integral) else e for e in entries)


def fuse(maps: Sequence[tf.Tensor], size: Sequence[int], gamma: float | None = None) -> tf.Tensor:
    """The pixelwise max of the (B, *layer spatial) maps, each upsampled to ``size`` and divided by its max; with
    ``gamma``, every map after the first becomes ``tanh(γ·map)`` first."""
    scaled = []
    for i, raw in enumerate(maps):
        m = normalise(upsample(raw, size), signed=False)
        scaled.append(tf.tanh(gamma * m) if gamma is not None and i > 0 else m)
    return tf.reduce_max(tf.stack(scaled), axis=0)


@register_method("layercam")
class LayerCAM(Method):
    """``M = ReLU(Σ_k ReLU(g_k) ⊙ A_k)``; ``layers=[...]`` fuses several layers (see the module docstring)."""

    title = "LayerCAM"
    smooths = SMOOTHINGS
    quick_options: ClassVar[dict[str, Any]] = {"layers": [-1, -2]}

    def __init__(self, layers: Any = None, gamma: float | None = None, smooth: str | None = None) -> None:
        super().__init__(smooth)
        self.layer_specs = parse_layers(layers)
        if gamma is not None and (isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or gamma <= 0):
            raise CamkitError(f"gamma: expected a positive number (the paper's tanh scale, 2) or None, got {gamma!r}")
        self.gamma = None if gamma is None else float(gamma)
        self.extra: list[tuple[str, Any]] = []  # (path, compiled step) of each added layer, set by setup
        self.n_layers = max(1, len(self.layer_specs))  # before setup: repeats are not known yet
        self.size = 1
        self.given_layer = False  # layer= given beside layers (set by layer_for)

    def layer_for(self, model: keras.Model, layer: Any, batch_shape: tuple[int, ...]) -> LayerRef:
        """The engine's layer: ``layer=`` when given, else the first ``layers`` entry (else the default layer)."""
        self.given_layer = layer is not None
        if not self.layer_specs or self.given_layer:
            return super().layer_for(model, layer, batch_shape)
        return self.entry(model, self.layer_specs[0], batch_shape)

    def entry(self, model: keras.Model, spec: str | int, batch_shape: tuple[int, ...]) -> LayerRef:
        """One ``layers`` entry resolved; its errors name ``layers``."""
        try:
            return resolve_layer(model, spec, batch_shape, self.class_scores)
        except CamkitError as err:
            raise CamkitError(f"layers: entry {spec!r}: {str(err).removeprefix('layer: ')}") from None

    def setup(self, model: keras.Model, ref: LayerRef | None, batch_shape: tuple[int, ...]) -> None:
        """Resolve the ``layers`` entries and build a compiled gradient step for each one not yet explained."""
        self.size, self.extra = int(batch_shape[0]), []
        paths = [ref.path]
        for spec in self.layer_specs:
            path = self.entry(model, spec, batch_shape).path
            if path not in paths:
                paths.append(path)
                self.extra.append((path, compiled_step(model, path, False, True, self.class_scores, self.step_key(),
                                                       self.target_ranking, self.guided_scores)))
        self.n_layers = len(paths)

    def map_passes(self, channels: int) -> Passes:
        """One forward and backward pass per layer."""
        return Passes(self.n_layers, self.n_layers)

    def weighted_activations(self, batch: Batch) -> tf.Tensor:
        return tf.nn.relu(batch.grads) * batch.acts

    def explain_chunk(self, step: Any, x: tf.Tensor, spec: np.ndarray, n: int) -> ChunkResult:
        """The engine's chunk; with ``layers``, an error about the first layer names ``layers``."""
        try:
            return super().explain_chunk(step, x, spec, n)
        except CamkitError as err:
            if not self.layer_specs or self.given_layer or not str(err).startswith("layer: "):
                raise
            raise CamkitError(f"layers: {str(err).removeprefix('layer: ')}") from None

    def raw_maps(self, batch: Batch) -> tf.Tensor:
        """One layer: its map at the layer's resolution. Several: their fusion at the input's resolution."""
        first = super().raw_maps(batch)
        if not self.extra:
            return first
        n = int(batch.targets.shape[0])
        spec = np.zeros(max(n, self.size), np.int32)
        spec[:n] = np.asarray(batch.targets)  # the first layer's classes, for every layer
        x = pad_batch(batch.inputs, len(spec))
        maps = [first]
        for _, step in self.extra:
            try:
                maps.append(super().raw_maps(run_step(step, x, spec, n)))
            except CamkitError as err:
                raise CamkitError(f"layers: {str(err).removeprefix('layer: ')}") from None
        return fuse(maps, tuple(batch.inputs.shape[1:-1]), self.gamma)
