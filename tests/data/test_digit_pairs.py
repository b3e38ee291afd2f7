"""The cluttered-digits pairs split and the digit sizes in CAM cells: two digits of different classes whose boxes
never overlap, each image stored under both class folders with both objects, scored per class end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import ok

import camkit
from camkit.data.boxes import load_annotations
from camkit.data.cluttered_digits import CLASSES
from camkit.metrics.localization import iou_inclusive

SEED, N_PAIRS, SIZE = 5, 45, 48
GAP = 3  # one cell of the 16x16 grid at 48x48


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pairs") / "cd"
    ok("make-benchmark", "cluttered-digits", "--seed", SEED, "--out", out, "--n-train", 20, "--n-test", 20,
       "--n-pairs", N_PAIRS, "--size", SIZE, "--no-progress")
    return out


def pair_files(root: Path) -> dict[str, list[Path]]:
    """Pair stem (``pairs_0007``) -> its files."""
    files: dict[str, list[Path]] = {}
    for path in sorted((root / "pairs").glob("*/*.png")):
        files.setdefault(path.stem.rsplit("_", 1)[0], []).append(path)
    return files


def test_each_pair_is_two_files_with_identical_bytes_both_objects_and_different_classes(bench: Path) -> None:
    annotations = load_annotations(bench / "annotations" / "pairs")
    pairs = pair_files(bench)
    assert sorted(pairs) == [f"pairs_{i:04d}" for i in range(N_PAIRS)]
    seen = set()
    for stem, (first, second) in pairs.items():
        assert first.read_bytes() == second.read_bytes()  # one image, stored under both of its class folders
        a, b = annotations[first.stem], annotations[second.stem]
        assert [label for label, _ in a.objects] == [first.parent.name, second.parent.name]  # own class first
        assert a.objects == b.objects[::-1]  # the same two objects
        assert first.parent.name != second.parent.name and first.stem == f"{stem}_{first.parent.name}"
        seen.add(frozenset((first.parent.name, second.parent.name)))
        (_, box_a), (_, box_b) = a.objects
        assert iou_inclusive(box_a, box_b) == 0.0
        # independent of the generator's own test: the boxes are at least one grid cell apart along x or y
        apart_x = max(box_b.xmin - box_a.xmax, box_a.xmin - box_b.xmax) - 1
        apart_y = max(box_b.ymin - box_a.ymax, box_a.ymin - box_b.ymax) - 1
        assert max(apart_x, apart_y) >= GAP, (stem, box_a, box_b)
    assert len(seen) == 45  # 45 pairs: every pair of classes once


def test_the_pairs_csv_equals_the_xml_folder(bench: Path) -> None:
    from_csv = load_annotations(bench / "annotations" / "pairs.csv")
    from_xml = load_annotations(bench / "annotations" / "pairs")
    assert sorted(from_csv) == sorted(from_xml) and len(from_xml) == 2 * N_PAIRS
    for key, ann in from_xml.items():  # the CSV names the image by its path, the XML by its file name
        row = from_csv[key]
        assert Path(row.filename).name == ann.filename
        assert (row.width, row.height, row.objects) == (ann.width, ann.height, ann.objects)


def boxes_by_split(root: Path) -> dict[str, list[tuple[int, int]]]:
    """(height, width) of every planted digit, once (a pair's objects from its first file only)."""
    out: dict[str, list[tuple[int, int]]] = {}
    for split in ("train", "test", "pairs"):
        rows = list(csv.DictReader((root / "annotations" / f"{split}.csv").open()))
        done, sides = set(), []
        for row in rows:
            pair = Path(row["image"]).stem.rsplit("_", 1)[0] if split == "pairs" else row["image"]
            if (pair, row["label"]) in done:
                continue
            done.add((pair, row["label"]))
            sides.append((int(row["ymax"]) - int(row["ymin"]) + 1, int(row["xmax"]) - int(row["xmin"]) + 1))
        out[split] = sides
    return out


def test_digit_sizes_in_cells_are_what_the_readme_and_benchmark_json_say(bench: Path) -> None:
    info = json.loads((bench / "benchmark.json").read_text())
    readme = (bench / "README.md").read_text()
    cell = SIZE / 16
    sides = boxes_by_split(bench)
    assert [len(sides[s]) for s in ("train", "test", "pairs")] == [20, 20, 2 * N_PAIRS]
    for split, hw in sides.items():
        cells = np.array(hw) / cell
        assert cells[:, 0].max() <= 10  # a box is at most the pasted height: 10 cells
        within = float(np.mean(((cells >= 3) & (cells <= 10)).all(axis=1)))
        assert info["object_cells"][split]["within_target"] == round(within, 4)
        for k, axis in enumerate(("height", "width")):
            q = np.round(np.percentile(cells[:, k], [0, 5, 50, 95, 100]), 2)
            assert list(info["object_cells"][split][axis].values()) == q.tolist()
            row = f"| {split} | {axis} | {' | '.join(f'{v:g}' for v in q)} | {within:.1%} |"
            assert row in readme, row
    assert "16×16 grid\nover the image (3 px a cell here): a digit is pasted 15..30 px high (5..10 cells)" in readme


@pytest.fixture(scope="module")
def eigencam_run(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """eval-localization with Eigen-CAM (class-agnostic) of an untrained small GAP CNN on the pairs split."""
    base = tmp_path_factory.mktemp("pairs_eval")
    keras.utils.set_random_seed(0)
    camkit.build_model("small-gap-cnn", (SIZE, SIZE, 3), 10, filters=[8, 16, 16]).save(base / "cnn.keras")
    out = base / "out"
    ok("eval-localization", "--model-path", base / "cnn.keras", "--images", bench / "pairs", "--annotations",
       bench / "annotations" / "pairs", "--method", "eigencam", "--target", "top1,true", "--out", out,
       "--root", base, "--n-figures", 0, "--no-progress")
    return out


def test_a_class_agnostic_map_finds_at_most_one_digit_of_each_pair(bench: Path, eigencam_run: Path) -> None:
    rows = {Path(r["name"]).stem: r for r in csv.DictReader((eigencam_run / "per_image.csv").open())}
    assert len(rows) == 2 * N_PAIRS
    for (first, second) in pair_files(bench).values():
        a, b = rows[first.stem], rows[second.stem]
        assert (a["true_label"], b["true_label"]) == (first.parent.name, second.parent.name)  # the folder's class
        assert [a[k] for k in ("xmin", "ymin", "xmax", "ymax")] == [b[k] for k in ("xmin", "ymin", "xmax", "ymax")]
        assert not (a["gt_known_correct"] == b["gt_known_correct"] == "True")
    summary = json.loads((eigencam_run / "summary.json").read_text())["variants"]["eigencam"]
    assert summary["gt_known_loc_accuracy"] <= 0.5 and summary["n_images"] == 2 * N_PAIRS


def test_the_true_column_explains_each_files_folder_class(bench: Path, eigencam_run: Path) -> None:
    maps = eigencam_run.parent / "plots" / "cnn" / "explain_eigencam" / "batches"
    names, targets, columns = [], [], None
    for path in sorted(maps.glob("batch_*.npz")):
        with np.load(path) as f:
            names += [str(n) for n in f["names"]]
            targets += f["targets"].tolist()
            columns = [str(c) for c in f["columns"]]
    true = columns.index("true")
    assert [CLASSES[t[true]] for t in targets] == [Path(n).parent.name for n in names]

