"""The comparison grid: a cell per (method, input), the truth drawn where it is."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.patches import Rectangle

from camkit.errors import CamkitError
from camkit.plots.comparison import method_grid_figure


def test_image_grid_outlines_each_box() -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(size=(3, 16, 16, 3))
    rows = {"gradcam": rng.uniform(size=(3, 16, 16)), "center-gaussian": rng.uniform(size=(3, 16, 16))}
    truths = [[(2, 3, 5, 9)], [(1, 1, 16, 16)], [(4, 4, 6, 6), (10, 10, 12, 14)]]
    fig = method_grid_figure(images, rows, truths, ["0", "1", "2"], "digits")
    cells = [ax for ax in fig.axes if ax.images]
    assert len(cells) == 6
    boxes = [[(p.get_x(), p.get_y(), p.get_width(), p.get_height()) for p in ax.patches if isinstance(p, Rectangle)]
             for ax in cells]
    assert boxes[0] == [(0.5, 1.5, 4, 7)]  # pixel edges of 1-based inclusive (2, 3)..(5, 9)
    assert len(boxes[2]) == 2 and boxes[3] == boxes[0]
    assert [ax.get_ylabel() for ax in cells[::3]] == ["gradcam", "center-gaussian"]
    plt.close(fig)


def test_series_grid_shades_each_interval() -> None:
    rng = np.random.default_rng(1)
    series = rng.normal(size=(2, 50, 2))
    fig = method_grid_figure(series, {"cam": rng.uniform(size=(2, 50))}, [[(10, 20)], [(0, 5)]], ["a", "b"])
    cells = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    spans = [[p.get_x() for p in ax.patches] for ax in cells]
    assert spans == [[10], [0]]
    plt.close(fig)


def test_mismatched_rows_are_refused() -> None:
    with pytest.raises(CamkitError, match="for each of the 2 inputs"):
        method_grid_figure(np.zeros((2, 8, 8, 1)), {"cam": np.zeros((3, 8, 8))}, [[], []], ["a", "b"])
