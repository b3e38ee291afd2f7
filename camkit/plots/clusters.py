"""Grad-CeAM figures: an instance's map beside its guided counterpart, for series and for images."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure


def minmax(values: np.ndarray) -> np.ndarray:
    """``values`` min-max normalised as a whole (all zero when constant)."""
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def series_pair_figure(series: np.ndarray, heatmap: np.ndarray, guided: np.ndarray, title: str) -> Figure:
    """Grad-CeAM | guided Grad-CeAM: one row per channel, each a line coloured by the map ((T,) or (T, C))."""
    from camkit.plots.common import map_colorbar, wrap
    from camkit.plots.series import as_series, coloured_line

    data = as_series(series)
    length, channels = data.shape
    guided = minmax(np.asarray(guided, np.float64).reshape(length, channels))
    fig = plt.figure(figsize=(11.0, 1.3 + 1.6 * channels), layout="constrained")
    axes = fig.subplots(channels, 2, sharex=True, squeeze=False)
    for c in range(channels):
        for col, values in enumerate((np.asarray(heatmap, np.float64), guided[:, c])):
            ax = axes[c, col]
            coloured_line(ax, data[:, c], np.clip(values, 0.0, 1.0))
            low, high = data[:, c].min(), data[:, c].max()
            margin = (high - low) * 0.08 if high > low else 0.5
            ax.set_xlim(0, length - 1)
            ax.set_ylim(low - margin, high + margin)
            ax.grid(alpha=0.25)
        axes[c, 0].set_ylabel(f"channel {c + 1}" if channels > 1 else "value")
    axes[0, 0].set_title("Grad-CeAM", fontsize=10)
    axes[0, 1].set_title("guided Grad-CeAM", fontsize=10)
    for ax in axes[-1]:
        ax.set_xlabel("time")
    map_colorbar(fig, list(axes.ravel()), "jet", shrink=0.9, pad=0.02)
    fig.suptitle(wrap(title, 100), fontsize=11)
    return fig


def image_pair_figure(image: np.ndarray, heatmap: np.ndarray, guided: np.ndarray, title: str) -> Figure:
    """input | Grad-CeAM overlay | guided Grad-CeAM."""
    from camkit.plots.maps import Panel, panels_figure

    image = np.clip(image, 0.0, 1.0)
    return panels_figure(image, [Panel("image", image, "input"), Panel("overlay", heatmap, "Grad-CeAM"),
                                 Panel("guided", guided, "guided Grad-CeAM")], suptitle=title)
