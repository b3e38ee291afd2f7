"""Time-series figures: series drawn as lines coloured by their map, one series or a grid of them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from camkit.errors import CamkitError
from camkit.plots.common import as_map, map_colorbar, resize_bilinear, wrap

LINE_WIDTH = 2.0
Y_MARGIN = 0.08  # share of the data range added above and below


def as_series(series: np.ndarray) -> np.ndarray:
    """Float (T, C) from (T,) or (T, C), with T >= 2."""
    series = np.asarray(series, dtype=np.float64)
    if series.ndim == 1:
        series = series[:, None]
    if series.ndim != 2 or len(series) < 2 or series.shape[1] < 1:
        raise CamkitError(f"plots: expected a series (T,) or (T, C) with T >= 2, got shape {series.shape}")
    return series


def coloured_line(ax: Axes, values: np.ndarray, heatmap: np.ndarray, cmap: str = "jet") -> LineCollection:
    """Draw ``values`` (T,) against 0..T-1 as T-1 segments, each coloured by the mean map value of its ends."""
    points = np.column_stack([np.arange(len(values)), values])
    segments = np.stack([points[:-1], points[1:]], axis=1)
    line = LineCollection(segments, cmap=cmap, norm=Normalize(0.0, 1.0), linewidths=LINE_WIDTH,
                          capstyle="round", joinstyle="round")
    line.set_array((heatmap[:-1] + heatmap[1:]) / 2)
    ax.add_collection(line)
    return line


def series_figure(series: np.ndarray, heatmap: np.ndarray, title: str = "", channel_names: Sequence[str] | None = None,
                  cmap: str = "jet") -> Figure:
    """One panel per channel (stacked, shared x axis "time"), each a line coloured by the map, one colour bar.

    series (T, C) or (T,); heatmap (T,) in [0, 1] (clipped; resized linearly if its length differs).
    """
    data = as_series(series)
    length, channels = data.shape
    if channel_names is None:
        channel_names = [f"channel {c + 1}" for c in range(channels)] if channels > 1 else ["value"]
    if len(channel_names) != channels:
        raise CamkitError(f"plots: {len(channel_names)} channel names for {channels} channels")
    values = _fit_map(heatmap, length)
    per_channel = max(1.0, min(1.8, 8.0 / channels))
    fig = plt.figure(figsize=(9.0, 1.0 + per_channel * channels + (0.3 if title else 0.0)), layout="constrained")
    axes = fig.subplots(channels, 1, sharex=True, squeeze=False)[:, 0]
    for ax, column, name in zip(axes, data.T, channel_names, strict=True):
        coloured_line(ax, column, values, cmap)
        _limits(ax, column[:, None], length)
        ax.set_ylabel(wrap(name, 16))
        ax.grid(alpha=0.25)
    axes[-1].set_xlabel("time")
    map_colorbar(fig, list(axes), cmap, shrink=0.9 if channels > 1 else 1.0, aspect=max(12, 8 * channels), pad=0.02)
    if title:
        fig.suptitle(wrap(title, 80), fontsize=12)
    return fig


def series_grid_figure(series: Sequence[np.ndarray], heatmaps: Sequence[np.ndarray], titles: Sequence[str],
                       ncols: int = 3, cmap: str = "jet") -> Figure:
    """Series in a grid (row by row), every channel its own line coloured by that series' map; one colour bar.

    Each series is (T,) or (T, C) with its own T; its heatmap (T,) in [0, 1]. Unused grid cells are hidden.
    """
    if not len(series) == len(heatmaps) == len(titles):
        raise CamkitError(f"plots: {len(series)} series, {len(heatmaps)} maps and {len(titles)} titles")
    if not series or ncols < 1:
        raise CamkitError("plots: series_grid_figure needs at least one series and ncols >= 1")
    count = len(series)
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    fig = plt.figure(figsize=(4.2 * ncols + 0.9, 2.6 * nrows + 0.2), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for i, (ax, one, heatmap, title) in enumerate(zip(axes, series, heatmaps, titles, strict=False)):
        data = as_series(one)
        values = _fit_map(heatmap, len(data))
        for column in data.T:
            coloured_line(ax, column, values, cmap)
        _limits(ax, data, len(data))
        ax.set_title(wrap(title, 40), fontsize=10)
        ax.grid(alpha=0.25)
        if i + ncols >= count:  # lowest used cell of its column
            ax.set_xlabel("time")
    for ax in axes[count:]:
        ax.set_visible(False)
    map_colorbar(fig, list(axes), cmap, shrink=0.9 if nrows > 1 else 1.0, aspect=max(15, 12 * nrows), pad=0.02)
    return fig


def _fit_map(heatmap: np.ndarray, length: int) -> np.ndarray:
    return resize_bilinear(as_map(heatmap, 1), (length,))


def _limits(ax: Axes, data: np.ndarray, length: int) -> None:
    """x from 0 to T-1; y around the finite data with a margin (a unit range for constant data)."""
    finite = data[np.isfinite(data)]
    low, high = (finite.min(), finite.max()) if finite.size else (-1.0, 1.0)
    margin = (high - low) * Y_MARGIN if high > low else max(abs(high) * 0.1, 0.5)
    ax.set_xlim(0, length - 1)
    ax.set_ylim(low - margin, high + margin)


def intervals_figure(series: np.ndarray, heatmaps: Sequence[np.ndarray], titles: Sequence[str],
                     truth: tuple[int, int], predicted: Sequence[tuple[int, int]], channel: int = 0,
                     cmap: str = "jet") -> Figure:
    """One panel per map: the series' channels as lines coloured by the map (``channel``, the ground truth's, drawn
    at full strength, the others faded), the true interval shaded green and the map's interval between dashed lines.

    Intervals are ``(start, end)``, 0-based and end exclusive; sample ``t`` is drawn at ``x = t``.
    """
    data = as_series(series)
    if not len(heatmaps) == len(titles) == len(predicted) or not heatmaps:
        raise CamkitError(f"plots: {len(heatmaps)} maps, {len(titles)} titles and {len(predicted)} intervals")
    fig = plt.figure(figsize=(9.0, 0.6 + 2.0 * len(heatmaps)), layout="constrained")
    axes = fig.subplots(len(heatmaps), 1, sharex=True, squeeze=False)[:, 0]
    for ax, heatmap, title, (start, end) in zip(axes, heatmaps, titles, predicted, strict=True):
        values = _fit_map(heatmap, len(data))
        for c, column in enumerate(data.T):
            line = coloured_line(ax, column, values, cmap)
            if c != channel:
                line.set_alpha(0.35)
                line.set_linewidth(LINE_WIDTH / 2)
        ax.axvspan(truth[0] - 0.5, truth[1] - 0.5, color="tab:green", alpha=0.2, label="true interval")
        for edge in (start - 0.5, end - 0.5):
            ax.axvline(edge, color="black", linestyle="--", linewidth=1.2,
                       label="map's interval" if edge == start - 0.5 else None)
        _limits(ax, data, len(data))
        ax.set_title(wrap(title, 90), fontsize=10)
        ax.grid(alpha=0.25)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("time")
    map_colorbar(fig, list(axes), cmap, shrink=0.9, aspect=max(12, 8 * len(heatmaps)), pad=0.02)
    return fig
