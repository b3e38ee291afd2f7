"""`camkit explain` end to end through click's CliRunner: GunPoint series and small image folders."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import invoke, ok
from PIL import Image

import camkit
from camkit.data.timeseries import load_timeseries
from camkit.workflows.records import file_digest, folder_digest

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SERIES_KEYS = {"mode", "method", "maps", "raw", "layer", "targets", "scores", "probabilities", "predicted", "names",
               "indices", "class_names", "source", "split", "y_true", "run"}
CLASSES = ["circle", "square", "stripes", "dots"]




def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def assert_png(path: Path) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    with Image.open(path) as image:
        assert min(image.size) > 100
        return image.size


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def gp(tmp_path_factory, data_root):
    """A GunPoint FCN trained for 2 epochs as experiment ``gp`` under a temporary root."""
    root = tmp_path_factory.mktemp("explain_gp")
    ok("train", "--dataset", "GunPoint", "--data-root", data_root, "--root", root, "--epochs", 2, "--seed", 0,
       "--no-progress", "--name", "gp")
    return root


@pytest.fixture(scope="module")
def gp_model(gp):
    return camkit.load_model(gp / "models" / "gp" / "best.keras", compile=False)


def small_cnn(head: str = "gap") -> keras.Model:
    """32x32 RGB -> conv1 -> conv2 -> (GAP | Flatten) -> Dense(4, softmax); random weights, seeded."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    x = (keras.layers.GlobalAveragePooling2D(name="gap") if head == "gap" else keras.layers.Flatten(name="flat"))(x)
    return keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax", name="predictions")(x))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Class folders of small PNGs (non-square, 40x56), two CNNs saved as .keras and a dict-format label file."""
    base = tmp_path_factory.mktemp("explain_images")
    rng = np.random.default_rng(0)
    folder = base / "photos"
    for c, name in enumerate(CLASSES[:3]):
        (folder / name).mkdir(parents=True)
        for j in range(2):
            pixels = (rng.random((40, 56, 3)) * 80).astype(np.uint8)
            pixels[10 + 5 * j: 25 + 5 * j, 10 * c: 10 * c + 20] = 255
            Image.fromarray(pixels).save(folder / name / f"{name}_{j}.png")
    small_cnn("gap").save(base / "gap.keras")
    small_cnn("flat").save(base / "flat.keras")
    labels = base / "labels.txt"
    labels.write_text("{" + ",\n ".join(f"{i}: '{n}'" for i, n in enumerate(CLASSES)) + "}\n")
    return base


# --------------------------------------------------------------------------- time series


