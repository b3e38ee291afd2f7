"""User errors of `camkit train / evaluate` (one line, exit 2, nothing written) and `camkit models`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import gunpoint, invoke, ok

from camkit.models import model_names


def test_models_command_lists_the_builders():
    result = ok("models")
    assert result.output.split() == model_names()
    assert {"fcn", "resnet1d", "vgg16-gap"} <= set(result.output.split())


@pytest.fixture(scope="module")
def italy_model(tmp_path_factory, data_root) -> Path:
    """An ItalyPowerDemand FCN (input (24, 1)); beside it, ``gp3/best.keras``: a 2-class GunPoint FCN."""
    root = tmp_path_factory.mktemp("italy")
    ok("train", "--dataset", "ItalyPowerDemand", "--data-root", data_root, "--root", root, "--epochs", 1,
       "--no-progress", "--name", "italy")
    ok("train", *gunpoint(root, data_root), "--epochs", 1, "--no-progress", "--name", "gp")
    (root / "models" / "gp3").mkdir()
    shutil.copy(root / "models" / "gp" / "best.keras", root / "models" / "gp3" / "best.keras")
    return root / "models" / "italy" / "best.keras"


def _three_class_gunpoint(folder: Path, data_root: Path) -> Path:
    """GunPoint's series (same input shape) with three made-up classes."""
    folder.mkdir()
    for split in ("train", "test"):
        x = np.load(data_root / "GunPoint" / f"x_{split}.npy")
        np.save(folder / f"x_{split}.npy", x)
        np.save(folder / f"y_{split}.npy", np.arange(len(x), dtype=np.int64) % 3)
    (folder / "labels.json").write_text(json.dumps({"labels": ["a", "b", "c"]}))
    return folder


def _error_cases(root: Path, data_root: Path, italy: Path) -> dict[str, tuple[list, str]]:
    gp = gunpoint(root, data_root)
    not_a_model = root / "notes.txt"
    not_a_model.write_text("hello")
    broken = root / "broken.keras"
    broken.write_bytes(b"PK\x03\x04 not a zip archive")
    monitor_config = root / "monitor.yaml"
    monitor_config.write_text("train:\n  monitor: val_loss\n")
    return {
        "unknown model": (["train", *gp, "--model", "lenet", "--epochs", 1],
                          "Error: --model: unknown model 'lenet'; choose one of conv-ae, densenet-full, densenet-half, "
                          "fcn, resnet1d, resnet1d-ae, small-gap-cnn, vgg16, vgg16-gap"),
        "missing dataset": (["train", "--dataset", "NoSuchSet", "--data-root", data_root, "--root", root],
                            "Error: --dataset: no dataset folder 'NoSuchSet'"),
        "epochs 0 without weights": (["train", *gp, "--epochs", 0], "Error: --epochs 0 needs --weights"),
        "missing weights file": (["train", *gp, "--epochs", 1, "--weights", root / "missing.keras"],
                                 f"Error: --weights: {root / 'missing.keras'} does not exist"),
        "own weights before training": (["train", *gp, "--epochs", 1, "--weights", "--name", "fresh"],
                                        f"Error: --weights: {root / 'models' / 'fresh' / 'best.keras'} does not exist"),
        "weights not a model": (["train", *gp, "--epochs", 1, "--weights", not_a_model],
                                f"Error: --weights: {not_a_model}: expected a .keras or .h5 model file"),
        "input shape mismatch": (["evaluate", *gp, "--model-path", italy],
                                 "Error: --model-path: the model expects inputs (24, 1) but GunPoint gives (150, 1)"),
        "autoencoder as classifier": (["train", *gp, "--model", "resnet1d-ae", "--epochs", 1],
                                      "Error: --model resnet1d-ae: its output (None, 150, 1) is not one probability"),
        "option the model lacks": (["train", *gp, "--epochs", 1, "--weights-file", root / "vgg.h5"],
                                   "Error: model.options: fcn does not take 'weights'"),
        "batch not splittable": (["train", *gp, "--epochs", 1, "--strategy", "mirrored", "--batch-size", 5],
                                 "Error: --batch-size 5: the mirrored strategy has 2 replicas; use a multiple of 2"),
        "broken model file": (["train", *gp, "--epochs", 1, "--weights", broken],
                              f"Error: --weights: {broken} is not a Keras model file (truncated or not a .keras zip "
                              "archive)"),
        "class count mismatch": (["evaluate", "--dataset", _three_class_gunpoint(root / "GunPoint3", data_root),
                                  "--root", root, "--model-path", italy.parent.parent / "gp3" / "best.keras"],
                                 "Error: --model-path: the model has 2 outputs but GunPoint3 has 3 classes"),
        "monitor not logged": (["train", "-c", monitor_config, *gp, "--epochs", 1, "--no-progress"],
                               "Error: train.monitor: 'val_loss' needs a validation split (train.validation_split > 0"),
        "missing model for evaluate": (["evaluate", *gp, "--name", "never"],
                                       f"Error: --name: no experiment named 'never' under {root} "
                                       f"({Path('models') / 'never' / 'best.keras'} missing); known: none"),
    }


CASES = ["unknown model", "missing dataset", "epochs 0 without weights", "missing weights file",
         "own weights before training", "weights not a model", "input shape mismatch", "autoencoder as classifier",
         "option the model lacks", "batch not splittable", "broken model file", "class count mismatch",
         "monitor not logged", "missing model for evaluate"]


NOTHING_WRITTEN = {"unknown model", "missing dataset", "epochs 0 without weights", "missing weights file",
                   "own weights before training", "batch not splittable", "monitor not logged"}


@pytest.mark.parametrize("case", CASES)
def test_user_errors_exit_2_with_one_error_line(case, tmp_path, data_root, italy_model):
    args, expected = _error_cases(tmp_path, data_root, italy_model)[case]
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith(expected), lines[0]
    if case in NOTHING_WRITTEN or args[0] == "evaluate":  # checked before any folder or file is made
        assert not (tmp_path / "results").exists()
        assert not (tmp_path / "plots").exists()
        if args[0] == "train":
            assert not (tmp_path / "models").exists()
