"""Weak localization of series maps against 1-D ground truth: one interval per series (:mod:`camkit.data.intervals`).

A series store's maps (B, K, T) are scored by the same metric plugins as images, each map as a ``1 × T`` image and
each interval as a one-row box (the data module's docstring says why that is exact): the pointing game (the map's
argmax must lie inside the interval: tolerance ``POINTING_TOLERANCE`` = 0 samples), the interval of the largest
run of samples at or above ``threshold × max`` and its IoU (GT-known accuracy, top-1 / top-5 localization error),
and MaxBoxAcc over the thresholds 0.00..0.99. The map has one value per time step for all channels together; the
interval's channel is not scored (it is drawn in the figures).

The ground truth is ``--annotations FILE`` or, by default, ``intervals_<split>.csv`` in the explained dataset's
folder; it is checked against the explained series (their length, channels and classes) before anything is computed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.boxes import Annotation, Box
from camkit.data.intervals import Interval, interval_annotations, interval_of, read_intervals, series_name
from camkit.errors import CamkitError
from camkit.metrics import MapBatch
from camkit.plots import save_figure
from camkit.workflows.evaluate import GroundTruth, identity, map_batches
from camkit.workflows.stored_inputs import StoredInputs

POINTING_TOLERANCE = 0.0  # samples: the pointing game's argmax must fall inside the interval
IDENTITY = ("sample", "name", "true_label", "top1_label", "start", "end")


@dataclass(frozen=True)
class SeriesTruth(GroundTruth):
    """Intervals as one-row annotations keyed by series name; the maps are scored as ``1 × T`` images."""

    identity_fields = IDENTITY

    def batches(self, arrays: Mapping[str, np.ndarray], b: int) -> Iterator[MapBatch]:
        rows = {f"maps_{v}": np.asarray(arrays[f"maps_{v}"])[:, :, None, :] for v in arrays["variants"]}
        return map_batches({**arrays, **rows}, self, self.skipped())

    def identity(self, batch: MapBatch) -> list[dict[str, Any]]:
        """The sample, its classes and the top-1 map's interval (0-based, end exclusive)."""
        rows = identity(batch)
        return [{"sample": r["image"], "name": r["name"], "true_label": r["true_label"], "top1_label": r["top1_label"],
                 **dict(zip(("start", "end"), interval_of(Box(r["xmin"], r["ymin"], r["xmax"], r["ymax"])),
                            strict=True))} for r in rows]


def intervals_path(folder: Path, split: str, given: Path | None, where: str) -> Path:
    """``given`` (``--annotations``), else the dataset's ``intervals_<split>.csv``: refused when there is none."""
    if given is not None:
        return Path(given)
    path = Path(folder) / f"intervals_{split}.csv"
    if not path.is_file():
        raise CamkitError(f"{where}: series maps of {Path(folder).name} have no interval ground truth ({path} does not "
                          "exist); give --annotations FILE (sample,label,start,end[,channel]), or score the maps "
                          "without ground truth with camkit eval-faithfulness")
    return path


def series_annotations(path: Path, split: str, x: np.ndarray, y: np.ndarray,
                       class_names: list[str]) -> tuple[dict[str, Annotation], dict[int, Interval]]:
    """The intervals of ``path`` as annotations, checked against the explained series ``x`` (N, T, C) and their
    classes ``y``: every series has one, inside it, labelled with its class name."""
    where = f"--annotations {path}"
    intervals = read_intervals(path)
    missing = [i for i in range(len(x)) if i not in intervals]
    if missing:
        raise CamkitError(f"{where}: no interval for {len(missing)} of the {len(x)} series explained (e.g. sample "
                          f"{missing[0]}, {series_name(split, missing[0])})")
    for i in range(len(x)):
        if intervals[i].label != class_names[int(y[i])]:
            raise CamkitError(f"{where}: sample {i} is labelled {intervals[i].label!r}, but its series is of class "
                              f"{class_names[int(y[i])]!r}")
    return interval_annotations(intervals, split, x.shape[1:], where), intervals


def stored_series_truth(maps: Path, given: Path | None) -> tuple[Path, dict[str, Annotation], dict[int, Interval]]:
    """The interval file of a series store's maps, its annotations and intervals, checked against the explained
    series (which must be there and unchanged: :class:`StoredInputs`)."""
    inputs = StoredInputs.open(maps, option="--maps")
    split = inputs.settings["split"]
    path = intervals_path(inputs.folder, split, given, f"--maps {maps}")
    return (path, *series_annotations(path, split, inputs.series, inputs.labels, inputs.settings["class_names"]))


def series_figures(maps: Path, out: Path, threshold: float, intervals: Mapping[int, Interval],
                   n_figures: int) -> list[Path]:
    """The first ``n_figures`` series: every variant's top-1 map colouring the series, with its interval (dashed)
    and the true interval (shaded), in ``OUT/figures/series_IIIII.png``."""
    from camkit.methods import method_class
    from camkit.plots.variants import series_interval_figure

    inputs = StoredInputs.open(maps, option="--maps")
    cls = method_class(inputs.settings["method"])
    titles = {**cls.variants, cls.name: cls.title}
    written: list[Path] = []
    for b in range(inputs.n_batches):
        if len(written) >= n_figures or not inputs.store.path(b).is_file():
            break
        arrays, x = inputs.store.read(b), inputs.batch(b)
        for j, index in enumerate(arrays["indices"][: n_figures - len(written)]):
            figure = series_interval_figure(x[j], arrays, j, titles, threshold, intervals[int(index)])
            written.append(save_figure(figure, out / "figures" / f"series_{int(index):05d}.png"))
    return written
