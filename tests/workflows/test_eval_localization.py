"""`camkit eval-localization`: hand-made batch files with known answers, and end to end on cluttered digits."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import digit_folder, invoke, ok

import camkit
from camkit.data.boxes import ClassMap, load_annotations, read_skip_list, read_voc_xml
from camkit.errors import CamkitError
from camkit.metrics import BoxSettings, MapBatch, Metric, metric_classes, register_metric, unregister_metric
from camkit.metrics.localization import iou_inclusive
from camkit.metrics.map_boxes import Preprocessing, box_from_map
from camkit.workflows.evaluate import GroundTruth, evaluate_folder
from camkit.workflows.records import Digests
from camkit.workflows.store import MapStore

XML = """<annotation><filename>{name}.png</filename><size><width>{w}</width><height>{h}</height><depth>3</depth></size>
<object><name>{label}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>
</object></annotation>"""


def blob(rows: slice, cols: slice, size: int = 20) -> np.ndarray:
    m = np.zeros((size, size), np.float16)
    m[rows, cols] = 1.0
    return m


@pytest.fixture
def hand_made(tmp_path) -> tuple[Path, dict]:
    """3 images (20x20 maps, originals 40x40, so boxes double), classes a/b/c, one batch file + run.json."""
    ann_dir = tmp_path / "xml"
    ann_dir.mkdir()
    gt = {"img0": ("a", (3, 3, 10, 10)), "img1": ("b", (21, 21, 40, 40)), "img2": ("c", (1, 1, 20, 20))}
    for name, (label, (x0, y0, x1, y1)) in gt.items():
        (ann_dir / f"{name}.xml").write_text(XML.format(name=name, w=40, h=40, label=label, x0=x0, y0=y0, x1=x1,
                                                        y1=y1))
    # columns top1, top2, true. img0: right class, right place. img1: right class, wrong place (map at top left).
    # img2: top-1 wrong class ("a"), top-2 right ("c") with a right box: rescued at top-5.
    maps = np.zeros((3, 3, 20, 20), np.float16)
    maps[0, 0] = maps[0, 2] = blob(slice(1, 5), slice(1, 5))  # -> original box (3, 3, 10, 10): IoU 1
    maps[1, 0] = maps[1, 2] = blob(slice(0, 5), slice(0, 5))  # -> (1, 1, 10, 10) vs (21, 21, 40, 40): IoU 0
    maps[2, 0] = blob(slice(12, 20), slice(12, 20))  # class a's map, far from the digit
    maps[2, 1] = maps[2, 2] = blob(slice(0, 10), slice(0, 10))  # -> (1, 1, 20, 20): IoU 1
    store = MapStore(tmp_path / "run")
    store.prepare({"n_images": 3, "batch_size": 3, "options": {}, "method": "gradcam",
                   "class_names": ["a", "b", "c"]}, Digests({"images": "sha1:x"})).begin()
    store.write(0, {"names": ["img0.png", "img1.png", "img2.png"], "indices": np.arange(3), "y_true": [0, 1, 2],
                    "top5": [[0, 1, 2], [1, 0, 2], [0, 2, 1]], "top5_probs": np.full((3, 3), 1 / 3),
                    "columns": ["top1", "top2", "true"], "targets": [[0, 1, 0], [1, 0, 1], [0, 2, 2]],
                    "scores": np.zeros((3, 3)), "variants": ["gradcam"], "maps_gradcam": maps,
                    "class_names": ["a", "b", "c"], "layer": "conv"})
    return store.folder, load_annotations(ann_dir)


DIGESTS = Digests({"annotations": "sha1:xml"})


def truth(annotations, skip=None) -> GroundTruth:
    return GroundTruth(annotations, ClassMap.from_names(["a", "b", "c"]), BoxSettings(threshold=0.5), skip)


def test_hand_made_batch_gives_the_known_scores(hand_made, tmp_path) -> None:
    run, annotations = hand_made
    result = evaluate_folder(run, tmp_path / "out", truth(annotations), DIGESTS)
    s = result["summary"]["gradcam"]
    assert s["n_images"] == 3 and s["top1_cls_error"] == pytest.approx(1 / 3)
    assert s["top1_loc_error"] == pytest.approx(2 / 3)  # only img0
    assert s["top5_loc_error"] == pytest.approx(1 / 3)  # img2 rescued by its second guess
    assert s["gt_known_loc_accuracy"] == pytest.approx(2 / 3)  # img0 and img2 (true map right), not img1
    assert s["pointing_game"] == pytest.approx(2 / 3)  # img1's peak (1, 1) is 20 px from its box: a miss
    assert s["max_box_acc"] == pytest.approx(2 / 3) and s["top5_boxes"] == "top-1 box"  # no top3..5 columns
    lines = (tmp_path / "out" / "submissions" / "gradcam.txt").read_text().splitlines()
    # ids from sorted names a, b, c = 1, 2, 3; guesses k >= 3 have no column: they reuse the top-1 box
    assert lines[0] == "1 3 3 10 10 2 1 1 40 40 3 3 3 10 10"  # top2's map is all zero: the whole image
    assert lines[2].split()[:10] == ["1", "25", "25", "40", "40", "3", "1", "1", "20", "20"]
    rows = list(csv.DictReader((tmp_path / "out" / "per_image.csv").open()))
    assert [r["correct_top1"] for r in rows] == ["True", "False", "False"]
    assert [r["correct_top5"] for r in rows] == ["True", "False", "True"]


def test_skip_list_leaves_images_out(hand_made, tmp_path) -> None:
    run, annotations = hand_made
    skip = tmp_path / "skip.txt"
    skip.write_text("img1\n")
    result = evaluate_folder(run, tmp_path / "out", truth(annotations, read_skip_list(skip)), DIGESTS)
    s = result["summary"]["gradcam"]
    assert (s["n_images"], s["n_skipped"]) == (2, 1)
    assert s["top1_loc_error"] == pytest.approx(1 / 2) and s["gt_known_loc_accuracy"] == 1.0


def test_maps_without_a_true_column_are_refused(hand_made, tmp_path) -> None:
    run, annotations = hand_made
    store = MapStore(run)
    arrays = store.read(0)
    arrays["columns"] = np.array(["top1", "top2", "top3"])
    store.write(0, arrays)
    with pytest.raises(CamkitError, match="columns top1 and true"):
        evaluate_folder(run, tmp_path / "out", truth(annotations), DIGESTS)


class MeanInBox(Metric):
    """A toy plugin: the mean of the top-1 map (at the original size) inside the image's ground-truth boxes."""

    name = "mean-in-box"
    needs = ("maps", "boxes")
    summary_keys = ("mean_in_box",)
    columns = ("mean_in_box",)
    table = (("mean_in_box", "in-box"),)

    def evaluate_batch(self, batch: MapBatch) -> dict:
        records = []
        for j in batch.kept:
            m = batch.original_map(j, batch.require("top1"))
            inside = np.zeros(m.shape, bool)
            for box in batch.annotation(j).boxes():
                inside[box.ymin - 1:box.ymax, box.xmin - 1:box.xmax] = True
            records.append({"mean_in_box": float(m[inside].mean())})
        return {"records": records}

    def summarise(self, parts) -> dict:
        values = [r["mean_in_box"] for part in parts for r in part["records"]]
        return {"mean_in_box": sum(values) / len(values)}


