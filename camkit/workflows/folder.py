"""Explaining a whole image folder or time-series split: into the map store, one ``.npz`` per batch, resumable,
shardable.

``camkit explain --images DIR --n-images all`` (the default for methods that ``stream``) lists the readable images
of DIR in file order; ``camkit explain -c CONFIG --n-images all`` on a time-series experiment (or ``--dataset``)
takes the series of its ``--split`` in order. ``--n-images N`` with ``--shard`` or a streaming method keeps the
first N. The list is cut into batches of ``--batch-size`` (batch ``b`` = samples ``b·B .. b·B + B − 1``), read
by a :class:`~camkit.workflows.folder_sources.BatchSource` (images streamed from their files, series sliced from
the loaded split), and written under the save folder (a :class:`~camkit.workflows.store.MapStore`):

- ``run.json``: ``settings`` (method and its options, layer, target columns, batch size, class names, sample
  count ``n_images``, and the data: ``kind`` ``images`` with the input size, channels and preprocessing, or
  ``kind`` ``series`` with the dataset's name, split and ``znorm``) and ``inputs``: the digests of the model file
  and of the data (images: the files' names and contents, ``inputs.json`` holding each image's, and their true
  classes from the class folders or the annotations; series: the explained series' values and labels). A rerun
  into the same folder must use the same settings and inputs (or ``--overwrite``): a replaced image is refused by
  name. The targets are checked and the run is recorded only just before its first batch is written, so a run
  that fails leaves no ``run.json``;
- ``batches/batch_BBBBB.npz`` + ``.sha1``, one per batch; ``source.json``: where the inputs were read from
  (``folder``: the image folder or the dataset's folder) and ``model``: the model file's path (null for an
  in-memory model), for figures and :mod:`camkit.workflows.stored_inputs`;
- ``figures/image_IIIII.png`` for the first ``n_figures`` images: the image with every map variant over it
  (e.g. augmented Grad-CAM: single | max | avg | super-resolution), each with its box (largest component of the
  map above the method's ``box_threshold`` of its max) in the image's own pixels; ``figures/series_IIIII.png``
  for series: the series coloured by every variant.

A batch file holds (B samples, K target columns, strings as NumPy unicode): ``names`` (B,) image paths relative to
DIR, or ``<split>_IIIII`` for series (``test_00000``), ``indices`` (B,) positions in the listing, ``y_true`` (B,)
class index from the class folder or the series' label (−1 unknown), ``top5`` / ``top5_probs`` (B, ≤5) the
model's best classes, ``columns`` (K,) (``top1``, ``top2``, ..., ``lowest``, ``true``, ``class<k>``), ``targets``
/ ``scores`` (B, K) the explained class and its logit, ``variants`` (A,) map names (the method's variants, else
the method's name), ``layer``, ``class_names``, and for each variant ``maps_<variant>`` (B, K, H, W) at the
model's input size, or (B, K, T) for series, float16 in [0, 1]; the method's per-sample statistics (e.g.
``sr_iterations``, ``sr_objective``, ``sr_gap``) as (B, K).

Column ``true`` reuses the ``top1`` maps of the samples whose true class is predicted and explains only the others.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from camkit.io import atomic_write_json
from camkit.methods import Explanation, explain, method_class
from camkit.methods.targets import parse_targets
from camkit.plots import save_figure
from camkit.workflows.folder_sources import BatchSource, TrueLabels, open_images, open_series
from camkit.workflows.plan import ExplainPlan, ExplainResult, check_model_options
from camkit.workflows.records import Digests
from camkit.workflows.sources import Resolved, load_explained_model, model_id, probabilities
from camkit.workflows.store import MapStore, Shard, run_batches

N_TOP = 5
SOURCE = "source.json"


@dataclass(frozen=True)
class BatchCall:
    """How every batch is explained: the model, the method, its layer and options, the engine's batch size."""

    model: keras.Model
    method: str
    layer: Any
    options: dict[str, Any]
    batch_size: int


