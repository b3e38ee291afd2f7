"""Whole-split time-series runs (`camkit explain -c CONFIG --n-images all`) in the map store: the batches hold
`camkit.explain`'s maps of the split, resume computes nothing, shards merge into the whole run, changed settings
or series are refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import gunpoint_experiment, ok, refused, snapshot

import camkit
from camkit.data.timeseries import load_timeseries
from camkit.workflows.records import array_digest, file_digest
from camkit.workflows.store import MapStore

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
BATCH_KEYS = {"names", "indices", "y_true", "top5", "top5_probs", "columns", "targets", "scores", "variants",
              "layer", "class_names", "maps_gradcam"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, data_root) -> tuple[Path, Path]:
    """Experiment ``gunpoint_fcn`` whose best model is a tiny FCN trained for 2 epochs, and that model's file."""
    root = tmp_path_factory.mktemp("series_store")
    return root, gunpoint_experiment(root, data_root)


def args(experiment, data_root, out: Path, *extra) -> list:
    """``camkit explain`` of the config's whole test split (150 series, batches of 64) into ``out``."""
    return ["explain", "-c", CONFIGS / "gunpoint_fcn.yaml", "--root", experiment[0], "--data-root", data_root,
            "--n-images", "all", "--batch-size", 64, "--target", "top1,true", "--save-dir", out, "--n-figures", 2,
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def whole(experiment, data_root) -> tuple[Path, str]:
    """The unsharded run's folder and its output."""
    out = experiment[0] / "whole"
    return out, ok(*args(experiment, data_root, out)).output


def test_the_batches_hold_camkit_explain_of_the_split(experiment, whole, data_root) -> None:
    out, output = whole
    assert "explained 150 series of GunPoint with gradcam at block2_conv" in output
    assert "3 of 3 batch(es) computed, 0 already there" in output
    ds = load_timeseries("GunPoint", data_root)
    model = camkit.load_model(experiment[1], compile=False)
    store = MapStore(out)
    first = store.read(2)
    assert set(first) == BATCH_KEYS and len(first["names"]) == 150 - 2 * 64
    assert first["maps_gradcam"].shape == (22, 2, 150) and first["maps_gradcam"].dtype == np.float16
    stored = store.read_all()
    assert list(stored["names"]) == [f"test_{i:05d}" for i in range(150)]
    np.testing.assert_array_equal(stored["indices"], np.arange(150))
    np.testing.assert_array_equal(stored["y_true"], ds.y_test)
    assert list(stored["columns"]) == ["top1", "true"] and list(stored["variants"]) == ["gradcam"]
    assert str(stored["layer"]) == "block2_conv" and list(stored["class_names"]) == ds.labels
    probs = model.predict(ds.x_test, verbose=0)
    np.testing.assert_array_equal(stored["top5"], np.argsort(-probs, axis=1, kind="stable"))
    np.testing.assert_allclose(stored["top5_probs"], np.sort(probs, axis=1)[:, ::-1], atol=1e-5)
    direct = camkit.explain(model, ds.x_test, "gradcam", targets="top1,true", y_true=ds.y_test)
    np.testing.assert_array_equal(stored["targets"], direct.targets)
    np.testing.assert_array_equal(stored["targets"][:, 1], ds.y_test)
    assert 0 < (stored["targets"][:, 0] != ds.y_test).sum() < 150  # the true column reuses top1 and explains
    np.testing.assert_allclose(stored["scores"], direct.scores, rtol=1e-4, atol=1e-5)
    maps = stored["maps_gradcam"].astype(np.float32)
    assert maps.min() >= 0 and maps.max() <= 1
    np.testing.assert_allclose(maps, direct.maps, atol=1e-3)
    assert sorted(p.name for p in (out / "figures").iterdir()) == ["series_00000.png", "series_00001.png"]
    assert (out / "figures" / "series_00000.png").read_bytes()[:8] == PNG_MAGIC


def test_the_run_records_the_split_and_where_it_came_from(experiment, whole, data_root) -> None:
    out, _ = whole
    record = json.loads((out / "run.json").read_text())
    ds = load_timeseries("GunPoint", data_root)
    assert record["settings"] == {"method": "gradcam", "options": {}, "columns": ["top1", "true"], "layer": None,
                                  "batch_size": 64, "n_images": 150, "class_names": ds.labels, "kind": "series",
                                  "dataset": "GunPoint", "split": "test", "znorm": False}
    assert record["inputs"] == {"model": file_digest(experiment[1]), "series": array_digest(ds.x_test, ds.y_test)}
    assert record["inputs"]["series"] != array_digest(ds.x_test, ds.y_test[::-1])  # the labels count
    assert json.loads((out / "source.json").read_text()) == {"folder": str((data_root / "GunPoint").resolve()),
                                                             "model": str(experiment[1].resolve())}


def test_a_second_run_computes_nothing(experiment, whole, data_root) -> None:
    out, _ = whole
    before = snapshot(out / "batches")
    result = ok(*args(experiment, data_root, out))
    assert "0 of 3 batch(es) computed, 3 already there" in result.output
    assert snapshot(out / "batches") == before


def test_two_shards_merged_are_the_whole_run(experiment, whole, data_root, tmp_path) -> None:
    first = ok(*args(experiment, data_root, tmp_path / "s0", "--shard", "0/2")).output
    ok(*args(experiment, data_root, tmp_path / "s1", "--shard", "1/2"))
    assert "2 of 2 batch(es) computed" in first and "shard 0/2: 2 of 3 batches" in first
    assert sorted(p.name for p in (tmp_path / "s1" / "batches").glob("*.npz")) == ["batch_00001.npz"]
    for path in (tmp_path / "s1" / "batches").iterdir():
        shutil.copy(path, tmp_path / "s0" / "batches" / path.name)
    merged, full = MapStore(tmp_path / "s0").read_all(), MapStore(whole[0]).read_all()
    assert set(merged) == set(full)
    for key in full:
        np.testing.assert_array_equal(merged[key], full[key], err_msg=key)
    assert "0 of 3 batch(es) computed" in ok(*args(experiment, data_root, tmp_path / "s0")).output


def test_a_rerun_with_another_option_is_refused(experiment, whole, data_root) -> None:
    out, _ = whole
    line = refused(args(experiment, data_root, out, "-o", "smooth=eigen"), "the settings changed (options", out)
    assert str(out) in line and "--overwrite" in line


def test_a_changed_split_is_refused(experiment, data_root, tmp_path) -> None:
    dataset = Path(shutil.copytree(data_root / "GunPoint", tmp_path / "GunPoint"))
    run = ["explain", "--model-path", experiment[1], "--dataset", dataset, "--n-images", "all", "--batch-size", 64,
           "--save-dir", tmp_path / "out", "--n-figures", 0, "--no-progress"]
    ok(*run)
    labels = np.load(dataset / "y_test.npy")
    np.save(dataset / "y_test.npy", labels[::-1])  # the same values and class counts, other labels per series
    refused(run, "the series (their values or labels) changed since these maps were written", tmp_path / "out")


def test_a_count_alone_stays_a_small_run_and_with_a_shard_fills_a_store(experiment, data_root, tmp_path) -> None:
    small = ["explain", "-c", CONFIGS / "gunpoint_fcn.yaml", "--root", experiment[0], "--data-root", data_root,
             "--n-images", 5, "--no-progress"]
    ok(*small, "--save-dir", tmp_path / "small")
    with np.load(tmp_path / "small" / "explanation.npz") as npz:
        assert list(npz["names"]) == [f"test[{i}]" for i in range(5)] and npz["maps"].shape == (5, 150)
    assert not (tmp_path / "small" / "run.json").exists()
    ok(*small, "--save-dir", tmp_path / "store", "--shard", "0/1", "--batch-size", 2, "--n-figures", 0)
    stored = MapStore(tmp_path / "store").read_all()
    assert json.loads((tmp_path / "store" / "run.json").read_text())["settings"]["n_images"] == 5
    assert list(stored["names"]) == [f"test_{i:05d}" for i in range(5)]


def test_an_image_size_for_series_is_refused(experiment, data_root, tmp_path) -> None:
    refused(args(experiment, data_root, tmp_path / "out", "--image-size", 64), "--image-size is for images",
            tmp_path)


def test_the_split_and_its_series_are_read_as_recorded(experiment, whole, data_root) -> None:
    """A train-split run records split train and the train series' digest."""
    ds = load_timeseries("GunPoint", data_root)
    out = whole[0].parent / "train"
    ok(*args(experiment, data_root, out, "--split", "train", "--n-figures", 0))
    record = json.loads((out / "run.json").read_text())
    assert record["settings"]["split"] == "train" and record["settings"]["n_images"] == len(ds.x_train)
    assert record["inputs"]["series"] == array_digest(ds.x_train, ds.y_train)
    np.testing.assert_array_equal(MapStore(out).read_all()["y_true"], ds.y_train)
