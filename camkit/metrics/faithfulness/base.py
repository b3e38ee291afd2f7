"""Faithfulness metrics: does the model's output react to what the map points at? No ground truth needed.

A faithfulness metric is a registered :class:`FaithfulnessMetric`. It scores one stored batch: the maps of the
explained column (``MapBatch.explained``, default ``top1``) of the kept samples, the model, and the model's
inputs, on the explained class's softmax probability (``probability``: logits read past a final softmax, then
softmax). Positions are an image's pixels or a series' time steps; all channels of a position move together.

A subclass sets ``name``, ``higher_is_better``, ``options`` (name -> default; the command's ``--steps`` and
``--baseline`` reach the metrics that declare them, ``--metric-option NAME.KEY=VALUE`` one metric's), ``checks``
(option -> its check, :mod:`camkit.metrics.faithfulness.options`, run when the metric is made) and
``summary_keys`` / ``columns`` / ``table`` (by default its name alone), and implements
:meth:`FaithfulnessMetric.score`: per-sample values, optionally a curve per sample. Parts hold sums and counts,
so sharded and resumed evaluations merge exactly; the summary is the mean.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from camkit.data.boxes import ClassMap
from camkit.metrics.base import MapBatch, MethodRun, Metric, SummaryValue
from camkit.metrics.faithfulness.options import Check

DIRECTION = {True: "higher is better", False: "lower is better"}


class Curve(NamedTuple):
    """A metric's mean curve: ``y`` at ``x``, what each is."""

    x: np.ndarray
    y: np.ndarray
    x_label: str
    y_label: str


@dataclass(frozen=True)
class Explained:
    """What a faithfulness metric scores: ``inputs`` (N, *spatial, C) float32 as the model takes them,
    ``maps`` (N, *spatial) in [0, 1] at the input's size, ``targets`` (N,) the explained classes; ``method`` how
    the maps were made and ``variant`` which of its map variants they are (metrics that explain again; None: the
    method's main maps)."""

    model: Any
    inputs: np.ndarray
    maps: np.ndarray
    targets: np.ndarray
    method: MethodRun | None = None
    variant: str | None = None

    @property
    def spatial(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape[1:-1])


@dataclass(frozen=True)
class Scores:
    """A metric's result on N samples: ``values`` (N,) (its column and summary), more per-sample columns in
    ``extra`` (name -> (N,); declared in the class's ``columns``), an optional ``curve`` (N, P) at ``curve_x``
    (P,) whose mean the evaluation plots (``curve_label``: what ``curve_x`` is; ``curve_y``: what the curve is)."""

    values: np.ndarray
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)
    curve: np.ndarray | None = None
    curve_x: np.ndarray | None = None
    curve_label: str = ""
    curve_y: str = "probability"


class FaithfulnessMetric(Metric):
    """Base class of the faithfulness metrics (module docstring)."""

    needs: ClassVar[tuple[str, ...]] = ("maps", "model", "inputs")
    paper: ClassVar[str] = ""  # the paper, for the README and the command's table
    checks: ClassVar[dict[str, Check]] = {}  # option -> its check (module docstring)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for key, check in self.checks.items():
            check(key, self.settings[key])

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            cls.summary_keys = cls.summary_keys or (cls.name,)
            cls.columns = cls.columns or (cls.name,)
            cls.table = cls.table or ((cls.name, cls.name),)

    @abstractmethod
    def score(self, explained: Explained) -> Scores:
        """Every sample's value (and curve) for the explained class."""

    def evaluate_batch(self, batch: MapBatch) -> dict[str, Any]:
        kept = batch.kept
        if not kept:
            return {"records": [], "n": 0, "sums": {k: 0.0 for k in self.columns}}
        col = batch.require(batch.explained)
        explained = Explained(batch.model, np.asarray(batch.inputs[kept], np.float32),
                              np.asarray(batch.maps[kept, col], np.float32),
                              np.asarray(batch.targets[kept, col], np.int64), batch.method, batch.variant)
        scores = self.score(explained)
        fields = {self.columns[0]: np.asarray(scores.values, np.float64),
                  **{k: np.asarray(v, np.float64) for k, v in scores.extra.items()}}
        records = [{k: round(float(v[i]), 6) for k, v in fields.items()} for i in range(len(kept))]
        part: dict[str, Any] = {"records": records, "n": len(kept),
                                "sums": {k: float(np.sum(v)) for k, v in fields.items()}}
        if scores.curve is not None:
            part["curve"] = {"x": np.asarray(scores.curve_x, np.float64).tolist(), "label": scores.curve_label,
                             "y": scores.curve_y, "sum": np.asarray(scores.curve, np.float64).sum(axis=0).tolist()}
        return part

    def summarise(self, parts: Sequence[dict[str, Any]]) -> dict[str, SummaryValue]:
        n = sum(p["n"] for p in parts)
        return {key: sum(p["sums"][col] for p in parts) / n
                for key, col in zip(self.summary_keys, self.columns, strict=False)}

    def mean_curve(self, parts: Sequence[dict[str, Any]]) -> Curve | None:
        """The mean curve over every sample, or None for a metric without a curve."""
        curves = [p["curve"] for p in parts if "curve" in p]
        if not curves:
            return None
        n = sum(p["n"] for p in parts if "curve" in p)
        return Curve(np.asarray(curves[0]["x"]), np.sum([c["sum"] for c in curves], axis=0) / n,
                     curves[0]["label"], curves[0]["y"])

    def illustration(self, explained: Explained, parts: Sequence[dict[str, Any]]) -> Any:
        """What a figure of this metric shows for the first sample of ``explained`` (``parts``: the evaluation's),
        drawn by ``camkit.plots.faithfulness.illustration_figure``; None (the default): no figure of its own."""
        return None

    def files(self, parts: Sequence[dict[str, Any]], variant: str, class_map: ClassMap) -> dict[Path, str]:
        """``curves/<variant>_<name>.csv``: the mean curve, when the metric has one."""
        curve = self.mean_curve(parts)
        if curve is None:
            return {}
        rows = [f"{curve.x_label or 'x'},{curve.y_label}"] + [f"{a:.6g},{b:.6g}"
                                                              for a, b in zip(curve.x, curve.y, strict=True)]
        return {Path("curves") / f"{variant}_{self.name}.csv": "\n".join(rows) + "\n"}
