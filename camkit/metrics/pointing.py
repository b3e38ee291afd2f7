"""Pointing game: a hit when the true class's map peaks within ``settings.tolerance`` pixels of its boxes.

:func:`camkit.metrics.localization.pointing_game` on each kept image's ``true`` map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from camkit.metrics.base import MapBatch, Metric, SummaryValue, register_metric
from camkit.metrics.gt_known import in_kept_order, true_maps
from camkit.metrics.localization import pointing_game


@register_metric
class PointingGame(Metric):
    """Pointing-game accuracy (higher is better)."""

    name = "pointing"
    needs = ("maps", "boxes", "labels")
    summary_keys = ("pointing_game",)
    columns = ("pointing_hit",)
    table = (("pointing_game", "pointing"),)

    def evaluate_batch(self, batch: MapBatch) -> dict[str, Any]:
        if not batch.kept:
            return {"records": []}
        maps, labels = true_maps(batch)
        result = pointing_game(maps, batch.annotations, batch.geometry, tolerance=batch.settings.tolerance,
                               labels=labels)
        return {"records": [{"pointing_hit": bool(r["hit"])} for r in in_kept_order(batch, result.records)]}

    def summarise(self, parts: Sequence[dict[str, Any]]) -> dict[str, SummaryValue]:
        rows = [r for part in parts for r in part["records"]]
        return {"pointing_game": sum(r["pointing_hit"] for r in rows) / len(rows)}
