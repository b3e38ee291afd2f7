"""Explaining a clustering experiment (methods with ``task == "cluster"``): Grad-CeAM figures, as the original
plotted them.

For every cluster ``k`` of the split (test by default), three folders under ``plots/<exp>/``:

- ``grad_<split>_best<k>/``: the (up to) 5 members nearest to centroid ``k``, nearest first;
- ``grad_<split>_worst<k>/``: the (up to) 5 members farthest from it, farthest first;
- ``grad_<split>_centers<k>/``: the decoded centroid ``decoder(μ_k)``.

Every shown instance gets one figure per centroid ``j`` (``<kind><rank>_<split><index>_centroid<j>.png``,
``center<k>_centroid<j>.png``): its map for cluster ``j`` (the registered clustering method drawn as an overlay)
and the guided counterpart (the one drawn as a guided gradient). Series are drawn as lines coloured by the map,
one row per channel (guided: each channel by its own values); images as overlays beside the guided gradient. A
cluster with fewer than 5 members shows the members it has (none: only its centre). ``gradceam.npz`` beside the
folders holds the shown indices, maps and guided maps; the faithfulness check (``metrics/cluster_faithfulness.py``) is
written to ``results/<exp>/faithfulness.json`` and printed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from camkit.errors import CamkitError
from camkit.io import atomic_path, atomic_write_json
from camkit.methods import explain, method_class, methods
from camkit.metrics.cluster_faithfulness import faithfulness, format_faithfulness
from camkit.plots import save_figure
from camkit.plots.clusters import image_pair_figure, series_pair_figure
from camkit.workflows.plan import ExplainPlan, ExplainResult
from camkit.workflows.recipes.cluster import encode, load_clusters, split_inputs, squared_distances
from camkit.workflows.results import RunDirs
from camkit.workflows.sources import resolve_source

SHOWN = 5  # members per best / worst folder
KINDS = ("best", "worst", "centers")


def cluster_methods() -> tuple[str, str]:
    """The registered clustering methods drawn as an overlay and as a guided gradient."""
    task = [m for m in methods() if method_class(m).task == "cluster"]
    overlay = [m for m in task if method_class(m).display == "overlay"]
    guided = [m for m in task if method_class(m).display == "guided"]
    if not overlay or not guided:
        raise CamkitError("explaining clusters needs a registered clustering method and its guided counterpart")
    return overlay[0], guided[0]


def choose_instances(distances: np.ndarray, assigned: np.ndarray, cluster: int, count: int = SHOWN
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(best, worst) sample indices of ``cluster``: its ``count`` members nearest (nearest first) and farthest
    (farthest first) from its centroid; fewer when the cluster is smaller."""
    members = np.flatnonzero(assigned == cluster)
    order = members[np.argsort(distances[members, cluster], kind="stable")]
    return order[:count], order[::-1][:count]


def cluster_maps(encoder, x: np.ndarray, centroids: np.ndarray, plan: ExplainPlan) -> tuple[np.ndarray, ...]:
    """Maps (n, K, *spatial), guided raw (n, K, *spatial, C) for every centroid, and the layer path."""
    overlay, guided = cluster_methods()
    maps, raws, path = [], [], ""
    for j in range(len(centroids)):
        common = {"centroids": centroids, "targets": j, "layer": plan.layer_ref, "batch_size": plan.batch_size,
                  "progress": False}
        exp = explain(encoder, x, method=overlay, **common)
        maps.append(exp.maps)
        raws.append(explain(encoder, x, method=guided, **common).raw)
        path = exp.layer
    return np.stack(maps, axis=1), np.stack(raws, axis=1), path


@dataclass
class ClusterView:
    """What the figures of one clustering show: the data, the assignment, the chosen instances and their maps."""

    name: str
    split: str
    x: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    distances: np.ndarray
    chosen: dict[tuple[str, int], np.ndarray]
    shown: np.ndarray
    centers: np.ndarray
    maps: np.ndarray
    guided: np.ndarray
    layer: str


def load_view(plan: ExplainPlan, dirs: RunDirs, data: dict[str, Any]) -> tuple[ClusterView, Any]:
    """The clustering, its split, the instances to show and their maps."""
    from camkit.config import DataConfig
    from camkit.data.splits import load_data

    clusters = load_clusters(dirs)
    known = {f.name for f in fields(DataConfig)}
    splits = load_data(DataConfig(**{k: v for k, v in data.items() if k in known and v is not None}))
    split = plan.source.split
    x = split_inputs(splits, split, plan.batch_size)
    x = x.astype(np.float32) if isinstance(x, np.ndarray) else np.concatenate([np.asarray(b, np.float32) for b in x])
    expected = tuple(clusters.encoder.input_shape[1:])
    if expected != x.shape[1:]:
        raise CamkitError(f"--dataset: the encoder expects inputs {expected} but {splits.name} gives {x.shape[1:]}")
    mu = clusters.centroids
    distances = squared_distances(encode(clusters.encoder, x, plan.batch_size), mu)
    assigned = distances.argmin(axis=1)
    chosen = {(kind, k): idx for k in range(len(mu))
              for kind, idx in zip(KINDS[:2], choose_instances(distances, assigned, k), strict=True)}
    shown = np.unique(np.concatenate([np.zeros(0, np.int64), *chosen.values()])).astype(np.int64)
    centers = np.asarray(clusters.decoder.predict(mu, verbose=0), np.float32)
    maps, guided, layer = cluster_maps(clusters.encoder, np.concatenate([x[shown], centers]), mu, plan)
    labels = splits.y_test if split == "test" else splits.y_train
    view = ClusterView(splits.name, split, x, labels, list(splits.labels), distances, chosen, shown, centers,
                       maps, guided, layer)
    return view, clusters


