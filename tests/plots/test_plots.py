"""Figures: overlay arithmetic, panel rows, map-coloured series, grids, saving, the confusion matrix."""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import LineCollection

from camkit.errors import CamkitError
from camkit.plots import (
    Panel,
    confusion_matrix_figure,
    guided_image,
    overlay,
    panels_figure,
    save_figure,
    series_figure,
    series_grid_figure,
)
from camkit.plots.common import resize_bilinear

JET = matplotlib.colormaps["jet"]


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def jet(value: float) -> np.ndarray:
    return np.array(JET(value)[:3])


# --- overlay -----------------------------------------------------------------------------------------


def test_overlay_matches_the_documented_rule_pixel_by_pixel():
    image = np.array([[[0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], [[0.2, 0.4, 0.6], [1.0, 0.0, 0.5]]])
    heatmap = np.array([[0.0, 0.25], [0.5, 1.0]])
    out = overlay(image, heatmap, alpha=0.4)
    assert out.shape == (2, 2, 3)
    for i in range(2):
        for j in range(2):
            expected = 0.6 * image[i, j] + 0.4 * jet(heatmap[i, j])
            np.testing.assert_allclose(out[i, j], expected, atol=1e-12)
    np.testing.assert_allclose(out[0, 0], 0.4 * jet(0.0))  # black pixel, zero map: only the colour map's blue
    np.testing.assert_allclose(overlay(image, heatmap, alpha=0.0), image)


def test_overlay_uint8_and_float_agree():
    image = np.array([[[0, 51, 255], [255, 128, 0]], [[10, 20, 30], [200, 100, 50]]], np.uint8)
    heatmap = np.array([[0.1, 0.9], [0.3, 0.7]])
    np.testing.assert_allclose(overlay(image, heatmap), overlay(image / 255.0, heatmap), atol=1e-12)


def test_overlay_grey_image_is_broadcast_to_three_channels():
    grey = np.array([[0.0, 0.5], [0.25, 1.0]])
    heatmap = np.array([[0.0, 1.0], [0.5, 0.2]])
    out = overlay(grey, heatmap, alpha=0.3)
    assert out.shape == (2, 2, 3)
    np.testing.assert_allclose(out[0, 1], 0.7 * 0.5 + 0.3 * jet(1.0))
    np.testing.assert_allclose(overlay(grey[..., None], heatmap, alpha=0.3), out)
    np.testing.assert_allclose(overlay(np.repeat(grey[..., None], 3, -1), heatmap, alpha=0.3), out)


def test_overlay_resizes_the_heatmap_bilinearly_to_the_image():
    image = np.zeros((4, 4, 3))
    small = np.array([[0.0, 0.4], [0.8, 1.0]])
    # half-pixel centres, 2 -> 4 along one axis: [a, (3a + b) / 4, (a + 3b) / 4, b]
    np.testing.assert_allclose(resize_bilinear(np.array([0.0, 0.4]), (4,)), [0.0, 0.1, 0.3, 0.4])
    big = resize_bilinear(small, (4, 4))
    np.testing.assert_allclose(big[:, 0], [0.0, 0.2, 0.6, 0.8])
    np.testing.assert_allclose(big[0], [0.0, 0.1, 0.3, 0.4])
    np.testing.assert_allclose(big[3], [0.8, 0.85, 0.95, 1.0])
    np.testing.assert_allclose(overlay(image, small), overlay(image, big))
    np.testing.assert_allclose(overlay(image, np.array([[0.5]])), overlay(image, np.full((4, 4), 0.5)))


def test_overlay_output_lies_in_unit_range():
    rng = np.random.default_rng(0)
    out = overlay(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8), rng.uniform(-0.2, 1.2, (3, 3)), alpha=0.7)
    assert out.shape == (9, 7, 3)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_overlay_rejects_bad_inputs():
    with pytest.raises(CamkitError, match=r"\[0, 1\]"):
        overlay(np.full((2, 2, 3), 200.0), np.zeros((2, 2)))
    with pytest.raises(CamkitError, match="image"):
        overlay(np.zeros((2, 2, 4)), np.zeros((2, 2)))
    with pytest.raises(CamkitError, match="alpha"):
        overlay(np.zeros((2, 2)), np.zeros((2, 2)), alpha=1.5)
    with pytest.raises(CamkitError, match="NaN"):
        overlay(np.zeros((2, 2)), np.array([[np.nan, 0], [0, 0]]))


# --- panels_figure ---------------------------------------------------------------------------------------


