"""Augmented Grad-CAM: the method in the engine, and whole-folder runs (batches, resume, shards) through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import digit_folder, invoke, ok

import camkit
from camkit.errors import CamkitError
from camkit.methods.augmented import AugmentedGradCAM
from camkit.methods.warps import Warps, sample_warps, warp
from camkit.workflows.store import MapStore

AGGS = ("single", "max", "avg", "sr")


def tiny_cnn() -> keras.Model:
    """32x32 RGB -> conv -> pool -> conv (8x8... 16x16) -> GAP -> Dense(3); seeded random weights."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return tiny_cnn()


@pytest.fixture(scope="module")
def x() -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.random((5, 32, 32, 3)).astype(np.float32) * 0.3
    for i in range(5):
        images[i, 4 + 3 * i : 14 + 3 * i, 6:20] += 0.7
    return images


def test_single_is_gradcam_and_copy_maps_are_gradcams_of_the_warped_images(model, x) -> None:
    exp = camkit.explain(model, x, method="augmented-gradcam", n_augment=6, seed=4, aggregate="all", batch_size=4)
    plain = camkit.explain(model, x, method="gradcam", batch_size=4)
    np.testing.assert_array_equal(exp.variants["single"], plain.maps)
    np.testing.assert_array_equal(exp.targets, plain.targets)
    assert exp.raw.shape == (5, 6, 16, 16)
    # independent: warp the images ourselves and explain each copy with Grad-CAM for the copy-0 class
    warps = sample_warps(6, (32, 32), seed=4)
    copies = np.asarray(warp(x, warps))  # (5, 6, 32, 32, 3)
    for copy in range(6):
        ref = camkit.explain(model, copies[:, copy], method="gradcam", targets=plain.targets, batch_size=5)
        np.testing.assert_allclose(exp.raw[:, copy], ref.raw, rtol=1e-5, atol=1e-6)
    assert exp.stats["sr_iterations"].shape == (5,) and (exp.stats["sr_gap"] <= 1e-4).all()
    for name in AGGS:
        maps = exp.variants[name]
        assert maps.shape == (5, 32, 32) and maps.min() >= 0 and np.allclose(maps.max(axis=(1, 2)), 1)
    np.testing.assert_array_equal(exp.maps, exp.variants["sr"])  # "all": maps is the first, sr
    assert list(exp.variants) == list(AGGS) and exp.variant_raw == {}  # in display order


def test_identity_only_augmentation_makes_max_avg_single_equal(model, x) -> None:
    one = camkit.explain(model, x, method="augmented-gradcam", n_augment=1, aggregate="all")
    np.testing.assert_array_equal(one.variants["max"], one.variants["single"])
    np.testing.assert_array_equal(one.variants["avg"], one.variants["single"])
    still = camkit.explain(model, x, method="augmented-gradcam", n_augment=5, angle_range=0.0, shift_range=0.0,
                           aggregate=["avg", "single", "max"])
    assert list(still.variants) == ["single", "max", "avg"] and still.stats == {}  # display order
    np.testing.assert_array_equal(still.maps, still.variants["avg"])  # maps: the first requested
    np.testing.assert_allclose(still.variants["max"], still.variants["single"], atol=1e-6)
    np.testing.assert_allclose(still.variants["avg"], still.variants["single"], atol=1e-6)


