"""Run the registered metric plugins (:mod:`camkit.metrics.base`) over every stored batch and map variant.

The maps come from a whole-folder ``camkit explain`` run (``MAPS/run.json``, ``MAPS/batches/batch_*.npz``: names,
top5, columns, targets, variants, ``maps_<variant>`` (B, K, H, W)). Each batch file is evaluated into
``OUT/eval/batch_BBBBB.json`` (written atomically, skipped when present and matching its digest: resume;
``--shard i/n`` evaluates only batches ``b mod n = i``) holding, per variant, the identity of each scored image
and every metric's part; once every batch is evaluated the summary is built from those files, so merged shards
give exactly the unsharded result. Outputs: ``OUT/summary.json`` (per variant ``n_images``, ``n_skipped`` and each
metric's summary keys), ``OUT/per_image.csv`` (``variant``, the scoring's identity columns, then each metric's
columns) and each metric's own files (the submissions of the localization error, the faithfulness curves).

What the maps are scored with is a :class:`Scoring`: :class:`GroundTruth` (annotations, for the localization
metrics) here, or the model and the inputs of each batch (``camkit.workflows.faithfulness``). It builds each
batch's :class:`~camkit.metrics.MapBatch` per variant, checks the maps, names the identity columns and hands the
metrics their options.
"""

from __future__ import annotations

import csv
import io
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.boxes import Annotation, ClassMap, SkipList, image_id
from camkit.errors import CamkitError
from camkit.metrics import BoxSettings, MapBatch, Metric, make_metric, select_metrics
from camkit.metrics.map_boxes import Preprocessing
from camkit.workflows.records import Digests
from camkit.workflows.store import MapStore, Shard, remove_paths, run_batches

IDENTITY = ("variant", "image", "name", "true_label", "top1_label", "xmin", "ymin", "xmax", "ymax")
AVAILABLE = ("maps", "boxes", "labels")  # what a map store with annotations and a true column gives


class Scoring(ABC):
    """What the maps of a store are scored with, and how: the localization's ground truth, or the model and its
    inputs for faithfulness. :func:`evaluate_folder` calls its methods; it records :meth:`settings`."""

    identity_fields: tuple[str, ...] = ()  # per_image.csv's first columns (after ``variant``)
    class_map: ClassMap
    options: Mapping[str, Any]  # the metrics' options (:func:`camkit.metrics.make_metric`)

    @abstractmethod
    def recorded(self) -> dict[str, Any]:
        """What the evaluation's results depend on, besides the maps and the metrics (recorded in its run and
        in summary.json)."""

    @abstractmethod
    def check(self, arrays: Mapping[str, np.ndarray], maps: MapStore) -> list[str]:
        """Check one of this shard's maps batches (names and columns read) before anything is written; its names."""

    @abstractmethod
    def check_all(self, names: Sequence[str], whole: bool) -> None:
        """Check the names of every batch of this shard together (``whole``: the shard is the whole run)."""

    @abstractmethod
    def batches(self, arrays: Mapping[str, np.ndarray], b: int) -> Iterator[MapBatch]:
        """One :class:`MapBatch` per map variant of batch ``b``'s arrays."""

    @abstractmethod
    def identity(self, batch: MapBatch) -> list[dict[str, Any]]:
        """The identity columns of the kept images, in ``batch.kept`` order."""


@dataclass(frozen=True)
class GroundTruth(Scoring):
    """What the maps are scored against: annotations keyed by image id, the class map, box settings, skips."""

    annotations: Mapping[str, Annotation]
    class_map: ClassMap
    settings: BoxSettings
    skip: SkipList | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    identity_fields = IDENTITY[1:]

    def skipped(self) -> frozenset[str]:
        return frozenset() if self.skip is None else self.skip.resolve(self.annotations.keys())

    def recorded(self) -> dict[str, Any]:
        return self.settings.as_dict()

    def check(self, arrays: Mapping[str, np.ndarray], maps: MapStore) -> list[str]:
        if not {"top1", "true"} <= {str(c) for c in arrays["columns"]}:
            raise CamkitError(f"{maps.shown}: the maps need columns top1 and true (explain with --target "
                              "top1,true or top5,true)")
        return [str(n) for n in arrays["names"]]

    def check_all(self, names: Sequence[str], whole: bool) -> None:
        check_annotated(names, self, self.skipped(), whole)

    def batches(self, arrays: Mapping[str, np.ndarray], b: int) -> Iterator[MapBatch]:
        return map_batches(arrays, self, self.skipped())

    def identity(self, batch: MapBatch) -> list[dict[str, Any]]:
        return identity(batch)


