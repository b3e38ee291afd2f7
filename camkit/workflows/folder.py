"""Explaining a whole image folder: streamed into the map store, one ``.npz`` per batch, resumable, shardable.

``camkit explain --images DIR --n-images all`` (the default for methods that ``stream``) lists the readable images
of DIR in file order, cuts the list into batches of ``--batch-size`` (batch ``b`` = images ``b·B .. b·B + B − 1``),
and writes under the save folder (a :class:`~camkit.workflows.store.MapStore`):

- ``run.json``: ``settings`` (method and its options, layer, target columns, batch size, input size,
  preprocessing, class names, image count) and ``inputs``: the digests of the model file, of the image files'
  names and contents (``inputs.json``: each image's) and of their true classes (from the class folders or the
  annotations). A rerun into the same folder must use the same settings and inputs (or ``--overwrite``): a
  replaced image is refused by name. The targets are checked and the run is recorded only just before its first
  batch is written, so a run that fails leaves no ``run.json``;
- ``batches/batch_BBBBB.npz`` + ``.sha1``, one per batch; ``source.json`` (the image folder, for figures);
- ``figures/image_IIIII.png`` for the first ``n_figures`` images: the image with every map variant over it
  (e.g. augmented Grad-CAM: single | max | avg | super-resolution), each with its box (largest component of the
  map above the method's ``box_threshold`` of its max) in the image's own pixels.

A batch file holds (B images, K target columns, strings as NumPy unicode): ``names`` (B,) paths relative to
DIR, ``indices`` (B,) positions in the listing, ``y_true`` (B,) class index from the class folder (−1 unknown),
``top5`` / ``top5_probs`` (B, ≤5) the model's best classes, ``columns`` (K,) (``top1``, ``top2``, ..., ``lowest``,
``true``, ``class<k>``), ``targets`` / ``scores`` (B, K) the explained class and its logit, ``variants`` (A,) map
names (the method's variants, else the method's name), ``layer``, and for each variant ``maps_<variant>``
(B, K, H, W) float16 in [0, 1] at the model's input size; the method's per-sample statistics (e.g.
``sr_iterations``, ``sr_objective``, ``sr_gap``) as (B, K).

Column ``true`` reuses the ``top1`` maps of the images whose true class is predicted and explains only the others.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from camkit.errors import CamkitError
from camkit.io import atomic_write_json
from camkit.methods import Explanation, explain, method_class
from camkit.methods.targets import parse_targets
from camkit.plots import save_figure
from camkit.plots.variants import variant_figure
from camkit.workflows.plan import ExplainPlan, ExplainResult, check_model_options
from camkit.workflows.records import Digests, digest_files, value_digest
from camkit.workflows.sources import (
    Resolved,
    class_names_for,
    image_input,
    load_explained_model,
    load_image_files,
    model_id,
    probabilities,
)
from camkit.workflows.store import MapStore, Shard, run_batches

N_TOP = 5
TrueLabels = Callable[[Sequence[str]], dict[str, int]]


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
    """A folder run resolved: the image files, the model, the columns, the store and the figures to draw."""

    files: list[Path]
    names: list[str]
    labels: list[int]
    class_names: list[str]
    y_true: np.ndarray
    call: BatchCall
    columns: list[str]
    input: tuple[tuple[int, int], int, Any]  # (size, channels, preprocessing)
    figures: tuple[int, str, Path]  # (how many, format, folder)
    written: list[Path]  # the figures drawn by this run


def stream(job: FolderJob, folder_root: Path, todo: list[int], batch_size: int) -> Iterator[tuple[int, dict]]:
    """Compute the batches ``todo`` in order, streaming only their images; draw the first images' figures."""
    from camkit.data.images import ImageFolder

    rows = [r for b in todo for r in range(b * batch_size, min((b + 1) * batch_size, len(job.names)))]
    size, channels, preprocess = job.input
    pending = ImageFolder(folder_root, [job.files[r] for r in rows], [job.labels[r] for r in rows], None)
    images = pending.dataset(size, batch_size=batch_size, preprocess=preprocess, channels=channels) if rows else []
    for b, (x, _) in zip(todo, images, strict=False):
        lo, hi = b * batch_size, min((b + 1) * batch_size, len(job.names))
        x = np.asarray(x, np.float32)
        if len(x) != hi - lo:
            raise CamkitError(f"--images: an image of batch {b} ({job.names[lo]} .. {job.names[hi - 1]}) became "
                              "unreadable while explaining")
        arrays = batch_arrays(job.call, x, job.columns, job.y_true[lo:hi])
        arrays.update(names=job.names[lo:hi], indices=np.arange(lo, hi), class_names=job.class_names)
        yield b, arrays
        draw_figures(job, arrays)  # once the batch is written (the run is recorded before its first figure)


def draw_figures(job: FolderJob, arrays: dict[str, Any]) -> None:
    """The first ``n_figures`` images of the listing that fall in this batch: every variant with its box."""
    from camkit.data.images import load_original

    n_figures, fmt, folder = job.figures
    cls = method_class(job.call.method)
    for j, index in enumerate(arrays["indices"]):
        if index >= n_figures:
            break
        figure = variant_figure(load_original(job.files[index]), arrays, j, cls.box_threshold,
                                titles={**cls.variants, job.call.method: cls.title})
        job.written.append(save_figure(figure, folder / f"image_{index:05d}.{fmt}"))


