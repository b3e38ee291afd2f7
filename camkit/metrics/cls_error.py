"""Classification top-1 error of the images scored: the model's top-1 class is not the true class."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from camkit.metrics.base import MapBatch, Metric, SummaryValue, register_metric


@register_metric
class ClassificationError(Metric):
    """Top-1 classification error (lower is better)."""

    name = "cls-error"
    needs = ("labels",)
    higher_is_better = False
    summary_keys = ("top1_cls_error",)

    def evaluate_batch(self, batch: MapBatch) -> dict[str, Any]:
        right = sum(batch.class_map.label(int(batch.top5[j, 0])) == batch.true_label(j) for j in batch.kept)
        return {"n_correct": int(right), "n_images": len(batch.kept)}

    def summarise(self, parts: Sequence[dict[str, Any]]) -> dict[str, SummaryValue]:
        return {"top1_cls_error": 1 - sum(p["n_correct"] for p in parts) / sum(p["n_images"] for p in parts)}