def explained(call: BatchCall, x: np.ndarray, targets: Any, y_true: np.ndarray | None = None) -> dict[str, Any]:
    """One engine call: targets, scores, each variant's maps and the statistics, every array (B, K, ...)."""
    exp: Explanation = explain(call.model, x, method=call.method, layer=call.layer, targets=targets,
                               batch_size=call.batch_size, progress=False, y_true=y_true, **call.options)
    names = [v for v in method_class(call.method).variants if v in exp.variants] or [call.method]

    def k_axis(a: np.ndarray) -> np.ndarray:
        return a if exp.targets.ndim == 2 else a[:, None]

    fields = {"targets": exp.targets, "scores": exp.scores, **{f"maps_{v}": exp.variants.get(v, exp.maps)
                                                               for v in names}, **exp.stats}
    return {"fields": {k: k_axis(np.asarray(v)) for k, v in fields.items()}, "variants": names,
            "layer": exp.layer or ""}


def true_column(call: BatchCall, x: np.ndarray, y_true: np.ndarray, top1: dict[str, np.ndarray] | None):
    """The ``true`` column: the top-1 maps where the prediction is right, explained for the other images."""
    if top1 is None:
        return explained(call, x, "true", y_true)
    fields = {n: v.copy() for n, v in top1.items()}
    other = np.flatnonzero(top1["targets"][:, 0] != y_true)
    if len(other):
        part = explained(call, x[other], "true", y_true[other])
        for n, v in part["fields"].items():
            fields[n][other] = v
    return {"fields": fields}


def batch_arrays(call: BatchCall, x: np.ndarray, columns: Sequence[str], y_true: np.ndarray) -> dict[str, Any]:
    """The arrays of one batch file (without names and indices): top-5, targets, scores, every map variant."""
    probs = probabilities(call.model, x)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :N_TOP]
    out: dict[str, Any] = {"top5": top, "top5_probs": np.take_along_axis(probs, top, 1), "y_true": y_true,
                           "columns": list(columns)}
    rest = [c for c in columns if c != "true"]
    per: dict[str, dict[str, np.ndarray]] = {}
    main = explained(call, x, list(rest)) if rest else None
    if main is not None:
        per.update({c: {n: v[:, k : k + 1] for n, v in main["fields"].items()} for k, c in enumerate(rest)})
    if "true" in columns:
        truth = true_column(call, x, y_true, per.get("top1"))
        per["true"] = truth["fields"]
        main = main or truth
    stacked = {n: np.concatenate([per[c][n] for c in columns], axis=1) for n in per[columns[0]]}
    out.update(variants=main["variants"], layer=main["layer"], targets=stacked.pop("targets"),
               scores=stacked.pop("scores"))
    out.update({n: v.astype(np.float16) if n.startswith("maps_") else v for n, v in stacked.items()})
    return out


@dataclass(frozen=True)
class FolderJob:
    """A whole-folder run resolved: where its batches come from, the model call, the columns, the figures."""

    source: BatchSource
    call: BatchCall
    columns: list[str]
    figures: tuple[int, str, Path]  # (how many, format, folder)
    written: list[Path]  # the figures drawn by this run

    def rows(self, b: int) -> range:
        """The samples of batch ``b``."""
        return range(b * self.call.batch_size, min((b + 1) * self.call.batch_size, len(self.source.names)))


def stream(job: FolderJob, todo: list[int]) -> Iterator[tuple[int, dict]]:
    """Compute the batches ``todo`` in order, reading only their inputs; draw the first samples' figures."""
    source = job.source
    parts = [job.rows(b) for b in todo]
    for b, rows, x in zip(todo, parts, source.batches(parts, job.call.batch_size), strict=True):
        arrays = batch_arrays(job.call, x, job.columns, source.y_true[rows.start : rows.stop])
        arrays.update(names=source.names[rows.start : rows.stop], indices=np.arange(rows.start, rows.stop),
                      class_names=source.class_names)
        yield b, arrays
        draw_figures(job, arrays)  # once the batch is written (the run is recorded before its first figure)


