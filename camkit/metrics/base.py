"""Metric plugins: a :class:`Metric` declares what it needs and contributes, a registry lists them.

A metric scores the maps of one stored batch at a time (:meth:`Metric.evaluate_batch` on a :class:`MapBatch`,
one map variant) into a JSON-able part: one record per kept image (its ``columns``) plus additive counts, so
that the parts of sharded or resumed runs merge exactly; :meth:`Metric.summarise` turns every batch's part into
the metric's ``summary_keys``. Adding a metric is one file with a registered subclass::

    @register_metric
    class MyMetric(Metric):
        name = "my-metric"
        needs = ("maps", "boxes")
        ...

``needs`` comes from :data:`NEEDS`: ``maps`` (the stored maps), ``boxes`` (ground-truth annotations),
``labels`` (each image's true class: a ``true`` map column), ``model`` and ``inputs`` (the model and the
preprocessed images or series, for metrics that run the model again), ``method`` (the maps' method, its options
and layer, for metrics that explain again). ``options`` (name -> default) are the settings a metric takes
(:func:`make_metric` hands each class the ones it declares); they are recorded with the evaluation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from camkit.data.boxes import Annotation, Box, ClassMap, image_id
from camkit.errors import CamkitError
from camkit.metrics.map_boxes import Geometry, Preprocessing, box_from_map, undo_geometry

NEEDS = ("maps", "boxes", "labels", "model", "inputs", "method")
SummaryValue = float | int | str


@dataclass(frozen=True)
class BoxSettings:
    """How maps become boxes and hits: box threshold (fraction of the map max), IoU, pointing tolerance (px)."""

    threshold: float
    iou: float = 0.5
    tolerance: float = 15.0

    def as_dict(self) -> dict[str, float]:
        return {"threshold": self.threshold, "iou": self.iou, "pointing_tolerance": self.tolerance}


@dataclass(frozen=True)
class MethodRun:
    """How the maps were made: the method's registry name, its options and the explained layer."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    layer: Any = None


@dataclass(frozen=True)
class MapBatch:
    """One stored batch's maps of one variant, with what metrics may need.

    ``maps``: (B, K, H, W) float32, one map per image and column (``columns``, e.g. top1, top2, true) of the
    class in ``targets`` (B, K); ``top5``: (B, R) the model's ranked classes. ``skipped``: image ids left out
    of the scores (:attr:`kept` lists the others). ``geometry``: how the images were resized for the model.
    """

    variant: str
    names: tuple[str, ...]
    maps: np.ndarray
    columns: tuple[str, ...]
    targets: np.ndarray
    top5: np.ndarray
    class_map: ClassMap
    settings: BoxSettings
    annotations: Mapping[str, Annotation] = field(default_factory=dict)
    geometry: Preprocessing | None = None
    skipped: frozenset[str] = frozenset()
    model: Any = None
    inputs: np.ndarray | None = None
    method: MethodRun | None = None
    explained: str = "top1"
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    _boxes: dict[tuple[int, int], Box] = field(default_factory=dict, init=False, compare=False, repr=False)

    def column(self, name: str) -> int | None:
        """The index of map column ``name`` (``top1``, ``true``, ...), or None when the run has none."""
        return self.columns.index(name) if name in self.columns else None

    @property
    def kept(self) -> list[int]:
        """Indices of the images that are scored (not skipped), in name order: every record list follows it."""
        return sorted((j for j, n in enumerate(self.names) if image_id(n) not in self.skipped),
                      key=lambda j: self.names[j])

    def annotation(self, j: int) -> Annotation:
        return self.annotations[image_id(self.names[j])]

    def require(self, name: str) -> int:
        """The index of map column ``name``; a :class:`CamkitError` when the run has none."""
        col = self.column(name)
        if col is None:
            raise CamkitError(f"the maps need column {name} (explain with --target including {name}); they have "
                              f"{', '.join(self.columns)}")
        return col

    def true_label(self, j: int) -> str:
        """Image ``j``'s true class as an annotation label (from the ``true`` column's target)."""
        return self.class_map.label(int(self.targets[j, self.require("true")]))

    def geometry_of(self, j: int) -> Geometry:
        """How image ``j`` (its annotated size) became the model input."""
        ann = self.annotation(j)
        if ann.height is None or ann.width is None:
            raise CamkitError(f"the annotation of {self.names[j]!r} has no image size (<size> or width/height columns)")
        return (self.geometry or Preprocessing(tuple(self.maps.shape[-2:]))).geometry(ann.height, ann.width)

    def original_map(self, j: int, column: int) -> np.ndarray:
        """Image ``j``'s map of ``column`` at the original image size."""
        return undo_geometry(self.maps[j, column], self.geometry_of(j))

    def box(self, j: int, column: int) -> Box:
        """The box of image ``j``'s map of ``column`` at ``settings.threshold`` (computed once per batch)."""
        key = (j, column)
        if key not in self._boxes:
            self._boxes[key] = box_from_map(self.maps[j, column], self.geometry_of(j), self.settings.threshold)
        return self._boxes[key]


