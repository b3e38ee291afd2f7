"""``camkit explain --method gradceam``: Grad-CeAM figures of a clustering experiment, as the original plotted them.

For every cluster ``k`` of the split (test by default), three folders under ``plots/<exp>/``:

- ``grad_<split>_best<k>/``: the (up to) 5 members nearest to centroid ``k``, nearest first;
- ``grad_<split>_worst<k>/``: the (up to) 5 members farthest from it, farthest first;
- ``grad_<split>_centers<k>/``: the decoded centroid ``decoder(μ_k)``.

Every shown instance gets one figure per centroid ``j`` (``<kind><rank>_<split><index>_centroid<j>.png``,
``center<k>_centroid<j>.png``): its Grad-CeAM map for cluster ``j`` and the guided Grad-CeAM counterpart.
Series are drawn as lines coloured by the map, one row per channel (guided: each channel by its own
values); images as overlays beside the guided gradient. A cluster with fewer than 5 members shows the
members it has (none: only its centre). ``gradceam.npz`` beside the folders holds the shown indices, maps
and guided maps; the faithfulness check (``metrics/faithfulness.py``) is written to
``results/<exp>/faithfulness.json`` and printed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from camkit.errors import CamkitError

SHOWN = 5  # members per best / worst folder
KINDS = ("best", "worst", "centers")


def _data_config(data: dict[str, Any]):
    from camkit.config import DataConfig

    known = {f.name for f in fields(DataConfig)}
    return DataConfig(**{k: v for k, v in data.items() if k in known and v is not None})


def _as_array(inputs: Any) -> np.ndarray:
    if isinstance(inputs, np.ndarray):
        return inputs.astype(np.float32)
    return np.concatenate([np.asarray(batch, np.float32) for batch in inputs])


def choose_instances(distances: np.ndarray, assigned: np.ndarray, cluster: int, count: int = SHOWN
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(best, worst) sample indices of ``cluster``: its ``count`` members nearest (nearest first) and farthest
    (farthest first) from its centroid; fewer when the cluster is smaller."""
    members = np.flatnonzero(assigned == cluster)
    order = members[np.argsort(distances[members, cluster], kind="stable")]
    return order[:count], order[::-1][:count]


def _maps(encoder, x: np.ndarray, centroids: np.ndarray, layer: Any, batch_size: int) -> tuple[np.ndarray, ...]:
    """Grad-CeAM maps (n, K, *spatial), guided raw (n, K, *spatial, C) for every centroid, and the layer path."""
    import camkit

    maps, guided, path = [], [], ""
    for j in range(len(centroids)):
        exp = camkit.explain(encoder, x, method="gradceam", centroids=centroids, targets=j, layer=layer,
                             batch_size=batch_size, progress=False)
        maps.append(exp.maps)
        guided.append(camkit.explain(encoder, x, method="guided-gradceam", centroids=centroids, targets=j,
                                     layer=layer, batch_size=batch_size, progress=False).raw)
        path = exp.layer
    return np.stack(maps, axis=1), np.stack(guided, axis=1), path


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


