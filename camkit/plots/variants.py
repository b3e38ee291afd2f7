"""A stored batch's image with every map variant over it, each with its box (and the ground truth when given)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from camkit.metrics.map_boxes import Preprocessing, box_from_map
from camkit.plots.explain import class_text
from camkit.plots.maps import Panel, panels_figure


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