class Metric(ABC):
    """A metric plugin (module docstring). Subclasses set the class variables and the two methods."""

    name: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()
    higher_is_better: ClassVar[bool] = True
    summary_keys: ClassVar[tuple[str, ...]] = ()
    columns: ClassVar[tuple[str, ...]] = ()  # per-image record fields, in CSV order
    table: ClassVar[tuple[tuple[str, str], ...]] = ()  # (summary key, header) columns of the command's table
    options: ClassVar[dict[str, Any]] = {}  # the settings it takes: name -> default

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise CamkitError(f"metric {self.name}: unknown option {unknown[0]!r} (it takes "
                              f"{', '.join(self.options) or 'none'})")
        self.settings = {**self.options, **options}

    @abstractmethod
    def evaluate_batch(self, batch: MapBatch) -> dict[str, Any]:
        """JSON-able part of one batch: ``records`` (one per ``batch.kept`` image, when ``columns``) and counts."""

    @abstractmethod
    def summarise(self, parts: Sequence[dict[str, Any]]) -> dict[str, SummaryValue]:
        """The ``summary_keys`` from every batch's part (one variant; called when some image is scored)."""

    def files(self, parts: Sequence[dict[str, Any]], variant: str, class_map: ClassMap) -> dict[Path, str]:
        """Extra output files of one variant (path relative to the output folder -> text); none by default."""
        return {}


M = TypeVar("M", bound=type[Metric])
_METRICS: dict[str, type[Metric]] = {}


def register_metric(cls: M) -> M:
    """Class decorator: make a :class:`Metric` subclass available to the evaluation workflows."""
    unknown = sorted(set(cls.needs) - set(NEEDS))
    if not cls.name or unknown:
        raise ValueError(f"metric {cls.__name__}: needs a name and needs from {NEEDS} (unknown: {unknown})")
    if cls.name in _METRICS:
        raise ValueError(f"metric {cls.name!r} is registered twice")
    _METRICS[cls.name] = cls
    return cls


def make_metric(cls: type[Metric], options: Mapping[str, Any]) -> Metric:
    """An instance of ``cls`` with the entries of ``options`` it declares, shared (``steps``) or its own
    (``NAME.KEY``, over a shared one); None values and other metrics' entries are left out."""
    own = f"{cls.name}."
    chosen = {k: v for k, v in options.items() if k in cls.options and v is not None}
    chosen.update({k[len(own):]: v for k, v in options.items() if k.startswith(own) and v is not None})
    return cls(**chosen)


def unregister_metric(name: str) -> None:
    """Remove a registered metric (tests that register their own)."""
    del _METRICS[name]


def metric_classes() -> list[type[Metric]]:
    """Every registered metric class, in registration order."""
    return list(_METRICS.values())


def select_metrics(available: Iterable[str]) -> list[type[Metric]]:
    """The registered metrics whose needs are all in ``available``."""
    have = set(available)
    return [cls for cls in _METRICS.values() if set(cls.needs) <= have]