@pytest.mark.parametrize("method", ["cam", "gradcam", "gradcam++"])
def test_series_end_to_end(gp, gp_model, data_root, method):
    result = ok("explain", "--experiment", "gp", "--root", gp, "--data-root", data_root, "--method", method,
                "--no-progress")
    save_dir = gp / "plots" / "gp" / f"explain_{method}"
    assert f"explained 8 series of GunPoint with {method} at block3_relu" in result.output
    assert f"maps: {save_dir / 'explanation.npz'}" in result.output
    npz = load_npz(save_dir / "explanation.npz")
    assert set(npz) == SERIES_KEYS
    assert npz["maps"].shape == (8, 150) and npz["raw"].shape == (8, 150)
    assert npz["maps"].min() >= 0 and npz["maps"].max() <= 1 and npz["maps"].dtype == np.float32
    assert str(npz["layer"]) == "block3_relu" and str(npz["method"]) == method and str(npz["mode"]) == "single"
    ds = load_timeseries("GunPoint", data_root)
    x = ds.x_test[:8]
    probs = gp_model.predict(x, verbose=0)
    np.testing.assert_array_equal(npz["targets"], probs.argmax(axis=1))
    np.testing.assert_allclose(npz["probabilities"], probs, atol=1e-5)
    direct = camkit.explain(gp_model, x, method)
    np.testing.assert_allclose(npz["maps"], direct.maps, atol=1e-5)
    np.testing.assert_allclose(npz["raw"], direct.raw, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(npz["y_true"], ds.y_test[:8])
    assert list(npz["names"]) == [f"test[{i}]" for i in range(8)]
    assert list(npz["class_names"]) == ds.labels
    run = json.loads(str(npz["run"]))  # what the maps depend on: the model file's and the dataset's bytes
    assert run["inputs"]["model"] == file_digest(gp / "models" / "gp" / "best.keras")
    assert run["inputs"]["data"] == folder_digest(data_root / "GunPoint") and run["settings"]["method"] == method
    pngs = sorted(p.name for p in save_dir.glob("*.png"))
    assert pngs == sorted([f"series_{i}.png" for i in range(8)] + ["series_grid.png"])
    for name in pngs:
        assert_png(save_dir / name)


def test_series_split_targets_and_save_dir(gp, data_root, tmp_path):
    out = tmp_path / "lowest"
    ok("explain", "--model-path", gp / "models" / "gp" / "best.keras", "--dataset", "GunPoint", "--data-root",
       data_root, "--split", "train", "--n-images", 3, "--target", "lowest", "--save-dir", out, "--format", "svg")
    npz = load_npz(out / "explanation.npz")
    np.testing.assert_array_equal(npz["targets"], npz["probabilities"].argmin(axis=1))
    assert list(npz["names"]) == ["train[0]", "train[1]", "train[2]"] and str(npz["split"]) == "train"
    assert sorted(p.name for p in out.iterdir()) == ["explanation.npz", "series_0.svg", "series_1.svg",
                                                     "series_2.svg", "series_grid.svg"]

    out = tmp_path / "top2"
    ok("explain", "--model-path", gp / "models" / "gp" / "best.keras", "--dataset", "GunPoint", "--data-root",
       data_root, "--n-images", 3, "--target", "top2", "--save-dir", out, "--layer", "-2")
    npz = load_npz(out / "explanation.npz")
    assert npz["maps"].shape == (3, 2, 150) and list(npz["columns"]) == ["top1", "top2"]
    assert str(npz["layer"]) == "block2_conv"
    np.testing.assert_array_equal(npz["targets"], np.argsort(-npz["probabilities"], axis=1, kind="stable"))
    assert len(list(out.glob("series_*.png"))) == 4


def test_config_experiment_and_rerun_replaces_figures(gp, data_root, tmp_path):
    config = tmp_path / "gp.yaml"
    config.write_text(f"name: gp\ndata:\n  dataset: GunPoint\n  root: {data_root}\n")
    ok("explain", "-c", config, "--root", gp, "--n-images", 3, "--method", "gradcam")
    ok("explain", "-c", config, "--root", gp, "--n-images", 2, "--method", "gradcam")
    save_dir = gp / "plots" / "gp" / "explain_gradcam"
    assert sorted(p.name for p in save_dir.iterdir()) == ["explanation.npz", "series_0.png", "series_1.png",
                                                          "series_grid.png"]


def test_show_opens_after_saving(gp, data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    shown = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(len(plt.get_fignums())))
    ok("explain", "--experiment", "gp", "--root", gp, "--data-root", data_root, "--n-images", 2, "--save-dir",
       tmp_path, "--show")
    assert shown == [3] and plt.get_fignums() == []
    assert (tmp_path / "series_grid.png").is_file()


# --------------------------------------------------------------------------- images


def test_images_viewer_layout(images, tmp_path):
    result = ok("explain", "--model-path", images / "gap.keras", "--images", images / "photos", "--labels",
                images / "labels.txt", "--root", tmp_path, "--no-progress")
    save_dir = tmp_path / "plots" / "gap" / "explain_gradcam"
    assert "explained 6 image(s)" in result.output and "at conv2" in result.output
    npz = load_npz(save_dir / "explanation.npz")
    names = [f"{c}/{c}_{j}.png" for c in CLASSES[:3] for j in range(2)]
    assert list(npz["names"]) == names and list(npz["class_names"]) == CLASSES
    assert npz["maps"].shape == (6, 4, 32, 32) and npz["raw"].shape == (6, 4, 16, 16)
    assert list(npz["columns"]) == ["top1", "top2", "top3", "lowest"]
    order = np.argsort(-npz["probabilities"], axis=1, kind="stable")
    np.testing.assert_array_equal(npz["targets"][:, :3], order[:, :3])
    np.testing.assert_array_equal(npz["targets"][:, 3], npz["probabilities"].argmin(axis=1))
    np.testing.assert_array_equal(npz["y_true"], [0, 0, 1, 1, 2, 2])
    figures = sorted(p.name for p in save_dir.glob("*.png"))
    assert figures == sorted(f"image_{i}_{Path(n).stem}.png" for i, n in enumerate(names))
    width, height = assert_png(save_dir / figures[0])
    assert width > 3 * height  # one row of four panels


def test_images_many_layers(images, tmp_path):
    ok("explain", "--model-path", images / "gap.keras", "--images", images / "photos", "--layer-backcount", "1", "2",
       "--save-dir", tmp_path, "--method", "gradcam++")
    npz = load_npz(tmp_path / "explanation.npz")
    assert str(npz["mode"]) == "layers" and list(npz["layers"]) == ["conv2", "conv1"]
    assert list(npz["backcounts"]) == [1, 2] and list(npz["names"]) == ["circle/circle_0.png"]
    assert npz["maps"].shape == (2, 1, 4, 32, 32)
    assert npz["raw_0"].shape == (1, 4, 16, 16) and npz["raw_1"].shape == (1, 4, 32, 32)
    assert list(npz["class_names"]) == ["class 0", "class 1", "class 2", "class 3"]  # 3 folders, 4 outputs
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["layer_1.png", "layer_2.png"]
    for name in ("layer_1.png", "layer_2.png"):
        assert_png(tmp_path / name)


@pytest.mark.parametrize(("model", "first"), [("gap.keras", "cam"), ("flat.keras", "gradcam")])
def test_images_notebook_layout(images, tmp_path, model, first):
    result = ok("explain", "--model-path", images / model, "--images", images / "photos" / "square", "--layout",
                "notebook", "--save-dir", tmp_path, "--labels", images / "labels.txt")
    assert ("Grad-CAM shown instead of CAM" in result.output) == (first == "gradcam")
    npz = load_npz(tmp_path / "explanation.npz")
    assert str(npz["mode"]) == "panels"
    assert list(npz["methods"]) == [first, "guided-backprop", "guided-gradcam"]
    assert list(npz["layers"]) == ["conv2", "", "conv2"]
    assert npz["maps"].shape == (3, 2, 32, 32) and npz["raw_1"].shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(npz["targets"], npz["probabilities"].argmax(axis=1))
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["image_0_square_0.png", "image_1_square_1.png"]
    assert_png(tmp_path / "image_0_square_0.png")


def test_guided_method_defaults_to_notebook_and_single_file(images, tmp_path):
    ok("explain", "--model-path", images / "gap.keras", "--images", images / "photos" / "circle" / "circle_1.png",
       "--method", "guided-gradcam++", "--root", tmp_path)
    save_dir = tmp_path / "plots" / "gap" / "explain_guided-gradcam++_notebook"
    npz = load_npz(save_dir / "explanation.npz")
    assert list(npz["methods"]) == ["cam", "guided-backprop", "guided-gradcam++"]
    assert list(npz["names"]) == ["circle_1.png"]
    assert (save_dir / "image_0_circle_1.png").is_file()


def test_imagenet_labels_and_image_experiment_config(images, tmp_path):
    """An images experiment named by -c: its model under --root, its dataset's test split, ImageNet names."""
    keras.utils.set_random_seed(2)
    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(1000, activation="softmax")(x))
    (tmp_path / "models" / "inet").mkdir(parents=True)
    model.save(tmp_path / "models" / "inet" / "best.keras")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "test").symlink_to(images / "photos")
    config = tmp_path / "inet.yaml"
    config.write_text(f"data:\n  dataset: ds\n  kind: images\n  root: {tmp_path}\n  preprocess: none\n")
    result = ok("explain", "-c", config, "--root", tmp_path, "--imagenet-labels", "--n-images", 2)
    save_dir = tmp_path / "plots" / "inet" / "explain_gradcam"
    assert f"figures: {save_dir} (2 files)" in result.output
    npz = load_npz(save_dir / "explanation.npz")
    assert npz["class_names"][0] == "tench" and len(npz["class_names"]) == 1000
    assert npz["maps"].shape == (2, 4, 24, 24) and "y_true" not in npz
    assert list(npz["true_names"]) == ["circle", "circle"]


