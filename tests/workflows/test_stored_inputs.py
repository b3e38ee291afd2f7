"""The inputs of a stored batch (`camkit.workflows.stored_inputs`): exactly what was explained, for image folders
and time-series splits, and one line refusing whatever changed since (an image, the split, the model file)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import digit_folder, ok, tiny_fcn

import camkit
from camkit.data.images import load_image
from camkit.data.timeseries import load_timeseries
from camkit.errors import CamkitError
from camkit.workflows.explain import explain_to_dir
from camkit.workflows.plan import ExplainPlan
from camkit.workflows.sources import SourceSpec
from camkit.workflows.store import MapStore
from camkit.workflows.stored_inputs import StoredInputs, batch_inputs, model_for

SIZE = (48, 40)  # the digits are 64x64: the stored inputs are resized like the run's


def one_line(exc: pytest.ExceptionInfo, *parts: str) -> None:
    text = str(exc.value)
    assert "\n" not in text and all(p in text for p in parts), text


@pytest.fixture(scope="module")
def images(tmp_path_factory, data_root) -> tuple[Path, Path, Path]:
    """5 cluttered digits in class folders 0 and 1, a small GAP CNN for 48x40 inputs and its folder run (batches
    of 3: images 0-2 and 3-4)."""
    base = tmp_path_factory.mktemp("stored_images")
    folder = digit_folder(data_root, base / "images", ("0", "1"), 3)
    (folder / "1" / sorted(p.name for p in (folder / "1").iterdir())[0]).unlink()
    keras.utils.set_random_seed(0)
    camkit.build_model("small-gap-cnn", (*SIZE, 3), 2).save(base / "cnn.keras")
    ok("explain", "--model-path", base / "cnn.keras", "--images", folder, "--n-images", "all", "--batch-size", 3,
       "--target", "top1", "--save-dir", base / "maps", "--n-figures", 0, "--no-progress")
    return folder, base / "cnn.keras", base / "maps"


@pytest.fixture(scope="module")
def series(tmp_path_factory, data_root) -> tuple[Path, Path, Path]:
    """A copy of GunPoint, a tiny FCN file and its test-split run (batches of 64)."""
    base = tmp_path_factory.mktemp("stored_series")
    dataset = Path(shutil.copytree(data_root / "GunPoint", base / "GunPoint"))
    tiny_fcn(150, 2).save(base / "fcn.keras")
    ok("explain", "--model-path", base / "fcn.keras", "--dataset", dataset, "--n-images", "all", "--batch-size", 64,
       "--save-dir", base / "maps", "--n-figures", 0, "--no-progress")
    return dataset, base / "fcn.keras", base / "maps"


def copied(run: tuple[Path, Path, Path], tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of a run with its inputs, its source.json pointing at the copies (so that a test may change them)."""
    data, model, maps = (Path(shutil.copytree(p, tmp_path / p.name)) if p.is_dir() else
                         Path(shutil.copy(p, tmp_path / p.name)) for p in run)
    (maps / "source.json").write_text(json.dumps({"folder": str(data), "model": str(model)}))
    return data, model, maps


def test_image_batches_are_the_files_read_as_the_run_read_them(images) -> None:
    folder, model_file, maps = images
    stored = StoredInputs.open(maps)
    assert stored.kind == "images" and stored.n_batches == 2
    assert stored.source == {"folder": str(folder.resolve()), "model": str(model_file.resolve())}
    model = stored.model()
    for b, count in [(0, 3), (1, 2)]:
        x = stored.batch(b)
        arrays = MapStore(maps).read(b)
        names = [str(n) for n in arrays["names"]]
        expected = np.concatenate([load_image(folder / n, SIZE, preprocess="rescale", channels=3) for n in names])
        assert x.shape == (count, *SIZE, 3) and x.dtype == np.float32
        np.testing.assert_allclose(x, expected, atol=1e-6)
        np.testing.assert_allclose(camkit.explain(model, x, "gradcam").maps,
                                   arrays["maps_gradcam"][:, 0].astype(np.float32), atol=1e-3)
        np.testing.assert_allclose(np.sort(model.predict(x, verbose=0), axis=1)[:, ::-1], arrays["top5_probs"],
                                   atol=1e-5)
    np.testing.assert_array_equal(batch_inputs(maps, 1), stored.batch(1))


