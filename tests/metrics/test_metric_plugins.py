"""The localization metric plugins on a hand-made batch with known answers, and the registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from camkit.data.boxes import Annotation, Box, ClassMap
from camkit.errors import CamkitError
from camkit.metrics import NEEDS, BoxSettings, MapBatch, Metric, metric_classes, register_metric, select_metrics
from camkit.metrics.cls_error import ClassificationError
from camkit.metrics.gt_known import GTKnownAccuracy
from camkit.metrics.loc_error import LocalizationError
from camkit.metrics.map_boxes import Preprocessing
from camkit.metrics.maxboxacc import MaxBoxAcc
from camkit.metrics.pointing import PointingGame

CLASSES = ClassMap.from_names(["a", "b", "c"])


def blob(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((20, 20), np.float32)
    m[rows, cols] = 1.0
    return m


def hand_made(skipped: frozenset[str] = frozenset(), columns: tuple[str, ...] = ("top1", "top2", "true")) -> MapBatch:
    """3 images (20x20 maps of 40x40 originals: boxes double), classes a/b/c, map columns top1, top2, true.

    img0: right class, right place. img1: right class, map at the top left, box at the bottom right.
    img2: top-1 class a (wrong) with its map far away; top-2 is c (right) with the right box.
    """
    maps = np.zeros((3, 3, 20, 20), np.float32)
    maps[0, 0] = maps[0, 2] = blob(slice(1, 5), slice(1, 5))  # -> original box (3, 3, 10, 10)
    maps[1, 0] = maps[1, 2] = blob(slice(0, 5), slice(0, 5))  # -> (1, 1, 10, 10)
    maps[2, 0] = blob(slice(12, 20), slice(12, 20))  # -> (25, 25, 40, 40)
    maps[2, 1] = maps[2, 2] = blob(slice(0, 10), slice(0, 10))  # -> (1, 1, 20, 20)
    gt = {"img0": ("a", (3, 3, 10, 10)), "img1": ("b", (21, 21, 40, 40)), "img2": ("c", (1, 1, 20, 20))}
    annotations = {k: Annotation(f"{k}.png", 40, 40, ((label, Box(*box)),)) for k, (label, box) in gt.items()}
    return MapBatch("v", ("img0.png", "img1.png", "img2.png"), maps, columns,
                    np.array([[0, 1, 0], [1, 0, 1], [0, 2, 2]]), np.array([[0, 1, 2], [1, 0, 2], [0, 2, 1]]),
                    CLASSES, BoxSettings(threshold=0.5), annotations, Preprocessing((20, 20)), skipped)


def run(metric: type[Metric], *batches: MapBatch) -> tuple[list[dict], dict]:
    parts = [metric().evaluate_batch(b) for b in batches]
    return parts, metric().summarise(parts)


def test_localization_error_and_its_guesses() -> None:
    (part,), summary = run(LocalizationError, hand_made())
    assert [r["correct_top1"] for r in part["records"]] == [True, False, False]
    assert [r["correct_top5"] for r in part["records"]] == [True, False, True]  # img2 rescued by guess 2
    assert [r["top1_iou"] for r in part["records"]] == [1.0, 0.0, 0.0]  # img2's guess a has no box of a
    assert summary == {"top1_loc_error": pytest.approx(2 / 3), "top5_loc_error": pytest.approx(1 / 3),
                       "top5_boxes": "top-1 box"}  # no top3 column: guess 3 reuses the top-1 box
    assert part["guesses"]["img0.png"] == [[0, [3, 3, 10, 10]], [1, [1, 1, 40, 40]], [2, [3, 3, 10, 10]]]
    assert part["guesses"]["img2.png"][:2] == [[0, [25, 25, 40, 40]], [2, [1, 1, 20, 20]]]
    files = LocalizationError().files([part], "v", CLASSES)
    assert list(files) == [Path("submissions/v.txt")]
    assert files[Path("submissions/v.txt")].splitlines()[0] == "1 3 3 10 10 2 1 1 40 40 3 3 3 10 10"


def test_every_rank_with_a_column_gets_its_own_box() -> None:
    (part,), summary = run(LocalizationError, hand_made(columns=("top1", "top2", "top3")))
    assert summary["top5_boxes"] == "per class"
    assert part["guesses"]["img2.png"][2] == [1, [1, 1, 20, 20]]  # the third map (here the true one)


def test_gt_known_pointing_maxboxacc_and_classification_error() -> None:
    batch = hand_made()
    (gt,), gt_summary = run(GTKnownAccuracy, batch)
    assert [(r["gt_known_iou"], r["gt_known_correct"]) for r in gt["records"]] == [(1.0, True), (0.0, False),
                                                                                  (1.0, True)]
    assert gt_summary == {"gt_known_loc_accuracy": pytest.approx(2 / 3)}
    (point,), point_summary = run(PointingGame, batch)
    assert [r["pointing_hit"] for r in point["records"]] == [True, False, True]  # img1 peaks at (1, 1)
    assert point_summary == {"pointing_game": pytest.approx(2 / 3)}
    # threshold 0 boxes the whole image (IoU 64/1600 and 400/1600: wrong); from 0.01 img0 and img2 are right
    (mba,), mba_summary = run(MaxBoxAcc, batch)
    assert mba["correct"] == [0] + [2] * 99 and mba["n_images"] == 3
    assert mba_summary == {"max_box_acc": pytest.approx(2 / 3), "max_box_acc_threshold": 0.01}
    (cls,), cls_summary = run(ClassificationError, batch)
    assert cls == {"n_correct": 2, "n_images": 3} and cls_summary == {"top1_cls_error": pytest.approx(1 / 3)}


def test_parts_of_two_batches_merge_like_one() -> None:
    kept_one, kept_two = hand_made(frozenset({"img2"})), hand_made(frozenset({"img0", "img1"}))
    for metric in (LocalizationError, GTKnownAccuracy, PointingGame, MaxBoxAcc, ClassificationError):
        assert run(metric, kept_one, kept_two)[1] == run(metric, hand_made())[1]


def test_skipped_images_leave_the_records_but_not_the_guesses() -> None:
    batch = hand_made(frozenset({"img1"}))
    assert batch.kept == [0, 2]
    (part,), summary = run(LocalizationError, batch)
    assert len(part["records"]) == 2 and sorted(part["guesses"]) == ["img0.png", "img1.png", "img2.png"]
    assert summary["top1_loc_error"] == 0.5
    assert run(GTKnownAccuracy, batch)[1]["gt_known_loc_accuracy"] == 1.0
    assert MaxBoxAcc().evaluate_batch(hand_made(frozenset({"img0", "img1", "img2"})))["n_images"] == 0


def test_a_missing_true_column_is_a_clear_error() -> None:
    with pytest.raises(CamkitError, match="need column true"):
        GTKnownAccuracy().evaluate_batch(hand_made(columns=("top1", "top2", "top3")))


def test_registry_order_needs_and_directions() -> None:
    names = [cls.name for cls in metric_classes()]
    assert names[:5] == ["loc-error", "gt-known", "maxboxacc", "pointing", "cls-error"]
    assert [cls.name for cls in select_metrics(["maps", "boxes"])] == ["loc-error"]
    assert [cls.name for cls in select_metrics(["labels"])] == ["cls-error"]
    assert all(set(cls.needs) <= set(NEEDS) and cls.summary_keys for cls in metric_classes())
    assert (LocalizationError.higher_is_better, ClassificationError.higher_is_better) == (False, False)
    assert GTKnownAccuracy.higher_is_better and MaxBoxAcc.higher_is_better and PointingGame.higher_is_better


def test_register_refuses_unknown_needs_and_duplicates() -> None:
    class Odd(Metric):
        name = "odd"
        needs = ("maps", "gradients")

    with pytest.raises(ValueError, match="unknown: \\['gradients'\\]"):
        register_metric(Odd)

    class Again(Metric):
        name = "loc-error"

    with pytest.raises(ValueError, match="registered twice"):
        register_metric(Again)
    assert "odd" not in [cls.name for cls in metric_classes()]