def test_python_api_returns_paths(gp, data_root, tmp_path):
    from camkit.workflows.explain import explain_to_dir
    from camkit.workflows.plan import ExplainPlan
    from camkit.workflows.sources import SourceSpec

    source = SourceSpec(gp / "models" / "gp" / "best.keras", dataset="GunPoint", data_root=str(data_root))
    result = explain_to_dir(ExplainPlan(source, n_images=2, method="cam", save_dir=tmp_path, progress=False))
    assert result.npz == tmp_path / "explanation.npz" and result.layers == ["block3_relu"]
    assert sorted(p.name for p in result.figures) == ["series_0.png", "series_1.png", "series_grid.png"]
    assert all(p.is_file() for p in result.figures)


# --------------------------------------------------------------------------- errors


def error_cases(gp: Path, data_root: Path, images: Path) -> dict[str, tuple[list, str]]:
    model = ["--model-path", gp / "models" / "gp" / "best.keras"]
    series = [*model, "--dataset", "GunPoint", "--data-root", data_root]
    image = ["--model-path", images / "gap.keras", "--images", images / "photos"]
    return {
        "no data": (model, "give either --dataset"),
        "both data": ([*series, "--images", images / "photos"], "not both"),
        "no model": (["--dataset", "GunPoint", "--data-root", data_root], "no model"),
        "shape": ([*model, "--dataset", "ItalyPowerDemand", "--data-root", data_root], "expects inputs (150, 1)"),
        "images into a series model": ([*model, "--images", images / "photos"], "not images"),
        "method": ([*series, "--method", "nope"], "gradcam++"),
        "layer": ([*series, "--layer", "block9"], "no layer named 'block9'"),
        "labels length": ([*series, "--labels", images / "labels.txt"], "has 4 class names but the model has 2"),
        "imagenet labels": ([*image, "--imagenet-labels"], "ImageNet has 1000"),
        "cam head": (["--model-path", images / "flat.keras", "--images", images / "photos", "--method", "cam"],
                     "GlobalAveragePooling"),
        "image size": ([*image, "--image-size", 64], "expects 32x32"),
        "notebook series": ([*series, "--layout", "notebook"], "for images"),
        "target": ([*series, "--target", "best"], "--target"),
        "backcount": ([*series, "--layer-backcount", "9"], "the model has 3"),
        "images-only method": ([*series, "--method", "augmented-gradcam"], "it explains images, not series"),
    }


@pytest.mark.parametrize("case", ["no data", "both data", "no model", "shape", "images into a series model",
                                  "method", "layer", "labels length", "imagenet labels", "cam head", "image size",
                                  "notebook series", "target", "backcount", "images-only method"])
def test_errors_exit_2_with_one_line_and_write_nothing(gp, data_root, images, tmp_path, case):
    args, message = error_cases(gp, data_root, images)[case]
    before = files_under(gp)
    result = invoke("explain", *args, "--root", tmp_path / "root", "--save-dir", tmp_path / "out")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and message in lines[0], result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "root").exists()
    assert files_under(gp) == before
