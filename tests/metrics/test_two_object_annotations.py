"""Images annotated with two objects of different classes (the cluttered-digits pairs split): every localization
metric scores a class's map against the boxes of that class only, never against the other object's box."""

from __future__ import annotations

import numpy as np

from camkit.data.boxes import Annotation, Box, ClassMap
from camkit.metrics import BoxSettings, MapBatch, Metric
from camkit.metrics.gt_known import GTKnownAccuracy
from camkit.metrics.loc_error import LocalizationError
from camkit.metrics.map_boxes import Preprocessing
from camkit.metrics.maxboxacc import MaxBoxAcc
from camkit.metrics.pointing import PointingGame

CLASSES = ClassMap.from_names(["a", "b"])
BOX_A, BOX_B = Box(3, 3, 10, 10), Box(25, 25, 40, 40)  # in the 40x40 originals


def blob(rows: slice, cols: slice) -> np.ndarray:
    m = np.zeros((20, 20), np.float32)
    m[rows, cols] = 1.0
    return m


MAP_A, MAP_B = blob(slice(1, 5), slice(1, 5)), blob(slice(12, 20), slice(12, 20))  # -> BOX_A, BOX_B at 40x40


def pair(true_maps: tuple[np.ndarray, np.ndarray]) -> MapBatch:
    """One image stored twice, as ``pair_a`` (true class a) and ``pair_b`` (true class b), both annotated with
    both objects (the file's own class first). The model predicts a for both: column top1 is a's map."""
    maps = np.stack([np.stack([MAP_A, true_maps[0]]), np.stack([MAP_A, true_maps[1]])])
    annotations = {"pair_a": Annotation("pair_a.png", 40, 40, (("a", BOX_A), ("b", BOX_B))),
                   "pair_b": Annotation("pair_b.png", 40, 40, (("b", BOX_B), ("a", BOX_A)))}
    return MapBatch("v", ("pair_a.png", "pair_b.png"), maps, ("top1", "true"), np.array([[0, 0], [0, 1]]),
                    np.array([[0, 1], [0, 1]]), CLASSES, BoxSettings(threshold=0.5), annotations,
                    Preprocessing((20, 20)))


def records(metric: type[Metric], batch: MapBatch) -> list[dict]:
    return metric().evaluate_batch(batch)["records"]


def test_each_files_true_class_map_must_find_the_box_of_that_class() -> None:
    discriminative = pair((MAP_A, MAP_B))  # each class's map on its own digit
    assert [r["gt_known_correct"] for r in records(GTKnownAccuracy, discriminative)] == [True, True]
    assert [r["pointing_hit"] for r in records(PointingGame, discriminative)] == [True, True]
    assert MaxBoxAcc().evaluate_batch(discriminative)["correct"] == [0] + [2] * 99  # t = 0 boxes the whole image


def test_a_class_agnostic_map_is_right_for_one_file_of_the_pair_only() -> None:
    agnostic = pair((MAP_A, MAP_A))  # the same map whatever the class (as Eigen-CAM's)
    gt = records(GTKnownAccuracy, agnostic)
    assert [(r["gt_known_iou"], r["gt_known_correct"]) for r in gt] == [(1.0, True), (0.0, False)]
    # pair_b's map peaks at (3, 3): sqrt(22^2 + 22^2) = 31.1 px from b's box, more than the 15 px tolerance
    assert [r["pointing_hit"] for r in records(PointingGame, agnostic)] == [True, False]
    assert MaxBoxAcc().evaluate_batch(agnostic)["correct"] == [0] + [1] * 99
    swapped = pair((MAP_B, MAP_A))  # each file's map on the other class's digit: both wrong
    assert [r["gt_known_iou"] for r in records(GTKnownAccuracy, swapped)] == [0.0, 0.0]
    assert [r["pointing_hit"] for r in records(PointingGame, swapped)] == [False, False]


def test_a_localization_guess_is_scored_against_the_boxes_of_its_own_label() -> None:
    """ILSVRC: a guess is right when its label is one of the image's and its box finds an object of that label.
    Both files' top-1 guess is class a with a's box: right for both, since a is annotated in both; guessing a with
    b's box is wrong, even in the file whose true class is b."""
    loc = records(LocalizationError, pair((MAP_A, MAP_B)))
    assert [(r["top1_iou"], r["correct_top1"]) for r in loc] == [(1.0, True), (1.0, True)]
    wrong_box = pair((MAP_A, MAP_B))
    wrong_box.maps[:, 0] = MAP_B  # class a's guess now boxes the b
    loc = LocalizationError().evaluate_batch(wrong_box)
    assert [(r["top1_iou"], r["correct_top1"]) for r in loc["records"]] == [(0.0, False), (0.0, False)]
    assert loc["guesses"]["pair_b.png"] == [[0, [25, 25, 40, 40]], [1, [25, 25, 40, 40]]]
    # guess 2 is class b with the top-1 box (no column top2), b's box: right in both files, b is in both
    assert LocalizationError().summarise([loc])["top5_loc_error"] == 0.0
