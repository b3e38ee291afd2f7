"""Faithfulness figures: the cascade of the model-randomisation check (metric ``randomization``).

:func:`randomization_figure` draws one sample's cascade, the maps that
:meth:`camkit.metrics.faithfulness.randomization.Randomization.cascade` gives, above the curves of
:meth:`~camkit.metrics.faithfulness.randomization.Randomization.step_curves`. Write it with
:func:`camkit.plots.save_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from camkit.errors import CamkitError
from camkit.metrics.faithfulness.randomization import Cascade
from camkit.plots.common import as_map, map_colorbar, wrap
from camkit.plots.series import coloured_line

PANEL_SIZE = 2.2  # inches per panel of the top row
CURVE_HEIGHT = 2.6  # inches of the curves' panel
MAX_TICK_LABELS = 24  # more steps than this: the x axis shows step numbers, not layer names


def shown_steps(steps: int, max_steps: int) -> list[int]:
    """The indices of the steps drawn: all of them, or ``max_steps`` evenly spaced ones, the first and last included."""
    if max_steps < 2:
        raise CamkitError(f"plots: max_steps must be at least 2, got {max_steps}")
    if steps <= max_steps:
        return list(range(steps))
    return sorted(set(np.linspace(0, steps - 1, max_steps).round().astype(int).tolist()))


def display_input(x: np.ndarray) -> np.ndarray:
    """The sample as drawn: min-max scaled to [0, 1] over all its values; an image with neither 1 nor 3 channels
    shows the channel mean (grey)."""
    x = np.asarray(x, np.float64)
    span = np.ptp(x)
    scaled = (x - x.min()) / span if span > 0 else np.zeros_like(x)
    if scaled.ndim == 3 and scaled.shape[-1] not in (1, 3):
        scaled = scaled.mean(axis=-1)
    return scaled[..., 0] if scaled.ndim == 3 and scaled.shape[-1] == 1 else scaled


def randomization_figure(x: np.ndarray, original: np.ndarray, layers: Sequence[str], maps: np.ndarray,
                         spearman: Sequence[float], ssim: Sequence[float], title: str = "", max_steps: int = 8,
                         cmap: str = "jet") -> Figure:
    """One sample's cascade in a row (input, original map, the map after each shown step), and below it the mean
    Spearman ρ and SSIM per step.

    ``x``: the sample as the model takes it, (H, W, C) or (T, C) (drawn min-max scaled). ``original``: its map
    (H, W) or (T,); ``maps``: (S, ...) its map after each step, ``layers`` (S,) the layer each step randomised;
    ``spearman`` / ``ssim``: (S,) the curves. At most ``max_steps`` step maps are drawn (:func:`shown_steps`).
    """
    maps = np.asarray(maps)
    steps = len(layers)
    if not len(maps) == len(spearman) == len(ssim) == steps or steps == 0:
        raise CamkitError(f"plots: {steps} layers, {len(maps)} maps, {len(spearman)} ρ and {len(ssim)} SSIM values")
    series = np.ndim(original) == 1
    shown = shown_steps(steps, max_steps)
    columns = len(shown) + 2
    fig = plt.figure(figsize=(PANEL_SIZE * columns + 0.9, PANEL_SIZE + CURVE_HEIGHT + (0.4 if title else 0.0)),
                     layout="constrained")
    grid = fig.add_gridspec(2, columns, height_ratios=[PANEL_SIZE, CURVE_HEIGHT])
    panels = [fig.add_subplot(grid[0, c]) for c in range(columns)]
    picture = display_input(x)
    _draw_input(panels[0], picture, series)
    titles = ["original map"] + [f"{k + 1}: {layers[k]}" for k in shown]
    for ax, heatmap, text in zip(panels[1:], [original, *(maps[k] for k in shown)], titles, strict=True):
        _draw_map(ax, picture, as_map(heatmap, 1 if series else 2), series, cmap)
        ax.set_title(wrap(text, 18), fontsize=9)
    map_colorbar(fig, panels, cmap, shrink=0.9, aspect=20, pad=0.01)
    _draw_curves(fig.add_subplot(grid[1, :]), layers, spearman, ssim)
    if title:
        fig.suptitle(wrap(title, 100), fontsize=12)
    return fig


def _draw_input(ax: Axes, picture: np.ndarray, series: bool) -> None:
    if series:
        ax.plot(picture, linewidth=1.2)
    else:
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ax.set_title("input", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_map(ax: Axes, picture: np.ndarray, heatmap: np.ndarray, series: bool, cmap: str) -> None:
    """A series: each channel drawn as a line coloured by the map; an image: the map alone."""
    if series:
        lines = picture[:, None] if picture.ndim == 1 else picture
        for channel in lines.T:
            coloured_line(ax, channel, heatmap, cmap)
        ax.set_xlim(-0.5, len(heatmap) - 0.5)
        ax.set_ylim(-0.05, 1.05)
    else:
        ax.imshow(heatmap, cmap=cmap, vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_curves(ax: Axes, layers: Sequence[str], spearman: Sequence[float], ssim: Sequence[float]) -> None:
    x = np.arange(1, len(layers) + 1)
    ax.plot(x, spearman, marker="o", label="Spearman ρ")
    ax.plot(x, ssim, marker="s", label="SSIM")
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlim(0.5, len(layers) + 0.5)
    ax.set_ylabel("similarity to the original map")
    ax.set_xlabel("layers randomised from the top")
    if len(layers) <= MAX_TICK_LABELS:
        ax.set_xticks(x, [f"{k}: {name}" for k, name in zip(x, layers, strict=True)], rotation=30, ha="right",
                      fontsize=8)
    ax.grid(alpha=0.25)
    ax.legend(loc="best", fontsize=9)


def illustration_figure(illustration: Any, title: str = "") -> Figure:
    """The figure of what a faithfulness metric's ``illustration`` returns (chosen by its type)."""
    if isinstance(illustration, Cascade):
        return randomization_figure(*illustration, title=title)
    raise CamkitError(f"plots: no figure for a {type(illustration).__name__}")