def explain_clusters(*, config: str | Path | None = None, experiment: str | None = None, dataset: str | None = None,
                     data_root: str | Path | None = None, split: str = "test", layer: Any = None,
                     batch_size: int = 32, root: str | Path = ".", fmt: str = "png", save_dir: str | Path | None = None,
                     progress: bool | None = None):
    """Best / worst / centre figures per cluster, ``gradceam.npz`` and the faithfulness check of an experiment."""
    from tqdm.auto import tqdm

    from camkit.data.splits import load_data
    from camkit.io import atomic_path, atomic_write_json
    from camkit.metrics.faithfulness import faithfulness, format_faithfulness
    from camkit.plots import save_figure
    from camkit.workflows.explain import ExplainResult
    from camkit.workflows.recipes.cluster import encode, load_clusters, split_inputs, squared_distances
    from camkit.workflows.results import RunDirs
    from camkit.workflows.sources import resolve_source

    if config is None and experiment is None:
        raise CamkitError("--method gradceam explains a clustering experiment: give -c CONFIG or --experiment NAME")
    _, exp_name, data = resolve_source(None, config, experiment, dataset, None, data_root, None, root)
    dirs = RunDirs(exp_name, Path(root))
    clusters = load_clusters(dirs)
    splits = load_data(_data_config(data))
    x = _as_array(split_inputs(splits, split, batch_size))
    labels = splits.y_test if split == "test" else splits.y_train
    expected = tuple(clusters.encoder.input_shape[1:])
    if expected != x.shape[1:]:
        raise CamkitError(f"--dataset: the encoder expects inputs {expected} but {splits.name} gives {x.shape[1:]}")
    mu = clusters.centroids
    distances = squared_distances(encode(clusters.encoder, x, batch_size), mu)
    assigned = distances.argmin(axis=1)
    chosen = {(kind, k): idx for k in range(len(mu))
              for kind, idx in zip(KINDS[:2], choose_instances(distances, assigned, k), strict=True)}
    shown = np.unique(np.concatenate([np.zeros(0, np.int64), *chosen.values()])).astype(np.int64)
    centers = np.asarray(clusters.decoder.predict(mu, verbose=0), np.float32)
    maps, guided, path = _maps(clusters.encoder, np.concatenate([x[shown], centers]), mu, layer, batch_size)
    is_series = x.ndim == 3
    out = Path(save_dir) if save_dir is not None else dirs.plots
    position = {int(i): p for p, i in enumerate(shown)}

    def figure(row: int, j: int, title: str) -> Callable[[], Figure]:
        sample = x[shown[row]] if row < len(shown) else centers[row - len(shown)]
        draw = series_pair_figure if is_series else image_pair_figure
        return lambda: draw(sample, maps[row, j], guided[row, j], f"{title} · maps for centroid {j}")

    jobs: list[tuple[Path, Callable[[], Figure]]] = []
    for k in range(len(mu)):
        for kind in KINDS:
            folder = out / f"grad_{split}_{kind}{k}"
            items = ([(f"center{k}", len(shown) + k, f"{splits.name} · decoded centroid {k}")] if kind == "centers"
                     else [(f"{kind}{r}_{split}{i}", position[int(i)],
                            f"{splits.name} {split}[{i}] · cluster {k} ({kind} {r + 1}, distance "
                            f"{np.sqrt(distances[i, k]):.3g}) · class {splits.labels[labels[i]]}")
                           for r, i in enumerate(chosen[kind, k])])
            jobs += [(folder / f"{stem}_centroid{j}.{fmt}", figure(row, j, title))
                     for stem, row, title in items for j in range(len(mu))]
    for k in range(len(mu)):  # only this run's figures in the folders
        for kind in KINDS:
            shutil.rmtree(out / f"grad_{split}_{kind}{k}", ignore_errors=True)
    arrays = {"method": "gradceam", "layer": path, "split": split, "indices": shown, "assigned": assigned,
              "distances": np.sqrt(distances), "centroids": mu, "centers": centers,
              "maps": maps[:len(shown)], "guided": guided[:len(shown)],
              "center_maps": maps[len(shown):], "center_guided": guided[len(shown):],
              **{f"{kind}_{k}": idx for (kind, k), idx in chosen.items()}}
    npz = out / "gradceam.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{key: np.asarray(value) for key, value in arrays.items()})

    written = [save_figure(build(), p) for p, build in tqdm(jobs, desc="figures", unit="figure", leave=False,
                                                              disable=progress is False or len(jobs) < 10)]
    report = faithfulness(clusters.encoder, x, mu, layer, batch_size, progress=progress is not False)
    report.update(experiment=exp_name, dataset=splits.name, split=split)
    atomic_write_json(dirs.results / "faithfulness.json", report)
    notes = [format_faithfulness(report), f"faithfulness: {dirs.results / 'faithfulness.json'}"]
    return ExplainResult(out, npz, written, "timeseries" if is_series else "images", len(shown) + len(mu),
                         ["gradceam", "guided-gradceam"], [path], splits.name, notes)
