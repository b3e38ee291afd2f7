"""`camkit train / evaluate / run` end to end through click's CliRunner, on the shipped data (small runs).

User errors of these commands: test_experiment_errors_cli.py.
"""

from __future__ import annotations

import csv
import json
import shutil
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import gunpoint, invoke, ok
from PIL import Image

import camkit.workflows.fit

FCN_GUNPOINT_PARAMS = 265_986  # tests/test_models.py works it out




def read_log(root: Path, name: str) -> list[dict[str, float]]:
    with open(root / "results" / name / "train_log.csv", newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != "NA"} for row in csv.DictReader(f)]


def read_json(path: Path) -> dict:
    def no_nan(value: str):
        raise AssertionError(f"{path} holds {value}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=no_nan)


def weights_of(path: Path) -> list[np.ndarray]:
    return keras.saving.load_model(path, compile=False).get_weights()


def assert_same_weights(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def leftovers(root: Path) -> list[Path]:
    """Temporary or partial files that a finished run must not leave behind."""
    return [p for p in root.rglob("*") if p.name.endswith(".partial") or ".tmp" in p.name or p.name.endswith(".old")]


@pytest.fixture(scope="module")
def gp(tmp_path_factory, data_root):
    """GunPoint FCN trained once for 3 epochs (seed 0) as experiment ``gp``; returns (root, CLI output)."""
    root = tmp_path_factory.mktemp("gp")
    result = ok("train", *gunpoint(root, data_root), "--epochs", 3, "--seed", 0, "--no-progress", "--name", "gp")
    return root, result.output


class FitSpy:
    """Records the model's weights and optimizer step count when ``fit`` starts."""

    def __init__(self, monkeypatch):
        self.calls: list[dict] = []
        original = keras.Model.fit
        spy = self

        def fit(model, *args, **kwargs):
            spy.calls.append({"weights": [w.copy() for w in model.get_weights()],
                              "iterations": int(np.asarray(model.optimizer.iterations))})
            return original(model, *args, **kwargs)

        monkeypatch.setattr(keras.Model, "fit", fit)


# --------------------------------------------------------------------------- train / evaluate / run


def test_train_writes_model_log_metrics_and_manifest(gp):
    root, output = gp
    assert "trained fcn on GunPoint: 3 epochs" in output
    model_path = root / "models" / "gp" / "best.keras"
    assert f"model: {model_path}" in output
    model = keras.saving.load_model(model_path)
    assert tuple(model.input_shape) == (None, 150, 1)
    assert tuple(model.output_shape) == (None, 2)
    assert model.count_params() == FCN_GUNPOINT_PARAMS

    log = read_log(root, "gp")
    assert [row["epoch"] for row in log] == [0, 1, 2]
    losses = [row["loss"] for row in log]
    assert all(0 < v < 5 for v in losses)
    assert all(0 <= row["accuracy"] <= 1 for row in log)

    metrics = read_json(root / "results" / "gp" / "train_metrics.json")
    assert metrics["experiment"] == "gp"
    assert metrics["dataset"] == "GunPoint"
    assert metrics["model"] == "fcn"
    assert metrics["epochs"] == 3
    assert metrics["batch_size"] == 5  # min(50/10, 16)
    assert metrics["parameters"] == FCN_GUNPOINT_PARAMS
    assert metrics["best_epoch"] == int(np.argmin(losses)) + 1
    assert metrics["best_loss"] == pytest.approx(min(losses))
    assert metrics["final"]["loss"] == pytest.approx(losses[-1])
    assert metrics["final"]["accuracy"] == pytest.approx(log[-1]["accuracy"])
    assert metrics["resumed_from"] is None
    assert metrics["model_path"] == str(model_path)

    manifest = read_json(root / "results" / "gp" / "manifest.json")
    assert manifest["experiment"] == "gp"
    assert manifest["status"] == "trained"
    assert manifest["seed"] == 0
    assert manifest["batch_size"] == 5
    assert manifest["config"]["name"] == "gp"
    assert manifest["config"]["train"]["epochs"] == 3
    assert manifest["config"]["train"]["seed"] == 0
    assert manifest["config"]["data"]["dataset"] == "GunPoint"
    assert manifest["config"]["model"]["name"] == "fcn"
    assert manifest["versions"]["tensorflow"] == tf.__version__
    assert manifest["versions"]["keras"] == keras.__version__
    assert manifest["versions"]["camkit"] == "0.1.0"
    assert leftovers(root) == []


def test_evaluate_matches_an_independent_prediction(gp, data_root):
    root, _ = gp
    result = ok("evaluate", *gunpoint(root, data_root), "--name", "gp")
    metrics = read_json(root / "results" / "gp" / "metrics.json")

    # independently: the saved model on the raw test arrays
    model = keras.saving.load_model(root / "models" / "gp" / "best.keras", compile=False)
    x_test = np.load(data_root / "GunPoint" / "x_test.npy").astype(np.float32)
    y_test = np.load(data_root / "GunPoint" / "y_test.npy")
    if x_test.ndim == 2:
        x_test = x_test[..., None]
    y_pred = np.argmax(model.predict(x_test, verbose=0), axis=-1)
    accuracy = float(np.mean(y_pred == y_test))

    assert metrics["n_samples"] == 150
    assert metrics["accuracy"] == pytest.approx(accuracy)
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (2, 2)
    assert matrix.sum() == 150
    assert np.trace(matrix) == int(np.sum(y_pred == y_test))
    assert matrix.sum(axis=1).tolist() == np.bincount(y_test, minlength=2).tolist()
    assert matrix.sum(axis=0).tolist() == np.bincount(y_pred, minlength=2).tolist()
    for average in ("macro", "micro"):
        assert set(metrics[average]) == {"precision", "recall", "f1"}
    assert metrics["micro"]["f1"] == pytest.approx(accuracy)  # single label: micro = accuracy
    assert metrics["labels"] == ["1", "2"]
    assert f"accuracy  {accuracy:.4f}" in result.output

    png = root / "plots" / "gp" / "confusion_matrix.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert min(image.size) > 100
    assert f"figure: {png}" in result.output
    assert leftovers(root) == []


def test_run_config_end_to_end(tmp_path, repo_root, data_root):
    result = ok("run", repo_root / "configs" / "gunpoint_fcn.yaml", "--epochs", 2, "--root", tmp_path,
                "--data-root", data_root, "--no-progress")
    assert "trained fcn on GunPoint: 2 epochs" in result.output
    assert "accuracy  " in result.output
    assert len(read_log(tmp_path, "gunpoint_fcn")) == 2
    metrics = read_json(tmp_path / "results" / "gunpoint_fcn" / "metrics.json")
    assert metrics["n_samples"] == 150
    assert np.array(metrics["confusion_matrix"]).sum() == 150
    assert (tmp_path / "models" / "gunpoint_fcn" / "best.keras").is_file()
    assert (tmp_path / "plots" / "gunpoint_fcn" / "confusion_matrix.png").is_file()
    manifest = read_json(tmp_path / "results" / "gunpoint_fcn" / "manifest.json")
    assert manifest["config"]["train"]["epochs"] == 2  # the option overrides the file's 300
    assert manifest["config"]["train"]["reduce_lr_patience"] == 50  # the file's value
    assert leftovers(tmp_path) == []


def test_best_epoch_by_validation_accuracy(tmp_path, data_root):
    config = tmp_path / "val.yaml"
    config.write_text("name: val\ntrain:\n  monitor: val_accuracy\n  validation_split: 0.2\n")
    ok("train", "-c", config, *gunpoint(tmp_path, data_root), "--epochs", 4, "--no-progress")
    log = read_log(tmp_path, "val")
    val_accuracy = [row["val_accuracy"] for row in log]
    assert len(val_accuracy) == 4
    metrics = read_json(tmp_path / "results" / "val" / "train_metrics.json")
    # higher is better for an accuracy; the first epoch reaching the maximum is kept
    assert metrics["best_val_accuracy"] == pytest.approx(max(val_accuracy))
    assert metrics["best_epoch"] == int(np.argmax(val_accuracy)) + 1


# --------------------------------------------------------------------------- resume and reuse


def test_resume_from_own_best_model_continues(tmp_path, data_root, monkeypatch):
    args = [*gunpoint(tmp_path, data_root), "--seed", 0, "--no-progress", "--name", "r"]
    ok("train", *args, "--epochs", 3)
    first = [row["loss"] for row in read_log(tmp_path, "r")]
    best = tmp_path / "models" / "r" / "best.keras"
    saved = keras.saving.load_model(best)
    saved_weights = saved.get_weights()
    assert int(np.asarray(saved.optimizer.iterations)) == 3 * 10  # 50 series, batches of 5

    spy = FitSpy(monkeypatch)
    result = ok("train", *args, "--epochs", 2, "--weights")  # the flag alone: models/r/best.keras
    assert "trained fcn on GunPoint: 2 epochs" in result.output
    [call] = spy.calls
    assert_same_weights(call["weights"], saved_weights)  # training starts from the saved model
    assert call["iterations"] == 30  # with its optimizer state
    resumed = [row["loss"] for row in read_log(tmp_path, "r")]
    assert len(resumed) == 2
    # the first resumed epoch carries on from where the first run ended, not from an untrained model
    assert abs(resumed[0] - first[-1]) < abs(resumed[0] - first[0])
    assert resumed[0] < first[0]
    metrics = read_json(tmp_path / "results" / "r" / "train_metrics.json")
    assert metrics["resumed_from"] == str(best)
    assert metrics["epochs"] == 2
    assert metrics["best_loss"] == pytest.approx(min(resumed))
    assert int(np.asarray(keras.saving.load_model(best).optimizer.iterations)) == 50
    assert leftovers(tmp_path) == []


def test_resume_from_explicit_path_and_reuse_with_zero_epochs(tmp_path, data_root, gp, monkeypatch):
    gp_root, _ = gp
    source = tmp_path / "source.keras"
    shutil.copy(gp_root / "models" / "gp" / "best.keras", source)
    source_weights = weights_of(source)
    gp_losses = [row["loss"] for row in read_log(gp_root, "gp")]

    spy = FitSpy(monkeypatch)
    ok("train", *gunpoint(tmp_path, data_root), "--seed", 0, "--no-progress", "--name", "more",
       "--epochs", 2, "--weights", source)
    [call] = spy.calls
    assert_same_weights(call["weights"], source_weights)
    assert call["iterations"] == 30
    resumed = [row["loss"] for row in read_log(tmp_path, "more")]
    assert abs(resumed[0] - gp_losses[-1]) < abs(resumed[0] - gp_losses[0])
    assert read_json(tmp_path / "results" / "more" / "train_metrics.json")["resumed_from"] == str(source)
    assert_same_weights(weights_of(source), source_weights)  # the source file is left alone

    # --epochs 0: the source model is reused as it is
    result = ok("train", *gunpoint(tmp_path, data_root), "--no-progress", "--name", "reuse", "--epochs", 0,
                "--weights", source)
    assert f"reused {source}" in result.output
    assert spy.calls == [call]  # no second fit
    assert_same_weights(weights_of(tmp_path / "models" / "reuse" / "best.keras"), source_weights)
    metrics = read_json(tmp_path / "results" / "reuse" / "train_metrics.json")
    assert metrics["epochs"] == 0
    assert metrics["best_epoch"] is None
    assert metrics["best_loss"] is None
    assert not (tmp_path / "results" / "reuse" / "train_log.csv").exists()
    ok("evaluate", *gunpoint(tmp_path, data_root), "--name", "reuse")
    ok("evaluate", *gunpoint(gp_root, data_root), "--name", "gp")
    reuse_metrics = read_json(tmp_path / "results" / "reuse" / "metrics.json")
    gp_metrics = read_json(gp_root / "results" / "gp" / "metrics.json")
    assert reuse_metrics["confusion_matrix"] == gp_metrics["confusion_matrix"]
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_losses(tmp_path, data_root, gp):
    gp_root, _ = gp
    base = [*gunpoint(tmp_path, data_root), "--epochs", 3, "--no-progress"]
    ok("train", *base, "--seed", 0, "--name", "again")
    ok("train", *base, "--seed", 1, "--name", "other")
    first = [row["loss"] for row in read_log(gp_root, "gp")]
    again = [row["loss"] for row in read_log(tmp_path, "again")]
    other = [row["loss"] for row in read_log(tmp_path, "other")]
    assert again == first  # bit for bit, other tests having run in between
    assert other != first  # the seed matters
    assert_same_weights(weights_of(tmp_path / "models" / "again" / "best.keras"),
                        weights_of(gp_root / "models" / "gp" / "best.keras"))


# --------------------------------------------------------------------------- mirrored strategy


def test_mirrored_strategy_on_two_logical_cpus(tmp_path, data_root, monkeypatch):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("the mirrored strategy uses the GPUs here; this test is about tests/conftest.py's two CPUs")
    assert len(tf.config.list_logical_devices("CPU")) == 2, "tests/conftest.py splits the CPU in two"
    assert camkit.workflows.fit.make_strategy("mirrored").num_replicas_in_sync == 2
    strategies = []
    make_strategy = camkit.workflows.fit.make_strategy

    def recording(name):
        strategy = make_strategy(name)
        strategies.append(strategy)
        return strategy

    monkeypatch.setattr(camkit.workflows.fit, "make_strategy", recording)
    ok("train", *gunpoint(tmp_path, data_root), "--epochs", 5, "--seed", 0, "--no-progress",
       "--strategy", "mirrored", "--name", "m")
    [strategy] = strategies
    assert isinstance(strategy, tf.distribute.MirroredStrategy)
    assert strategy.num_replicas_in_sync == 2
    log = read_log(tmp_path, "m")
    assert len(log) == 5
    assert log[-1]["loss"] < log[0]["loss"]
    assert max(row["accuracy"] for row in log) > 0.6
    metrics = read_json(tmp_path / "results" / "m" / "train_metrics.json")
    assert metrics["batch_size"] == 6  # min(50/10, 16) = 5, rounded up to split over 2 replicas
    manifest = read_json(tmp_path / "results" / "m" / "manifest.json")
    assert manifest["config"]["train"]["strategy"] == "mirrored"

    ok("evaluate", *gunpoint(tmp_path, data_root), "--name", "m")
    evaluation = read_json(tmp_path / "results" / "m" / "metrics.json")
    assert evaluation["n_samples"] == 150
    assert 0 <= evaluation["accuracy"] <= 1

    # and it resumes under the strategy
    ok("train", *gunpoint(tmp_path, data_root), "--epochs", 1, "--no-progress", "--strategy", "mirrored",
       "--name", "m", "--weights")
    assert read_log(tmp_path, "m")[0]["loss"] < log[0]["loss"]
    assert leftovers(tmp_path) == []


# --------------------------------------------------------------------------- images


def _image(side: str, seed: int) -> Image.Image:
    """32x32 dark noise with a bright 10x10 square in the left or right half."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 40, (32, 32, 3), dtype=np.uint8)
    top = int(rng.integers(4, 18))
    left = int(rng.integers(2, 6)) if side == "left" else int(rng.integers(18, 22))
    pixels[top:top + 10, left:left + 10] = 230
    return Image.fromarray(pixels)


@pytest.fixture
def image_dataset(tmp_path) -> Path:
    """shapes/{train,test}/{left,right}/: 6+6 train and 3+3 test PNGs, plus one corrupt JPEG in each split."""
    root = tmp_path / "shapes"
    for s, (split, count) in enumerate((("train", 6), ("test", 3))):
        for c, side in enumerate(("left", "right")):
            folder = root / split / side
            folder.mkdir(parents=True)
            for i in range(count):
                _image(side, seed=100 * s + 10 * c + i).save(folder / f"{side}_{i}.png")
    (root / "train" / "left" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    (root / "test" / "right" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 nor is this")
    return root


def test_images_train_and_evaluate_skip_the_corrupt_files(tmp_path, image_dataset):
    common = ["--kind", "images", "--dataset", image_dataset, "--image-size", 32, "--root", tmp_path,
              "--model", "vgg16-gap", "--name", "shapes"]
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = ok("--verbose", "train", *common, "--epochs", 1, "--batch-size", 4, "--seed", 0, "--no-progress")
    assert result.stdout.startswith(f"skipped 1 unreadable image(s) in {image_dataset / 'train'}: left/broken.jpg (")
    assert "trained vgg16-gap on shapes: 1 epochs" in result.output
    noise = [m for w in record if "ran out of data" in (m := str(w.message)) or "`shuffle=True` was passed" in m]
    assert noise == []  # Keras' warnings about a dataset of unknown length are expected, so silenced
    metrics = read_json(tmp_path / "results" / "shapes" / "train_metrics.json")
    assert metrics["parameters"] == 14_714_688 + 512 * 2 + 2  # VGG16 convs + Dense(2), see test_models
    assert len(read_log(tmp_path, "shapes")) == 1
    model = keras.saving.load_model(tmp_path / "models" / "shapes" / "best.keras", compile=False)
    assert tuple(model.input_shape) == (None, 32, 32, 3)

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = ok("--verbose", "evaluate", *common)
    skipped = [line for line in result.stdout.splitlines() if line.startswith("skipped ")]
    assert [line.split(": ")[0] for line in skipped] == [  # evaluate reads both splits (the classes are train's)
        f"skipped 1 unreadable image(s) in {image_dataset / split}" for split in ("train", "test")]
    assert skipped[1].startswith(f"skipped 1 unreadable image(s) in {image_dataset / 'test'}: right/broken.jpg (")
    assert not any("ran out of data" in str(w.message) for w in record)
    evaluation = read_json(tmp_path / "results" / "shapes" / "metrics.json")
    assert evaluation["n_samples"] == 6  # the readable test images only
    assert evaluation["labels"] == ["left", "right"]
    assert evaluation["per_class"]["support"] == [3, 3]
    assert np.array(evaluation["confusion_matrix"]).sum() == 6
    assert leftovers(tmp_path) == []

    missing = tmp_path / "vgg16_notop.h5"
    result = invoke("train", *common, "--epochs", 1, "--weights-file", missing)
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"Error: --weights-file: {missing} does not exist (expected a VGG16 weights .h5 file)"]