def map_batches(arrays: Mapping[str, np.ndarray], truth: GroundTruth,
                skipped: frozenset[str] = frozenset()) -> Iterator[MapBatch]:
    """One :class:`MapBatch` per map variant of a batch file's arrays (checked first: :func:`check_maps`)."""
    names = tuple(str(n) for n in arrays["names"])
    columns = tuple(str(c) for c in arrays["columns"])
    geometry = Preprocessing(tuple(arrays[f"maps_{arrays['variants'][0]}"].shape[-2:]))
    for variant in (str(v) for v in arrays["variants"]):
        yield MapBatch(variant, names, arrays[f"maps_{variant}"].astype(np.float32), columns,
                       np.asarray(arrays["targets"]), np.asarray(arrays["top5"]), truth.class_map,
                       truth.settings, truth.annotations, geometry, skipped)


def identity(batch: MapBatch) -> list[dict[str, Any]]:
    """The fixed per-image columns of the kept images: id, name, true and top-1 labels, the top-1 map's box."""
    top1 = batch.require("top1")
    return [{"image": image_id(batch.names[j]), "name": batch.names[j], "true_label": batch.true_label(j),
             "top1_label": batch.class_map.label(int(batch.top5[j, 0])),
             **dict(zip(IDENTITY[5:], batch.box(j, top1).as_tuple(), strict=True))} for j in batch.kept]


def evaluate_batch(arrays: Mapping[str, np.ndarray], scoring: Scoring, metrics: Sequence[type[Metric]],
                   b: int = 0) -> dict[str, Any]:
    """Per variant: the kept images' identity, the number skipped and each metric's part (JSON-able)."""
    out: dict[str, Any] = {}
    for batch in scoring.batches(arrays, b):
        parts = {}
        for cls in metrics:
            part = make_metric(cls, scoring.options).evaluate_batch(batch)
            if cls.columns and len(part["records"]) != len(batch.kept):
                raise RuntimeError(f"metric {cls.name}: {len(part['records'])} records for {len(batch.kept)} images")
            parts[cls.name] = part
        out[batch.variant] = {"images": scoring.identity(batch), "n_skipped": len(batch.names) - len(batch.kept),
                              "metrics": parts}
    return out


def summarise(parts: Sequence[dict[str, Any]], metrics: Sequence[type[Metric]],
              options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The summary per variant from every batch's :func:`evaluate_batch` output."""
    summary: dict[str, Any] = {}
    for variant in parts[0]:
        mine = [part[variant] for part in parts]
        n = sum(len(p["images"]) for p in mine)
        if n == 0:
            raise CamkitError("no images to evaluate: every image is skipped")
        summary[variant] = {"n_images": n, "n_skipped": sum(p["n_skipped"] for p in mine)}
        for cls in metrics:
            summary[variant].update(make_metric(cls, options or {}).summarise([p["metrics"][cls.name] for p in mine]))
    return summary


def csv_fields(scoring: Scoring, metrics: Sequence[type[Metric]]) -> tuple[str, ...]:
    """per_image.csv's columns: ``variant``, the identity columns, then each metric's."""
    return ("variant", *scoring.identity_fields, *(c for cls in metrics for c in cls.columns))


def per_image_rows(parts: Sequence[dict[str, Any]], variant: str,
                   metrics: Sequence[type[Metric]]) -> Iterator[dict[str, Any]]:
    """The CSV rows of one variant, batch by batch."""
    for part in parts:
        mine = part[variant]
        records = [mine["metrics"][cls.name]["records"] for cls in metrics if cls.columns]
        for j, image in enumerate(mine["images"]):
            row = {"variant": variant, **image}
            for per_metric in records:
                row.update(per_metric[j])
            yield row


def write_outputs(out: Path, parts: Sequence[dict[str, Any]], summary: dict[str, Any],
                  metrics: Sequence[type[Metric]], scoring: Scoring, extra: dict[str, Any]) -> list[Path]:
    """summary.json, per_image.csv and each metric's files per variant, each written atomically."""
    from camkit.io import atomic_write_json, atomic_write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, csv_fields(scoring, metrics), lineterminator="\n")
    writer.writeheader()
    for variant in summary:
        writer.writerows(per_image_rows(parts, variant, metrics))
    written = [atomic_write_json(out / "summary.json", {**extra, "variants": summary}),
               atomic_write_text(out / "per_image.csv", buffer.getvalue())]
    for variant in summary:
        for cls in metrics:
            files = make_metric(cls, scoring.options).files([part[variant]["metrics"][cls.name] for part in parts],
                                                            variant, scoring.class_map)
            written += [atomic_write_text(out / path, text) for path, text in files.items()]
    return written


