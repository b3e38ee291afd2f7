"""`camkit make-benchmark cluttered-digits`, the shipped data/cluttered_digits, and the small-gap-cnn model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke
from PIL import Image

from camkit.data.benchmark import make_benchmark
from camkit.data.boxes import Box, read_voc_xml
from camkit.data.cluttered_digits import (
    CLASSES,
    plan_split,
    sample_rng,
    source_digits,
    split_digits,
)
from camkit.data.digits_render import load_sources, render_sample
from camkit.data.images import load_splits
from camkit.errors import CamkitError
from camkit.models import build_model

SEED, N_TRAIN, N_TEST, N_PAIRS, SIZE = 3, 30, 10, 45, 48
SPLITS = ("train", "test", "pairs")
POOL = {"train": "train", "test": "test", "pairs": "test"}


def make(out: Path, seed: int = SEED, *extra: str | int):
    return invoke("make-benchmark", "cluttered-digits", "--seed", seed, "--out", out, "--n-train", N_TRAIN,
                  "--n-test", N_TEST, "--n-pairs", N_PAIRS, "--size", SIZE, "--no-progress", *extra)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "cd"
    result = make(out)
    assert result.exit_code == 0, result.output
    assert result.output == (f"wrote {out}: {N_TRAIN} train / {N_TEST} test / {N_PAIRS} pairs ({2 * N_PAIRS} files) "
                             f"{SIZE}x{SIZE} images of 10 classes with VOC boxes (seed {SEED})\n")
    return out


@pytest.fixture(scope="module")
def sources():
    return load_sources()


def images_of(root: Path, split: str) -> list[Path]:
    return sorted((root / split).glob("*/*.png"))


def rows_of(root: Path, split: str) -> list[dict[str, str]]:
    with open(root / "annotations" / f"{split}.csv", newline="") as f:
        return list(csv.DictReader(f))


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def check_annotated(root: Path, split: str, size: int) -> list[tuple[Path, tuple[tuple[str, Box], ...]]]:
    """Every image of ``split`` has its XML (and no XML is spare): file name, size and boxes agree with the image,
    the first object's class is the class folder; train/test images hold one object, pairs images two."""
    images = images_of(root, split)
    xmls = sorted((root / "annotations" / split).glob("*.xml"))
    stems = sorted(p.stem for p in images)
    assert len(set(stems)) == len(stems) and stems == [p.stem for p in xmls]  # unique ids, one XML each
    annotated = []
    for path in images:
        ann = read_voc_xml(root / "annotations" / split / f"{path.stem}.xml")
        assert ann.filename == path.name
        with Image.open(path) as im:
            assert (ann.width, ann.height) == im.size == (size, size)
        assert len(ann.objects) == (2 if split == "pairs" else 1)
        assert ann.labels[0] == path.parent.name  # the class folder is the first object's class
        for _, box in ann.objects:
            assert 1 <= box.xmin <= box.xmax <= size and 1 <= box.ymin <= box.ymax <= size
        annotated.append((path, ann.objects))
    return annotated


# --------------------------------------------------------------------------- the command