def test_a_registered_metric_reaches_the_csv_the_summary_and_the_table(hand_made, tmp_path) -> None:
    run, _ = hand_made
    out = tmp_path / "out"
    args = ("eval-localization", "--maps", run, "--annotations", tmp_path / "xml", "--threshold", "0.5", "--out", out,
            "--no-progress")
    register_metric(MeanInBox)
    try:
        result = ok(*args)
    finally:
        unregister_metric(MeanInBox.name)
    assert "mean-in-box" not in [cls.name for cls in metric_classes()]
    # img0's top-1 box (3..10)^2 holds the upsampled blob: (0.75 + 6 + 0.75)^2 / 64; img1's and img2's maps are 0
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert list(rows[0])[-2:] == ["pointing_hit", "mean_in_box"]
    assert [float(r["mean_in_box"]) for r in rows] == [56.25 / 64, 0.0, 0.0]
    summary = json.loads((out / "summary.json").read_text())["variants"]["gradcam"]
    assert summary["mean_in_box"] == pytest.approx(56.25 / 64 / 3)
    assert summary["top1_loc_error"] == pytest.approx(2 / 3)  # the other metrics as before
    header, line = result.output.splitlines()[1:3]
    assert header.split() == ["variant", "top-1", "loc", "err", "top-5", "loc", "err", "GT-known", "MaxBoxAcc",
                              "pointing", "in-box", "images"]
    assert line.split() == ["gradcam", "0.667", "0.333", "0.667", "0.667", "0.667", "0.293", "3"]
    refused = invoke(*args)  # the same folder, now without the toy metric: other settings
    assert refused.exit_code == 2 and "the settings changed (metrics)" in refused.output


