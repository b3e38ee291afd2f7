"""Whole-folder explain runs on the map store: changed inputs are refused, altered batches recomputed."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import digit_folder, invoke, ok

import camkit
from camkit.workflows.store import MapStore, file_digest


@pytest.fixture()
def folder(tmp_path, data_root) -> tuple[Path, Path]:
    """6 cluttered-digit images in class folders 0 and 1, and a small GAP CNN with 2 classes."""
    digit_folder(data_root, tmp_path / "images", ("0", "1"), 3)
    keras.utils.set_random_seed(0)
    camkit.build_model("small-gap-cnn", (64, 64, 3), 2).save(tmp_path / "cnn.keras")
    return tmp_path / "images", tmp_path / "cnn.keras"


def run(folder, out: Path, *extra):
    images, model = folder
    return invoke("explain", "--model-path", model, "--images", images, "--n-images", "all", "--batch-size", 2,
                  "--target", "top1,true", "--save-dir", out, "--n-figures", 0, "--no-progress", *extra)


def test_the_run_record_holds_the_digests_of_the_model_and_the_images(folder, tmp_path) -> None:
    out = tmp_path / "out"
    assert run(folder, out).exit_code == 0
    record = json.loads((out / "run.json").read_text())
    assert record["inputs"]["model"] == file_digest(folder[1])
    assert record["settings"]["columns"] == ["top1", "true"] and record["settings"]["n_images"] == 6
    store = MapStore(out)
    assert all(store.is_done(b) for b in range(3))


def test_changed_images_are_refused_then_recomputed_with_overwrite(folder, tmp_path) -> None:
    out = tmp_path / "out"
    assert run(folder, out).exit_code == 0
    before = MapStore(out).read_all()
    image = sorted((folder[0] / "1").iterdir())[0]
    flipped = np.asarray(keras.utils.load_img(image))[:, ::-1]  # the same name and size, other pixels
    keras.utils.save_img(image, flipped)
    refused = run(folder, out)
    assert refused.exit_code == 2 and f"the images changed (1 of 6 files differ: 1/{image.name})" in refused.output
    assert refused.output.count("\n") == 1
    np.testing.assert_array_equal(MapStore(out).read_all()["maps_gradcam"], before["maps_gradcam"])  # untouched
    result = run(folder, out, "--overwrite")
    assert result.exit_code == 0 and "3 of 3 batch(es) computed" in result.output
    after = MapStore(out).read_all()
    changed = list(after["names"]).index(f"1/{image.name}")
    assert not np.array_equal(after["maps_gradcam"][changed], before["maps_gradcam"][changed])


def test_a_truncated_batch_is_recomputed_not_trusted(folder, tmp_path) -> None:
    out = tmp_path / "out"
    assert run(folder, out).exit_code == 0
    store = MapStore(out)
    expected = store.path(1).read_bytes()
    store.path(1).write_bytes(expected[:100])
    result = ok("explain", "--model-path", folder[1], "--images", folder[0], "--n-images", "all", "--batch-size", 2,
                "--target", "top1,true", "--save-dir", out, "--n-figures", 0, "--no-progress")
    assert "1 of 3 batch(es) computed, 2 already there" in result.output
    assert store.path(1).read_bytes() == expected and store.is_done(1)


def test_a_retrained_model_is_refused(folder, tmp_path) -> None:
    out = tmp_path / "out"
    assert run(folder, out).exit_code == 0
    keras.utils.set_random_seed(1)
    camkit.build_model("small-gap-cnn", (64, 64, 3), 2).save(folder[1])  # same architecture, other weights
    refused = run(folder, out)
    assert refused.exit_code == 2 and "the model file changed since these maps were written" in refused.output