def test_layout_and_counts(tiny: Path):
    assert sorted(p.name for p in tiny.iterdir()) == ["README.md", "annotations", "benchmark.json", "pairs", "test",
                                                      "train"]
    assert sorted(p.name for p in (tiny / "annotations").iterdir()) == ["pairs", "pairs.csv", "test", "test.csv",
                                                                        "train", "train.csv"]
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        assert sorted(p.name for p in (tiny / split).iterdir()) == list(CLASSES)
        per_class = [len(list((tiny / split / c).iterdir())) for c in CLASSES]
        assert per_class == [n // 10] * 10  # balanced
    # 45 pairs: each of the 45 class pairs once, so every class is in 9 of them
    assert [len(list((tiny / "pairs" / c).iterdir())) for c in CLASSES] == [9] * 10
    info = json.loads((tiny / "benchmark.json").read_text())
    assert (info["seed"], info["size"], info["n_train"], info["n_test"], info["n_pairs"]) == (
        SEED, SIZE, N_TRAIN, N_TEST, N_PAIRS)
    assert info["format_version"] == 2 and info["splits"] == list(SPLITS)
    assert info["counts"]["train"] == dict.fromkeys(CLASSES, 3) and info["counts"]["pairs"] == dict.fromkeys(CLASSES, 9)
    assert info["grid"] == {"cells": 16, "pixels_per_cell": 3.0, "model": "configs/cluttered_digits_cnn16.yaml"}
    readme = (tiny / "README.md").read_text()
    assert "load_digits" in readme and "china.jpg" in readme and f"Seed {SEED}" in readme
    assert (f"camkit make-benchmark cluttered-digits --seed {SEED} --out DIR --n-train {N_TRAIN} "
            f"--n-test {N_TEST} --n-pairs {N_PAIRS} --size {SIZE}") in readme
    assert "| pairs | 90 | 9 / 9 / 9 / 9 / 9 / 9 / 9 / 9 / 9 / 9 |" in readme
    assert not list(tiny.parent.glob(".*"))  # no temporary folder left beside it


def test_every_image_has_voc_boxes_inside_it_and_csv_rows(tiny: Path):
    for split in SPLITS:
        annotated = check_annotated(tiny, split, SIZE)
        rows = rows_of(tiny, split)
        assert len(rows) == sum(len(objects) for _, objects in annotated)  # one row per box
        by_image: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
        for row in rows:
            assert (int(row["width"]), int(row["height"])) == (SIZE, SIZE)
            by_image.setdefault(row["image"], []).append(
                (row["label"], tuple(int(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))))
        for path, objects in annotated:
            assert by_image[path.relative_to(tiny).as_posix()] == [(label, box.as_tuple()) for label, box in objects]


def test_images_decode_as_rgb_class_folders(tiny: Path):
    folders = load_splits(tiny)
    assert folders["train"].class_names == list(CLASSES) and len(folders["train"]) == N_TRAIN
    x, y = next(iter(folders["test"].dataset(SIZE, batch_size=N_TEST)))
    assert tuple(x.shape) == (N_TEST, SIZE, SIZE, 3) and float(np.min(x)) >= 0.0 and float(np.max(x)) <= 1.0
    assert sorted(y.numpy().tolist()) == list(range(10))


def test_boxes_are_tight_around_each_visible_digit(tiny: Path, sources):
    """Regenerate each image from its plan with and without its digits: each box is exactly where they differ inside
    that digit's rectangle, edge to edge (tight), it holds all of them (covering), and no other pixel within 1 px of
    the box changed."""
    pools = split_digits(sources.targets, SEED)
    for split, n in (("train", N_TRAIN), ("test", N_TEST), ("pairs", N_PAIRS)):
        _, planned = plan_split(pools[POOL[split]], sources.targets, n, SEED, split)
        rows = {}
        for row in rows_of(tiny, split):
            rows.setdefault(row["image"], []).append(int(row["digit"]))
        for path, objects in check_annotated(tiny, split, SIZE):
            i = int(path.stem.split("_")[1])
            rendered = render_sample(sources, planned[i].tolist(), pools[POOL[split]], SIZE, sample_rng(SEED, split, i))
            image = np.asarray(Image.open(path).convert("RGB"))
            np.testing.assert_array_equal(image, rendered.image)  # the file is this rendering
            differs = (image != rendered.background).any(axis=-1)  # where digits or fragments changed the image
            by_digit = {o.digit: o for o in rendered.objects}
            for (label, box), digit in zip(objects, rows[path.relative_to(tiny).as_posix()], strict=True):
                planted = by_digit[digit]
                assert planted.box == box and str(planted.label) == label
                in_box = np.zeros_like(differs)
                in_box[box.ymin - 1:box.ymax, box.xmin - 1:box.xmax] = True
                inside = planted.mask & in_box
                assert inside[box.ymin - 1].any() and inside[box.ymax - 1].any()
                assert inside[:, box.xmin - 1].any() and inside[:, box.xmax - 1].any()
                np.testing.assert_array_equal(inside, planted.mask)
                near = np.zeros_like(differs)
                near[max(box.ymin - 2, 0):box.ymax + 1, max(box.xmin - 2, 0):box.xmax + 1] = True
                assert not (differs & near & ~planted.mask).any()
            digit_pixels = np.logical_or.reduce([o.mask for o in rendered.objects])
            assert (differs & digit_pixels).sum() >= 8 * len(objects)
            np.testing.assert_array_equal(differs & ~digit_pixels, rendered.distractor_mask)


def test_same_seed_same_bytes_other_seed_differs(tiny: Path, tmp_path: Path):
    assert make(tmp_path / "again").exit_code == 0
    assert all_files(tmp_path / "again") == all_files(tiny)
    assert make(tmp_path / "other", SEED + 1).exit_code == 0
    a, b = all_files(tiny), all_files(tmp_path / "other")
    pngs = [k for k in a if k.endswith(".png")]
    assert sum(a[k] == b.get(k) for k in pngs) == 0


def test_regenerating_replaces_the_folder(tmp_path: Path):
    out = tmp_path / "cd"
    assert make(out).exit_code == 0
    (out / "train" / "stale.txt").write_text("left from before")
    assert invoke("make-benchmark", "cluttered-digits", "--seed", SEED + 1, "--out", out, "--n-train", 10,
                  "--n-test", 10, "--n-pairs", 0, "--size", 32, "--no-progress").exit_code == 0
    assert not (out / "train" / "stale.txt").exists() and not (out / "pairs").exists()
    info = json.loads((out / "benchmark.json").read_text())
    assert info["seed"] == SEED + 1 and info["splits"] == ["train", "test"]
    assert "## The pairs split" not in (out / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cd"]


def test_train_and_test_use_disjoint_source_digits(tiny: Path, sources):
    used = source_digits(tiny)
    assert used["train"] and used["test"] and not used["train"] & used["test"]
    pools = split_digits(sources.targets, SEED)
    assert used["train"] <= set(pools["train"].tolist()) and used["test"] <= set(pools["test"].tolist())
    assert used["pairs"] <= set(pools["test"].tolist())  # pairs of test digits only
    assert not set(pools["train"].tolist()) & set(pools["test"].tolist())
    assert len(pools["train"]) + len(pools["test"]) == 1797
    for c in range(10):  # stratified: about a fifth of every class is test
        n_c, n_test = int((sources.targets == c).sum()), int((sources.targets[pools["test"]] == c).sum())
        assert abs(n_test - 0.2 * n_c) <= 1
    labels, digits = plan_split(pools["test"], sources.targets, 1000, SEED, "test")
    assert set(digits.ravel().tolist()) <= set(pools["test"].tolist())  # the fragments are drawn from the same pool
    np.testing.assert_array_equal(sources.targets[digits], labels)
    assert labels.shape == (1000, 1) and np.bincount(labels.ravel()).tolist() == [100] * 10


@pytest.mark.parametrize(("args", "message"), [
    (["mnist"], "Error: make-benchmark: unknown benchmark 'mnist'; choose one of cluttered-digits"),
    (["cluttered-digits", "--n-train", 0], "Error: --n-train must be between 1 and 100000, got 0"),
    (["cluttered-digits", "--n-test", -3], "Error: --n-test must be between 1 and 100000, got -3"),
    (["cluttered-digits", "--n-pairs", -1], "Error: --n-pairs must be between 0 and 100000, got -1"),
    (["cluttered-digits", "--n-pairs", 100_001], "Error: --n-pairs must be between 0 and 100000, got 100001"),
    (["cluttered-digits", "--size", 16], "Error: --size must be between 32 and 256 pixels, got 16"),
    (["cluttered-digits", "--seed", -1], "Error: --seed must be at least 0, got -1"),
])
def test_bad_options_exit_2_and_write_nothing(tmp_path: Path, args: list, message: str):
    result = invoke("make-benchmark", *args, "--out", tmp_path / "cd", "--no-progress")
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and result.output.startswith(message), result.output
    assert list(tmp_path.iterdir()) == []


def test_an_option_the_benchmark_does_not_take_is_named(tmp_path: Path):
    with pytest.raises(CamkitError, match=r"^--length: cluttered-digits takes no such option \(it takes --n-train, "
                                          r"--n-test, --n-pairs, --size\)$"):
        make_benchmark("cluttered-digits", tmp_path / "cd", length=100)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_a_folder_that_is_not_a_benchmark(tmp_path: Path):
    (tmp_path / "keep.txt").write_text("precious")
    result = make(tmp_path)
    assert result.exit_code == 2 and result.output.startswith(f"Error: --out: {tmp_path} is a non-empty folder")
    assert result.output.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


# --------------------------------------------------------------------------- the shipped set


def test_shipped_cluttered_digits_is_consistent(data_root: Path):
    root = data_root / "cluttered_digits"
    info = json.loads((root / "benchmark.json").read_text())
    assert info["benchmark"] == "cluttered-digits" and info["size"] == 64 and info["format_version"] == 2
    assert (info["n_train"], info["n_test"], info["n_pairs"]) == (3000, 500, 250)
    for split in SPLITS:
        assert sorted(p.name for p in (root / split).iterdir()) == list(CLASSES)  # 0..9 in every split
        counts = {c: len(list((root / split / c).glob("*.png"))) for c in CLASSES}
        assert counts == info["counts"][split] and min(counts.values()) > 0
        n_files = info[f"n_{split}"] * (2 if split == "pairs" else 1)
        assert sum(counts.values()) == n_files and len(check_annotated(root, split, 64)) == n_files
    used, test_pool = source_digits(root), set(split_digits(load_sources().targets, 0)["test"].tolist())
    assert not used["train"] & test_pool and used["test"] <= test_pool and used["pairs"] <= test_pool
    assert "--seed 0 --out data/cluttered_digits" in (root / "README.md").read_text()


# --------------------------------------------------------------------------- the models


def test_small_gap_cnn_shapes_and_cam_head():
    from camkit.methods import explain

    model = build_model("small-gap-cnn", (64, 64, 3), 10)
    assert tuple(model.output_shape) == (None, 10)
    features = model.get_layer("features")
    assert tuple(features.output.shape) == (None, 8, 8, 128)  # 2-D spatial maps before the pooling
    gap = model.get_layer("gap")
    assert gap.input is features.output and model.get_layer("predictions").input is gap.output
    assert sum(type(layer).__name__ == "Conv2D" for layer in model.layers) == 5
    assert model.count_params() == 391_626
    x = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    probabilities = model.predict(x, verbose=0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    cam = explain(model, x, method="cam")
    assert cam.layer == "features" and cam.raw.shape == (2, 8, 8) and cam.maps.shape == (2, 64, 64)


def test_the_benchmark_models_cam_grid_is_16x16_and_sets_the_digit_sizes(repo_root: Path):
    """configs/cluttered_digits_cnn16.yaml: its CAM layer is the 16x16 grid the digit sizes are chosen in."""
    import yaml

    from camkit.data.digits_render import GRID, digit_heights
    from camkit.methods import explain

    config = yaml.safe_load((repo_root / "configs" / "cluttered_digits_cnn16.yaml").read_text())
    assert config["data"]["image_size"] == [64, 64] and config["train"]["epochs"] == 15
    model = build_model(config["model"]["name"], (64, 64, 3), 10, **config["model"]["options"])
    assert tuple(model.get_layer("features").output.shape) == (None, GRID, GRID, 128)
    # 3x3 convs 3->32, 32->64, 64->128, 2 x 128->128 (+ BatchNorm: 4 per channel), Dense 128->10
    convs = [(3, 32), (32, 64), (64, 128), (128, 128), (128, 128)]
    assert model.count_params() == sum(9 * i * o + o + 4 * o for i, o in convs) + 128 * 10 + 10
    assert digit_heights(64) == (20, 40)  # 5..10 cells of 4 px
    x = np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32)
    assert explain(model, x, method="gradcam").raw.shape == (1, GRID, GRID)


def test_small_gap_cnn_options():
    model = build_model("small-gap-cnn", (48, 48, 3), 4, filters=[8, 16, 16], convs=1)
    assert tuple(model.get_layer("features").output.shape) == (None, 12, 12, 16)
    assert tuple(model.output_shape) == (None, 4)
    with pytest.raises(CamkitError, match=r"model\.options\.convs: expected 3 positive integers"):
        build_model("small-gap-cnn", (48, 48, 3), 4, filters=[8, 16, 16], convs=[1, 2])
    with pytest.raises(CamkitError, match="too small for 3 poolings"):
        build_model("small-gap-cnn", (4, 4, 3), 4)
    with pytest.raises(CamkitError, match=r"expects \(height, width, channels\) images"):
        build_model("small-gap-cnn", (150, 1), 2)
