"""Faithfulness curves: the mean probability curve of each metric that has one, a line per map variant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def curves_figure(curves: Mapping[str, Mapping[str, Any]], directions: Mapping[str, str],
                  values: Mapping[str, Mapping[str, float]], title: str = "") -> Figure:
    """One panel per metric (``curves``: metric -> variant -> curve), each variant a line whose legend gives its
    score (``values``: metric -> variant -> value); the panel's title says which direction is better. A curve has
    ``x``, ``y``, ``x_label`` and ``y_label`` (``camkit.metrics.faithfulness.Curve``)."""
    names: Sequence[str] = list(curves)
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names, strict=False):
        for variant, curve in curves[name].items():
            ax.plot(curve.x, curve.y, label=f"{variant}: {values[name][variant]:.3f}")
            ax.set_xlabel(curve.x_label)
            ax.set_ylabel(f"mean {curve.y_label}")
        ax.set_title(f"{name} ({directions[name]})", fontsize=10)
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes.ravel()[len(names):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