# ------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def digits(tmp_path_factory, data_root) -> tuple[Path, Path, Path]:
    """12 cluttered-digit test images (classes 0, 1, 2), a small GAP CNN for them, and their XML folder."""
    base = tmp_path_factory.mktemp("evalloc")
    digit_folder(data_root, base / "images", ("0", "1", "2"), 4)
    keras.utils.set_random_seed(0)
    camkit.build_model("small-gap-cnn", (64, 64, 3), 3).save(base / "cnn.keras")
    return base / "images", base / "cnn.keras", Path(data_root) / "cluttered_digits" / "annotations" / "test"


def evaluate(digits, out: Path, *extra):
    images, model, xml = digits
    return ok("eval-localization", "--model-path", model, "--images", images, "--annotations", xml, "--batch-size",
              5, "--out", out, "--root", out.parent, "--no-progress", *extra)


def outputs(out: Path) -> dict[str, object]:
    """The summary (without the maps folder's path), the per-image CSV and the submission files."""
    files = [out / "per_image.csv", *sorted((out / "submissions").iterdir())]
    summary = json.loads((out / "summary.json").read_text())
    return {p.name: p.read_text() for p in files} | {"summary": {k: v for k, v in summary.items() if k != "maps"}}


@pytest.fixture(scope="module")
def gradcam_run(digits, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gc") / "out"
    result = evaluate(digits, out, "--method", "gradcam")
    assert "evaluated 3 of 3 batch(es)" in result.output and "gradcam" in result.output
    return out


def test_cli_scores_match_the_maps_and_the_xml(gradcam_run, digits) -> None:
    summary = json.loads((gradcam_run / "summary.json").read_text())["variants"]["gradcam"]
    rows = list(csv.DictReader((gradcam_run / "per_image.csv").open()))
    assert len(rows) == summary["n_images"] == 12
    assert summary["top1_loc_error"] == pytest.approx(1 - np.mean([r["correct_top1"] == "True" for r in rows]))
    assert summary["top5_loc_error"] == pytest.approx(1 - np.mean([r["correct_top5"] == "True" for r in rows]))
    assert summary["top5_loc_error"] <= summary["top1_loc_error"] and summary["top5_boxes"] == "per class"
    # independent: the GT-known box of the first image from its stored map, IoU against its XML box
    maps_dir = gradcam_run.parent / "plots" / "cnn" / "explain_gradcam"
    with np.load(maps_dir / "batches" / "batch_00000.npz") as f:
        name, true_map, columns = str(f["names"][0]), f["maps_gradcam"][0].astype(np.float32), list(f["columns"])
        true_map = true_map[columns.index("true")]
    assert columns == ["top1", "top2", "top3", "true"]  # top5 capped at the model's 3 classes
    ann = read_voc_xml(digits[2] / f"{Path(name).stem}.xml")
    box = box_from_map(true_map, Preprocessing((64, 64)).geometry(ann.height, ann.width), 0.15)
    first = next(r for r in rows if r["name"] == name)
    assert float(first["gt_known_iou"]) == pytest.approx(iou_inclusive(box, ann.boxes()[0]), abs=1e-6)
    lines = (gradcam_run / "submissions" / "gradcam.txt").read_text().splitlines()
    assert len(lines) == 12 and all(len(line.split()) == 15 for line in lines)  # 3 guesses of 5 numbers
    figures = sorted(p.name for p in (gradcam_run / "figures").iterdir())
    assert figures == [f"image_{i:05d}.png" for i in range(8)]  # the first 8 images, boxes drawn


def test_resume_and_merged_shards_give_the_same_outputs(gradcam_run, digits, tmp_path) -> None:
    expected = outputs(gradcam_run)
    out = tmp_path / "out"
    first = evaluate(digits, out, "--method", "gradcam", "--shard", "0/2")
    assert "not every batch is evaluated yet" in first.output and not (out / "summary.json").exists()
    second = evaluate(digits, out, "--method", "gradcam", "--shard", "1/2")
    assert "evaluated 1 of 1 batch(es)" in second.output
    assert outputs(out) == expected
    (out / "eval" / "batch_00001.json").unlink()
    again = evaluate(digits, out, "--method", "gradcam")
    assert "evaluated 1 of 3 batch(es)" in again.output and outputs(out) == expected


def test_augmented_maps_get_one_submission_per_aggregation(digits, tmp_path) -> None:
    images, model, xml = digits
    maps = tmp_path / "maps"
    ok("explain", "--model-path", model, "--images", images, "--method", "augmented-gradcam", "-o", "n_augment=3",
       "-o", "aggregate=all", "-o", "tol=0.01", "--target", "top1,true", "--save-dir", maps, "--n-figures", 1,
       "--no-progress")
    result = ok("eval-localization", "--maps", maps, "--annotations", xml, "--no-progress")
    out = maps / "localization"
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["variants"]) == ["single", "max", "avg", "sr"] and summary["threshold"] == 0.15
    assert sorted(p.name for p in (out / "submissions").iterdir()) == ["avg.txt", "max.txt", "single.txt", "sr.txt"]
    assert all(summary["variants"][v]["top5_boxes"] == "top-1 box" for v in summary["variants"])
    assert "sr" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--method", "gradcam", "--maps", "x"], "not both"), ([], "not neither"),
     (["--method", "gradcam", "--images", "IMAGES"], "--annotations: give the ground truth"),
     (["--method", "gradcam", "--threshold", "1.5", "--annotations", "XML", "--images", "IMAGES"], "--threshold"),
     (["--method", "gradcam", "--tolerance", "-1", "--annotations", "XML", "--images", "IMAGES"], "--tolerance")],
)
def test_bad_input_is_one_line_and_exit_2(digits, tmp_path, args, message) -> None:
    images, model, xml = digits
    args = [str(images) if a == "IMAGES" else str(xml) if a == "XML" else a for a in args]
    result = invoke("eval-localization", "--model-path", model, "--root", tmp_path, *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.count("\n") == 1


def test_changed_settings_on_the_same_output_are_refused(gradcam_run, digits) -> None:
    images, model, xml = digits
    result = invoke("eval-localization", "--model-path", model, "--images", images, "--annotations", xml,
                    "--batch-size", 5, "--out", gradcam_run, "--root", gradcam_run.parent, "--method", "gradcam",
                    "--threshold", "0.3")
    assert result.exit_code == 2 and "the settings changed (threshold: 0.15 -> 0.3)" in result.output


def test_flat_folder_with_wnid_annotations_like_ilsvrc_val(digits, tmp_path) -> None:
    """A flat folder (no class folders): the true class comes from the XML's WNID through --synsets/--clsloc."""
    images, model, xml = digits
    flat, ann_dir = tmp_path / "val", tmp_path / "xml"
    flat.mkdir()
    ann_dir.mkdir()
    wnids = ["n00000007", "n00000003", "n00000005"]  # model classes 0, 1, 2; CLS-LOC ids 7, 3, 5
    for path in sorted(images.rglob("*.png")):
        shutil.copy(path, flat / path.name)
        ann = read_voc_xml(xml / f"{path.stem}.xml")
        label, box = ann.objects[0]
        (ann_dir / f"{path.stem}.xml").write_text(XML.format(
            name=path.stem, w=ann.width, h=ann.height, label=wnids[int(label)], x0=box.xmin, y0=box.ymin, x1=box.xmax,
            y1=box.ymax))
    (tmp_path / "synsets.txt").write_text("".join(f"{w} digit {i}\n" for i, w in enumerate(wnids)))
    (tmp_path / "clsloc.txt").write_text("".join(f"{w} {i} digit_{i}\n" for w, i in zip(wnids, (7, 3, 5),
                                                                                           strict=True)))
    out = tmp_path / "out"
    ok("eval-localization", "--model-path", model, "--images", flat, "--annotations", ann_dir, "--method",
       "gradcam", "--synsets", tmp_path / "synsets.txt", "--clsloc", tmp_path / "clsloc.txt", "--batch-size", 6,
       "--out", out, "--root", tmp_path, "--no-progress")
    with np.load(tmp_path / "plots" / "cnn" / "explain_gradcam" / "batches" / "batch_00000.npz") as f:
        names, y_true = list(f["names"]), f["y_true"]
    assert names == sorted(p.name for p in images.rglob("*.png"))[:6]
    expected = [wnids.index(read_voc_xml(ann_dir / f"{Path(n).stem}.xml").objects[0][0]) for n in names]
    np.testing.assert_array_equal(y_true, expected)
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert {r["true_label"] for r in rows} == set(wnids) and len(rows) == 12
    first_ids = {line.split()[0] for line in (out / "submissions" / "gradcam.txt").read_text().splitlines()}
    assert first_ids <= {"7", "3", "5"}


@pytest.mark.parametrize(("tolerance", "expected"), [(28.0, 2 / 3), (29.0, 1.0)])
def test_pointing_tolerance(hand_made, tmp_path, tolerance: float, expected: float) -> None:
    """img1's peak, the original's pixel (1, 1), is √(20² + 20²) = 28.3 px from its box's corner (21, 21)."""
    run, annotations = hand_made
    settings = BoxSettings(threshold=0.5, tolerance=tolerance)
    result = evaluate_folder(run, tmp_path / "out", GroundTruth(annotations, ClassMap.from_names(["a", "b", "c"]),
                                                                settings), DIGESTS)
    assert result["summary"]["gradcam"]["pointing_game"] == pytest.approx(expected)


def test_tolerance_from_the_command_line_is_recorded_and_changes_a_rerun(gradcam_run, digits) -> None:
    images, model, xml = digits
    recorded = json.loads((gradcam_run / "eval" / "run.json").read_text())["settings"]
    assert recorded["pointing_tolerance"] == 15.0
    result = invoke("eval-localization", "--model-path", model, "--images", images, "--annotations", xml,
                    "--batch-size", 5, "--out", gradcam_run, "--root", gradcam_run.parent, "--method", "gradcam",
                    "--tolerance", "4")
    assert result.exit_code == 2 and "pointing_tolerance: 15.0 -> 4.0" in result.output, result.output
