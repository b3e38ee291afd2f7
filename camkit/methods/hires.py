"""High-Resolution CAM (method ``hires``).

Tagaris, Sdraka, Stafylopatis, "High-Resolution Class Activation Mapping for Discriminative Feature
Localization", ICIP 2019. Works on a ``densenet-full`` model (``camkit.models.densenet_fcn``), whose classifier
is ``conv_aux -> gap -> classifier`` and whose high-resolution branch ends in ``highres_features``
(input size × 16 channels, the same 16 channels as ``conv_aux``). Pipeline, for target class ``c`` and the
classifier kernel ``W`` (16, classes):

1. **low-res CAM**: CAM at ``conv_aux`` (14×14 at 224, 4×4 at 64): ``Σ_k W[k, c] A_k``, upsampled bilinearly to
   the input size (as every camkit map) and min-max normalised.
2. **high-res CAM**: the same weights on the full-resolution activations: ``Σ_k W[k, c] H_k`` with
   ``H = highres_features``, min-max normalised (no upsampling needed).
3. **refined map**: the post-processing of :mod:`camkit.methods.hires_refine` (gradient of the blurred high-res
   map, region growing from the low-res map's peaks inside its ROI, hole filling, blend with the low-res map,
   top 15 % kept), divided by its maximum.

``explain(model, x, method="hires", output=...)`` returns one of the three: ``output="refined"`` (default;
``raw`` = the blend before the top-15 % cut, at input size), ``"low"`` (``raw`` at ``conv_aux``'s resolution)
or ``"high"`` (``raw`` at input size); ``"all"``: the refined map, and the three in ``variants`` (low, high,
refined) with their raws in ``variant_raw`` (so a whole-folder run and ``eval-localization`` get all three as
variants, and the notebook layout draws image | low-res | high-res | refined from one call).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any, ClassVar

import keras
import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError
from camkit.methods.base import Batch, ChunkResult, Passes, register_method, run_step
from camkit.methods.cam import CAM
from camkit.methods.hires_refine import refine
from camkit.methods.layers import LayerRef
from camkit.methods.mapmath import normalise, upsample, weighted_sum

OUTPUTS = ("refined", "low", "high", "all")
HIGHRES_LAYER = "highres_features"
_FEATURES: weakref.WeakKeyDictionary[keras.Model, keras.Model] = weakref.WeakKeyDictionary()


def highres_model(model: keras.Model) -> keras.Model:
    """``x -> highres_features`` of a densenet-full model (cached per model; shares its layers)."""
    if model not in _FEATURES:
        try:
            layer = model.get_layer(HIGHRES_LAYER)
        except ValueError:
            raise CamkitError(f"hires needs a densenet-full model (a {HIGHRES_LAYER!r} layer, e.g. camkit train "
                              f"--model densenet-full --half-weights HALF.keras); {model.name!r} has none") from None
        _FEATURES[model] = keras.Model(model.inputs, layer.output)
    return _FEATURES[model]


@register_method("hires")
class HiRes(CAM):
    """Low-res CAM at ``conv_aux``, high-res CAM at ``highres_features``, and the refined map (see module doc)."""

    title = "refined high-res CAM"
    variants: ClassVar[dict[str, str]] = {"low": "low-res CAM", "high": "high-res CAM", "refined": "refined"}
    all_variants: ClassVar[dict[str, Any]] = {"output": "all"}
    input_kinds = ("images",)
    notebook_panels = ("hires",)  # one call with all_variants: its variants are the panels
    requires_model = "densenet-full"

    def __init__(self, output: str = "refined") -> None:
        if output not in OUTPUTS:
            raise CamkitError(f"method hires: output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.output = output

    def map_passes(self, channels: int) -> Passes:
        """The classifier's forward pass, and one through the high-resolution branch (no backward pass)."""
        return Passes(1 if self.output == "low" else 2)

    def setup(self, model: keras.Model, ref: LayerRef | None, batch_shape: tuple[int, ...]) -> None:
        self.features = highres_model(model)
        super().setup(model, ref, batch_shape)
        channels = self.features.output.shape[-1]
        if self.kernel.shape[0] != channels or tuple(self.features.output.shape[1:-1]) != tuple(batch_shape[1:-1]):
            raise CamkitError(f"hires: {HIGHRES_LAYER} gives {tuple(self.features.output.shape[1:])}; it needs the "
                              f"input's size and the classifier's {self.kernel.shape[0]} channels")

    def outputs(self, batch: Batch, size: Sequence[int], wanted: Sequence[str]) -> dict[str, tuple]:
        """(raw, maps) of each wanted output (low, high, refined); the refined map needs the other two."""
        weights = tf.cast(self.channel_weights(batch), tf.float32)
        low_raw = weighted_sum(batch.acts, weights)
        low = upsample(low_raw, size)
        out = {"low": (low_raw, normalise(low, signed=True))}
        if wanted != ("low",):
            high = weighted_sum(tf.cast(self.features(batch.inputs, training=False), tf.float32), weights)
            out["high"] = (high, normalise(high, signed=True))
        if "refined" in wanted:
            steps = [refine(lo, hi) for lo, hi in zip(np.asarray(low), np.asarray(high), strict=True)]
            blend = np.stack([s.blend for s in steps]).astype(np.float32)
            out["refined"] = (blend, normalise(np.stack([s.refined for s in steps]), signed=False))
        return {k: out[k] for k in wanted}

    def explain_batch(self, batch: Batch, size: Sequence[int]) -> tuple[tf.Tensor, tf.Tensor]:
        return self.outputs(batch, size, (self.output,))[self.output]

    def explain_chunk(self, step: Any, x: tf.Tensor, spec: np.ndarray, n: int) -> ChunkResult:
        """``output="all"``: ``maps`` is the refined map; ``variants`` and ``variant_raw`` hold low, high, refined."""
        if self.output != "all":
            return super().explain_chunk(step, x, spec, n)
        batch = run_step(step, x, spec, n)
        outs = self.outputs(batch, tuple(x.shape[1:-1]), tuple(self.variants))
        maps = {name: np.asarray(m, np.float32) for name, (_, m) in outs.items()}
        raws = {name: np.asarray(r, np.float32) for name, (r, _) in outs.items()}
        return ChunkResult(maps["refined"], raws["refined"], np.asarray(batch.targets, np.int64),
                           np.asarray(batch.scores, np.float32), variants=maps, variant_raw=raws)
