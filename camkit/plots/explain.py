"""Figures of ``camkit explain``: the Grad-CAM viewer layout, the notebook layout and time-series figures.

Every function returns a matplotlib Figure (saved by the caller with ``camkit.plots.save_figure``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from camkit.plots.maps import Panel, panels_figure
from camkit.plots.series import series_figure, series_grid_figure

MAX_DISPLAY_SIDE = 448  # viewer figures show the original image downscaled to at most this many pixels


@dataclass(frozen=True)
class PanelStyle:
    """How one notebook panel is drawn: its title, and ``overlay`` (a map over the image) or ``guided`` (an
    input-gradient image)."""

    title: str
    display: str = "overlay"


@dataclass(frozen=True)
class FigureText:
    """The titles a run's figures need: the method's, and each notebook panel's style."""

    method_title: str
    panels: tuple[PanelStyle, ...] = ()


def percent(p: float) -> str:
    """A probability as a short percentage: ``72.1%``, ``<0.1%``."""
    return f"{100 * p:.1f}%" if p >= 0.001 else "<0.1%"


def column_title(column: str) -> str:
    """``top1`` -> ``top-1``; other column names as they are."""
    return f"top-{column[3:]}" if column.startswith("top") and column[3:].isdigit() else column


def class_name(class_names: Sequence[str], k: int) -> str:
    """A class's name; bare numbers (GunPoint's ``1``, ``2``) read ``class 1``."""
    name = str(class_names[k])
    return f"class {name}" if name.lstrip("-").isdigit() else name


def class_text(class_names: Sequence[str], k: int, probs: np.ndarray) -> str:
    """``cat (72.1%)``: a class name with the model's probability for it."""
    return f"{class_name(class_names, k)} ({percent(float(probs[k]))})"


def viewer_figure(image: np.ndarray, maps: np.ndarray, columns: Sequence[str], targets: np.ndarray,
                  probs: np.ndarray, class_names: Sequence[str], suptitle: str) -> Figure:
    """The Grad-CAM viewer's layout: one overlay per explained class (top-1, top-2, top-3, lowest); with a
    single class (``--target``), the input beside it."""
    panels = [Panel("overlay", maps[k], f"{column_title(col)}: {class_text(class_names, int(targets[k]), probs)}"
                    + (" (zero map)" if not maps[k].any() else "")) for k, col in enumerate(columns)]
    if len(panels) == 1:  # one explained class: show the input beside it
        panels.insert(0, Panel("image", image, "input"))
    return panels_figure(image, panels, suptitle=suptitle)


def notebook_figure(image: np.ndarray, panels: Sequence[tuple[PanelStyle, np.ndarray]], suptitle: str) -> Figure:
    """input | CAM | guided backprop | guided Grad-CAM: ``panels`` are (style, map or guided raw)."""
    drawn = [Panel("image", image, "input")]
    for style, data in panels:
        drawn.append(Panel(style.display, data, style.title))
    return panels_figure(image, drawn, suptitle=suptitle)


def series_sample_figure(series: np.ndarray, maps: np.ndarray, titles: Sequence[str], title: str,
                         channel_names: Sequence[str] | None) -> Figure:
    """One sample: its channels coloured by the map; with several maps (top-K) a grid of them."""
    if maps.ndim == 1:
        return series_figure(series, maps, title=f"{title}\nexplaining {titles[0]}", channel_names=channel_names)
    fig = series_grid_figure([series] * len(maps), list(maps), list(titles), ncols=min(3, len(maps)))
    fig.suptitle(title, fontsize=12)
    return fig


def display_image(path, size: tuple[int, int] | None = None) -> np.ndarray:
    """The image to draw under the maps: at the model's input ``size`` (notebook layout, so guided gradients
    line up), else the original downscaled to at most ``MAX_DISPLAY_SIDE`` pixels. Float RGB in [0, 1]."""
    import tensorflow as tf

    from camkit.data.images import load_image, load_original

    if size is not None:
        return np.clip(load_image(path, size, preprocess="none", channels=3)[0] / 255.0, 0.0, 1.0)
    image = load_original(path, channels=3)
    scale = MAX_DISPLAY_SIDE / max(image.shape[:2])
    if scale < 1:
        new = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
        image = tf.image.resize(image, new, method="bilinear", antialias=True).numpy()
    return np.clip(np.asarray(image, dtype=np.float64) / 255.0, 0.0, 1.0)