def test_max_and_avg_against_numpy_unwarping_of_integer_shifts(model, x) -> None:
    """Integer shifts, no rotation: undoing a warp is an exact shift with zero fill, so max/avg are checked in NumPy."""
    shifts = np.array([[0, 0], [3, -2], [-5, 1], [2, 6]], np.float32)  # (dy, dx) pixels
    method = AugmentedGradCAM(n_augment=4, aggregate="max,avg")
    method.warps = lambda size: Warps(np.zeros(4), shifts, size)
    exp = camkit.explain(model, x[:3], method=method)
    up = np.asarray(tf.image.resize(exp.raw.reshape(12, 16, 16, 1), (32, 32), method="bilinear")).reshape(3, 4, 32, 32)
    back = np.zeros_like(up)
    for copy, (dy, dx) in enumerate(shifts.astype(int)):  # content moved by (dy, dx): read it back from there
        rows, cols = np.arange(32) + dy, np.arange(32) + dx
        ok_r, ok_c = (rows >= 0) & (rows < 32), (cols >= 0) & (cols < 32)
        back[:, copy][:, np.ix_(ok_r, ok_c)[0], np.ix_(ok_r, ok_c)[1]] = up[:, copy][:, rows[ok_r]][:, :, cols[ok_c]]
    for name, agg in [("max", back.max(1)), ("avg", back.mean(1))]:
        expected = np.maximum(agg, 0) / np.maximum(agg, 0).max(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(exp.variants[name], expected, atol=1e-5, err_msg=name)
    assert not np.allclose(exp.variants["max"], exp.variants["avg"])


def test_a_sample_gets_the_same_maps_alone_or_in_a_batch(model, x) -> None:
    batch = camkit.explain(model, x, method="augmented-gradcam", n_augment=5, aggregate="all", batch_size=2)
    alone = camkit.explain(model, x[3:4], method="augmented-gradcam", n_augment=5, aggregate="all")
    for name in AGGS:
        np.testing.assert_allclose(alone.variants[name][0], batch.variants[name][3], atol=1e-5)


def test_topk_targets_give_a_k_axis(model, x) -> None:
    exp = camkit.explain(model, x[:2], method="augmented-gradcam", n_augment=3, aggregate="max", targets="top2")
    assert exp.maps.shape == (2, 2, 32, 32) and exp.variants["max"].shape == (2, 2, 32, 32)
    order = np.argsort(-np.asarray(model(x[:2])), axis=1)[:, :2]
    np.testing.assert_array_equal(exp.targets, order)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"aggregate": "median"}, "aggregate: choose from"), ({"n_augment": 0}, "n_augment"),
     ({"shift_range": 1.5}, "shift_range"), ({"warp": 3}, "unexpected option")],
)
def test_bad_options_are_clear_errors(model, x, options, message) -> None:
    with pytest.raises(CamkitError, match=message):
        camkit.explain(model, x, method="augmented-gradcam", **options)


def test_time_series_are_refused() -> None:
    inputs = keras.Input((20, 1))
    h = keras.layers.Conv1D(4, 3, activation="relu")(inputs)
    m = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(h)))
    with pytest.raises(CamkitError, match="needs \\(N, H, W, C\\) inputs"):
        camkit.explain(m, np.zeros((2, 20, 1)), method="augmented-gradcam")


# ------------------------------------------------------------------------------------ whole-folder runs


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data_root) -> tuple[Path, Path]:
    """10 cluttered-digit test images in class folders 0 and 1, and a small GAP CNN for 64x64 inputs."""
    base = tmp_path_factory.mktemp("augmented")
    digit_folder(data_root, base / "images", ("0", "1"), 5)
    keras.utils.set_random_seed(0)
    camkit.build_model("small-gap-cnn", (64, 64, 3), 2).save(base / "cnn.keras")
    return base / "images", base / "cnn.keras"


def run(folder, out: Path, *extra: str):
    images, model_path = folder
    return ok("explain", "--model-path", model_path, "--images", images, "--method", "augmented-gradcam",
              "-o", "n_augment=4", "-o", "aggregate=all", "-o", "tol=0.01", "--batch-size", 4, "--save-dir", out,
              "--n-figures", 3, "--no-progress", *extra)


def batch_arrays(out: Path) -> dict[str, dict[str, np.ndarray]]:
    result = {}
    for path in sorted((out / "batches").glob("batch_*.npz")):
        with np.load(path, allow_pickle=False) as f:
            result[path.name] = {k: f[k] for k in f.files}
    return result


