"""Model randomisation (metric ``randomization``): Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim, "Sanity
Checks for Saliency Maps", NeurIPS 2018: the cascading randomisation test.

A map that explains the model must change when the model's weights are destroyed. From the top (the output
layer) down, the layers with weights are re-initialised one more at a time; after step ``s`` (the top ``s``
layers random, the others as trained) every sample is explained again with the same method, options, layer and
class, and its map ``M_s`` is compared with the original map ``M_0``:

- ``ρ_s = spearman(flatten(M_0), flatten(M_s))`` (``scipy.stats.spearmanr``, ties ranked by their mean). When a
  map is constant the correlation is undefined: ``1`` if the two maps are equal (the map did not change), else
  ``0`` (no rank agreement).
- ``SSIM_s = structural_similarity(M_0, M_s, data_range=1)`` (``skimage.metrics``, uniform window, images and
  series alike: a series' map is 1-D and takes the 1-D window). The window is ``SSIM_WINDOW`` = 7 positions per
  side, or the largest odd number not above the map's shortest side when that is smaller (at least 3).

The score (``randomization``) is ``ρ`` at the last step of the cascade and ``randomization_ssim`` the SSIM
there; lower is better (a map that depends on the weights changes). The per-sample curve is ``ρ_1 .. ρ_S``
(x: the number of layers randomised from the top); the parts also hold the per-step SSIM sums and the layer of
each step, so :meth:`Randomization.step_curves` gives both mean curves and ``randomization/<variant>.csv``.

Choices:

- The layers: every layer that holds weights, nested models (Functional, Sequential or any ``keras.Model``)
  entered and their layers counted one by one; any other layer with sub-layers (an RNN and its cell,
  ``MultiHeadAttention``, ``Bidirectional``) is one step. Order: the reverse of the model's layer order, which
  for Functional and Sequential models is topological, so the output layer comes first (a subclassed model: the
  reverse of the order its layers were assigned in). Option ``layers``
  (None: all; an int ``N``: the top ``N`` steps only, all if fewer) bounds the cost: one ``explain`` per step.
- Re-initialisation: each variable ``v`` is drawn anew from its layer's own initialiser, the attribute
  ``<v.name>_initializer`` (``kernel``, ``bias``, ``gamma``, ``moving_mean``, ...) or, for ``*_kernel``
  variables, ``<prefix>_initializer`` (``recurrent_kernel`` -> ``recurrent_initializer``). So a
  BatchNormalization layer returns to its initial state (γ = 1, β = 0, moving mean 0, moving variance 1), and a
  bias initialised to zeros becomes zeros. A trainable float variable whose layer has no such attribute (a custom
  layer's ``add_weight``) is drawn from Glorot uniform, Keras's default for ``add_weight``; a non-trainable one
  without an initialiser (Normalization's adapted mean and variance, counters) and integer variables are kept.
  Seeded initialisers get the seed ``SeedSequence((seed, step, variable index)).generate_state(1)[0]`` (option
  ``seed``, default 0): the same layer gets the same weights whatever ``layers`` is.
- The user's model never changes: the cascade runs on a clone (``keras.models.clone_model`` and the model's
  weights; a subclassed model needs ``get_config``). The clone is kept per model (weakly) and reset to the
  model's weights at each cascade, so that every batch reuses one compiled gradient step.
- The maps compared are the batch's map variant (a method with variants: that variant of the new explanation).
"""

from __future__ import annotations

import csv
import io
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import keras
import numpy as np
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from camkit.data.boxes import ClassMap
from camkit.errors import CamkitError
from camkit.methods import explain
from camkit.methods.layers import LayerRef
from camkit.metrics.base import MapBatch, MethodRun, register_metric
from camkit.metrics.faithfulness.base import Explained, FaithfulnessMetric, Scores
from camkit.metrics.faithfulness.options import SEED_CHECK, Check, integer

SSIM_WINDOW = 7  # skimage's default side of the uniform SSIM window
STEP_LABEL = "layers randomised from the top"
_CLONES: weakref.WeakKeyDictionary[keras.Model, keras.Model] = weakref.WeakKeyDictionary()


def weighted_layers(model: keras.Model) -> list[LayerRef]:
    """The layers re-initialised by the cascade (module docstring), from the top (output) down, with their paths."""
    found: list[LayerRef] = []

    def visit(parent: keras.layers.Layer, prefix: str) -> None:
        for child in parent._flatten_layers(include_self=False, recursive=False):
            if isinstance(child, keras.Model):
                visit(child, f"{prefix}{child.name}/")
            elif not isinstance(child, keras.layers.InputLayer) and any(map(_redrawn, _owned(child))):
                found.append(LayerRef(prefix + child.name, child))

    visit(model, "")
    return found[::-1]