def test_series_batches_are_the_split_sliced(series) -> None:
    dataset, _, maps = series
    x = load_timeseries(dataset).x_test
    stored = StoredInputs.open(maps)
    assert stored.kind == "series" and stored.n_batches == 3
    for b, (lo, hi) in enumerate([(0, 64), (64, 128), (128, 150)]):
        np.testing.assert_array_equal(stored.batch(b), x[lo:hi])
    model = model_for(maps)
    arrays = MapStore(maps).read(1)
    np.testing.assert_allclose(camkit.explain(model, stored.batch(1), "gradcam").maps,
                               arrays["maps_gradcam"][:, 0].astype(np.float32), atol=1e-3)
    with pytest.raises(CamkitError) as exc:
        stored.batch(3)
    one_line(exc, f"--maps {maps}: no batch 3 (the store has batches 0 to 2)")


def test_a_changed_or_removed_image_is_refused(images, tmp_path) -> None:
    folder, _, maps = copied(images, tmp_path)
    name = str(MapStore(maps).read(1)["names"][0])
    keras.utils.save_img(folder / name, np.asarray(keras.utils.load_img(folder / name))[:, ::-1])
    stored = StoredInputs.open(maps)
    assert stored.batch(0).shape == (3, *SIZE, 3)  # the other batch's images are as recorded
    with pytest.raises(CamkitError) as exc:
        stored.batch(1)
    one_line(exc, f"--maps {maps}: the image {folder / name} changed since these maps were written")
    (folder / name).unlink()
    with pytest.raises(CamkitError) as exc:
        batch_inputs(maps, 1, option="")
    one_line(exc, f"{maps}: the image {name} is gone from {folder}")


def test_a_changed_model_file_is_refused(images, tmp_path) -> None:
    _, model_file, maps = copied(images, tmp_path)
    original = tmp_path / "original.keras"
    shutil.copy(model_file, original)
    keras.utils.set_random_seed(1)
    camkit.build_model("small-gap-cnn", (*SIZE, 3), 2).save(model_file)  # the same architecture, other weights
    stored = StoredInputs.open(maps)
    with pytest.raises(CamkitError) as exc:
        stored.model(model_file)
    one_line(exc, f"--model-path {model_file}: not the model the maps of {maps} were made with")
    x = stored.batch(0)
    np.testing.assert_array_equal(stored.model(original).predict(x, verbose=0),
                                  camkit.load_model(original, compile=False).predict(x, verbose=0))
    in_memory = camkit.load_model(model_file, compile=False)
    assert stored.model(in_memory) is in_memory
    with pytest.raises(CamkitError) as exc:
        model_for(maps)
    one_line(exc, f"--maps {maps}: the model file {model_file} changed since these maps were written")
    model_file.unlink()
    with pytest.raises(CamkitError) as exc:
        model_for(maps)
    one_line(exc, f"the model file {model_file} is gone")


def test_a_changed_split_is_refused(series, tmp_path) -> None:
    dataset, _, maps = copied(series, tmp_path)
    x = np.load(dataset / "x_test.npy")
    x[149, 0] += 1e-3  # one value of the last series
    np.save(dataset / "x_test.npy", x)
    with pytest.raises(CamkitError) as exc:
        StoredInputs.open(maps)
    one_line(exc, f"--maps {maps}: the test series of {dataset} changed (their values or labels) since these maps")


def test_a_store_without_its_source_is_refused(images, tmp_path) -> None:
    _, _, maps = copied(images, tmp_path)
    (maps / "source.json").unlink()
    with pytest.raises(CamkitError) as exc:
        StoredInputs.open(maps, option="--maps-x")
    one_line(exc, f"--maps-x {maps}: no source.json")


def test_an_in_memory_model_has_no_file_to_give(series, data_root, tmp_path) -> None:
    dataset, model_file, _ = series
    model = camkit.load_model(model_file, compile=False)
    plan = ExplainPlan(SourceSpec(model=model, dataset=str(dataset)), n_images="all", batch_size=100,
                       save_dir=tmp_path / "maps", n_figures=0, progress=False)
    explain_to_dir(plan)
    assert json.loads((tmp_path / "maps" / "source.json").read_text())["model"] is None
    assert model_for(tmp_path / "maps") is None
    np.testing.assert_array_equal(batch_inputs(tmp_path / "maps", 1), load_timeseries(dataset).x_test[100:])