def assert_same_batches(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert sorted(a[name]) == sorted(b[name])
        for key in a[name]:
            np.testing.assert_array_equal(a[name][key], b[name][key], err_msg=f"{name}:{key}")


@pytest.fixture(scope="module")
def full_run(folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("full") / "out"
    result = run(folder, out, "--target", "top1,true")
    assert "explained 10 image(s)" in result.output and "3 of 3 batch(es) computed" in result.output
    return out


def test_folder_run_writes_one_file_per_batch_with_every_aggregation(full_run, folder) -> None:
    arrays = batch_arrays(full_run)
    assert sorted(arrays) == ["batch_00000.npz", "batch_00001.npz", "batch_00002.npz"]
    first = arrays["batch_00000.npz"]
    assert list(first["variants"]) == list(AGGS) and list(first["columns"]) == ["top1", "true"]
    assert first["maps_sr"].shape == (4, 2, 64, 64) and first["maps_sr"].dtype == np.float16
    assert list(first["names"]) == ["0/" + p.name for p in sorted((folder[0] / "0").iterdir())[:4]]
    np.testing.assert_array_equal(first["y_true"], [0, 0, 0, 0])
    np.testing.assert_array_equal(first["targets"][:, 1], first["y_true"])  # the "true" column
    np.testing.assert_array_equal(first["targets"][:, 0], first["top5"][:, 0])
    assert first["top5"].shape == (4, 2) and np.allclose(first["top5_probs"].sum(1), 1, atol=1e-5)
    merged = MapStore(full_run).read_all()
    np.testing.assert_array_equal(merged["indices"], np.arange(10))
    assert merged["maps_max"].shape == (10, 2, 64, 64)
    # the maps equal camkit.explain on the same batch of images
    model = camkit.load_model(folder[1], compile=False)
    x = np.stack([np.asarray(tf.io.decode_png(tf.io.read_file(str(folder[0] / n))), np.float32) / 255.0
                  for n in first["names"]])
    exp = camkit.explain(model, x, method="augmented-gradcam", n_augment=4, aggregate="all", batch_size=4)
    np.testing.assert_allclose(first["maps_avg"][:, 0], exp.variants["avg"], atol=1e-3)  # float16 storage
    # the "true" column: the top-1 maps where the prediction is right, the true class's maps elsewhere
    wrong = np.flatnonzero(merged["targets"][:, 0] != merged["y_true"])
    assert 0 < len(wrong) < 10, "the untrained model should be right on some images and wrong on others"
    right = np.setdiff1d(np.arange(10), wrong)
    np.testing.assert_array_equal(merged["maps_sr"][right, 1], merged["maps_sr"][right, 0])
    x_wrong = np.stack([np.asarray(tf.io.decode_png(tf.io.read_file(str(folder[0] / merged["names"][i]))), np.float32)
                        / 255.0 for i in wrong])
    true = camkit.explain(model, x_wrong, method="augmented-gradcam", n_augment=4, aggregate="all",
                          targets=merged["y_true"][wrong])
    np.testing.assert_allclose(merged["maps_max"][wrong, 1], true.variants["max"], atol=1e-3)
    figures = sorted(p.name for p in (full_run / "figures").iterdir())
    assert figures == ["image_00000.png", "image_00001.png", "image_00002.png"]


def test_rerun_skips_finished_batches_and_resume_gives_the_same_files(full_run, folder, tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(full_run, out)
    before = batch_arrays(out)
    (out / "batches" / "batch_00001.npz").unlink()  # a run interrupted before it wrote batch 1
    result = run(folder, out, "--target", "top1,true")
    assert "1 of 3 batch(es) computed, 2 already there" in result.output
    assert_same_batches(batch_arrays(out), before)
    again = run(folder, out, "--target", "top1,true")
    assert "0 of 3 batch(es) computed, 3 already there" in again.output


def test_merged_shards_equal_the_unsharded_run(full_run, folder, tmp_path) -> None:
    merged = tmp_path / "merged"
    for i in range(2):
        out = tmp_path / f"shard{i}"
        result = run(folder, out, "--target", "top1,true", "--shard", f"{i}/2")
        assert f"shard {i}/2" in result.output
        (merged / "batches").mkdir(parents=True, exist_ok=True)
        for path in (out / "batches").iterdir():
            shutil.copy(path, merged / "batches" / path.name)
    shutil.copy(tmp_path / "shard0" / "run.json", merged / "run.json")  # every shard records the same run
    assert sorted(p.name for p in (tmp_path / "shard1" / "batches").iterdir()) == ["batch_00001.npz",
                                                                                 "batch_00001.sha1"]
    assert_same_batches(batch_arrays(merged), batch_arrays(full_run))
    (merged / "batches" / "batch_00001.npz").unlink()
    with pytest.raises(CamkitError, match="missing"):
        MapStore(merged).read_all()
    last = tmp_path / "last"  # a run whose last batch is missing: run.json knows how many images there are
    shutil.copytree(full_run, last)
    (last / "batches" / "batch_00002.npz").unlink()
    with pytest.raises(CamkitError, match=r"batches \[2\] are missing"):
        MapStore(last).read_all()


def test_folder_run_errors(full_run, folder) -> None:
    images, model_path = folder
    retrained = full_run.parent / "retrained.keras"  # same architecture, other weights: another model
    keras.utils.set_random_seed(5)
    camkit.build_model("small-gap-cnn", (64, 64, 3), 2).save(retrained)
    changed = invoke("explain", "--model-path", retrained, "--images", images, "--method", "augmented-gradcam",
                     "-o", "n_augment=4", "-o", "aggregate=all", "-o", "tol=0.01", "--batch-size", 4,
                     "--save-dir", full_run, "--target", "top1,true")
    assert changed.exit_code == 2 and "the model file changed since these maps were" in changed.output, changed.output
    other = invoke("explain", "--model-path", model_path, "--images", images, "--method", "augmented-gradcam",
                   "-o", "n_augment=5", "--save-dir", full_run, "--batch-size", 4, "--target", "top1,true")
    assert other.exit_code == 2 and "the settings changed (options)" in other.output
    for args, message in [(["--shard", "2/2"], "--shard: expected i/n"), (["-o", "n_augment"], "KEY=VALUE"),
                          (["--target", "top0"], "--target 'top0': K must be at least 1"),
                          (["--n-images", "x"], "--n-images")]:
        bad = invoke("explain", "--model-path", model_path, "--images", images, "--method", "augmented-gradcam",
                     *args)
        assert bad.exit_code == 2 and message in bad.output, bad.output
        assert bad.output.count("\n") == 1


def test_overwrite_replaces_a_run_made_with_other_settings(full_run, folder, tmp_path) -> None:
    out = tmp_path / "out"
    shutil.copytree(full_run, out)
    images, model_path = folder
    result = ok("explain", "--model-path", model_path, "--images", images, "--method", "augmented-gradcam",
                "-o", "n_augment=2", "-o", "aggregate=max", "--batch-size", 5, "--save-dir", out, "--n-figures", 1,
                "--no-progress", "--overwrite")
    assert "2 of 2 batch(es) computed" in result.output
    assert sorted(p.name for p in (out / "batches").glob("*.npz")) == ["batch_00000.npz", "batch_00001.npz"]
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["image_00000.png"]
    settings = json.loads((out / "run.json").read_text())["settings"]
    assert settings["options"] == {"n_augment": 2, "aggregate": "max"} and settings["batch_size"] == 5


def test_a_count_of_images_streams_the_first_ones(folder, tmp_path) -> None:
    images, model_path = folder
    result = ok("explain", "--model-path", model_path, "--images", images, "--method", "augmented-gradcam",
                "-o", "n_augment=2", "--n-images", 3, "--target", "top1,true", "--save-dir", tmp_path / "out",
                "--no-progress")
    assert "explained 3 image(s)" in result.output
    merged = MapStore(tmp_path / "out").read_all()
    assert list(merged["names"]) == ["0/" + p.name for p in sorted((images / "0").iterdir())[:3]]