def figure_jobs(view: ClusterView, out: Path, fmt: str) -> list[tuple[Path, Callable[[], Figure]]]:
    """(path, builder) of every figure: each shown instance and centre, for every centroid."""
    position = {int(i): p for p, i in enumerate(view.shown)}
    n_clusters = len(view.centers)

    def figure(row: int, j: int, title: str) -> Callable[[], Figure]:
        sample = view.x[view.shown[row]] if row < len(view.shown) else view.centers[row - len(view.shown)]
        draw = series_pair_figure if view.x.ndim == 3 else image_pair_figure
        return lambda: draw(sample, view.maps[row, j], view.guided[row, j], f"{title} · maps for centroid {j}")

    jobs = []
    for k in range(n_clusters):
        for kind in KINDS:
            folder = out / f"grad_{view.split}_{kind}{k}"
            items = ([(f"center{k}", len(view.shown) + k, f"{view.name} · decoded centroid {k}")] if kind == "centers"
                     else [(f"{kind}{r}_{view.split}{i}", position[int(i)],
                            f"{view.name} {view.split}[{i}] · cluster {k} ({kind} {r + 1}, distance "
                            f"{np.sqrt(view.distances[i, k]):.3g}) · class {view.class_names[view.labels[i]]}")
                           for r, i in enumerate(view.chosen[kind, k])])
            jobs += [(folder / f"{stem}_centroid{j}.{fmt}", figure(row, j, title))
                     for stem, row, title in items for j in range(n_clusters)]
    return jobs


def write_arrays(view: ClusterView, mu: np.ndarray, out: Path) -> Path:
    """``gradceam.npz``: the shown instances, their maps and guided maps, the centres'."""
    n = len(view.shown)
    arrays = {"method": cluster_methods()[0], "layer": view.layer, "split": view.split, "indices": view.shown,
              "assigned": view.distances.argmin(axis=1), "distances": np.sqrt(view.distances), "centroids": mu,
              "centers": view.centers, "maps": view.maps[:n], "guided": view.guided[:n],
              "center_maps": view.maps[n:], "center_guided": view.guided[n:],
              **{f"{kind}_{k}": idx for (kind, k), idx in view.chosen.items()}}
    npz = out / "gradceam.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{key: np.asarray(value) for key, value in arrays.items()})
    return npz


def explain_clusters(plan: ExplainPlan) -> ExplainResult:
    """Best / worst / centre figures per cluster, ``gradceam.npz`` and the faithfulness check of an experiment."""
    from tqdm.auto import tqdm

    spec = plan.source
    if spec.config is None and spec.experiment is None:
        raise CamkitError(f"--method {plan.method} explains a clustering experiment: give -c CONFIG or "
                          "--experiment NAME")
    resolved = resolve_source(replace(spec, model=None, images=None, preprocess=None))
    dirs = RunDirs(resolved.name, Path(spec.root))
    view, clusters = load_view(plan, dirs, resolved.data)
    out = Path(plan.save_dir) if plan.save_dir is not None else dirs.plots
    jobs = figure_jobs(view, out, plan.fmt)
    for k in range(len(view.centers)):  # only this run's figures in the folders
        for kind in KINDS:
            shutil.rmtree(out / f"grad_{view.split}_{kind}{k}", ignore_errors=True)
    npz = write_arrays(view, clusters.centroids, out)
    bar = tqdm(jobs, desc="figures", unit="figure", leave=False, disable=plan.progress is False or len(jobs) < 10)
    written = [save_figure(build(), p) for p, build in bar]
    report = faithfulness(clusters.encoder, view.x, clusters.centroids, plan.layer_ref, plan.batch_size,
                          progress=plan.progress is not False)
    report.update(experiment=resolved.name, dataset=view.name, split=view.split)
    atomic_write_json(dirs.results / "faithfulness.json", report)
    notes = [format_faithfulness(report), f"faithfulness: {dirs.results / 'faithfulness.json'}"]
    return ExplainResult(out, npz, written, "timeseries" if view.x.ndim == 3 else "images",
                         len(view.shown) + len(view.centers), list(cluster_methods()), [view.layer], view.name, notes)
