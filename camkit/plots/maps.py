"""Image figures: heatmap overlays and a row of panels (input, overlays, maps, guided gradients)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from camkit.errors import CamkitError
from camkit.plots.common import as_map, map_colorbar, resize_bilinear, wrap

PANEL_KINDS = ("image", "overlay", "heatmap", "guided")
_FLOAT_TOLERANCE = 1e-3  # float images may overshoot [0, 1] by rounding


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Float (H, W, 3) in [0, 1] from (H, W), (H, W, 1) or (H, W, 3); integers are read as 0..255."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)) or image.size == 0:
        raise CamkitError(f"plots: expected an image (H, W), (H, W, 1) or (H, W, 3), got shape {image.shape}")
    if np.issubdtype(image.dtype, np.integer):
        rgb = image.astype(np.float64) / 255.0
    else:
        rgb = image.astype(np.float64)
        if not np.isfinite(rgb).all() or rgb.min() < -_FLOAT_TOLERANCE or rgb.max() > 1 + _FLOAT_TOLERANCE:
            raise CamkitError("plots: a float image must lie in [0, 1] (pass uint8 for 0..255 values)")
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    return np.clip(rgb, 0.0, 1.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """The heatmap's colours blended over the image, float (H, W, 3) in [0, 1].

    Rule (the usual Grad-CAM one): ``(1 - alpha) * image + alpha * cmap(heatmap)[..., :3]``, with the
    image as float RGB in [0, 1] (uint8 divided by 255, grey repeated over 3 channels) and the heatmap
    clipped to [0, 1] and, if its shape differs from (H, W), resized bilinearly (half-pixel centres).
    """
    if not 0.0 <= alpha <= 1.0:
        raise CamkitError(f"plots: alpha must lie in [0, 1], got {alpha}")
    rgb = as_rgb(image)
    colours = matplotlib.colormaps[cmap](_fit_map(heatmap, rgb.shape[:2]))[..., :3]
    return (1.0 - alpha) * rgb + alpha * colours


def guided_image(gradient: np.ndarray) -> np.ndarray:
    """The usual guided-backprop picture: ``x / max|x| * 0.5 + 0.5``, clipped to [0, 1] (all 0.5 if x is 0).

    (H, W, 3) stays RGB; (H, W) and (H, W, 1) give a grey (H, W) picture.
    """
    x = np.asarray(gradient, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)):
        raise CamkitError(f"plots: expected a gradient (H, W), (H, W, 1) or (H, W, 3), got shape {x.shape}")
    peak = np.abs(x).max()
    scaled = x / peak if peak > 0 else np.zeros_like(x)
    return np.clip(scaled * 0.5 + 0.5, 0.0, 1.0)


@dataclass
class Panel:
    """One panel of :func:`panels_figure`.

    kind: "image" (``data`` is an image), "overlay" (``data`` is a [0, 1] map drawn over the figure's
    image), "heatmap" (the map alone) or "guided" (``data`` is a signed gradient, see :func:`guided_image`).
    boxes: ``(xmin, ymin, xmax, ymax)`` rectangles in 1-based inclusive pixels of the figure's image, drawn
    in white; gt_boxes: the same, drawn green and dashed (ground truth).
    """

    kind: str
    data: np.ndarray
    title: str = ""
    boxes: Sequence[tuple[int, int, int, int]] = ()
    gt_boxes: Sequence[tuple[int, int, int, int]] = ()

    def __post_init__(self) -> None:
        if self.kind not in PANEL_KINDS:
            raise CamkitError(f"plots: unknown panel kind {self.kind!r}; choose one of {', '.join(PANEL_KINDS)}")


def panels_figure(image: np.ndarray, panels: Sequence[Panel], suptitle: str = "", colorbar: bool = True, *,
                  alpha: float = 0.45, cmap: str = "jet", panel_size: float = 3.0) -> Figure:
    """One row of panels about ``image``, each titled, without ticks; panels about ``panel_size`` inches wide.

    "overlay" panels blend their map over ``image`` (:func:`overlay`); maps of another shape are resized to
    the image's. With ``colorbar``, one shared colour bar (map value 0..1) when any panel shows a map.
    """
    if not panels:
        raise CamkitError("plots: panels_figure needs at least one panel")
    rgb = as_rgb(image)
    height, width = rgb.shape[:2]
    panel_width = panel_size * float(np.clip(np.sqrt(width / height), 0.6, 1.6))  # similar area, any aspect
    titles = [wrap(panel.title, max(12, round(10 * panel_width))) for panel in panels]
    title_lines = max(title.count("\n") + 1 if title else 0 for title in titles)
    shows_map = colorbar and any(panel.kind in ("overlay", "heatmap") for panel in panels)
    fig_width = panel_width * len(panels) + (0.9 if shows_map else 0.0)
    suptitle = wrap(suptitle, max(24, round(8 * fig_width)))
    suptitle_height = 0.3 * (suptitle.count("\n") + 1) + 0.15 if suptitle else 0.0
    fig_height = panel_width * height / width + 0.25 * title_lines + 0.2 + suptitle_height
    fig = plt.figure(figsize=(fig_width, fig_height), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel, title in zip(axes, panels, titles, strict=True):
        _draw_panel(ax, panel, rgb, alpha, cmap)
        ax.set_title(title, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    if shows_map:
        map_colorbar(fig, list(axes), cmap, shrink=0.9, aspect=25, pad=0.02)
    if suptitle:
        fig.suptitle(suptitle, fontsize=12)
    return fig


def _draw_panel(ax: Axes, panel: Panel, rgb: np.ndarray, alpha: float, cmap: str) -> None:
    if panel.kind == "image":
        ax.imshow(as_rgb(panel.data))
    elif panel.kind == "overlay":
        ax.imshow(overlay(rgb, panel.data, alpha, cmap))
    elif panel.kind == "heatmap":
        ax.imshow(_fit_map(panel.data, rgb.shape[:2]), cmap=cmap, vmin=0.0, vmax=1.0)
    else:
        picture = guided_image(panel.data)
        ax.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0.0, vmax=1.0)
    ground_truth, guess = {"edgecolor": "lime", "linestyle": "--"}, {"edgecolor": "white"}
    for boxes, style in ((panel.gt_boxes, ground_truth), (panel.boxes, guess)):
        for x0, y0, x1, y1 in boxes:  # pixel (col, row) is centred at (col - 1, row - 1) for 1-based indices
            ax.add_patch(Rectangle((x0 - 1.5, y0 - 1.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, linewidth=1.5, **style))


def _fit_map(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A [0, 1] map at ``shape``, resized bilinearly if needed (stays in [0, 1])."""
    return resize_bilinear(as_map(heatmap, 2), shape)