def build_figures(arrays: dict, data, columns: Sequence[str], fmt: str,
                  text: FigureText) -> list[tuple[str, Callable[[], Figure]]]:
    """(file name, figure builder) for every figure of one ``camkit explain`` run (built lazily, one at a time)."""
    mode, names = arrays["mode"], arrays["names"]
    class_names, probs, targets = arrays["class_names"], arrays["probabilities"], arrays["targets"]
    true_names = arrays.get("true_names")
    if true_names is None and "y_true" in arrays:
        true_names = [class_name(class_names, int(k)) for k in arrays["y_true"]]
    images = data.kind == "images"

    def head(i: int) -> str:
        true = f" · true {true_names[i]}" if true_names is not None else ""
        predicted = int(probs[i].argmax())
        return f"{names[i]}{true} · predicted {class_text(class_names, predicted, probs[i])}"

    def at(layer: str) -> str:
        return f"{text.method_title} at {layer}" if layer else text.method_title

    figures: list[tuple[str, Callable[[], Figure]]] = []
    if mode == "layers":
        for li, (layer, back) in enumerate(zip(arrays["layers"], arrays["backcounts"], strict=True)):
            title = f"{head(0)}\n{at(layer)} (conv {back} from the end)"
            maps = arrays["maps"][li][0]
            if images:
                def build(maps=maps, title=title) -> Figure:
                    cols = columns if maps.ndim == 3 else columns[:1]
                    return viewer_figure(display_image(data.files[0]), maps.reshape(len(cols), *maps.shape[-2:]),
                                         cols, np.atleast_1d(targets[0]), probs[0], class_names, title)
            else:
                def build(maps=maps, title=title) -> Figure:
                    return series_sample_figure(data.series[0], maps, _series_titles(columns, targets[0], probs[0],
                                                class_names), title, None)
            figures.append((f"layer_{back}.{fmt}", build))
        return figures
    if mode == "panels":
        size = tuple(arrays["maps"].shape[-2:])
        for i, path in enumerate(data.files):
            def build(i=i, path=path) -> Figure:
                panels = [(style, arrays[f"raw_{j}"][i] if style.display == "guided" else arrays["maps"][j][i])
                          for j, style in enumerate(text.panels)]
                title = f"{head(i)}\nexplaining {class_text(class_names, int(targets[i]), probs[i])}"
                return notebook_figure(display_image(path, size), panels, title)
            figures.append((f"image_{i}_{path.stem}.{fmt}", build))
        return figures
    maps, layer = arrays["maps"], arrays["layer"]
    for i in range(len(names)):
        if images:
            def build(i=i) -> Figure:
                cols = columns if maps.ndim == 4 else columns[:1]
                return viewer_figure(display_image(data.files[i]), maps[i].reshape(len(cols), *maps.shape[-2:]),
                                     cols, np.atleast_1d(targets[i]), probs[i], class_names, f"{head(i)}\n{at(layer)}")
            figures.append((f"image_{i}_{data.files[i].stem}.{fmt}", build))
        else:
            def build(i=i) -> Figure:
                titles = _series_titles(columns, targets[i], probs[i], class_names)
                return series_sample_figure(data.series[i], maps[i], titles, f"{head(i)} · {at(layer)}", None)
            figures.append((f"series_{i}.{fmt}", build))
    if not images:
        def grid() -> Figure:
            top = maps if maps.ndim == 2 else maps[:, 0]
            first = np.atleast_1d(targets[:, 0] if targets.ndim == 2 else targets)
            true = [f" (true {t})" for t in true_names] if true_names is not None else [""] * len(names)
            titles = [f"{names[i]}{true[i]}: {at('')} of {class_text(class_names, int(first[i]), probs[i])}"
                      for i in range(len(names))]
            fig = series_grid_figure(list(data.series), list(top), titles, ncols=3)
            fig.suptitle(f"{data.source} · {at(layer)}", fontsize=12)
            return fig
        figures.append((f"series_grid.{fmt}", grid))
    return figures


def _series_titles(columns: Sequence[str], targets: np.ndarray, probs: np.ndarray,
                   class_names: Sequence[str]) -> list[str]:
    return [f"{column_title(c)}: {class_text(class_names, int(t), probs)}"
            for c, t in zip(columns, np.atleast_1d(targets), strict=True)]
