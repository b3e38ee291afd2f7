"""The comparison grid: a row per method, a column per example input, each map over its input with the truth.

Images: the map blended over the image (:func:`camkit.plots.maps.overlay`) and each ground-truth box outlined.
Series: the first channel drawn as a line coloured by the map (:func:`camkit.plots.series.coloured_line`) and each
ground-truth interval shaded. A region is a box ``(xmin, ymin, xmax, ymax)`` (1-based, inclusive, as the VOC
files) or an interval ``(start, end)`` (0-based, end exclusive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from camkit.errors import CamkitError
from camkit.plots.common import map_colorbar
from camkit.plots.faithfulness import display_input
from camkit.plots.maps import overlay
from camkit.plots.series import coloured_line

Region = tuple[float, ...]
TRUTH_COLOUR = "lime"


def method_grid_figure(inputs: np.ndarray, rows: Mapping[str, np.ndarray], truths: Sequence[Sequence[Region]],
                       column_titles: Sequence[str], title: str = "") -> Figure:
    """``inputs`` (n, *spatial, C); ``rows``: method -> (n, *spatial) maps in [0, 1]; ``truths``: each input's
    regions; ``column_titles``: one per input (e.g. its class)."""
    n = len(inputs)
    if not rows or any(np.shape(maps)[:1] != (n,) for maps in rows.values()) or len(truths) != n:
        raise CamkitError(f"plots: a comparison grid needs maps and regions for each of the {n} inputs")
    series = np.ndim(inputs) == 3
    width, height = (2.6, 1.1) if series else (1.5, 1.5)
    fig = plt.figure(figsize=(1.6 + width * n, 0.6 + height * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), n, squeeze=False)
    for r, (method, maps) in enumerate(rows.items()):
        for j in range(n):
            ax = axes[r, j]
            draw_cell(ax, inputs[j], np.asarray(maps[j], np.float64), truths[j], series)
            if r == 0:
                ax.set_title(column_titles[j], fontsize=8)
            if j == 0:
                ax.set_ylabel(method, fontsize=8, rotation=0, ha="right", va="center")
    map_colorbar(fig, axes.ravel().tolist(), "jet", shrink=min(0.6, 2.5 / len(rows)))
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def draw_cell(ax: Axes, x: np.ndarray, heatmap: np.ndarray, regions: Sequence[Region], series: bool) -> None:
    """One input with its map and its ground-truth regions."""
    ax.set_xticks([])
    ax.set_yticks([])
    if series:
        values = np.asarray(x, np.float64)[:, 0]
        coloured_line(ax, values, np.clip(heatmap, 0, 1))
        ax.set_xlim(0, len(values) - 1)
        low, high = float(values.min()), float(values.max())
        margin = 0.08 * (high - low or 1.0)
        ax.set_ylim(low - margin, high + margin)
        for start, end in regions:
            ax.axvspan(start, end - 1, color=TRUTH_COLOUR, alpha=0.25, lw=0)
        return
    ax.imshow(overlay(display_input(x), heatmap))
    for xmin, ymin, xmax, ymax in regions:
        ax.add_patch(Rectangle((xmin - 1.5, ymin - 1.5), xmax - xmin + 1, ymax - ymin + 1, fill=False,
                               edgecolor=TRUTH_COLOUR, linewidth=1.2))