def check_maps(maps: MapStore, n_batches: int, mine: Sequence[int], scoring: Scoring) -> dict[int, str]:
    """Before anything is written: every maps batch there matches its digest, this shard's are all there and pass
    ``scoring``'s checks. The digest of each batch there, by batch."""
    sources: dict[int, str] = {}
    names: list[str] = []
    for b in range(n_batches):
        if b in mine and not maps.path(b).is_file():
            raise CamkitError(f"{maps.shown}: {maps.path(b)} is missing; finish the explain run, or merge its "
                              "shards (copy every shard's batches/ into one folder)")
        if b in mine:
            names += scoring.check(maps.read(b, ("names", "columns")), maps)  # checked against its digest
        elif maps.path(b).is_file() and (problem := maps.problem(b)) is not None:  # another shard's batch
            raise CamkitError(f"{maps.shown}: {maps.path(b)} {problem}; {maps.rerun} to recompute it")
        if maps.path(b).is_file():
            sources[b] = maps.recorded(b)[0]
    scoring.check_all(names, len(mine) == n_batches)
    return sources


def check_annotated(names: Sequence[str], truth: GroundTruth, skipped: frozenset[str], whole: bool) -> None:
    """Every image has an annotation with its image size, and (a whole run) not every image is skipped."""
    missing = [n for n in names if image_id(n) not in truth.annotations]
    if missing:
        raise CamkitError(f"--annotations: no annotation for {len(missing)} of {len(names)} images of the maps "
                          f"(e.g. {missing[0]!r}; annotations are keyed by file stem)")
    sizeless = [n for n in names if None in (truth.annotations[image_id(n)].width,
                                             truth.annotations[image_id(n)].height)]
    if sizeless:
        raise CamkitError(f"--annotations: the annotation of {sizeless[0]!r} has no image size (<size> or "
                          "width/height columns)")
    if whole and names and all(image_id(n) in skipped for n in names):
        raise CamkitError(f"--skip: {truth.skip.source} leaves out every image of the maps; nothing to evaluate")


def outputs(out: Path) -> list[Path]:
    """What an evaluation writes beside ``OUT/eval/`` (removed with the run it summarises)."""
    return [out / "summary.json", out / "per_image.csv", out / "submissions", out / "curves", out / "randomization",
            out / "figures"]


def evaluate_folder(maps_dir: Path, out: Path, scoring: Scoring, digests: Digests,
                    metrics: Sequence[type[Metric]] | None = None, shard: str | None = None,
                    progress: bool | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Evaluate a folder run's batches into ``out`` (module docstring); the summary once every batch is done.

    ``OUT/eval/`` is a map store of ``.json`` batches: its ``run.json`` records ``scoring``'s settings (e.g. the box
    settings), the class map, the metrics and their options, the maps run's record and the ``digests`` of what
    else the scores depend on (annotations, skip list, the model); each
    evaluated batch records the digest of the maps batch it read, so a recomputed maps batch is evaluated again.
    Everything is checked before anything is written; a rerun whose settings or inputs changed is refused (or,
    with ``overwrite``, recomputed). ``metrics``: default every registered metric whose needs :data:`AVAILABLE`
    meets.
    """
    metrics = select_metrics(AVAILABLE) if metrics is None else list(metrics)
    maps = MapStore(Path(maps_dir), option="--maps",
                    rerun=f"rerun `camkit explain` into {maps_dir} (with the same options)")
    record = maps.run(("method", "options", "class_names"))
    n_batches = maps.n_batches()
    part = Shard.parse(shard)
    sources = check_maps(maps, n_batches, part.batches(n_batches), scoring)
    evaluated = MapStore(Path(out) / "eval", suffix=".json", subdir="", option="--out", label=str(out),
                         written="this evaluation was written")
    settings = {**scoring.recorded(), "class_map": list(scoring.class_map.labels),
                "metrics": {cls.name: make_metric(cls, scoring.options).settings for cls in metrics}}
    opening = evaluated.prepare(settings, Digests({"maps": record, **digests.values}, digests.files), overwrite,
                                clear=outputs(Path(out)))

    def compute(todo: list[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        for b in todo:
            yield b, evaluate_batch(maps.read(b), scoring, metrics, b)

    run = run_batches(opening, n_batches, part, compute, depends=sources.__getitem__, progress=progress,
                      desc="evaluate")
    complete = len(sources) == n_batches and all(evaluated.is_done(b, sources[b]) for b in range(n_batches))
    result: dict[str, Any] = {"out": out, "computed": run.computed, "batches": run.batches, "n_batches": n_batches,
                              "complete": complete, "metrics": metrics, "run": record["settings"]}
    if complete:
        parts = [evaluated.read(b) for b in range(n_batches)]
        result["summary"] = summarise(parts, metrics, scoring.options)
        result["parts"] = parts
        extra = {"maps": str(maps_dir), "method": record["settings"]["method"],
                 "options": record["settings"]["options"], **scoring.recorded()}
        result["files"] = write_outputs(out, parts, result["summary"], metrics, scoring, extra)
    elif run.computed:  # a summary of the earlier batches is not this run's
        remove_paths(outputs(Path(out)))
    return result
