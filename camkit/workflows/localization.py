"""``camkit eval-localization``: weak-localization scores of maps from a whole-folder ``camkit explain`` run.

Maps come from a folder run (``explain_dataset.py``: ``batches/batch_*.npz``), given with ``--maps DIR`` or computed
here with ``--method`` into ``OUT/maps/``. Each batch is evaluated into ``OUT/eval/batch_BBBBB.json`` (written
atomically, skipped when present: resume; ``--shard i/n`` evaluates only batches ``b mod n = i``), and once every
batch is evaluated the summary is built from those per-batch files, so merged shards give exactly the unsharded
result. Per map variant (a method's maps, or augmented Grad-CAM's single / max / avg / sr), as
``camkit.metrics.localization`` defines them (ILSVRC protocol: any ground-truth box of the class, inclusive
IoU ≥ 0.5, optional skip list):

- top-1 / top-5 localization error: guess ``k`` pairs the model's ``k``-th class with the box of that class's map
  when the run has column ``topk``, else with the top-1 map's box (said in the summary as ``top5_boxes``);
- GT-known localization accuracy, MaxBoxAcc (v1: IoU 0.5, largest component, thresholds 0.00..0.99) and the
  pointing game, on the map of the ground-truth class (column ``true``; needs it);
- classification top-1 / top-5 error alongside.

Outputs: ``OUT/summary.json``, ``OUT/per_image.csv`` (one row per image and variant), ``OUT/submissions/<variant>.txt``
(ILSVRC CLS-LOC format: file names sorted, up to five ``id xmin ymin xmax ymax`` groups per line), and
``OUT/figures/`` for the first images: each variant's top-1 map with its box and the ground-truth boxes.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.boxes import Annotation, ClassMap, SkipList, image_id
from camkit.errors import CamkitError
from camkit.metrics.localization import (
    gt_known_accuracy,
    localization_errors,
    max_box_acc,
    pointing_game,
    submission_lines,
)
from camkit.metrics.map_boxes import Preprocessing, box_from_map

CSV_FIELDS = ("variant", "image", "name", "true_label", "top1_label", "xmin", "ymin", "xmax", "ymax", "top1_iou",
              "correct_top1", "correct_top5", "gt_known_iou", "gt_known_correct", "pointing_hit")


@dataclass(frozen=True)
class EvalSettings:
    """How maps become boxes and scores (stored in ``OUT/eval/settings.json``; a rerun must match)."""

    threshold: float
    iou: float = 0.5
    tolerance: float = 15.0  # pointing game, pixels

    def as_dict(self) -> dict[str, float]:
        return {"threshold": self.threshold, "iou": self.iou, "pointing_tolerance": self.tolerance}


def _column(arrays: Mapping[str, np.ndarray], name: str) -> int | None:
    columns = [str(c) for c in arrays["columns"]]
    return columns.index(name) if name in columns else None


def evaluate_batch(arrays: Mapping[str, np.ndarray], annotations: Mapping[str, Annotation], class_map: ClassMap,
                   settings: EvalSettings, skip: SkipList | None) -> dict[str, Any]:
    """Per-variant rows, guesses and MaxBoxAcc counts of one batch file's images (JSON-able)."""
    names = [str(n) for n in arrays["names"]]
    top1, true_col = _column(arrays, "top1"), _column(arrays, "true")
    if top1 is None or true_col is None:
        raise CamkitError("the maps need columns top1 and true (explain with --target top1,true or top5,true)")
    size = tuple(arrays[f"maps_{arrays['variants'][0]}"].shape[-2:])
    geometry = Preprocessing(size)
    known = [image_id(n) in annotations for n in names]
    if not all(known):
        raise CamkitError(f"no annotation for image {names[known.index(False)]!r} (annotations are keyed by file stem)")
    labels = {n: class_map.label(int(t)) for n, t in zip(names, arrays["targets"][:, true_col], strict=True)}
    out: dict[str, Any] = {}
    for variant in [str(v) for v in arrays["variants"]]:
        maps = arrays[f"maps_{variant}"].astype(np.float32)
        guesses: dict[str, list[tuple[int, tuple[int, ...]]]] = {}
        for j, name in enumerate(names):
            ann = annotations[image_id(name)]
            if ann.height is None or ann.width is None:
                raise CamkitError(f"the annotation of {name!r} has no image size (<size> or width/height columns)")
            where = geometry.geometry(ann.height, ann.width)
            boxes = []
            for rank, cls in enumerate(arrays["top5"][j], 1):
                col = _column(arrays, f"top{rank}")
                boxes.append((int(cls), box_from_map(maps[j, top1 if col is None else col], where,
                                                     settings.threshold).as_tuple()))
            guesses[name] = boxes
        truth = {n: maps[j, true_col] for j, n in enumerate(names)}
        loc = localization_errors(guesses, annotations, k=(1, 5), skip=skip, iou=settings.iou, class_map=class_map)
        gt = gt_known_accuracy(truth, annotations, geometry, threshold=settings.threshold, iou=settings.iou,
                               labels=labels, skip=skip)
        point = pointing_game(truth, annotations, geometry, tolerance=settings.tolerance, labels=labels, skip=skip)
        mba = max_box_acc(truth, annotations, geometry, labels=labels, skip=skip)
        by_id = {image_id(n): n for n in names}
        rows = []
        for r, g, p in zip(loc.records, gt.records, point.records, strict=True):
            name = by_id[r["image"]]
            rows.append({"variant": variant, "image": r["image"], "name": name, "true_label": labels[name],
                         "top1_label": r["top1_label"], **dict(zip(("xmin", "ymin", "xmax", "ymax"),
                                                                   guesses[name][0][1], strict=True)),
                         "top1_iou": round(float(r["top1_iou"]), 6), "correct_top1": bool(r["correct_top1"]),
                         "correct_top5": bool(r["correct_top5"]), "gt_known_iou": round(float(g["iou"]), 6),
                         "gt_known_correct": bool(g["correct"]), "pointing_hit": bool(p["hit"])})
        out[variant] = {"rows": rows, "guesses": {n: [[c, list(b)] for c, b in v] for n, v in guesses.items()},
                        "maxbox_correct": np.rint(mba.accuracy[0] * mba.n_images).astype(int).tolist(),
                        "maxbox_thresholds": mba.thresholds.tolist(), "n_skipped": loc.n_skipped,
                        "top5_boxes": "per class" if all(_column(arrays, f"top{r}") is not None for r in
                                                         range(1, arrays["top5"].shape[1] + 1)) else "top-1 box"}
    return out