def draw_figures(job: FolderJob, arrays: dict[str, Any]) -> None:
    """The first ``n_figures`` samples of the run that fall in this batch: every variant (with its box)."""
    n_figures, fmt, folder = job.figures
    cls = method_class(job.call.method)
    titles = {**cls.variants, job.call.method: cls.title}
    for j, index in enumerate(arrays["indices"]):
        if index >= n_figures:
            break
        figure = job.source.figure(int(index), arrays, j, titles, cls.box_threshold)
        job.written.append(save_figure(figure, folder / f"{job.source.item}_{index:05d}.{fmt}"))


def prepare(plan: ExplainPlan, resolved: Resolved, true_labels: TrueLabels | None) -> tuple[FolderJob, Path]:
    """Load the model and list the images or series, check the targets; the job and the save folder."""
    model = load_explained_model(resolved.model)
    n_classes = int(keras.tree.flatten(model.outputs)[0].shape[-1])
    check_model_options(plan, model, n_classes)
    columns = parse_targets(plan.target, n_classes).names
    source = (open_images(plan, resolved, model, n_classes, columns, true_labels) if resolved.is_images
              else open_series(plan, resolved, model, n_classes))
    save_dir = Path(plan.save_dir) if plan.save_dir is not None else (
        Path(plan.source.root) / "plots" / resolved.name / f"explain_{plan.method}")
    job = FolderJob(source, BatchCall(model, plan.method, plan.layer_ref, dict(plan.options), plan.batch_size),
                    columns, (plan.n_figures, plan.fmt, save_dir / "figures"), [])
    return job, save_dir


def model_path(model: Any) -> str | None:
    """A model file's absolute path (for ``source.json``); None for an in-memory model."""
    return str(Path(model).resolve()) if isinstance(model, (str, Path)) else None


def explain_folder(plan: ExplainPlan, resolved: Resolved, true_labels: TrueLabels | None = None,
                   option: str = "--save-dir") -> ExplainResult:
    """Explain every image of the plan's folder, or every series of its split, into its store (the module
    docstring); resumable and shardable.

    ``option``: how error lines name the save folder (the command's option for it; "" names the folder only)."""
    model_digest = model_id(resolved.model)  # hashed before loading: a retrained model is told apart
    job, save_dir = prepare(plan, resolved, true_labels)
    source, store = job.source, MapStore(save_dir, option=option)
    settings = {"method": plan.method, "options": plan.options, "columns": job.columns, "layer": plan.layer_ref,
                "batch_size": plan.batch_size, "n_images": len(source.names), "class_names": source.class_names,
                **source.settings()}
    data = source.digests()
    opening = store.prepare(settings, Digests({"model": model_digest, **data.values}, data.files), plan.overwrite,
                            clear=[save_dir / "figures", save_dir / SOURCE])
    n_batches = -(-len(source.names) // plan.batch_size)
    shard = Shard.parse(plan.shard)
    run = run_batches(opening, n_batches, shard, lambda todo: stream(job, todo), progress=plan.progress,
                      desc=f"explain {plan.method}")
    atomic_write_json(save_dir / SOURCE, {**source.record(), "model": model_path(resolved.model)})
    layer = str(store.read(run.batches[0], ["layer"])["layer"]) if run.batches else ""
    notes = [f"{len(run.computed)} of {len(run.batches)} batch(es) computed, "
             f"{len(run.batches) - len(run.computed)} already there"]
    if not shard.whole:
        notes.append(f"shard {plan.shard}: {len(run.batches)} of {n_batches} batches")
    return ExplainResult(save_dir, save_dir / "batches", job.written, "images" if resolved.is_images else "timeseries",
                         len(source.names), [plan.method], [layer] if layer else [], source.where, notes)