def _owned(layer: keras.layers.Layer) -> Iterator[tuple[keras.layers.Layer, Any]]:
    """(owning sub-layer, variable) for every variable of ``layer`` and its sub-layers."""
    for owner in layer._flatten_layers(include_self=True, recursive=True):
        for variable in [*owner._trainable_variables, *owner._non_trainable_variables]:
            yield owner, variable


def initializer_of(owner: keras.layers.Layer, variable: Any) -> Any:
    """The initialiser ``variable`` is drawn from (module docstring), or None when it is kept."""
    name = variable.name
    for attribute in (f"{name}_initializer", f"{name.removesuffix('_kernel')}_initializer"):
        init = getattr(owner, attribute, None)
        if callable(init):
            return init
    if not variable.trainable or not keras.backend.is_float_dtype(variable.dtype):
        return None
    return keras.initializers.GlorotUniform()


def _redrawn(owned: tuple[keras.layers.Layer, Any]) -> bool:
    return initializer_of(*owned) is not None


def seeded(init: Any, seed: int) -> Any:
    """A fresh copy of a seeded Keras initialiser with ``seed``; other initialisers as they are."""
    if isinstance(init, keras.initializers.Initializer):
        config = init.get_config()
        if "seed" in config:
            return type(init).from_config({**config, "seed": seed})
    return init


def reinitialise(layer: keras.layers.Layer, seed: int, step: int) -> None:
    """Draw every variable of ``layer`` (the cascade's step ``step``) anew from its initialiser."""
    for index, (owner, variable) in enumerate(_owned(layer)):
        init = initializer_of(owner, variable)
        if init is not None:
            draw = int(np.random.SeedSequence((seed, step, index)).generate_state(1)[0] >> 1)
            variable.assign(seeded(init, draw)(tuple(variable.shape), dtype=variable.dtype))


def clone_of(model: keras.Model) -> keras.Model:
    """A clone of ``model`` with its current weights (kept per model, reset at every call)."""
    clone = _CLONES.get(model)
    if clone is None:
        try:
            clone = keras.models.clone_model(model)
        except Exception as error:  # a model Keras cannot rebuild from its config
            raise CamkitError(f"randomization: cannot clone the model ({type(error).__name__}); a subclassed model "
                              "needs get_config") from error
        _CLONES[model] = clone
    clone.set_weights(model.get_weights())
    return clone


def cascade_models(model: keras.Model, layers: int | None = None, seed: int = 0) -> Iterator[tuple[str, keras.Model]]:
    """(layer path, clone) after each step: the top 1, 2, ... layers of a clone of ``model`` re-initialised.

    The same clone is yielded each time, one more layer random; ``model`` itself is never changed.
    """
    clone = clone_of(model)
    steps = weighted_layers(clone)
    if not steps:
        raise CamkitError("randomization: the model has no layers with weights to randomise")
    for step, ref in enumerate(steps[:layers]):
        reinitialise(ref.layer, seed, step)
        yield ref.path, clone


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ of two flattened maps; a constant map: 1 if the maps are equal, else 0."""
    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float(np.array_equal(a, b))
    return float(spearmanr(a, b).statistic)


def map_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two [0, 1] maps (images or series), window ``SSIM_WINDOW`` or the largest odd side that fits."""
    side = min(np.shape(a))
    window = min(SSIM_WINDOW, side if side % 2 else side - 1)
    if window < 3:
        raise CamkitError(f"randomization: SSIM needs maps of at least 3 positions per side, got {np.shape(a)}")
    return float(structural_similarity(np.asarray(a, np.float64), np.asarray(b, np.float64), data_range=1.0,
                                       win_size=window))


class Cascade(NamedTuple):
    """One sample's cascade for a figure: the input, its map, the layer and the map after each step, and the mean
    ρ and SSIM per step over every sample."""

    x: np.ndarray
    original: np.ndarray
    layers: list[str]
    maps: np.ndarray
    spearman: np.ndarray
    ssim: np.ndarray


def method_of(explained: Explained) -> MethodRun:
    if explained.method is None:
        raise CamkitError("randomization: needs the method that made the maps (its name, options and layer)")
    return explained.method


