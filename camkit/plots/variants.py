"""A stored batch's image with every map variant over it, each with its box (and the ground truth when given);
a stored batch's series coloured by every map variant (and with its interval and the true one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from camkit.data.intervals import Interval, interval_box, interval_of
from camkit.metrics.localization import iou_inclusive
from camkit.metrics.map_boxes import Preprocessing, box_from_map
from camkit.plots.explain import class_name, class_text, column_title
from camkit.plots.maps import Panel, panels_figure
from camkit.plots.series import intervals_figure, series_figure, series_grid_figure


def variant_figure(image: np.ndarray, arrays: Mapping[str, Any], j: int, threshold: float,
                   titles: Mapping[str, str], column: int = 0,
                   gt_boxes: Sequence[tuple[int, int, int, int]] = ()) -> Figure:
    """Image ``j`` of a batch file: the input, then every map variant of ``column`` over it (titled by ``titles``,
    variant name -> title) with its box (white) and the ground-truth boxes (green, dashed) when given."""
    geometry = Preprocessing(tuple(arrays[f"maps_{arrays['variants'][0]}"].shape[-2:])).geometry(*image.shape[:2])
    panels = [Panel("image", image, "input", gt_boxes=gt_boxes)]
    for variant in arrays["variants"]:
        heat = arrays[f"maps_{variant}"][j, column].astype(np.float32)
        box = box_from_map(heat, geometry, threshold)
        panels.append(Panel("overlay", heat, titles.get(str(variant), str(variant)), boxes=[box.as_tuple()],
                            gt_boxes=gt_boxes))
    probs = np.zeros(len(arrays["class_names"]))
    probs[arrays["top5"][j]] = arrays["top5_probs"][j]
    target = int(arrays["targets"][j, column])
    return panels_figure(image, panels, f"{arrays['names'][j]}: {class_text(arrays['class_names'], target, probs)}")


def stored_target(arrays: Mapping[str, Any], j: int, column: int) -> str:
    """``top-1: class 2 (71.3%)``: sample ``j``'s explained class in ``column`` with the model's probability."""
    probs = np.zeros(len(arrays["class_names"]))
    probs[arrays["top5"][j]] = arrays["top5_probs"][j]
    target = int(arrays["targets"][j, column])
    return f"{column_title(str(arrays['columns'][column]))}: {class_text(arrays['class_names'], target, probs)}"


def series_variant_figure(series: np.ndarray, arrays: Mapping[str, Any], j: int, titles: Mapping[str, str],
                          column: int = 0) -> Figure:
    """Series ``j`` of a batch file (``series`` (T, C)) coloured by every map variant of ``column`` (one panel per
    variant, titled by ``titles``, variant name -> title)."""
    variants = [str(v) for v in arrays["variants"]]
    maps = [arrays[f"maps_{v}"][j, column].astype(np.float32) for v in variants]
    y_true = int(arrays["y_true"][j])
    true = f" · true {class_name(arrays['class_names'], y_true)}" if y_true >= 0 else ""
    head = f"{arrays['names'][j]}{true} · {stored_target(arrays, j, column)}"
    if len(maps) == 1:
        return series_figure(series, maps[0], title=f"{head}\n{titles.get(variants[0], variants[0])}")
    figure = series_grid_figure([series] * len(maps), maps, [titles.get(v, v) for v in variants],
                                ncols=min(3, len(maps)))
    figure.suptitle(head, fontsize=12)
    return figure


def series_interval_figure(series: np.ndarray, arrays: Mapping[str, Any], j: int, titles: Mapping[str, str],
                           threshold: float, truth: Interval) -> Figure:
    """Series ``j`` of a batch file (``series`` (T, C)): every variant's top-1 map with its interval (the largest
    run of samples at or above ``threshold × max``) and the ground-truth interval ``truth`` of the true class."""
    column = [str(c) for c in arrays["columns"]].index("top1")
    variants = [str(v) for v in arrays["variants"]]
    maps = [arrays[f"maps_{v}"][j, column].astype(np.float32) for v in variants]
    predicted = [interval_of(box_from_map(m[None], None, threshold)) for m in maps]
    heads = [f"{titles.get(v, v)}: map's interval [{start}, {end}), IoU "
             f"{iou_inclusive(interval_box(start, end), truth.box):.2f}" for v, (start, end) in zip(variants, predicted,
                                                                                                  strict=True)]
    figure = intervals_figure(series, maps, heads, (truth.start, truth.end), predicted, truth.channel)
    figure.suptitle(f"{arrays['names'][j]} · true {truth.label} [{truth.start}, {truth.end}) in channel "
                    f"{truth.channel} · {stored_target(arrays, j, column)}", fontsize=11)
    return figure