def summarise(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The summary per variant from every batch's :func:`evaluate_batch` output."""
    summary: dict[str, Any] = {}
    for variant in parts[0]:
        rows = [row for part in parts for row in part[variant]["rows"]]
        n = len(rows)
        if n == 0:
            raise CamkitError("no images to evaluate: every image is skipped")
        counts = np.sum([part[variant]["maxbox_correct"] for part in parts], axis=0)
        thresholds = parts[0][variant]["maxbox_thresholds"]
        best = int(np.argmax(counts))
        summary[variant] = {
            "n_images": n, "n_skipped": sum(part[variant]["n_skipped"] for part in parts),
            "top1_loc_error": 1 - sum(r["correct_top1"] for r in rows) / n,
            "top5_loc_error": 1 - sum(r["correct_top5"] for r in rows) / n,
            "gt_known_loc_accuracy": sum(r["gt_known_correct"] for r in rows) / n,
            "max_box_acc": float(counts[best]) / n, "max_box_acc_threshold": thresholds[best],
            "pointing_game": sum(r["pointing_hit"] for r in rows) / n,
            "top1_cls_error": 1 - sum(r["top1_label"] == r["true_label"] for r in rows) / n,
            "top5_boxes": parts[0][variant]["top5_boxes"],
        }
    return summary


def write_outputs(out: Path, parts: Sequence[dict[str, Any]], summary: dict[str, Any], class_map: ClassMap,
                  extra: dict[str, Any]) -> list[Path]:
    """summary.json, per_image.csv and one ILSVRC submission file per variant, each written atomically."""
    from camkit.io import atomic_write_json, atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for variant in summary:
        for part in parts:
            writer.writerows(part[variant]["rows"])
    written = [atomic_write_json(out / "summary.json", {**extra, "variants": summary}),
               atomic_write_text(out / "per_image.csv", buffer.getvalue())]
    for variant in summary:
        guesses = {n: [(c, b) for c, b in g] for part in parts for n, g in part[variant]["guesses"].items()}
        lines = submission_lines(sorted(guesses), guesses, class_map)
        written.append(atomic_write_text(out / "submissions" / f"{variant}.txt", "\n".join(lines) + "\n"))
    return written


def read_run(maps_dir: Path) -> dict[str, Any]:
    """The settings (``run.json``) of a whole-folder explain run."""
    path = Path(maps_dir) / "run.json"
    if not path.is_file():
        raise CamkitError(f"--maps {maps_dir}: no run.json; give the folder of a `camkit explain --n-images all` run")
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise CamkitError(f"--maps {path}: not valid JSON") from None


def evaluate_folder(maps_dir: Path, out: Path, annotations: Mapping[str, Annotation], class_map: ClassMap,
                    settings: EvalSettings, skip: SkipList | None = None, shard: str | None = None,
                    progress: bool | None = None, overwrite: bool = False, n_figures: int = 8) -> dict[str, Any]:
    """Evaluate a folder run's batches into ``out`` (module docstring); the summary once every batch is done."""
    from tqdm.auto import tqdm

    from camkit.io import atomic_write_json
    from camkit.workflows.folder import batch_path, check_settings, parse_shard

    i, n = parse_shard(shard)
    run = read_run(maps_dir)
    n_batches = -(-int(run["n_images"]) // int(run["batch_size"]))
    check_settings(out / "eval", {**settings.as_dict(), "maps_run": run, "class_map": list(class_map.labels)},
                   overwrite)
    mine = [b for b in range(n_batches) if b % n == i]
    todo = [b for b in mine if not (out / "eval" / f"batch_{b:05d}.json").is_file()]
    missing = [b for b in todo if not batch_path(maps_dir, b).is_file()]
    if missing:
        raise CamkitError(f"--maps {maps_dir}: batch file(s) {missing[:3]} missing; finish or merge the explain run")
    for b in tqdm(todo, desc="localization", unit="batch", leave=False, disable=progress is False or len(todo) < 2):
        with np.load(batch_path(maps_dir, b), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        atomic_write_json(out / "eval" / f"batch_{b:05d}.json",
                          evaluate_batch(arrays, annotations, class_map, settings, skip))
    done = [b for b in range(n_batches) if (out / "eval" / f"batch_{b:05d}.json").is_file()]
    result: dict[str, Any] = {"out": out, "computed": todo, "batches": mine, "n_batches": n_batches,
                              "complete": len(done) == n_batches}
    if result["complete"]:
        parts = [json.loads((out / "eval" / f"batch_{b:05d}.json").read_text()) for b in range(n_batches)]
        summary = summarise(parts)
        extra = {"maps": str(maps_dir), "method": run["method"], "options": run["options"], **settings.as_dict()}
        result["files"] = write_outputs(out, parts, summary, class_map, extra)
        result["figures"] = write_figures(maps_dir, out, annotations, class_map, settings, n_figures)
        result["summary"] = summary
    return result


def write_figures(maps_dir: Path, out: Path, annotations: Mapping[str, Annotation], class_map: ClassMap,
                  settings: EvalSettings, n_figures: int) -> list[Path]:
    """The first ``n_figures`` images: every variant's top-1 map with its box (white) and the ground truth of the
    true class (green), in ``OUT/figures/``; none when the image folder (``MAPS/source.json``) is gone."""
    from camkit.data.images import load_original
    from camkit.plots import save_figure
    from camkit.workflows.folder import batch_path, variant_figure

    source = maps_dir / "source.json"
    folder = Path(json.loads(source.read_text())["folder"]) if source.is_file() else None
    written: list[Path] = []
    b = 0
    while folder is not None and folder.is_dir() and len(written) < n_figures and batch_path(maps_dir, b).is_file():
        with np.load(batch_path(maps_dir, b), allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        true_col = _column(arrays, "true")
        for j, name in enumerate(arrays["names"][: n_figures - len(written)]):
            label = class_map.label(int(arrays["targets"][j, true_col]))
            gts = [box.as_tuple() for box in annotations[image_id(str(name))].boxes(label)]
            figure = variant_figure(load_original(folder / str(name)), arrays, j, settings.threshold,
                                    _column(arrays, "top1"), gts)
            written.append(save_figure(figure, out / "figures" / f"image_{int(arrays['indices'][j]):05d}.png"))
        b += 1
    return written


def _class_map(imagenet: bool, synsets: Path | None, clsloc: Path | None, class_names: Sequence[str]) -> ClassMap:
    if imagenet and synsets is not None:
        raise CamkitError("give --imagenet or --synsets FILE, not both")
    if clsloc is not None and synsets is None:
        raise CamkitError("--clsloc needs --synsets (the model's class order)")
    cmap = (ClassMap.imagenet() if imagenet else ClassMap.from_files(synsets, clsloc) if synsets is not None
            else ClassMap.from_names(class_names))
    if len(cmap) != len(class_names):
        raise CamkitError(f"class map: {len(cmap)} classes but the maps' model has {len(class_names)}")
    return cmap


def true_labels_from(annotations: Mapping[str, Annotation], cmap_for: Any) -> Any:
    """A function of the model's class names giving image id -> class index of the image's first annotated label."""

    def labels(class_names: Sequence[str]) -> dict[str, int]:
        cmap = cmap_for(class_names)
        known = set(cmap.labels)
        return {key: cmap.index(ann.labels[0]) for key, ann in annotations.items() if ann.labels
                and ann.labels[0] in known}

    return labels


def eval_localization(*, maps: Path | None = None, method: str | None = None, model: Any = None,
                      config: Path | None = None, experiment: str | None = None, images: Path | None = None,
                      annotations: Path | None = None, data_root: str | None = None, root: Path = Path("."),
                      imagenet: bool = False, synsets: Path | None = None, clsloc: Path | None = None,
                      skip: Path | None = None, threshold: float | None = None, target: str | None = None,
                      options: dict[str, Any] | None = None, batch_size: int = 32, shard: str | None = None,
                      out: Path | None = None, image_size: int | None = None, preprocess: str | None = None,
                      progress: bool | None = None, overwrite: bool = False, n_figures: int = 8) -> dict[str, Any]:
    """``camkit eval-localization``: maps from ``maps`` (a folder run) or computed with ``method``; then scores."""
    from camkit.data.boxes import load_annotations, read_skip_list
    from camkit.data.timeseries import resolve_dataset_dir
    from camkit.methods import method_class

    if (maps is None) == (method is None):
        raise CamkitError("give --maps DIR (a camkit explain --n-images all run) or --method NAME, "
                          f"not {'both' if maps is not None else 'neither'}")
    if threshold is not None and not 0 <= threshold <= 1:
        raise CamkitError(f"--threshold: a fraction of the map's maximum in [0, 1], not {threshold}")
    skip_list = read_skip_list(skip) if skip is not None else None
    if maps is not None:
        if model is not None or config is not None or experiment is not None or images is not None:
            raise CamkitError("--maps already holds the maps: drop the model and --images options")
        if annotations is None:
            raise CamkitError("--annotations: give the ground truth (a folder of VOC XML files or a CSV)")
        ann = load_annotations(annotations)
        maps = Path(maps)
        out = Path(out) if out is not None else maps / "localization"
    else:
        from camkit.workflows.folder import run_folder
        from camkit.workflows.sources import resolve_source

        model, exp_name, data = resolve_source(model, config, experiment, None, images, data_root, preprocess, root)
        if data.get("kind") != "images" and images is None:
            raise CamkitError("eval-localization explains images: give --images DIR or an image experiment")
        if annotations is None:
            if images is not None:
                raise CamkitError("--annotations: give the ground truth of --images (VOC XML folder or CSV)")
            annotations = resolve_dataset_dir(data["dataset"], data["root"]) / "annotations" / "test"
        ann = load_annotations(annotations)
        default_target = "top1,true" if method == "augmented-gradcam" else "top5,true"
        maps = root / "plots" / exp_name / f"explain_{method}"
        run_folder(model, data, exp_name, method=method, options=options or {}, layer=None,
                   target=target or default_target, split="test", labels=None, imagenet_labels=imagenet,
                   image_size=image_size, n_images=None, batch_size=batch_size, save_dir=maps, root=root,
                   shard=shard, n_figures=8, fmt="png", progress=progress,
                   true_labels=true_labels_from(ann, lambda names: _class_map(imagenet, synsets, clsloc, names)),
                   overwrite=overwrite)
        out = Path(out) if out is not None else root / "results" / exp_name / f"localization_{method}"
    run = read_run(maps)
    cmap = _class_map(imagenet, synsets, clsloc, run["class_names"])
    settings = EvalSettings(method_class(run["method"]).box_threshold if threshold is None else threshold)
    result = evaluate_folder(maps, out, ann, cmap, settings, skip_list, shard, progress, overwrite, n_figures)
    result["maps"] = maps
    return result
