"""1-D localization: the localization metric plugins on hand-made series maps and intervals with known answers."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from camkit.data.boxes import ClassMap
from camkit.data.intervals import Interval, interval_annotations, interval_of
from camkit.metrics import BoxSettings
from camkit.metrics.localization import iou_inclusive
from camkit.metrics.map_boxes import box_from_map
from camkit.workflows.evaluate import evaluate_folder
from camkit.workflows.intervals import POINTING_TOLERANCE, SeriesTruth
from camkit.workflows.records import Digests
from camkit.workflows.store import MapStore

T = 20
TRUTH = {0: Interval("a", 5, 10), 1: Interval("b", 0, 10), 2: Interval("c", 10, 20)}


def runs(*spans: tuple[int, int, float]) -> np.ndarray:
    """A map of length T: ``value`` on each ``[start, end)``, 0 elsewhere."""
    m = np.zeros(T, np.float16)
    for start, end, value in spans:
        m[start:end] = value
    return m


def test_a_series_interval_is_the_largest_run_above_the_threshold() -> None:
    m = runs((2, 8, 0.375), (12, 16, 1.0)).astype(np.float32)
    assert interval_of(box_from_map(m[None], None, 0.3)) == (2, 8)  # the longer run, although the peak is elsewhere
    assert interval_of(box_from_map(m[None], None, 0.5)) == (12, 16)
    assert interval_of(box_from_map(m[None], None, 0.0)) == (0, T)  # every sample is >= 0
    assert interval_of(box_from_map(np.zeros((1, T)), None, 0.5)) == (0, T)  # an all-zero map: the whole series
    assert iou_inclusive(Interval("", 2, 8).box, Interval("", 0, 10).box) == pytest.approx(6 / 10)
    assert iou_inclusive(Interval("", 12, 16).box, Interval("", 0, 10).box) == 0.0


@pytest.fixture
def store(tmp_path):
    """Three series (classes a, b, c), columns top1 and true; the model gets series 1 wrong (top-1 a)."""
    maps = np.zeros((3, 2, T), np.float16)
    maps[0, 0] = maps[0, 1] = runs((5, 10, 1.0))  # exactly its interval
    maps[1, 0] = runs((0, 10, 1.0))  # class a's map over b's interval: the right place for the wrong class
    maps[1, 1] = runs((2, 8, 0.375), (12, 16, 1.0))  # peak outside; at <= 0.375 the longer run [2, 8): IoU 0.6
    maps[2, 0] = maps[2, 1] = runs((10, 14, 0.3), (14, 20, 1.0))  # [10, 20) up to 0.3, then [14, 20): IoU 0.6
    s = MapStore(tmp_path / "maps")
    s.prepare({"n_images": 3, "batch_size": 3, "options": {}, "method": "gradcam", "class_names": ["a", "b", "c"],
               "kind": "series"}, Digests({"series": "sha1:x"})).begin()
    s.write(0, {"names": [f"test_0000{i}" for i in range(3)], "indices": np.arange(3), "y_true": [0, 1, 2],
                "top5": [[0, 1, 2], [0, 1, 2], [2, 0, 1]], "top5_probs": np.full((3, 3), 1 / 3),
                "columns": ["top1", "true"], "targets": [[0, 0], [0, 1], [2, 2]], "scores": np.zeros((3, 2)),
                "variants": ["gradcam"], "maps_gradcam": maps, "class_names": ["a", "b", "c"], "layer": "conv"})
    return s.folder


def test_hand_made_series_give_the_known_scores(store, tmp_path) -> None:
    truth = SeriesTruth(interval_annotations(TRUTH, "test", (T, 1), "f"), ClassMap.from_names(["a", "b", "c"]),
                        BoxSettings(0.5, tolerance=POINTING_TOLERANCE))
    result = evaluate_folder(store, tmp_path / "out", truth, Digests({"annotations": "sha1:f"}))
    s = result["summary"]["gradcam"]
    assert s["gt_known_loc_accuracy"] == pytest.approx(2 / 3)  # 0: IoU 1; 1: [12, 16) at 0.5, IoU 0; 2: IoU 0.6
    assert s["pointing_game"] == pytest.approx(2 / 3)  # 1's argmax (12) lies outside [0, 10)
    assert s["max_box_acc"] == 1.0 and s["max_box_acc_threshold"] == 0.01  # every one right on 0.01..0.37
    assert s["top1_loc_error"] == pytest.approx(1 / 3) and s["top5_loc_error"] == 0.0  # 1: wrong class, then b
    assert s["top1_cls_error"] == pytest.approx(1 / 3) and s["n_images"] == 3
    maxbox = json.loads((tmp_path / "out" / "eval" / "batch_00000.json").read_text())["gradcam"]["metrics"]
    # threshold 0: every sample, IoU 5/20, 10/20, 10/20; 0.01..0.37: all three; 0.38..0.99: 1 misses
    assert maxbox["maxboxacc"]["correct"] == [2] + [3] * 37 + [2] * 62
    with open(tmp_path / "out" / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:7] == ["variant", "sample", "name", "true_label", "top1_label", "start", "end"]
    assert [(r["start"], r["end"]) for r in rows] == [("5", "10"), ("0", "10"), ("14", "20")]  # the top-1 maps'
    assert [r["gt_known_iou"] for r in rows] == ["1.0", "0.0", "0.6"]
    assert [r["pointing_hit"] for r in rows] == ["True", "False", "True"]
    assert json.loads((tmp_path / "out" / "eval" / "run.json").read_text())["settings"]["pointing_tolerance"] == 0


def test_a_tolerance_in_samples_rescues_a_near_miss(store, tmp_path) -> None:
    truth = SeriesTruth(interval_annotations(TRUTH, "test", (T, 1), "f"), ClassMap.from_names(["a", "b", "c"]),
                        BoxSettings(0.5, tolerance=3))
    s = evaluate_folder(store, tmp_path / "out", truth, Digests({}))["summary"]["gradcam"]
    assert s["pointing_game"] == 1.0  # sample 12 is 3 samples after the interval's last sample, 9
