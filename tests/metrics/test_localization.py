"""Tests for camkit.metrics.localization: ILSVRC protocol, boxes from maps, MaxBoxAcc, pointing game."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.transform import resize

from camkit.data.boxes import Annotation, Box, ClassMap, SkipList
from camkit.errors import CamkitError
from camkit.metrics.localization import (
    gt_known_accuracy,
    iou_inclusive,
    localization_errors,
    max_box_acc,
    pointing_game,
    submission_lines,
    write_submission,
)
from camkit.metrics.map_boxes import (
    CAM_THRESHOLD,
    GRADCAM_THRESHOLD,
    Geometry,
    Preprocessing,
    box_from_map,
    boxes_from_map,
    undo_geometry,
)

CROP = "resize_shorter_centre_crop"


def _ann(*objects: tuple[str, tuple[int, int, int, int]], size: tuple[int, int] = (100, 100)) -> Annotation:
    return Annotation("x", size[0], size[1], tuple((label, Box(*box)) for label, box in objects))


# --- inclusive IoU and the ILSVRC top-k error ------------------------------------------------------------

def test_inclusive_iou_values() -> None:
    assert iou_inclusive((1, 1, 10, 10), (1, 1, 10, 10)) == 1.0
    assert iou_inclusive((1, 1, 10, 10), (1, 1, 10, 20)) == 0.5  # 100 / 200: exclusive widths would give 81/171
    assert iou_inclusive((1, 1, 10, 10), (1, 1, 10, 21)) == 100 / 210
    assert iou_inclusive((1, 1, 10, 10), (10, 10, 20, 20)) == 1 / (100 + 121 - 1)  # one shared pixel
    assert iou_inclusive((1, 1, 10, 10), (11, 1, 20, 10)) == 0.0  # touching, no overlap
    assert iou_inclusive(Box(3, 3, 3, 3), Box(3, 3, 3, 3)) == 1.0  # a single pixel has area 1


def test_iou_exactly_half_is_correct_one_pixel_less_is_wrong() -> None:
    anns = {"a": _ann(("n1", (1, 1, 10, 10))), "b": _ann(("n1", (1, 1, 10, 10)))}
    preds = {"a": [("n1", (1, 1, 10, 20))],  # IoU 100/200 = 0.5 -> correct
             "b": [("n1", (1, 1, 10, 21))]}  # IoU 100/210 < 0.5 -> wrong
    result = localization_errors(preds, anns, k=1)
    assert [r["correct_top1"] for r in result.records] == [True, False]
    assert result.errors == {1: 0.5}


def test_any_gt_box_of_the_label_counts_and_labels_must_match() -> None:
    anns = {"a": _ann(("n1", (1, 1, 10, 10)), ("n1", (50, 50, 69, 69)), ("n2", (80, 80, 90, 90)))}
    second = localization_errors({"a": [("n1", (50, 50, 70, 70))]}, anns, k=1)  # IoU 400/441 with the 2nd box
    assert second.errors == {1: 0.0} and second.records[0]["top1_iou"] == pytest.approx(400 / 441)
    wrong_label = localization_errors({"a": [("n1", (80, 80, 90, 90))]}, anns, k=1)  # n2's exact box, label n1
    assert wrong_label.errors == {1: 1.0}
    right_label_wrong_box = localization_errors({"a": [("n2", (1, 1, 10, 10))]}, anns, k=1)
    assert right_label_wrong_box.errors == {1: 1.0}


def test_top5_rescues_a_top1_miss() -> None:
    anns = {"a": _ann(("n1", (11, 11, 40, 40))), "b": _ann(("n2", (1, 1, 50, 50)))}
    preds = {"a": [("n9", (11, 11, 40, 40)), ("n1", (60, 60, 90, 90)), ("n1", (12, 12, 40, 40))],  # 3rd correct
             "b": [("n3", (1, 1, 50, 50)), ("n4", (1, 1, 50, 50))]}  # never correct
    result = localization_errors(preds, anns)
    assert result.errors == {1: 1.0, 5: 0.5}
    assert [r["first_correct_rank"] for r in result.records] == [3, 0]
    assert localization_errors(preds, anns, k=(1, 2, 3)).errors == {1: 1.0, 2: 1.0, 3: 0.5}


def test_skip_list_leaves_the_denominator() -> None:
    anns = {f"ILSVRC2012_val_{i:08d}": _ann(("n1", (1, 1, 10, 10))) for i in range(1, 5)}
    good, bad = [("n1", (1, 1, 10, 10))], [("n2", (1, 1, 10, 10))]
    preds = {"ILSVRC2012_val_00000001.JPEG": good, "ILSVRC2012_val_00000002.JPEG": bad,
             "ILSVRC2012_val_00000003.JPEG": good, "ILSVRC2012_val_00000004.JPEG": good}
    assert localization_errors(preds, anns, k=1).errors == {1: 0.25}
    by_index = localization_errors(preds, anns, k=1, skip=SkipList(indices=frozenset({2})))
    assert by_index.errors == {1: 0.0} and (by_index.n_images, by_index.n_skipped) == (3, 1)
    by_id = localization_errors(preds, anns, k=1, skip=["ILSVRC2012_val_00000001"])
    assert by_id.errors == {1: pytest.approx(1 / 3)}


def test_class_indices_need_a_class_map_and_unknown_images_fail() -> None:
    anns = {"a": _ann(("n01440764", (1, 1, 10, 10)))}
    preds = {"a": [(0, (1, 1, 10, 10))]}
    assert localization_errors(preds, anns, k=1, class_map=ClassMap.imagenet()).errors == {1: 0.0}
    with pytest.raises(CamkitError, match="class_map"):
        localization_errors(preds, anns, k=1)
    with pytest.raises(CamkitError, match="no annotation for image 'zzz'"):
        localization_errors({"zzz.JPEG": preds["a"]}, anns)


# --- submission files --------------------------------------------------------------------------------------

def test_submission_lines_use_clsloc_ids_sorted_by_file_name(tmp_path: Path) -> None:
    cm = ClassMap.imagenet()
    names = ["ILSVRC2012_val_00000002.JPEG", "ILSVRC2012_val_00000001.JPEG"]
    guesses = {"ILSVRC2012_val_00000002.JPEG": [(278, Box(5, 6, 7, 8))],  # Keras 278 = kit fox = CLS-LOC 1
               "ILSVRC2012_val_00000001.JPEG": [(0, Box(1, 2, 3, 4)), ("n01443537", (10, 20, 30, 40))]}
    expected = ["449 1 2 3 4 450 10 20 30 40", "1 5 6 7 8"]
    assert submission_lines(names, guesses, cm) == expected
    assert submission_lines(names, [guesses[n] for n in names], cm) == expected  # aligned list
    path = write_submission(tmp_path / "sub" / "loc.txt", names, guesses, cm)
    assert path.read_text() == "449 1 2 3 4 450 10 20 30 40\n1 5 6 7 8\n"
    with pytest.raises(CamkitError, match="6 guesses"):
        submission_lines(["a"], {"a": [(0, (1, 1, 2, 2))] * 6}, cm)
    with pytest.raises(CamkitError, match="0 guesses for 'b'"):
        submission_lines(["a", "b"], {"a": [(0, (1, 1, 2, 2))]}, cm)


# --- boxes from maps -----------------------------------------------------------------------------------------

def test_largest_component_and_eight_connectivity() -> None:
    m = np.zeros((20, 30))
    m[2:5, 2:5] = 1.0  # 9 pixels, the peak
    m[10:16, 20:26] = 0.5  # 36 pixels: larger
    assert box_from_map(m) == Box(21, 11, 26, 16)
    assert boxes_from_map(m) == [Box(3, 3, 5, 5), Box(21, 11, 26, 16)]
    diag = np.zeros((10, 10))
    diag[0:3, 0:3] = 1.0
    diag[3, 3] = 1.0  # touches (2, 2) only by its corner
    diag[4:6, 4:8] = 1.0
    assert box_from_map(diag) == Box(1, 1, 8, 6)  # one 8-connected component
    diag[3, 3] = 0.0
    assert box_from_map(diag) == Box(1, 1, 3, 3)  # two blobs: 9 vs 8 pixels


def test_threshold_is_a_fraction_of_the_maximum() -> None:
    m = np.zeros((10, 10))
    m[4:6, 4:6] = 2.0
    m[2:8, 2:8] = 0.3  # a 6x6 halo at 0.3 around a 2x2 core at 2.3
    m[4:6, 4:6] = 2.3
    assert box_from_map(m, threshold=0.1) == Box(3, 3, 8, 8)
    assert box_from_map(m * 7.0, threshold=0.1) == Box(3, 3, 8, 8)  # scale-free
    assert box_from_map(m, threshold=CAM_THRESHOLD) == Box(5, 5, 6, 6)
    assert box_from_map(m, threshold=GRADCAM_THRESHOLD) == Box(5, 5, 6, 6)  # 0.3 < 0.15 * 2.3 = 0.345
    assert box_from_map(m, threshold=0.13) == Box(3, 3, 8, 8)  # 0.3 >= 0.299
    assert box_from_map(m, threshold=0.0) == Box(1, 1, 10, 10)  # every pixel >= 0
    edge = np.zeros((5, 5))
    edge[0, 0], edge[0, 1:4] = 1.0, 0.25
    assert box_from_map(edge, threshold=0.25) == Box(1, 1, 4, 1)  # pixels equal to threshold x max are kept
    with pytest.raises(ValueError, match="threshold"):
        box_from_map(m, threshold=15)


def test_all_zero_map_falls_back_to_the_whole_image() -> None:
    assert box_from_map(np.zeros((14, 14)), Geometry(375, 500, 224, CROP)) == Box(1, 1, 500, 375)
    assert box_from_map(np.zeros((7, 9))) == Box(1, 1, 9, 7)


def test_undo_plain_resize_matches_skimage_resize() -> None:
    m = np.random.default_rng(0).random((7, 9))
    for size in ((50, 31), (5, 4)):
        expected = resize(m, size, order=1, mode="edge", anti_aliasing=False)
        np.testing.assert_allclose(undo_geometry(m, Geometry(*size, (14, 18))), expected, atol=1e-12)


# Original (height, width), the crop layout, the box of a full-crop map and where the hot centre pixel lands.
# 375 wide x 500 tall: shorter side 375 -> 224, height int(224 * 500 / 375) = 298, crop top round(74 / 2) = 37.
# The crop covers rows [37, 261) x 500/298 = [62.08, 437.92): centres of rows 62..437 (0-based) -> 63..438.
# 333 wide x 251 tall: width int(224 * 333 / 251) = 297, left round(36.5) = 36 (banker's rounding, as Python
# and torchvision): columns [36, 260) x 333/297 = [40.36, 291.52) -> 0-based 40..291 -> 41..292; the crop
# centre 148 x 333/297 = 165.94 lies 0.56 px left of the image centre 166.5 (the crop is off by half a pixel).
CROP_CASES = [
    ((500, 375), (298, 224, 37, 0), Box(1, 63, 375, 438), (249.5, 187.0)),
    ((375, 500), (224, 298, 0, 37), Box(63, 1, 438, 375), (187.0, 249.5)),
    ((251, 333), (224, 297, 0, 36), Box(41, 1, 292, 251), (125.0, 148 * 333 / 297 - 0.5)),
    ((333, 251), (297, 224, 36, 0), Box(1, 41, 251, 292), (148 * 333 / 297 - 0.5, 125.0)),
]


@pytest.mark.parametrize(("size", "layout", "crop_box", "centre"), CROP_CASES)
def test_undo_centre_crop_portrait_and_landscape(size: tuple[int, int], layout: tuple[int, int, int, int],
                                                 crop_box: Box, centre: tuple[float, float]) -> None:
    geometry = Geometry(*size, 224, CROP)
    assert geometry.layout() == layout
    assert box_from_map(np.ones((7, 7)), geometry) == crop_box  # full-crop map -> exactly the cropped region
    assert box_from_map(np.ones((224, 224)), geometry, threshold=1.0) == crop_box
    hot = np.zeros((7, 7))
    hot[3, 3] = 1.0  # the centre cell of a 7x7 CAM grid
    back = undo_geometry(hot, geometry)
    assert back.shape == size
    rows, cols = np.indices(size)
    centroid = ((back * rows).sum() / back.sum(), (back * cols).sum() / back.sum())  # 0-based pixel indices
    assert centroid == pytest.approx(centre, abs=0.02)
    peak = np.argwhere(back == back.max())
    assert np.abs(peak - np.array(centre)).max() <= 0.5 + 1e-9  # the nearest pixel(s) to the crop centre
    if 500 in size:  # the excess 74 is even: a symmetric crop, the hot cell comes back at the image centre
        assert ((size[0] - 1) / 2, (size[1] - 1) / 2) == centre


def test_classic_256_224_crop() -> None:
    geometry = Preprocessing(224, CROP, shorter=256).geometry(256, 256)
    assert geometry.layout() == (256, 256, 16, 16)
    assert box_from_map(np.ones((14, 14)), geometry) == Box(17, 17, 240, 240)  # the 224 centre pixels


def test_geometry_errors() -> None:
    with pytest.raises(CamkitError, match="mode"):
        Geometry(10, 10, 5, "crop")
    with pytest.raises(CamkitError, match="square"):
        Geometry(10, 10, (5, 6), CROP)
    with pytest.raises(CamkitError, match="shorter"):
        Geometry(10, 10, 5, "resize", shorter=8)


# --- GT-known accuracy, MaxBoxAcc, pointing game ------------------------------------------------------------

def _core_halo(halo: float) -> np.ndarray:
    m = np.zeros((40, 40))
    m[5:35, 5:35] = halo  # 30x30 halo ...
    m[15:25, 15:25] = 1.0  # ... around a 10x10 core
    return m


def test_gt_known_accuracy_with_preprocessing() -> None:
    anns = {"a": _ann(("n1", (16, 16, 25, 25)), size=(40, 40)), "b": _ann(("n1", (6, 6, 35, 35)), size=(40, 40))}
    maps = {"a": _core_halo(0.1), "b": _core_halo(0.1)}
    result = gt_known_accuracy(maps, anns, Preprocessing(40))
    assert result.value == 0.5 and [r["correct"] for r in result.records] == [True, False]
    assert gt_known_accuracy(maps, anns, threshold=0.05).value == 0.5  # now b is right and a is wrong
    assert [r["iou"] for r in gt_known_accuracy(maps, anns, threshold=0.05).records] == [100 / 900, 1.0]


def test_max_box_acc_best_threshold_is_known() -> None:
    b = np.zeros((40, 40))
    b[2:38, 2:38] = 0.305  # the object: 36x36 at 0.305 ...
    b[18:22, 18:22] = 1.0  # ... with a small peak
    anns = {"a": _ann(("n1", (16, 16, 25, 25)), size=(40, 40)), "b": _ann(("n1", (3, 3, 38, 38)), size=(40, 40)),
            "c": _ann(("n1", (16, 16, 25, 25)), size=(40, 40))}
    maps = {"a": _core_halo(0.505), "b": b, "c": _core_halo(0.605)}
    # a is right for t >= 0.51, c for t >= 0.61, b for t <= 0.30: at most 2 of 3, first reached at 0.61
    result = max_box_acc(maps, anns)
    assert result.value == pytest.approx(2 / 3) and result.ious == (0.5,)
    assert result.best_thresholds[0.5] == pytest.approx(0.61)
    acc = result.accuracy[0]
    assert acc[30] == pytest.approx(1 / 3) and acc[31] == 0.0 and acc[51] == pytest.approx(1 / 3)
    assert max_box_acc(maps, anns, thresholds=[0.2, 0.7]).value == pytest.approx(2 / 3)


def test_max_box_acc_v2_uses_every_component_and_three_ious() -> None:
    m = np.zeros((40, 40))
    m[0:20, 0:20] = 1.0  # the large blob
    m[30:35, 30:35] = 1.0  # the object
    anns = {"a": _ann(("n1", (31, 31, 35, 35)), size=(40, 40))}
    assert max_box_acc({"a": m}, anns).value == 0.0
    v2 = max_box_acc({"a": m}, anns, version=2)
    assert v2.value == 1.0 and v2.ious == (0.3, 0.5, 0.7)
    assert max_box_acc({"a": m}, anns, version=2, iou=0.9).value == 1.0


def test_pointing_game_hit_miss_and_tolerance() -> None:
    anns = {"a": _ann(("n1", (1, 1, 30, 30)), ("n2", (45, 5, 50, 10)), size=(50, 50))}
    m = np.zeros((50, 50))
    m[10, 40] = 1.0  # pixel (x, y) = (41, 11): 11 px right of n1's box, sqrt(4^2 + 1^2) from n2's
    n1 = {"a": "n1"}
    assert pointing_game({"a": m}, anns, labels=n1).value == 1.0
    assert pointing_game({"a": m}, anns, labels=n1, tolerance=10).value == 0.0
    assert pointing_game({"a": m}, anns, tolerance=10).value == 1.0  # no labels: any box of the image
    m2 = np.zeros((50, 50))
    m2[40, 40] = 1.0  # (41, 41): sqrt(11^2 + 11^2) = 15.56 px from n1's corner
    assert pointing_game({"a": m2}, anns, labels=n1).value == 0.0
    assert pointing_game({"a": m2}, anns, labels=n1, tolerance=16).value == 1.0
    assert pointing_game({"a": m}, anns, labels={"a": "n2"}).records[0]["distance"] == pytest.approx(17 ** 0.5)
    assert pointing_game({"a": m}, anns, labels={"a": "n2"}, tolerance=4).value == 0.0
    assert pointing_game({"a": m}, anns, labels={"a": "n2"}, tolerance=4.2).value == 1.0
    assert pointing_game({"a": np.zeros((50, 50))}, anns).value == 0.0  # an all-zero map is a miss
    with pytest.raises(CamkitError, match="no ground-truth box labelled 'n3'"):
        pointing_game({"a": m}, anns, labels={"a": "n3"})
