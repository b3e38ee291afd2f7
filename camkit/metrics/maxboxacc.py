"""MaxBoxAcc (v1: IoU 0.5, largest component, thresholds 0.00..0.99) on the true class's map.

Each batch stores the number of correct images per threshold (:func:`camkit.metrics.localization.max_box_acc`),
so the best threshold is chosen over all batches together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from camkit.metrics.base import MapBatch, Metric, SummaryValue, register_metric
from camkit.metrics.gt_known import true_maps
from camkit.metrics.localization import max_box_acc

THRESHOLDS = np.arange(0, 1, 0.01)


@register_metric
class MaxBoxAcc(Metric):
    """MaxBoxAcc and its best threshold (higher is better)."""

    name = "maxboxacc"
    needs = ("maps", "boxes", "labels")
    summary_keys = ("max_box_acc", "max_box_acc_threshold")
    table = (("max_box_acc", "MaxBoxAcc"),)

    def evaluate_batch(self, batch: MapBatch) -> dict[str, Any]:
        if not batch.kept:
            return {"correct": [0] * len(THRESHOLDS), "thresholds": THRESHOLDS.tolist(), "n_images": 0}
        maps, labels = true_maps(batch)
        result = max_box_acc(maps, batch.annotations, batch.geometry, thresholds=THRESHOLDS, labels=labels)
        return {"correct": np.rint(result.accuracy[0] * result.n_images).astype(int).tolist(),
                "thresholds": result.thresholds.tolist(), "n_images": result.n_images}

    def summarise(self, parts: Sequence[dict[str, Any]]) -> dict[str, SummaryValue]:
        counts = np.sum([part["correct"] for part in parts], axis=0)
        best = int(np.argmax(counts))
        n = sum(part["n_images"] for part in parts)
        return {"max_box_acc": float(counts[best]) / n, "max_box_acc_threshold": parts[0]["thresholds"][best]}
