"""High-resolution CAM end to end: two-stage training, parity check, method hires, figure, localization hook.

A tiny copy of the shipped cluttered digits (3 train / 2 test images per class) at 32x32, 1 epoch per stage,
through the CLI (click's runner): two configs and two commands, and both stages from one config.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import invoke, ok

import camkit
from camkit.errors import CamkitError
from camkit.models import build_model
from camkit.models.densenet_fcn import shared_layer_names
from camkit.models.saving import load_model
from camkit.workflows.recipes.hires import check_parity, class_probabilities, copy_and_freeze, shared_weights_equal

SOURCE = Path(__file__).resolve().parents[3] / "data" / "cluttered_digits"
SMALL_DENSENET = {"layers_per_block": 2, "n_down_blocks": 2}  # a quarter of the layers: quick to build and trace
TRAIN_OPTIONS = {"epochs": 1, "batch_size": 10, "optimizer": "adadelta", "learning_rate": 1.0,
                 "reduce_lr_factor": 0.31622776601683794, "reduce_lr_patience": 10, "min_lr": 1e-5}


def _tiny_digits(out: Path) -> Path:
    for split, per_class in (("train", 3), ("test", 2)):
        (out / "annotations" / split).mkdir(parents=True)
        for label in sorted(p.name for p in (SOURCE / split).iterdir()):
            (out / split / label).mkdir(parents=True)
            for image in sorted((SOURCE / split / label).glob("*.png"))[:per_class]:
                shutil.copy(image, out / split / label / image.name)
                shutil.copy(SOURCE / "annotations" / split / f"{image.stem}.xml", out / "annotations" / split)
    return out


def _config(path: Path, name: str, model: str, dataset: Path, **train) -> Path:
    config = {"name": name, "data": {"dataset": str(dataset), "kind": "images", "image_size": [32, 32]},
              "model": {"name": model, "options": SMALL_DENSENET}, "train": {**TRAIN_OPTIONS, **train}}
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("hires")
    dataset = _tiny_digits(tmp / "digits")
    root = tmp / "runs"
    half_yaml = _config(tmp / "half.yaml", "tiny_half", "densenet-half", dataset)
    full_yaml = _config(tmp / "full.yaml", "tiny_full", "densenet-full", dataset)
    ok("train", "-c", half_yaml, "--root", root, "--no-progress")
    half_path = root / "models" / "tiny_half" / "best.keras"
    trained = ok("train", "-c", full_yaml, "--half-weights", half_path, "--root", root, "--no-progress")
    x = np.concatenate([np.stack([np.asarray(_read(p)) for p in sorted((dataset / "test" / c).glob("*.png"))])
                        for c in sorted(p.name for p in (dataset / "test").iterdir())])
    return {"tmp": tmp, "root": root, "dataset": dataset, "half_yaml": half_yaml, "full_yaml": full_yaml,
            "half_path": half_path, "full_path": root / "models" / "tiny_full" / "best.keras",
            "train_output": trained.output, "x": x}


@pytest.fixture(scope="module")
def models(run) -> tuple:
    """The trained half and full models, loaded once (their compiled explain steps are cached per model)."""
    return load_model(run["half_path"], compile=False), load_model(run["full_path"], compile=False)


def _read(path: Path) -> np.ndarray:
    from camkit.data.images import load_image

    return load_image(path, 32)[0]


def test_shared_layers_copied_frozen_and_unchanged_by_full_training(run, models):
    half, full = models
    shared = shared_layer_names(half, full)
    assert {"initial_conv2D", "conv_aux", "classifier", "dense_3_1_bn"} <= set(shared)  # dense_3_1: the bottleneck
    assert not shared_weights_equal(half, full)  # the saved full model still holds the half model's weights
    for name in shared:
        assert not full.get_layer(name).trainable
    assert full.get_layer("highres_features").trainable and full.get_layer("reconstruction").trainable
    fresh = build_model("densenet-full", (32, 32, 3), 10, **SMALL_DENSENET)
    assert shared_weights_equal(half, fresh)  # a fresh model differs ...
    assert copy_and_freeze(half, fresh) == shared and not shared_weights_equal(half, fresh)  # ... until copied
    trained_branch = full.get_layer("highres_features").get_weights()[0]
    assert not np.array_equal(trained_branch, fresh.get_layer("highres_features").get_weights()[0])
    summary = json.loads((run["root"] / "results" / "tiny_full" / "train_metrics.json").read_text())
    assert summary["parity"]["mismatched"] == 0 and summary["frozen_layers"] == len(shared)
    assert "parity with" in run["train_output"] and "identical predictions" in run["train_output"]
    assert "classifier_accuracy" in summary["final"] and "loss" in summary["final"]


def test_half_and_full_predict_identically(run, models):
    half, full = models
    p_half, p_full = class_probabilities(half, run["x"]), class_probabilities(full, run["x"])
    assert p_half.shape == (20, 10)
    assert np.array_equal(p_half.argmax(1), p_full.argmax(1))
    assert np.abs(p_half - p_full).max() <= 1e-6


def test_evaluate_runs_the_parity_check(run):
    result = ok("evaluate", "-c", run["full_yaml"], "--half-weights", run["half_path"], "--root", run["root"])
    assert "parity with" in result.output and "20 test images, identical predictions" in result.output
    metrics = json.loads((run["root"] / "results" / "tiny_full" / "metrics.json").read_text())
    assert metrics["parity"]["images"] == 20 and metrics["parity"]["mismatched"] == 0
    # without --half-weights, the one recorded when the full model was trained is used
    assert "parity with" in ok("evaluate", "-c", run["full_yaml"], "--root", run["root"]).output


def test_parity_check_fails_loudly_when_a_shared_weight_is_perturbed(run):
    full = load_model(run["full_path"], compile=False)
    kernel = full.get_layer("conv_aux").get_weights()
    full.get_layer("conv_aux").set_weights([kernel[0] + 0.5 * np.abs(kernel[0]).max()])
    bad = run["tmp"] / "perturbed.keras"
    full.save(bad)
    result = invoke("evaluate", "-c", run["full_yaml"], "--half-weights", run["half_path"], "--model-path", bad,
                    "--root", run["root"])
    assert result.exit_code == 2
    assert "parity check failed" in result.output and "retrain" in result.output
    assert str(run["half_path"]) in result.output
    probs = np.array([[0.6, 0.4], [0.3, 0.7]])
    with pytest.raises(CamkitError, match="1 of 2 images"):
        check_parity(probs, np.array([[0.4, 0.6], [0.3, 0.7]]), "half.keras")
    tie = np.array([[0.5, 0.5], [0.3, 0.7]])
    assert check_parity(tie, tie[:, ::-1] * [[1, 1], [0, 0]] + tie * [[0, 0], [1, 1]], "h")["mismatched"] == 0
    assert check_parity(probs, probs + 1e-7, "half.keras")["mismatched"] == 0
    with pytest.raises(CamkitError, match="max"):
        check_parity(probs, probs + np.array([[1e-3, -1e-3], [0, 0]]), "half.keras")


def test_method_hires_maps(run, models):
    half, full = models
    x = run["x"][:4]
    low, high, refined = (camkit.explain(full, x, method="hires", output=o) for o in ("low", "high", "refined"))
    assert low.raw.shape == (4, 8, 8) and low.maps.shape == (4, 32, 32) and low.layer == "conv_aux"
    assert high.raw.shape == (4, 32, 32) and refined.raw.shape == (4, 32, 32)
    cam = camkit.explain(full, x, method="cam", layer="conv_aux")
    assert np.allclose(low.maps, cam.maps, atol=1e-6) and np.array_equal(low.targets, cam.targets)
    assert ((refined.maps > 0).sum(axis=(1, 2)) == round(0.15 * 32 * 32)).all()
    assert np.allclose(refined.maps.max(axis=(1, 2)), 1.0) and high.maps.min() == 0.0
    every = camkit.explain(full, x, method="hires", output="all")
    for name, single in (("low", low), ("high", high), ("refined", refined)):
        np.testing.assert_allclose(every.variants[name], single.maps, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(every.variant_raw[name], single.raw, atol=1e-5, err_msg=name)
    np.testing.assert_array_equal(every.maps, every.variants["refined"])
    assert list(every.variants) == ["low", "high", "refined"] and every.variant_raw["low"].shape == (4, 8, 8)
    explicit = camkit.explain(full, x, method="hires", targets=[3, 3, 3, 3])
    assert (explicit.targets == 3).all()
    with pytest.raises(CamkitError, match="densenet-full"):
        camkit.explain(half, x, method="hires")
    with pytest.raises(CamkitError, match="output"):
        camkit.explain(full, x, method="hires", output="middle")


def test_explain_cli_writes_the_hires_figure(run):
    result = ok("explain", "-c", run["full_yaml"], "--method", "hires", "--n-images", "3", "--root", run["root"])
    out = run["root"] / "plots" / "tiny_full" / "explain_hires"
    figures = sorted(out.glob("image_*.png"))
    assert len(figures) == 3 and all(f.stat().st_size > 5000 for f in figures), result.output
    with np.load(out / "explanation.npz") as npz:
        assert list(npz["methods"]) == ["hires/low", "hires/high", "hires/refined"]
        assert npz["maps"].shape == (3, 3, 32, 32)
        assert npz["raw_0"].shape == (3, 8, 8) and npz["raw_1"].shape == (3, 32, 32)


def test_bad_hires_options_are_one_line_errors(run):
    result = invoke("train", "-c", run["half_yaml"], "--half-weights", run["half_path"], "--root", run["root"])
    assert result.exit_code == 2 and "--half-weights: is for model densenet-full, not " in result.output
    missing = invoke("train", "-c", run["full_yaml"], "--half-weights", run["tmp"] / "nope.keras",
                     "--root", run["tmp"] / "other")
    assert missing.exit_code == 2 and "nope.keras does not exist" in missing.output
    wrong = invoke("train", "-c", run["full_yaml"], "--half-weights", run["full_path"], "--root", run["tmp"] / "o2")
    assert wrong.exit_code == 2 and "not a densenet-half model" in wrong.output
    optimizer = _config(run["tmp"] / "bad.yaml", "bad", "densenet-half", run["dataset"], optimizer="sgd")
    bad = invoke("train", "-c", optimizer, "--root", run["tmp"] / "o3")
    assert bad.exit_code == 2 and "train.optimizer: must be one of adam, adadelta" in bad.output


def test_eval_localization_scores_the_three_maps(run, models):
    from camkit.data.boxes import load_annotations
    from camkit.metrics.localization import gt_known_accuracy
    from camkit.metrics.map_boxes import Preprocessing

    result = ok("eval-localization", "-c", run["full_yaml"], "--method", "hires", "-o", "output=all", "--target",
                "top1,true", "--root", run["root"], "--no-progress")
    assert "refined" in result.output
    out = run["root"] / "results" / "tiny_full" / "localization_hires"
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["variants"]) == ["low", "high", "refined"] and summary["threshold"] == 0.2
    assert sorted(p.name for p in (out / "submissions").iterdir()) == ["high.txt", "low.txt", "refined.txt"]
    # independent: GT-known accuracy of the refined maps of the true classes, straight from the metric
    full = models[1]
    names = [p.name for c in sorted(p.name for p in (run["dataset"] / "test").iterdir())
             for p in sorted((run["dataset"] / "test" / c).glob("*.png"))]
    y = np.repeat(np.arange(10), 2)
    refined = camkit.explain(full, run["x"], method="hires", targets=y).maps
    annotations = load_annotations(run["dataset"] / "annotations" / "test")
    expected = gt_known_accuracy(dict(zip(names, refined, strict=True)), annotations, Preprocessing((32, 32)),
                                 threshold=0.2, labels={n: str(c) for n, c in zip(names, y, strict=True)})
    assert summary["variants"]["refined"]["gt_known_loc_accuracy"] == pytest.approx(expected.value)


def test_data_classes_validate_the_class_folders(run, tmp_path):
    from camkit.config import load_config
    from camkit.data.splits import class_list, load_data

    listed = tmp_path / "classes.txt"
    listed.write_text("".join(f"{k} digit {k}\n" for k in (9, 8, 7, 6, 5, 4, 3, 2, 1, 0)))
    config = load_config(run["half_yaml"], {"data.classes": str(listed)})
    data = load_data(config.data)
    assert data.labels == [str(k) for k in range(9, -1, -1)]
    assert data.y_train[0] == 9  # folder 0's images: label 9 in the listed order
    listed.write_text("".join(f"{k}\n" for k in range(11)))
    with pytest.raises(CamkitError, match="lacks 1 of the 11 classes"):
        load_data(config.data)
    assert len(class_list("animal_synsets")) == 398 and class_list("animal_synsets")[0] == "n01440764"
    animals = load_config(Path(__file__).resolve().parents[3] / "configs" / "hires_animals.yaml")
    assert (animals.train.optimizer, animals.train.learning_rate, animals.train.batch_size) == ("adadelta", 1.0, 16)
    assert animals.data.classes == "animal_synsets" and animals.train.epochs == 50


def test_one_config_trains_both_stages_then_checks_parity(run):
    config = yaml.safe_load(run["full_yaml"].read_text())
    config.update(name="both", steps=["train", "evaluate"], half={"learning_rate": 0.5})
    path = run["tmp"] / "both.yaml"
    path.write_text(yaml.safe_dump(config))
    root = run["tmp"] / "one"
    output = ok("run", path, "--root", root, "--no-progress").output
    half_path, full_path = root / "models" / "both_half" / "best.keras", root / "models" / "both" / "best.keras"
    assert half_path.is_file() and full_path.is_file()
    lines = output.splitlines()
    assert lines[:2] == [line for line in lines if line.startswith("trained ")]
    assert lines[0].startswith("trained densenet-half on digits: 1 epochs")
    assert lines[1].startswith("trained densenet-full on digits: 1 epochs")
    assert f"parity with {half_path}: 20 test images, identical predictions" in output

    def read(*parts: str) -> dict:
        return json.loads(root.joinpath("results", *parts).read_text())

    summary = read("both", "train_metrics.json")
    assert summary["half_weights"] == str(half_path) and summary["parity"]["mismatched"] == 0
    stages = [(s["experiment"], s["model"], s["epochs"]) for s in summary["stages"]]
    assert stages == [("both_half", "densenet-half", 1)]
    half_manifest, full_manifest = read("both_half", "manifest.json"), read("both", "manifest.json")
    assert half_manifest["config"]["model"]["name"] == "densenet-half"
    assert half_manifest["config"]["train"]["learning_rate"] == 0.5 and half_manifest["config"]["half"] is None
    assert full_manifest["config"]["train"]["learning_rate"] == 1.0  # stage 2 keeps train's own
    assert full_manifest["config"]["train"]["half_weights"] == str(half_path)  # how evaluate finds the half model
    assert read("both", "metrics.json")["parity"] == {**summary["parity"], "images": 20,
                                                       "max_abs_prob_diff": pytest.approx(0.0, abs=1e-5)}
    half, full = load_model(half_path, compile=False), load_model(full_path, compile=False)
    assert not shared_weights_equal(half, full)  # independent of the run: every shared weight is the half's
    assert np.array_equal(class_probabilities(half, run["x"]).argmax(1), class_probabilities(full, run["x"]).argmax(1))
    # resuming stage 2 (--weights) reuses the half model instead of training it again
    before = half_path.stat().st_mtime_ns
    resumed = ok("train", "-c", path, "--root", root, "--weights", "--no-progress").output
    assert [line for line in resumed.splitlines() if line.startswith("trained ")] == [
        line for line in resumed.splitlines() if line.startswith("trained densenet-full")]
    assert half_path.stat().st_mtime_ns == before and "parity with" in resumed
