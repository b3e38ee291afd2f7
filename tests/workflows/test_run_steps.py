"""``camkit run`` of whole paper experiments: the explain and eval-localization steps, each from its config section."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import digit_folder, invoke, ok

from camkit.workflows.store import MapStore


def test_gunpoint_cluster_config_draws_the_grad_ceam_figures(repo_root, data_root, tmp_path) -> None:
    result = ok("run", repo_root / "configs" / "gunpoint_cluster.yaml", "--epochs", 1, "--data-root", data_root,
                "--root", tmp_path, "--no-progress")
    plots = tmp_path / "plots" / "gunpoint_cluster"
    assert re.search(r"explained \d+ series of GunPoint with gradceam, guided-gradceam at enc3_out", result.output)
    for kind in ("best", "worst", "centers"):
        for k in (0, 1):
            figures = sorted((plots / f"grad_test_{kind}{k}").glob("*.png"))
            assert figures and all(f.stat().st_size > 1000 for f in figures)
    assert len(list((plots / "grad_test_centers0").glob("*.png"))) == 2  # one per centroid
    report = json.loads((tmp_path / "results" / "gunpoint_cluster" / "faithfulness.json").read_text())
    assert report["n"] == 150 and sum(report["before"]) == pytest.approx(1.0)
    assert "faithfulness at" in result.output and "ACC" in result.output


@pytest.fixture(scope="module")
def digits_root(tmp_path_factory, data_root) -> Path:
    """A small cluttered-digits dataset (3 classes, 8 train / 4 test images each) with its test annotations."""
    root = tmp_path_factory.mktemp("rundigits") / "data"
    source = Path(data_root) / "cluttered_digits"
    for split, count in (("train", 8), ("test", 4)):
        digit_folder(data_root, root / "digits" / split, ("0", "1", "2"), count, split)
    (root / "digits" / "annotations" / "test").mkdir(parents=True)
    for path in (root / "digits" / "test").rglob("*.png"):
        shutil.copy(source / "annotations" / "test" / f"{path.stem}.xml", root / "digits" / "annotations" / "test")
    return root


def write_config(path: Path, data_root: Path, steps: list[str], **sections) -> Path:
    config = {"name": "augdigits", "steps": steps, "model": {"name": "small-gap-cnn"},
              "data": {"dataset": "digits", "kind": "images", "root": str(data_root), "image_size": [64, 64]},
              "train": {"epochs": 1, "batch_size": 8}, **sections}
    path.write_text(yaml.safe_dump(config))
    return path


AUGMENTED = {"method": "augmented-gradcam", "options": {"n_augment": 3, "aggregate": "all", "tol": 0.01}}


def test_augmented_experiment_explains_then_localizes_from_the_same_store(digits_root, tmp_path) -> None:
    first = write_config(tmp_path / "a.yaml", digits_root, ["train", "explain"],
                         explain={**AUGMENTED, "n_images": "all", "target": "top1,true", "batch_size": 5})
    result = ok("run", first, "--root", tmp_path, "--no-progress")
    maps = tmp_path / "plots" / "augdigits" / "explain_augmented-gradcam"
    assert "explained 12 image(s)" in result.output and "3 of 3 batch(es) computed" in result.output
    stamps = {p.name: p.stat().st_mtime_ns for p in (maps / "batches").iterdir()}
    second = write_config(tmp_path / "b.yaml", digits_root, ["eval-localization"],
                          eval_localization={**AUGMENTED, "batch_size": 5})
    result = ok("run", second, "--root", tmp_path, "--no-progress")
    assert {p.name: p.stat().st_mtime_ns for p in (maps / "batches").iterdir()} == stamps  # the maps are reused
    out = tmp_path / "results" / "augdigits" / "localization_augmented-gradcam"
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["variants"]) == ["single", "max", "avg", "sr"]
    assert all(s["n_images"] == 12 for s in summary["variants"].values())
    joined = MapStore(maps).read_all()
    true = list(joined["columns"]).index("true")
    np.testing.assert_array_equal(joined["targets"][:, true], joined["y_true"])
    assert "MaxBoxAcc" in result.output and "sr" in result.output


@pytest.mark.parametrize(("section", "message"), [
    ({"explain": {"methd": "gradcam"}}, "explain: unknown key(s) methd"),
    ({"explain": {"method": "gradcam", "model": "x.keras"}}, "explain: model is set by camkit run"),
    ({"explain": "gradcam"}, "explain must be a mapping of options or a list of them"),
    ({}, "steps: explain needs an explain section"),
])
def test_bad_sections_are_one_line_and_exit_2(digits_root, tmp_path, section, message) -> None:
    config = write_config(tmp_path / "bad.yaml", digits_root, ["explain"], **section)
    result = invoke("run", config, "--root", tmp_path)
    assert result.exit_code == 2 and message in result.output, result.output
    assert result.output.count("\n") == 1


def test_every_shipped_config_names_registered_steps_with_their_sections(repo_root) -> None:
    from camkit.config import load_config
    from camkit.workflows.run import step_names
    from camkit.workflows.sections import explain_plans, localization_plans

    for path in sorted((repo_root / "configs").glob("*.yaml")):
        config = load_config(path, known_steps=step_names())
        assert ("explain" in config.steps) == bool(explain_plans(config, Path("."), True)), path
        assert ("eval-localization" in config.steps) == bool(localization_plans(config, Path("."), True)), path


def test_viewer_layouts_from_one_config(repo_root, digits_root, tmp_path) -> None:
    viewer = yaml.safe_load((repo_root / "configs" / "viewer_digits.yaml").read_text())["explain"]
    config = write_config(tmp_path / "viewer.yaml", digits_root, ["train", "explain"],
                          explain=[{**run, "n_images": 2} if "n_images" in run else run for run in viewer])
    result = ok("run", config, "--root", tmp_path, "--no-progress")
    plots = tmp_path / "plots"
    assert sorted(p.name for p in (plots / "viewer_digits" / "explain_gradcam_layers").glob("*.png")) == [
        "layer_1.png", "layer_2.png", "layer_3.png"]
    viewer_npz = np.load(plots / "augdigits" / "explain_gradcam" / "explanation.npz")
    assert list(viewer_npz["columns"]) == ["top1", "top2", "top3", "lowest"]
    notebook = np.load(plots / "augdigits" / "explain_gradcam_notebook" / "explanation.npz")
    assert list(notebook["methods"]) == ["cam", "guided-backprop", "guided-gradcam"]
    assert result.output.count("explained") == 3


def test_a_rerun_that_trains_recomputes_its_maps_from_the_new_model(digits_root, tmp_path) -> None:
    """The second run retrains, so its eval-localization step replaces the maps of the first run's model (instead
    of refusing them as changed): the stored maps are the new model's, as ``camkit.explain`` computes them."""
    import camkit
    from camkit.workflows.stored_inputs import StoredInputs

    config = write_config(tmp_path / "twice.yaml", digits_root, ["train", "eval-localization"],
                          eval_localization={"method": "gradcam", "target": "top1,true"})
    maps = tmp_path / "plots" / "augdigits" / "explain_gradcam"
    ok("run", config, "--root", tmp_path, "--no-progress")
    before = MapStore(maps).read_all()["maps_gradcam"]
    write_config(config, digits_root, ["train", "eval-localization"], train={"epochs": 1, "batch_size": 4},
                 eval_localization={"method": "gradcam", "target": "top1,true"})
    result = ok("run", config, "--root", tmp_path, "--no-progress")
    assert "MaxBoxAcc" in result.output
    stored = MapStore(maps).read_all()
    model = camkit.load_model(tmp_path / "models" / "augdigits" / "best.keras")
    inputs = StoredInputs.open(maps)
    x = np.concatenate([inputs.batch(b) for b in range(MapStore(maps).n_batches())])
    fresh = camkit.explain(model, x, method="gradcam", progress=False)  # the predicted class: column top1
    np.testing.assert_allclose(stored["maps_gradcam"][:, 0], fresh.maps, atol=1e-3)  # the store keeps float16
    assert np.abs(stored["maps_gradcam"] - before).max() > 0.05  # the first model's maps are gone
