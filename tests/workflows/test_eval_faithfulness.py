"""`camkit eval-faithfulness` end to end through click's runner: GunPoint series and digit images, values against
an independent computation, resume, shards, refused reruns."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import digit_folder, gunpoint_experiment, invoke, ok, refused, tiny_fcn

from camkit.data.timeseries import load_timeseries
from camkit.workflows.store import MapStore

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
METRICS = "deletion,average-drop,road,randomization"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, data_root) -> tuple[Path, Path]:
    """Experiment ``gunpoint_fcn`` whose best model is a tiny FCN trained for 2 epochs, and that model's file."""
    root = tmp_path_factory.mktemp("faith")
    return root, gunpoint_experiment(root, data_root)


def args(experiment, data_root, out: Path, *extra) -> list:
    return ["eval-faithfulness", "-c", CONFIGS / "gunpoint_fcn.yaml", "--method", "gradcam", "--root",
            experiment[0], "--data-root", data_root, "--n-images", 40, "--batch-size", 16, "--metric", METRICS,
            "--out", out, "--no-progress", *extra]


@pytest.fixture(scope="module")
def whole(experiment, data_root) -> tuple[Path, str]:
    out = experiment[0] / "whole"
    return out, ok(*args(experiment, data_root, out)).output


def test_series_table_files_and_average_drop_by_hand(experiment, whole, data_root) -> None:
    out, output = whole
    assert "evaluated 3 of 3 batch(es)" in output
    rows = {line.split()[0]: line.split() for line in output.splitlines()}
    assert rows["deletion"][-1] == "lower" and rows["road"][-1] == "higher" and rows["samples"][1] == "40"
    summary = json.loads((out / "summary.json").read_text())["variants"]["gradcam"]
    assert float(rows["average-drop"][1]) == pytest.approx(summary["average-drop"], abs=1e-4)
    # Average Drop from the stored maps, the model's own predictions and NumPy alone
    maps_dir = experiment[0] / "plots" / "gunpoint_fcn" / "explain_gradcam"
    stored = MapStore(maps_dir).read_all()
    x = load_timeseries("GunPoint", data_root).x_test[:40]
    model = keras.models.load_model(experiment[1], compile=False)
    target = stored["targets"][:, 0]
    y = np.asarray(model.predict(x, verbose=0), np.float64)[np.arange(40), target]  # the model ends in a softmax
    o = np.asarray(model.predict(x * stored["maps_gradcam"][:, 0, :, None].astype(np.float32), verbose=0),
                   np.float64)[np.arange(40), target]
    expected = 100 * np.maximum(0, y - o) / y
    with open(out / "per_image.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["sample"] for r in table] == [f"test_{i:05d}" for i in range(40)]
    np.testing.assert_allclose([float(r["average-drop"]) for r in table], expected, atol=2e-3)
    assert summary["average-drop"] == pytest.approx(expected.mean(), abs=1e-3)
    assert (out / "figures" / "curves.png").stat().st_size > 10_000
    assert (out / "figures" / "randomization_gradcam.png").stat().st_size > 10_000
    assert (out / "curves" / "gradcam_deletion.csv").read_text().startswith("fraction removed,probability")
    steps = (out / "randomization" / "gradcam.csv").read_text().splitlines()[1:]
    assert [line.split(",")[1] for line in steps] == ["predictions", "block2_conv", "block1_conv"]  # from the top


def test_resume_computes_nothing_and_shards_give_the_same_summary(experiment, whole, data_root) -> None:
    out, _ = whole
    again = ok(*args(experiment, data_root, out))
    assert "evaluated 0 of 3 batch(es)" in again.output
    sharded = experiment[0] / "sharded"
    first = ok(*args(experiment, data_root, sharded, "--shard", "0/2"))
    assert "not every batch is evaluated yet" in first.output and not (sharded / "summary.json").exists()
    ok(*args(experiment, data_root, sharded, "--shard", "1/2"))
    assert (json.loads((sharded / "summary.json").read_text())["variants"]
            == json.loads((out / "summary.json").read_text())["variants"])


def test_changed_settings_and_model_are_refused(experiment, whole, data_root, tmp_path) -> None:
    out, _ = whole
    refused(args(experiment, data_root, out, "--steps", 10), "--out", out)
    refused(["eval-faithfulness", "--maps", out.parent / "plots", "--metric", "nope"], "--metric")
    maps_dir = experiment[0] / "plots" / "gunpoint_fcn" / "explain_gradcam"
    copy = tmp_path / "maps"
    shutil.copytree(maps_dir, copy)
    source = json.loads((copy / "source.json").read_text())
    other = tmp_path / "other.keras"
    tiny_fcn(150, 2, seed=1).save(other)
    refused(["eval-faithfulness", "--maps", copy, "--model-path", other, "--no-progress"], "model", copy)
    assert json.loads((copy / "source.json").read_text()) == source
    refused(["eval-faithfulness", "--maps", copy, "--n-images", 3], "--n-images", copy)


def test_images_end_to_end(data_root, tmp_path) -> None:
    import camkit

    images = digit_folder(data_root, tmp_path / "digits", ("0", "1"), 3)
    keras.utils.set_random_seed(0)
    model = camkit.build_model("small-gap-cnn", (32, 32, 3), 2)
    model.save(tmp_path / "cnn.keras")
    out = tmp_path / "out"
    result = ok("eval-faithfulness", "--method", "gradcam", "--model-path", tmp_path / "cnn.keras", "--images",
                images, "--metric", "deletion,insertion,road-morf,mufidelity", "--steps", 8, "--root", tmp_path,
                "--out", out, "--no-progress")
    assert result.output.splitlines()[-2].split() == ["samples", "6"]
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and all(0 <= float(r["deletion"]) <= 1 for r in rows)
    settings = json.loads((out / "eval" / "run.json").read_text())["settings"]
    assert settings["metrics"]["deletion"]["steps"] == 8 and settings["metrics"]["insertion"]["baseline"] == "blur"
    assert invoke("eval-faithfulness", "--maps", tmp_path / "nowhere").exit_code == 2


def test_localization_refuses_a_series_store_without_intervals(experiment, whole, data_root, tmp_path) -> None:
    maps_dir = experiment[0] / "plots" / "gunpoint_fcn" / "explain_gradcam"
    line = refused(["eval-localization", "--maps", maps_dir, "--out", tmp_path / "loc"], "no interval ground truth",
                   maps_dir, data_root / "GunPoint")
    assert f"{data_root / 'GunPoint' / 'intervals_test.csv'} does not exist" in line and "eval-faithfulness" in line
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,label,xmin,ymin,xmax,ymax\ntest_00000,1,0,0,1,1\n")
    refused(["eval-localization", "--maps", maps_dir, "--annotations", boxes, "--out", tmp_path / "loc"],
            f"--annotations {boxes}, line 1: expected the header sample,label,start,end,channel", maps_dir)
    assert not (tmp_path / "loc").exists()


def test_metric_options_reach_their_metric(experiment, whole, data_root, tmp_path) -> None:
    from camkit.metrics.faithfulness.base import Explained
    from camkit.metrics.faithfulness.road import RoadMoRF

    maps_dir = experiment[0] / "plots" / "gunpoint_fcn" / "explain_gradcam"
    out = tmp_path / "road"
    ok("eval-faithfulness", "--maps", maps_dir, "--metric", "road-morf,deletion", "--metric-option",
       "road-morf.percentiles=[25, 50, 75]", "--metric-option", "deletion.steps=10", "--out", out, "--no-progress")
    settings = json.loads((out / "eval" / "run.json").read_text())["settings"]["metrics"]
    assert settings["road-morf"]["percentiles"] == [25, 50, 75] and settings["deletion"]["steps"] == 10
    assert [line.split(",")[0] for line in (out / "curves" / "gradcam_road-morf.csv").read_text().splitlines()] == [
        "percent removed", "25", "50", "75"]
    assert len((out / "curves" / "gradcam_deletion.csv").read_text().splitlines()) == 12  # header + 11 steps
    stored = MapStore(maps_dir).read_all()
    x = load_timeseries("GunPoint", data_root).x_test[:40]
    model = keras.models.load_model(experiment[1], compile=False)
    direct = RoadMoRF(percentiles=[25, 50, 75]).score(Explained(
        model, x, stored["maps_gradcam"][:, 0].astype(np.float32), stored["targets"][:, 0].astype(np.int64)))
    with open(out / "per_image.csv") as f:
        table = list(csv.DictReader(f))
    np.testing.assert_allclose([float(r["road-morf"]) for r in table], direct.values, atol=1e-5)
    for bad, culprit in (("road.percentiles=[50]", "'road' is not among the metrics"),
                         ("road-morf.window=3", "metric road-morf takes percentiles"),
                         ("road-morf.percentiles=[90, 10]", "percentiles: expected an increasing list"),
                         ("percentiles=[10]", "--metric-option: expected METRIC.KEY=VALUE")):
        refused(["eval-faithfulness", "--maps", maps_dir, "--metric", "road-morf,deletion", "--metric-option", bad,
                 "--out", tmp_path / "bad", "--no-progress"], culprit, maps_dir)
        assert not (tmp_path / "bad").exists()