@register_metric
class Randomization(FaithfulnessMetric):
    """Rank correlation (and SSIM) of the maps with those of a model randomised from the top (lower is better)."""

    name = "randomization"
    paper = "Adebayo et al., NeurIPS 2018"
    higher_is_better = False
    needs = ("maps", "model", "inputs", "method")
    options: ClassVar[dict[str, Any]] = {"layers": None, "seed": 0}
    checks: ClassVar[dict[str, Check]] = {"layers": integer(1, "the layers randomised from the top", allow_none=True),
                                          "seed": SEED_CHECK}
    columns = ("randomization", "randomization_ssim")
    summary_keys = columns
    table = (("randomization", "randomization ρ"), ("randomization_ssim", "randomization SSIM"))

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._steps: tuple[list[str], np.ndarray] | None = None  # the last score's layers and (N, S) SSIM

    def cascade(self, explained: Explained, j: int) -> tuple[list[str], np.ndarray]:
        """Sample ``j``'s cascade: the layer of each step and (S, *spatial) its map after each step."""
        layers, maps = zip(*self.cascade_maps(explained, np.array([j])), strict=True)
        return list(layers), np.stack([m[0] for m in maps])

    def cascade_maps(self, explained: Explained, samples: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
        """(layer path, (n, *spatial) maps of ``samples``) after each step of the cascade."""
        run = method_of(explained)
        x, targets = explained.inputs[samples], explained.targets[samples]
        for path, clone in cascade_models(explained.model, self.settings["layers"], int(self.settings["seed"])):
            exp = explain(clone, x, method=run.name, layer=run.layer, targets=targets, progress=False, **run.options)
            yield path, np.asarray(exp.variants.get(explained.variant, exp.maps))

    def score(self, explained: Explained) -> Scores:
        n = len(explained.maps)
        layers, spearman, ssim = [], [], []
        for path, maps in self.cascade_maps(explained, np.arange(n)):
            layers.append(path)
            spearman.append([rank_correlation(explained.maps[i], maps[i]) for i in range(n)])
            ssim.append([map_ssim(explained.maps[i], maps[i]) for i in range(n)])
        rho, sim = np.asarray(spearman).T, np.asarray(ssim).T
        self._steps = (layers, sim)
        return Scores(rho[:, -1], extra={"randomization_ssim": sim[:, -1]}, curve=rho,
                      curve_x=np.arange(1, len(layers) + 1), curve_label=STEP_LABEL, curve_y="Spearman ρ")

    def evaluate_batch(self, batch: MapBatch) -> dict[str, Any]:
        """The base part plus ``steps``: the layer of each step and the per-step SSIM sums."""
        self._steps = None
        part = super().evaluate_batch(batch)
        if self._steps is not None:
            layers, ssim = self._steps
            part["steps"] = {"layers": layers, "ssim_sum": ssim.sum(axis=0).tolist()}
        return part

    def step_curves(self, parts: Sequence[dict[str, Any]]) -> tuple[list[str], np.ndarray, np.ndarray] | None:
        """(layer of each step, mean ρ per step, mean SSIM per step) over every sample, or None without samples."""
        curve = self.mean_curve(parts)
        steps = [p for p in parts if "steps" in p]
        if curve is None or not steps:
            return None
        ssim = np.sum([p["steps"]["ssim_sum"] for p in steps], axis=0) / sum(p["n"] for p in steps)
        return list(steps[0]["steps"]["layers"]), curve[1], ssim

    def illustration(self, explained: Explained, parts: Sequence[dict[str, Any]]) -> Cascade | None:
        """The first sample's cascade with the evaluation's mean curves."""
        curves = self.step_curves(parts)
        if curves is None or not len(explained.maps):
            return None
        layers, maps = self.cascade(explained, 0)
        return Cascade(explained.inputs[0], explained.maps[0], layers, maps, curves[1], curves[2])

    def files(self, parts: Sequence[dict[str, Any]], variant: str, class_map: ClassMap) -> dict[Path, str]:
        """The base curve file and ``randomization/<variant>.csv``: step, layer, mean ρ, mean SSIM."""
        files = super().files(parts, variant, class_map)
        curves = self.step_curves(parts)
        if curves is not None:
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(["step", "layer", "spearman", "ssim"])
            for step, (layer, rho, sim) in enumerate(zip(*curves, strict=True), start=1):
                writer.writerow([step, layer, f"{rho:.6g}", f"{sim:.6g}"])
            files[Path("randomization") / f"{variant}.csv"] = text.getvalue()
        return files
