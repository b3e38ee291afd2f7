"""``camkit eval-localization``: weak-localization scores of maps from a whole-folder ``camkit explain`` run.

Maps come from a folder run (``explain_dataset.py``: ``batches/batch_*.npz``), given with ``--maps DIR`` or computed
here with ``--method`` into ``plots/<exp>/explain_<method>/``; :func:`camkit.workflows.evaluate.evaluate_folder`
then runs the registered metric plugins over every batch and map variant (a method's maps, or augmented Grad-CAM's
single / max / avg / sr) with resume and ``--shard i/n``. The localization plugins (ILSVRC protocol: any
ground-truth box of the class, inclusive IoU ≥ 0.5, optional skip list) are the top-1 / top-5 localization error
and the submission files (``camkit.metrics.loc_error``), GT-known accuracy, MaxBoxAcc and the pointing game on the
map of the ground-truth class (column ``true``; needs it), and the classification error alongside. Series maps are
scored against one interval per series the same way (:mod:`camkit.workflows.intervals`).

Outputs: ``OUT/summary.json``, ``OUT/per_image.csv`` (one row per image and variant), ``OUT/submissions/<variant>.txt``
(ILSVRC CLS-LOC format: file names sorted, up to five ``id xmin ymin xmax ymax`` groups per line), and
``OUT/figures/`` for the first images: each variant's top-1 map with its box and the ground-truth boxes (series: the
series coloured by the map, its interval and the true one).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from camkit.data.boxes import Annotation, ClassMap, SkipList, image_id
from camkit.data.intervals import Interval
from camkit.errors import CamkitError
from camkit.io import check_destination
from camkit.methods import method_class
from camkit.metrics import BoxSettings, Metric
from camkit.plots import save_figure
from camkit.plots.variants import variant_figure
from camkit.workflows.evaluate import GroundTruth, evaluate_folder
from camkit.workflows.folder import explain_folder
from camkit.workflows.intervals import (
    POINTING_TOLERANCE,
    SeriesTruth,
    intervals_path,
    series_annotations,
    series_figures,
    stored_series_truth,
)
from camkit.workflows.plan import ExplainPlan
from camkit.workflows.records import Digests
from camkit.workflows.sources import Resolved, SourceSpec, resolve_source
from camkit.workflows.store import MapStore, Shard

MAPS_KEYS = ("method", "options", "class_names")  # the settings of the maps run that an evaluation reads


@dataclass(frozen=True)
class MapsSource:
    """The maps: a folder run (``maps``), or computed with ``method`` from a model and images."""

    maps: Path | None = None
    method: str | None = None
    model: Any = None
    config: Path | None = None
    experiment: str | None = None
    images: Path | None = None
    data_root: str | None = None
    target: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    image_size: int | None = None
    preprocess: str | None = None


@dataclass(frozen=True)
class TruthFiles:
    """The ground truth: annotations (VOC XML folder or CSV), the class map's files, the skip list."""

    annotations: Path | None = None
    imagenet: bool = False
    synsets: Path | None = None
    clsloc: Path | None = None
    skip: Path | None = None


@dataclass(frozen=True)
class EvalRun:
    """Where and how: outputs under ``root``, the box threshold (None: the method's), shards, resume, figures."""

    root: Path = Path(".")
    out: Path | None = None
    threshold: float | None = None
    tolerance: float | None = None  # the pointing game's, in pixels / samples (None: 15 px, series 0 samples)
    shard: str | None = None
    progress: bool | None = None
    overwrite: bool = False
    n_figures: int = 8


def write_figures(maps_dir: Path, out: Path, truth: GroundTruth, n_figures: int) -> list[Path]:
    """The first ``n_figures`` images: every variant's top-1 map with its box (white) and the ground truth of the
    true class (green), in ``OUT/figures/``; none when the image folder (``MAPS/source.json``) is gone."""
    from camkit.data.images import load_original

    store = MapStore(maps_dir)
    source = maps_dir / "source.json"
    folder = Path(json.loads(source.read_text())["folder"]) if source.is_file() else None
    cls = method_class(store.run()["settings"]["method"])
    titles = {**cls.variants, cls.name: cls.title}
    written: list[Path] = []
    b = 0
    while folder is not None and folder.is_dir() and len(written) < n_figures and store.path(b).is_file():
        arrays = store.read(b)
        columns = [str(c) for c in arrays["columns"]]
        for j, name in enumerate(arrays["names"][: n_figures - len(written)]):
            label = truth.class_map.label(int(arrays["targets"][j, columns.index("true")]))
            gts = [box.as_tuple() for box in truth.annotations[image_id(str(name))].boxes(label)]
            figure = variant_figure(load_original(folder / str(name)), arrays, j, truth.settings.threshold,
                                    titles, columns.index("top1"), gts)
            written.append(save_figure(figure, out / "figures" / f"image_{int(arrays['indices'][j]):05d}.png"))
        b += 1
    return written


