"""``camkit eval-faithfulness``: does the model react to what the maps point at? Images and time series, no boxes.

The maps come from a whole-folder ``camkit explain`` run (``--maps DIR``) or are computed here with ``--method`` (into
``plots/<exp>/explain_<method>/``, as ``eval-localization``). :func:`camkit.workflows.evaluate.evaluate_folder` runs
the registered faithfulness metrics (``camkit.metrics.faithfulness``: their needs are the maps, the model, its
inputs and the maps' method) over every stored batch and map variant, with resume and ``--shard i/n``: a
:class:`FaithfulnessScoring` hands each batch the model and the batch's inputs, re-read exactly as they were
explained (:class:`camkit.workflows.stored_inputs.StoredInputs`: refused when the images, the series or the model
changed since). Each metric scores the maps of one column (``--column``, default ``top1``) on the explained
class's softmax probability; ``--steps`` and ``--baseline`` reach the metrics that take them.

Outputs: ``OUT/summary.json``, ``OUT/per_image.csv`` (one row per sample and variant), ``OUT/curves/`` (each curve
metric's mean curve per variant, CSV), each metric's own files, and ``OUT/figures/``: the mean curves of every
variant (``curves.png``) and what a metric draws itself (the randomisation cascade).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.boxes import ClassMap, image_id
from camkit.errors import CamkitError
from camkit.io import check_destination
from camkit.metrics import BoxSettings, MapBatch, MethodRun, Metric, make_metric, metric_classes
from camkit.metrics.faithfulness import DIRECTION, Explained, FaithfulnessMetric
from camkit.plots import save_figure
from camkit.plots.curves import curves_figure
from camkit.plots.faithfulness import illustration_figure
from camkit.workflows.evaluate import Scoring, evaluate_folder
from camkit.workflows.localization import MAPS_KEYS, MapsSource
from camkit.workflows.records import Digests
from camkit.workflows.sources import model_id
from camkit.workflows.store import MapStore, Shard
from camkit.workflows.stored_inputs import StoredInputs

AVAILABLE = ("maps", "model", "inputs", "method")
IDENTITY = ("sample", "name", "target_label", "target_probability")


@dataclass(frozen=True)
class FaithRun:
    """Which metrics and how (``options``: ``steps``, ``baseline`` for all, ``NAME.KEY`` one metric's), which
    column, how many samples (with ``--method``: the first ``n_images``; None: all), where the outputs go, shards,
    resume, figures."""

    metric: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    column: str = "top1"
    n_images: int | None = None
    root: Path = Path(".")
    out: Path | None = None
    shard: str | None = None
    progress: bool | None = None
    overwrite: bool = False
    n_figures: int = 8


@dataclass(frozen=True)
class FaithfulnessScoring(Scoring):
    """The model, the stored inputs and the maps' method, for the faithfulness metrics (module docstring)."""

    model: Any
    inputs: StoredInputs
    class_map: ClassMap
    method: MethodRun
    column: str
    options: Mapping[str, Any]
    identity_fields = IDENTITY

    def recorded(self) -> dict[str, Any]:
        return {"column": self.column}

    def check(self, arrays: Mapping[str, np.ndarray], maps: MapStore) -> list[str]:
        columns = [str(c) for c in arrays["columns"]]
        if self.column not in columns:
            raise CamkitError(f"--column {self.column}: the maps of {maps.folder} have columns {', '.join(columns)}")
        return [str(n) for n in arrays["names"]]

    def check_all(self, names: Sequence[str], whole: bool) -> None:
        """Nothing to check across batches: every sample is scored."""

    def batches(self, arrays: Mapping[str, np.ndarray], b: int) -> Iterator[MapBatch]:
        names = tuple(str(n) for n in arrays["names"])
        x = self.inputs.batch(b)
        for variant in (str(v) for v in arrays["variants"]):
            yield MapBatch(variant, names, arrays[f"maps_{variant}"].astype(np.float32),
                           tuple(str(c) for c in arrays["columns"]), np.asarray(arrays["targets"]),
                           np.asarray(arrays["top5"]), self.class_map, BoxSettings(0.5), model=self.model,
                           inputs=x, method=self.method, explained=self.column,
                           extra={"top5_probs": np.asarray(arrays["top5_probs"])})

    def identity(self, batch: MapBatch) -> list[dict[str, Any]]:
        col = batch.require(self.column)
        probs = batch.extra["top5_probs"]
        rows = []
        for j in batch.kept:
            target = int(batch.targets[j, col])
            ranked = np.flatnonzero(batch.top5[j] == target)
            rows.append({"sample": image_id(batch.names[j]), "name": batch.names[j],
                         "target_label": self.class_map.label(target),
                         "target_probability": round(float(probs[j, ranked[0]]), 6) if len(ranked) else ""})
        return rows


def selected_metrics(names: str | None) -> list[type[Metric]]:
    """The faithfulness metrics named in ``--metric`` (a comma list; None: all), in registration order."""
    available = [cls for cls in metric_classes() if issubclass(cls, FaithfulnessMetric)]
    if names is None:
        return available
    wanted = [n.strip() for n in str(names).split(",") if n.strip()]
    known = {cls.name: cls for cls in available}
    unknown = [n for n in wanted if n not in known]
    if unknown or not wanted:
        raise CamkitError(f"--metric: {'unknown metric ' + repr(unknown[0]) if unknown else 'give at least one'}; "
                          f"choose from {', '.join(known)}")
    return [cls for cls in available if cls.name in wanted]


def check_metric_options(metrics: Sequence[type[Metric]], options: Mapping[str, Any]) -> None:
    """Every ``NAME.KEY`` option names a selected metric and one of its options; every value is valid (each
    metric made once), before any map is computed."""
    known = {cls.name: cls for cls in metrics}
    for key in options:
        name, dot, option = key.rpartition(".")
        if not dot:
            continue
        if name not in known:
            raise CamkitError(f"--metric-option {key}: {name!r} is not among the metrics evaluated "
                              f"({', '.join(known)})")
        if option not in known[name].options:
            raise CamkitError(f"--metric-option {key}: metric {name} takes "
                              f"{', '.join(known[name].options) or 'no options'}")
    for cls in metrics:
        try:
            make_metric(cls, options)
        except CamkitError as error:
            raise CamkitError(f"metric {cls.name}: {error}") from None


def computed_maps(source: MapsSource, run: FaithRun) -> tuple[Path, Path]:
    """``--method NAME``: explain the whole split or folder into ``plots/<exp>/explain_<method>/`` (resumed when
    there); the maps folder and the default output folder."""
    from camkit.workflows.explain import explain_to_dir
    from camkit.workflows.plan import ExplainPlan
    from camkit.workflows.sources import SourceSpec, resolve_source

    spec = SourceSpec(source.model, source.config, source.experiment, images=source.images,
                      data_root=source.data_root, preprocess=source.preprocess, image_size=source.image_size,
                      root=run.root)
    name = resolve_source(spec).name
    maps = run.root / "plots" / name / f"explain_{source.method}"
    target = source.target or ",".join(dict.fromkeys(["top1", run.column]))
    check_destination(maps, "--root")
    n_images = "all" if run.n_images is None else run.n_images
    plan = ExplainPlan(spec, source.method, dict(source.options), n_images=n_images, batch_size=source.batch_size,
                       target=target, save_dir=maps, progress=run.progress, shard=run.shard,
                       overwrite=run.overwrite, target_is_default=source.target is None, n_figures=run.n_figures,
                       into_store=True)
    explain_to_dir(plan)
    return maps, run.root / "results" / name / f"faithfulness_{source.method}"


def eval_faithfulness(source: MapsSource, run: FaithRun) -> dict[str, Any]:
    """``camkit eval-faithfulness``: maps from ``source.maps`` or computed with ``source.method``, scored by the
    faithfulness metrics; figures once every batch is evaluated. Options are checked before anything is computed."""
    if (source.maps is None) == (source.method is None):
        raise CamkitError("give --maps DIR (a camkit explain --n-images all run) or --method NAME, "
                          f"not {'both' if source.maps is not None else 'neither'}")
    Shard.parse(run.shard)
    metrics = selected_metrics(run.metric)
    check_metric_options(metrics, run.options)
    if source.maps is not None:
        given = [name for name, value in (("-c/--config", source.config), ("--experiment", source.experiment),
                                          ("--images", source.images), ("--n-images", run.n_images),
                                          ("--target", source.target)) if value is not None]
        if given:
            raise CamkitError(f"{given[0]}: --maps already holds the maps and their inputs; drop it")
        maps = Path(source.maps)
        MapStore(maps, option="--maps").run(MAPS_KEYS)
        default_out = maps / "faithfulness"
    else:
        maps, default_out = computed_maps(source, run)
    out = Path(run.out) if run.out is not None else default_out
    if out.resolve() == maps.resolve():
        raise CamkitError(f"--out {out}: that is the --maps folder; the evaluation needs a folder of its own")
    check_destination(out, "--out")
    inputs = StoredInputs.open(maps, option="--maps")
    model = inputs.model(source.model if source.maps is not None else None)
    settings = MapStore(maps).run(MAPS_KEYS)["settings"]
    scoring = FaithfulnessScoring(model, inputs, ClassMap.from_names(settings["class_names"]),
                                  MethodRun(settings["method"], settings["options"], settings.get("layer")),
                                  run.column, dict(run.options))
    result = evaluate_folder(maps, out, scoring, Digests({"model": model_id(model)}), metrics, shard=run.shard,
                             progress=run.progress, overwrite=run.overwrite)
    result["figures"] = write_figures(result, scoring, maps, out) if result["complete"] and run.n_figures else []
    result["maps"] = maps
    return result


def write_figures(result: dict[str, Any], scoring: FaithfulnessScoring, maps: Path, out: Path) -> list[Path]:
    """``figures/curves.png`` (every curve metric's mean curve, a line per variant) and each metric's own
    illustration of the first sample per variant (``figures/<metric>_<variant>.png``)."""
    metrics = [make_metric(cls, scoring.options) for cls in result["metrics"]]
    parts = {(m.name, v): [p[v]["metrics"][m.name] for p in result["parts"]]
             for m in metrics for v in result["summary"]}
    written = []
    curves: dict[str, dict[str, Any]] = {}
    for (name, variant), mine in parts.items():
        curve = next(m for m in metrics if m.name == name).mean_curve(mine)
        if curve is not None:
            curves.setdefault(name, {})[variant] = curve
    if curves:
        values = {name: {v: result["summary"][v][name] for v in result["summary"]} for name in curves}
        directions = {m.name: DIRECTION[m.higher_is_better] for m in metrics}
        figure = curves_figure(curves, directions, values, f"{scoring.method.name}: mean curves")
        written.append(save_figure(figure, out / "figures" / "curves.png"))
    return written + illustrations(metrics, parts, scoring, maps, out)


def illustrations(metrics: Sequence[Any], parts: Mapping[tuple[str, str], list], scoring: FaithfulnessScoring,
                  maps: Path, out: Path) -> list[Path]:
    """Each metric's own figure of the first sample of the first batch, per variant (those that draw one)."""
    written = []
    for batch in scoring.batches(MapStore(maps).read(0), 0):
        first, col = batch.kept[:1], batch.require(scoring.column)
        explained = Explained(scoring.model, batch.inputs[first], batch.maps[first, col], batch.targets[first, col],
                              scoring.method, batch.variant)
        for metric in metrics:
            shown = metric.illustration(explained, parts[metric.name, batch.variant])
            if shown is not None:
                direction = DIRECTION[metric.higher_is_better]
                title = f"{metric.name}, {direction}: {batch.names[first[0]]} ({batch.variant})"
                written.append(save_figure(illustration_figure(shown, title),
                                           out / "figures" / f"{metric.name}_{batch.variant}.png"))
    return written


def result_lines(result: dict[str, Any]) -> list[str]:
    """What ``camkit eval-faithfulness`` prints: the batches evaluated, then one table once complete."""
    lines = [f"evaluated {len(result['computed'])} of {len(result['batches'])} batch(es) of {result['maps']}"]
    if not result["complete"]:
        return [*lines, f"not every batch is evaluated yet ({result['n_batches']} in all): merge the shards' "
                        "batches/ and eval/ folders, then run again without --shard for the summary"]
    return [*lines, *summary_table(result["summary"], result["metrics"]),
            f"results: {result['out']} (summary.json, per_image.csv, curves/, {len(result['figures'])} figures)"]


def summary_table(summary: Mapping[str, Mapping[str, Any]], metrics: Sequence[type[Metric]]) -> list[str]:
    """One row per metric summary key: its value for each variant and which direction is better."""
    variants = list(summary)
    width = max([len("metric")] + [len(h) for cls in metrics for _, h in cls.table])
    cols = [max(9, len(v)) for v in variants]
    lines = [" ".join([f"{'metric':<{width}}", *(f"{v:>{w}}" for v, w in zip(variants, cols, strict=True))])
             + "  better"]
    for cls in metrics:
        for key, header in cls.table:
            values = [f"{summary[v][key]:>{w}.4f}" for v, w in zip(variants, cols, strict=True)]
            better = "higher" if cls.higher_is_better else "lower"
            lines.append(" ".join([f"{header:<{width}}", *values]) + f"  {better}")
    lines.append(" ".join([f"{'samples':<{width}}", *(f"{summary[v]['n_images']:>{w}}"
                                                    for v, w in zip(variants, cols, strict=True))]))
    return lines