IMAGE = np.linspace(0, 1, 8 * 8 * 3).reshape(8, 8, 3)
HEAT = np.outer(np.hanning(8), np.hanning(8))


def test_panels_figure_one_axis_per_panel_and_one_colour_bar():
    titles = ["top-1: tabby cat (0.82)", "top-2: tiger cat (0.10)", "top-3: lynx (0.03)", "lowest: shark (0.00)"]
    fig = panels_figure(IMAGE, [Panel("overlay", HEAT, t) for t in titles], suptitle="layer conv5")
    assert len(fig.axes) == 5
    panels, bar = fig.axes[:4], fig.axes[4]
    assert [ax.get_title() for ax in panels] == titles
    assert all(len(ax.images) == 1 and not ax.get_xticks().size and not ax.get_yticks().size for ax in panels)
    assert bar.get_ylabel() == "map value"
    assert fig.get_suptitle() == "layer conv5"
    np.testing.assert_allclose(panels[0].images[0].get_array(), overlay(IMAGE, HEAT))


def test_panels_figure_notebook_layout_and_no_bar_without_maps():
    grad = np.zeros((8, 8, 3))
    grad[0, 0] = [-2.0, 0.0, 2.0]
    kinds = [Panel("image", IMAGE, "input"), Panel("overlay", HEAT, "CAM"), Panel("guided", grad, "guided backprop"),
             Panel("guided", grad * 0.5, "guided Grad-CAM")]
    fig = panels_figure(IMAGE, kinds)
    assert len(fig.axes) == 5
    assert [ax.get_title() for ax in fig.axes[:4]] == ["input", "CAM", "guided backprop", "guided Grad-CAM"]
    np.testing.assert_allclose(fig.axes[2].images[0].get_array()[0, 0], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(fig.axes[0].images[0].get_array(), IMAGE)
    assert len(panels_figure(IMAGE, [Panel("image", IMAGE), Panel("guided", grad)]).axes) == 2
    assert len(panels_figure(IMAGE, [Panel("heatmap", HEAT)]).axes) == 2
    assert len(panels_figure(IMAGE, [Panel("overlay", HEAT)], colorbar=False).axes) == 1


def test_panels_figure_width_grows_with_panels_and_long_titles_wrap():
    two = panels_figure(IMAGE, [Panel("image", IMAGE)] * 2, colorbar=False)
    four = panels_figure(IMAGE, [Panel("image", IMAGE)] * 4, colorbar=False)
    assert four.get_size_inches()[0] == pytest.approx(2 * two.get_size_inches()[0])
    long = "top-1: tabby cat, tabby, domestic cat, house cat (0.82)"
    fig = panels_figure(IMAGE, [Panel("overlay", HEAT, long)])
    title = fig.axes[0].get_title()
    assert "\n" in title and title.replace("\n", " ") == long


def test_heatmap_panel_shows_the_map_resized():
    fig = panels_figure(IMAGE, [Panel("heatmap", np.array([[0.0, 1.0], [1.0, 0.0]]))])
    shown = fig.axes[0].images[0]
    assert shown.get_array().shape == (8, 8)
    assert shown.get_clim() == (0.0, 1.0)


def test_guided_image_normalisation():
    np.testing.assert_allclose(guided_image(np.array([[-2.0, 0.0, 2.0]])), [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(guided_image(np.array([[-1.0], [4.0]])[..., None]), [[0.375], [1.0]])
    np.testing.assert_allclose(guided_image(np.zeros((2, 2, 3))), 0.5)
    grey = panels_figure(IMAGE, [Panel("guided", np.array([[-2.0, 0.0], [2.0, 1.0]])[..., None])])
    shown = grey.axes[0].images[0]
    assert shown.get_cmap().name == "gray"
    np.testing.assert_allclose(shown.get_array(), [[0.0, 0.5], [1.0, 0.75]])


def test_panel_kind_is_checked():
    with pytest.raises(CamkitError, match="panel kind"):
        Panel("cam", HEAT)
    with pytest.raises(CamkitError, match="at least one"):
        panels_figure(IMAGE, [])


# --- series ---------------------------------------------------------------------------------------------


def line_of(ax) -> LineCollection:
    (line,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    return line


def test_series_figure_colours_segments_by_the_mean_map_value():
    series = np.array([[0.0, 10.0], [1.0, 12.0], [-1.0, 11.0], [3.0, 9.0], [2.0, 10.5]])
    heatmap = np.array([0.0, 0.2, 0.4, 1.0, 0.6])
    fig = series_figure(series, heatmap, title="sample 3", channel_names=["x", "y"])
    fig.canvas.draw()
    assert len(fig.axes) == 3
    *panels, bar = fig.axes
    assert [ax.get_ylabel() for ax in panels] == ["x", "y"]
    assert panels[-1].get_xlabel() == "time" and bar.get_ylabel() == "map value"
    means = [0.1, 0.3, 0.7, 0.8]
    for ax, column in zip(panels, series.T, strict=True):
        line = line_of(ax)
        segments = line.get_segments()
        assert len(segments) == 4
        np.testing.assert_allclose([s[0] for s in segments], np.column_stack([np.arange(4), column[:-1]]))
        np.testing.assert_allclose([s[1] for s in segments], np.column_stack([np.arange(1, 5), column[1:]]))
        np.testing.assert_allclose(line.get_array(), means)
        np.testing.assert_allclose(line.get_edgecolor()[:, :3], [jet(m) for m in means])
        low, high = ax.get_ylim()
        assert low < column.min() and high > column.max()
        assert ax.get_xlim() == (0.0, 4.0)


def test_series_figure_univariate_and_resized_map():
    t = np.arange(150)
    fig = series_figure(np.sin(t / 10), np.exp(-((t - 75) / 12.0) ** 2))
    assert len(fig.axes) == 2
    assert len(line_of(fig.axes[0]).get_segments()) == 149
    short = series_figure(np.sin(t / 10), np.array([0.0, 1.0, 0.0]))
    values = line_of(short.axes[0]).get_array()
    assert len(values) == 149 and values[74] == pytest.approx(1.0, abs=0.02) and values[0] == 0.0
    flat = series_figure(np.full(10, 3.0), np.zeros(10))
    low, high = flat.axes[0].get_ylim()
    assert low < 3.0 < high


def test_series_figure_checks_names():
    with pytest.raises(CamkitError, match="channel names"):
        series_figure(np.zeros((5, 2)), np.zeros(5), channel_names=["only one"])


def test_series_grid_figure_hides_unused_cells():
    t = np.arange(50)
    series = [np.sin(t / 5), np.column_stack([np.sin(t / 5), np.cos(t / 5), t / 50]), np.cos(t[:30] / 3),
              np.sin(t / 7), np.cos(t / 9)]
    maps = [np.linspace(0, 1, len(s)) for s in series]
    titles = [f"sample {i}" for i in range(5)]
    fig = series_grid_figure(series, maps, titles, ncols=3)
    assert len(fig.axes) == 7  # 2 x 3 grid + colour bar
    grid, bar = fig.axes[:6], fig.axes[6]
    assert [ax.get_visible() for ax in grid] == [True] * 5 + [False]
    assert [ax.get_title() for ax in grid[:5]] == titles
    assert len(grid[1].collections) == 3  # every channel its own line
    assert len(grid[2].collections[0].get_segments()) == 29
    assert [ax.get_xlabel() for ax in grid[:5]] == ["", "", "time", "time", "time"]
    assert bar.get_ylabel() == "map value"
    assert len(series_grid_figure(series[:2], maps[:2], titles[:2], ncols=4).axes) == 3


def test_series_grid_figure_checks_lengths():
    with pytest.raises(CamkitError, match="titles"):
        series_grid_figure([np.zeros(5)], [np.zeros(5)], [])


# --- saving and the confusion matrix ----------------------------------------------------------------------


@pytest.mark.parametrize(("suffix", "magic"), [(".png", b"\x89PNG\r\n\x1a\n"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_save_figure_writes_the_format_of_the_suffix_atomically(tmp_path, suffix, magic):
    fig = panels_figure(IMAGE, [Panel("overlay", HEAT, "cam")])
    path = save_figure(fig, tmp_path / "sub" / f"cam{suffix}")
    assert path.read_bytes().startswith(magic)
    if suffix == ".svg":
        assert b"<svg" in path.read_bytes()
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    assert not plt.fignum_exists(fig.number)


def test_confusion_matrix_figure_counts_and_shape():
    fig = confusion_matrix_figure([[5, 1], [0, 4]], ["cat", "dog"], title="cm")
    ax = fig.axes[0]
    assert ax.images[0].get_array().shape == (2, 2)
    np.testing.assert_allclose(ax.images[0].get_array(), [[5 / 6, 1 / 6], [0.0, 1.0]])
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "4", "5"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cat", "dog"]
    assert ax.get_title() == "cm"
