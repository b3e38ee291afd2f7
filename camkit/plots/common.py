"""Shared figure helpers: atomic saving, input checks, bilinear resizing, titles and the map colour bar."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colorbar import Colorbar
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

from camkit.errors import CamkitError
from camkit.io import atomic_path

MAP_LABEL = "map value"


def save_figure(fig: Figure, path: Path | str, dpi: int = 120) -> Path:
    """Save atomically (the format follows the suffix) and close the figure."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def wrap(text: str, width: int) -> str:
    """``text`` wrapped to lines of at most ``width`` characters (explicit newlines kept)."""
    return "\n".join(textwrap.fill(line, width) for line in text.splitlines())


def as_map(heatmap: np.ndarray, ndim: int) -> np.ndarray:
    """A float64 map with ``ndim`` dimensions, clipped to [0, 1]; raises on another shape or NaN."""
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim == ndim + 1 and heatmap.shape[-1] == 1:
        heatmap = heatmap[..., 0]
    if heatmap.ndim != ndim or heatmap.size == 0:
        raise CamkitError(f"plots: expected a {ndim}-D map, got shape {heatmap.shape}")
    if not np.isfinite(heatmap).all():
        raise CamkitError("plots: the map has NaN or infinite values")
    return np.clip(heatmap, 0.0, 1.0)


def resize_bilinear(values: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """A 1-D or 2-D array resized bilinearly to ``shape`` (half-pixel centres, as ``tf.image.resize``)."""
    out = np.asarray(values, dtype=np.float64)
    for axis, size in enumerate(shape):
        old = out.shape[axis]
        if old == size:
            continue
        pos = np.clip((np.arange(size) + 0.5) * old / size - 0.5, 0, old - 1)
        low = np.floor(pos).astype(int)
        high = np.minimum(low + 1, old - 1)
        frac = (pos - low).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = np.take(out, low, axis=axis) * (1 - frac) + np.take(out, high, axis=axis) * frac
    return out


def map_colorbar(fig: Figure, axes: Axes | Sequence[Axes], cmap: str, **kwargs: Any) -> Colorbar:
    """One colour bar for map values 0..1 beside ``axes``."""
    mappable = ScalarMappable(norm=Normalize(0.0, 1.0), cmap=cmap)
    bar = fig.colorbar(mappable, ax=axes, label=MAP_LABEL, **kwargs)
    bar.set_ticks([0, 0.25, 0.5, 0.75, 1])
    return bar
