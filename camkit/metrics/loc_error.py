"""ILSVRC CLS-LOC top-1 / top-5 localization error, and the submission file of the guesses.

Guess ``k`` pairs the model's ``k``-th class (``top5``) with the box of that class's map when the run has map
column ``topk``, else with the top-1 map's box (said in the summary as ``top5_boxes``); the error is
:func:`camkit.metrics.localization.localization_errors` (a guess is right when its label has a ground-truth box
with inclusive IoU ≥ ``settings.iou``). Skipped images still get guesses in the submission.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from camkit.data.boxes import ClassMap, image_id
from camkit.metrics.base import MapBatch, Metric, SummaryValue, register_metric
from camkit.metrics.localization import localization_errors, submission_lines


def guesses(batch: MapBatch) -> dict[str, list[list[Any]]]:
    """Every image's ``[class, [xmin, ymin, xmax, ymax]]`` guesses in rank order (JSON-able)."""
    top1 = batch.require("top1")
    cols = [batch.column(f"top{rank}") for rank in range(1, batch.top5.shape[1] + 1)]
    out = {}
    for j, name in enumerate(batch.names):
        out[name] = [[int(cls), list(batch.box(j, top1 if col is None else col).as_tuple())]
                     for cls, col in zip(batch.top5[j], cols, strict=True)]
    return out


@register_metric
class LocalizationError(Metric):
    """Top-1 and top-5 localization error (lower is better)."""

    name = "loc-error"
    needs = ("maps", "boxes")
    higher_is_better = False
    summary_keys = ("top1_loc_error", "top5_loc_error", "top5_boxes")
    columns = ("top1_iou", "correct_top1", "correct_top5")
    table = (("top1_loc_error", "top-1 loc err"), ("top5_loc_error", "top-5 loc err"))

    def evaluate_batch(self, batch: MapBatch) -> dict[str, Any]:
        per_image = guesses(batch)
        kept = {batch.names[j]: [(c, tuple(b)) for c, b in per_image[batch.names[j]]] for j in batch.kept}
        records = []
        if kept:
            loc = localization_errors(kept, batch.annotations, k=(1, 5), iou=batch.settings.iou,
                                      class_map=batch.class_map)
            by_id = {r["image"]: r for r in loc.records}
            records = [{"top1_iou": round(float(r["top1_iou"]), 6), "correct_top1": bool(r["correct_top1"]),
                        "correct_top5": bool(r["correct_top5"])}
                       for r in (by_id[image_id(batch.names[j])] for j in batch.kept)]
        per_class = all(batch.column(f"top{r}") is not None for r in range(1, batch.top5.shape[1] + 1))
        return {"records": records, "guesses": per_image, "top5_boxes": "per class" if per_class else "top-1 box"}

    def summarise(self, parts: Sequence[dict[str, Any]]) -> dict[str, SummaryValue]:
        rows = [r for part in parts for r in part["records"]]
        return {"top1_loc_error": 1 - sum(r["correct_top1"] for r in rows) / len(rows),
                "top5_loc_error": 1 - sum(r["correct_top5"] for r in rows) / len(rows),
                "top5_boxes": parts[0]["top5_boxes"]}

    def files(self, parts: Sequence[dict[str, Any]], variant: str, class_map: ClassMap) -> dict[Path, str]:
        """``submissions/<variant>.txt``: the ILSVRC CLS-LOC submission of every image's guesses."""
        per_image = {n: [(c, b) for c, b in g] for part in parts for n, g in part["guesses"].items()}
        lines = submission_lines(sorted(per_image), per_image, class_map)
        return {Path("submissions") / f"{variant}.txt": "\n".join(lines) + "\n"}