def _class_map(files: TruthFiles, class_names: Sequence[str]) -> ClassMap:
    if files.imagenet and files.synsets is not None:
        raise CamkitError("give --imagenet or --synsets FILE, not both")
    if files.clsloc is not None and files.synsets is None:
        raise CamkitError("--clsloc needs --synsets (the model's class order)")
    cmap = (ClassMap.imagenet() if files.imagenet else ClassMap.from_files(files.synsets, files.clsloc)
            if files.synsets is not None else ClassMap.from_names(class_names))
    if len(cmap) != len(class_names):
        raise CamkitError(f"class map: {len(cmap)} classes but the maps' model has {len(class_names)}")
    return cmap


def true_labels_from(annotations: Mapping[str, Annotation],
                     cmap_for: Callable[[Sequence[str]], ClassMap]) -> Callable[[Sequence[str]], dict[str, int]]:
    """A function of the model's class names giving image id -> class index of the image's first annotated label."""

    def labels(class_names: Sequence[str]) -> dict[str, int]:
        cmap = cmap_for(class_names)
        known = set(cmap.labels)
        return {key: cmap.index(ann.labels[0]) for key, ann in annotations.items() if ann.labels
                and ann.labels[0] in known}

    return labels


@dataclass(frozen=True)
class Located:
    """Where the maps and the outputs are, and the ground truth: its file and annotations (series: the one-row
    boxes of their intervals, and the intervals by sample in ``intervals``)."""

    maps: Path
    out: Path
    annotations_path: Path
    annotations: dict[str, Annotation]
    intervals: dict[int, Interval] | None = None


def ground_truth(files: TruthFiles, skip: SkipList | None) -> tuple[Path, dict[str, Annotation]]:
    """The annotations (path and contents), with the skip list checked against them."""
    from camkit.data.boxes import load_annotations

    if files.annotations is None:
        raise CamkitError("--annotations: give the ground truth (a folder of VOC XML files or a CSV)")
    annotations = load_annotations(files.annotations)
    if skip is not None:
        skip.resolve(annotations.keys())
    return Path(files.annotations), annotations


def _series_truth(maps: Path, out: Path, files: TruthFiles, skip: SkipList | None) -> Located:
    """A series store's intervals (``--annotations`` or the dataset's), checked against its series and the skip list."""
    path, annotations, intervals = stored_series_truth(maps, files.annotations)
    if skip is not None:
        skip.resolve(annotations.keys())
    return Located(maps, out, path, annotations, intervals)


def _stored_maps(source: MapsSource, files: TruthFiles, run: EvalRun, skip: SkipList | None) -> Located:
    """Where the maps and the outputs are, and the ground truth, for ``--maps DIR``."""
    if any(v is not None for v in (source.model, source.config, source.experiment, source.images)):
        raise CamkitError("--maps already holds the maps: drop the model and --images options")
    maps = Path(source.maps)
    settings = MapStore(maps, option="--maps").run(MAPS_KEYS)["settings"]
    out = Path(run.out) if run.out is not None else maps / "localization"
    if out.resolve() == maps.resolve():
        raise CamkitError(f"--out {out}: that is the --maps folder; the evaluation needs a folder of its own")
    check_destination(out, "--out")
    if settings.get("kind", "images") == "series":
        return _series_truth(maps, out, files, skip)
    return Located(maps, out, *ground_truth(files, skip))


def _check_series_truth(resolved: Resolved, split: str, files: TruthFiles, skip: SkipList | None) -> None:
    """Before a series split is explained: its interval file exists and fits its series, the skip list matches."""
    from camkit.workflows.folder_sources import series_source

    series = series_source(resolved.data, split, None, None)
    path = intervals_path(series.folder, split, files.annotations, "--annotations")
    annotations = series_annotations(path, split, series.x, series.y_true, series.class_names)[0]
    if skip is not None:
        skip.resolve(annotations.keys())


def _computed_maps(source: MapsSource, files: TruthFiles, run: EvalRun, skip: SkipList | None) -> Located:
    """Where the maps and the outputs are, and the ground truth, for ``--method NAME``: explain the images (their
    ``true`` column from the annotations' labels) or the series of the split into the maps folder first."""
    spec = SourceSpec(source.model, source.config, source.experiment, images=source.images,
                      data_root=source.data_root, preprocess=source.preprocess, image_size=source.image_size,
                      imagenet_labels=files.imagenet, root=run.root)
    resolved = resolve_source(spec)
    series = not resolved.is_images and source.images is None
    maps = run.root / "plots" / resolved.name / f"explain_{source.method}"
    name = f"localization_{source.method}"
    out = Path(run.out) if run.out is not None else run.root / "results" / resolved.name / name
    if series:
        _check_series_truth(resolved, spec.split, files, skip)
    else:
        annotations_path, ann = _image_truth(source, files, resolved, skip)
    check_destination(out, "--out")
    check_destination(maps, "--root")
    plan = ExplainPlan(spec, source.method, dict(source.options), n_images="all", batch_size=source.batch_size,
                       target=source.target or method_class(source.method).default_columns, save_dir=maps,
                       progress=run.progress, shard=run.shard, overwrite=run.overwrite,
                       target_is_default=source.target is None, n_figures=run.n_figures)
    labels = None if series else true_labels_from(ann, lambda names: _class_map(files, names))
    explain_folder(plan, resolved, labels, option="")
    return _series_truth(maps, out, files, skip) if series else Located(maps, out, annotations_path, ann)