def true_classes(folder: Any, names: list[str], class_names: list[str], true_labels: TrueLabels | None) -> np.ndarray:
    """Each image's true class index: from its class folder, or from ``true_labels`` (e.g. annotations)."""
    if true_labels is not None:
        from camkit.data.boxes import image_id

        by_id = true_labels(class_names)
        return np.array([by_id.get(image_id(name), -1) for name in names], np.int64)
    return np.array([class_names.index(folder.class_names[y]) if y >= 0 and folder.class_names[y] in class_names
                     else -1 for y in folder.labels], np.int64)


def check_truth(columns: Sequence[str], names: Sequence[str], y_true: np.ndarray, from_annotations: bool) -> None:
    """A ``true`` column needs every image's class: refused before anything is computed or written."""
    unknown = [n for n, y in zip(names, y_true, strict=True) if y < 0]
    if "true" in columns and unknown:
        where = ("have no annotated label among the model's classes" if from_annotations else
                 "are not in a class folder named after a model class")
        raise CamkitError(f"--target true: {len(unknown)} of {len(names)} images {where} (e.g. {unknown[0]}); "
                          "explain them without the column true")


def prepare(plan: ExplainPlan, resolved: Resolved, true_labels: TrueLabels | None) -> tuple[FolderJob, Path, Any]:
    """Load the model and list the images, check the targets; the job, the save folder and the listed folder."""
    from camkit.data.splits import PREPROCESSORS

    model = load_explained_model(resolved.model)
    size, channels = image_input(model, plan.source.image_size)
    count = None if plan.n_images in (None, "all") else int(plan.n_images)
    where, folder = load_image_files(resolved.data, plan.source.split, 2**62 if count is None else count)
    base = folder.root if Path(where).is_dir() else Path(where).parent
    names = [p.relative_to(base).as_posix() for p in folder.files]
    n_classes = int(keras.tree.flatten(model.outputs)[0].shape[-1])
    check_model_options(plan, model, n_classes)
    spec = plan.source
    class_names = class_names_for(n_classes, spec.labels, spec.imagenet_labels, folder.class_names or None)
    save_dir = Path(plan.save_dir) if plan.save_dir is not None else (
        Path(spec.root) / "plots" / resolved.name / f"explain_{plan.method}")
    preprocess = PREPROCESSORS.get(resolved.data["preprocess"], resolved.data["preprocess"])
    job = FolderJob(folder.files, names, folder.labels, class_names,
                    true_classes(folder, names, class_names, true_labels),
                    BatchCall(model, plan.method, plan.layer_ref, dict(plan.options), plan.batch_size),
                    parse_targets(plan.target, n_classes).names, (size, channels, preprocess),
                    (plan.n_figures, plan.fmt, save_dir / "figures"), [])
    check_truth(job.columns, names, job.y_true, true_labels is not None)
    return job, save_dir, (where, base)


def explain_folder(plan: ExplainPlan, resolved: Resolved, true_labels: TrueLabels | None = None,
                   option: str = "--save-dir") -> ExplainResult:
    """Explain every image of the plan's folder into its store (the module docstring); resumable and shardable.

    ``option``: how error lines name the save folder (the command's option for it; "" names the folder only)."""
    model_digest = model_id(resolved.model)  # hashed before loading: a retrained model is told apart
    job, save_dir, (where, base) = prepare(plan, resolved, true_labels)
    store = MapStore(save_dir, option=option)
    settings = {"method": plan.method, "options": plan.options, "columns": job.columns, "layer": plan.layer_ref,
                "batch_size": plan.batch_size, "input_size": list(job.input[0]), "n_images": len(job.names),
                "preprocess": resolved.data["preprocess"], "class_names": job.class_names}
    digest, files = digest_files(job.files, base)
    inputs = {"model": model_digest, "images": digest, "true_classes": value_digest(job.y_true)}
    opening = store.prepare(settings, Digests(inputs, {"images": files}), plan.overwrite,
                            clear=[save_dir / "figures", save_dir / "source.json"])
    n_batches = -(-len(job.names) // plan.batch_size)
    shard = Shard.parse(plan.shard)
    run = run_batches(opening, n_batches, shard, lambda todo: stream(job, base, todo, plan.batch_size),
                      progress=plan.progress, desc=f"explain {plan.method}")
    atomic_write_json(save_dir / "source.json", {"folder": str(Path(base).resolve())})  # for evaluation figures
    layer = str(store.read(run.batches[0], ["layer"])["layer"]) if run.batches else ""
    notes = [f"{len(run.computed)} of {len(run.batches)} batch(es) computed, "
             f"{len(run.batches) - len(run.computed)} already there"]
    if not shard.whole:
        notes.append(f"shard {plan.shard}: {len(run.batches)} of {n_batches} batches")
    return ExplainResult(save_dir, save_dir / "batches", job.written, "images", len(job.names), [plan.method],
                         [layer] if layer else [], str(where), notes)
