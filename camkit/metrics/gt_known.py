"""GT-known localization accuracy: the box of the ground-truth class's map (column ``true``) at IoU ≥ 0.5.

:func:`camkit.metrics.localization.gt_known_accuracy` on each kept image's ``true`` map, against the
ground-truth boxes of its true class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from camkit.data.boxes import image_id
from camkit.metrics.base import MapBatch, Metric, SummaryValue, register_metric
from camkit.metrics.localization import gt_known_accuracy


def true_maps(batch: MapBatch) -> tuple[dict[str, Any], dict[str, str]]:
    """The kept images' maps of their true class and their true labels, keyed by name."""
    col = batch.require("true")
    names = [batch.names[j] for j in batch.kept]
    return ({n: batch.maps[j, col] for n, j in zip(names, batch.kept, strict=True)},
            {n: batch.true_label(j) for n, j in zip(names, batch.kept, strict=True)})


def in_kept_order(batch: MapBatch, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """A localization function's records (keyed by ``image``) in ``batch.kept`` order."""
    by_id = {r["image"]: r for r in records}
    return [by_id[image_id(batch.names[j])] for j in batch.kept]


@register_metric
class GTKnownAccuracy(Metric):
    """GT-known localization accuracy (higher is better)."""

    name = "gt-known"
    needs = ("maps", "boxes", "labels")
    summary_keys = ("gt_known_loc_accuracy",)
    columns = ("gt_known_iou", "gt_known_correct")
    table = (("gt_known_loc_accuracy", "GT-known"),)

    def evaluate_batch(self, batch: MapBatch) -> dict[str, Any]:
        if not batch.kept:
            return {"records": []}
        maps, labels = true_maps(batch)
        result = gt_known_accuracy(maps, batch.annotations, batch.geometry, threshold=batch.settings.threshold,
                                   iou=batch.settings.iou, labels=labels)
        return {"records": [{"gt_known_iou": round(float(r["iou"]), 6), "gt_known_correct": bool(r["correct"])}
                            for r in in_kept_order(batch, result.records)]}

    def summarise(self, parts: Sequence[dict[str, Any]]) -> dict[str, SummaryValue]:
        rows = [r for part in parts for r in part["records"]]
        return {"gt_known_loc_accuracy": sum(r["gt_known_correct"] for r in rows) / len(rows)}