def _image_truth(source: MapsSource, files: TruthFiles, resolved: Resolved,
                 skip: SkipList | None) -> tuple[Path, dict[str, Annotation]]:
    """The annotations of the images to explain: ``--annotations``, else the image dataset's annotations/test."""
    from camkit.data.timeseries import resolve_dataset_dir

    annotations = files.annotations
    if annotations is None:
        if source.images is not None:
            raise CamkitError("--annotations: give the ground truth of --images (VOC XML folder or CSV)")
        data = resolved.data
        annotations = resolve_dataset_dir(data["dataset"], data["root"]) / "annotations" / "test"
    return ground_truth(replace(files, annotations=annotations), skip)


def eval_localization(source: MapsSource, files: TruthFiles, run: EvalRun) -> dict[str, Any]:
    """``camkit eval-localization``: maps from ``source.maps`` (a folder run) or computed with ``source.method``,
    then scored by the registered metrics; figures once every batch is evaluated. Every input is checked before
    anything is computed or written."""
    from camkit.data.boxes import read_skip_list

    if (source.maps is None) == (source.method is None):
        raise CamkitError("give --maps DIR (a camkit explain --n-images all run) or --method NAME, "
                          f"not {'both' if source.maps is not None else 'neither'}")
    if run.threshold is not None and not 0 <= run.threshold <= 1:
        raise CamkitError(f"--threshold: a fraction of the map's maximum in [0, 1], not {run.threshold}")
    if run.tolerance is not None and not 0 <= run.tolerance < float("inf"):
        raise CamkitError(f"--tolerance: the pointing game's distance in pixels (series: samples), >= 0, not "
                          f"{run.tolerance}")
    Shard.parse(run.shard)
    skip = read_skip_list(files.skip) if files.skip is not None else None
    located = (_stored_maps if source.maps is not None else _computed_maps)(source, files, run, skip)
    maps = located.maps
    stored = MapStore(maps, option="--maps").run(MAPS_KEYS)["settings"]
    threshold = method_class(stored["method"]).box_threshold if run.threshold is None else run.threshold
    cmap = _class_map(files, stored["class_names"])
    series = located.intervals is not None
    default = POINTING_TOLERANCE if series else BoxSettings.tolerance
    settings = BoxSettings(threshold, tolerance=default if run.tolerance is None else run.tolerance)
    truth = (SeriesTruth if series else GroundTruth)(located.annotations, cmap, settings, skip)
    digests = Digests.of({"annotations": located.annotations_path, "skip": files.skip})
    result = evaluate_folder(maps, located.out, truth, digests, shard=run.shard, progress=run.progress,
                             overwrite=run.overwrite)
    result["figures"] = []
    if result["complete"]:
        result["figures"] = (write_figures(maps, located.out, truth, run.n_figures) if located.intervals is None else
                             series_figures(maps, located.out, threshold, located.intervals, run.n_figures))
    result["maps"] = maps
    return result


def result_lines(result: dict[str, Any]) -> list[str]:
    """What ``camkit eval-localization`` prints: the batches evaluated, then the summary table once complete."""
    lines = [f"evaluated {len(result['computed'])} of {len(result['batches'])} batch(es) of {result['maps']}"]
    if not result["complete"]:
        return [*lines, f"not every batch is evaluated yet ({result['n_batches']} in all): merge the shards' "
                        "batches/ and eval/ folders, then run again without --shard for the summary"]
    return [*lines, *summary_table(result["summary"], result["metrics"]),
            f"results: {result['out']} (summary.json, per_image.csv, submissions/, {len(result['figures'])} figures)"]


def summary_table(summary: dict[str, dict[str, Any]], metrics: Sequence[type[Metric]]) -> list[str]:
    """One line per variant: the metrics' table columns (``Metric.table``) and the number of images."""
    columns = [(key, header, max(len(header), 9)) for cls in metrics for key, header in cls.table]
    lines = [" ".join([f"{'variant':<10}", *(f"{header:>{w}}" for _, header, w in columns)]) + "  images"]
    for variant, s in summary.items():
        lines.append(" ".join([f"{variant:<10}", *(f"{s[key]:>{w}.3f}" for key, _, w in columns)])
                     + f"  {s['n_images']}")
    return lines
