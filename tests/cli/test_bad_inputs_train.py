"""Bad inputs of `camkit train / evaluate / run` and of the experiment lookup (issue 12, "Reliability").

Every case is one ``Error:`` line naming the option, key or file, exit code 2, and every earlier result byte for
byte as it was; a training that fails, is interrupted (Ctrl-C, SIGTERM) or fills the disk after it has started
leaves the experiment's earlier run intact and no staging or temporary file behind; a training that succeeds
replaces what training writes and keeps the rest (compared with the same training into a fresh folder).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from helpers import digit_folder, ok, refused, snapshot

import camkit.workflows.fit as fit_module
import camkit.workflows.results as results_module
from camkit.cli import main
from camkit.cli.app import Terminated
from camkit.models import build_model

FILES = (  # what the files fixture makes
    "truncated.keras", "empty.keras", "notes.txt", "zip.keras", "damaged.keras", "garbage.h5", "image.keras",
    "three.keras", "folder.keras", "digits")


RANGE = "Invalid value for '{}': {} is not in the range {}."  # click's own line
PLAIN = "--name: must be a plain folder name (no / or \\, not starting with .)"


def italy(root: Path, data_root: Path, name: str = "exp") -> list:
    """Options for the shipped ItalyPowerDemand (2 classes, 67 training series of 24) as experiment ``name``, in
    one batch (one traced training step: the quickest training there is)."""
    return ["--dataset", "ItalyPowerDemand", "--data-root", data_root, "--root", root, "--name", name,
            "--batch-size", 67]


def leftovers(root: Path) -> list[Path]:
    """Staging folders and temporary files (all hidden, or named .partial / .tmp / .old) under ``root``."""
    return [p for p in Path(root).rglob("*") if p.name.startswith(".") or ".partial" in p.name
            or ".tmp" in p.name or p.name.endswith(".old")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root) -> Path:
    """A root with experiment ``exp`` (ItalyPowerDemand FCN, 1 epoch, seed 0), an explain run of it to keep
    (``plots/exp/explain_probe``) and a file where an experiment folder would go (``results/clash``)."""
    root = tmp_path_factory.mktemp("trained")
    ok("train", *italy(root, data_root), "--epochs", 1, "--seed", 0, "--no-progress")
    (root / "plots" / "exp" / "explain_probe").mkdir()
    (root / "plots" / "exp" / "explain_probe" / "maps.npz").write_bytes(b"maps of the first model")
    (root / "results" / "clash").write_text("a file, not an experiment folder")
    return root


@pytest.fixture(scope="module")
def files(tmp_path_factory, trained, data_root) -> dict[str, Path]:
    """Model files that are wrong in every way, and a tiny two-class digits dataset (32-px images)."""
    folder = tmp_path_factory.mktemp("files")
    good = (trained / "models" / "exp" / "best.keras").read_bytes()
    paths = {name: folder / name for name in FILES}
    paths["truncated.keras"].write_bytes(good[: len(good) // 3])
    paths["empty.keras"].write_bytes(b"")
    paths["notes.txt"].write_text("not a model")
    with zipfile.ZipFile(paths["zip.keras"], "w") as archive:
        archive.writestr("readme.txt", "a zip archive, not a model")
    middle = len(good) // 2
    paths["damaged.keras"].write_bytes(good[:middle] + bytes(b ^ 0xFF for b in good[middle:middle + 64])
                                       + good[middle + 64:])
    paths["garbage.h5"].write_bytes(b"\x00" * 64)
    build_model("small-gap-cnn", (64, 64, 3), 10).save(paths["image.keras"])
    build_model("fcn", (24, 1), 3).save(paths["three.keras"])
    paths["folder.keras"].mkdir()
    for split in ("train", "test"):
        digit_folder(data_root, paths["digits"] / split, ("0", "1"), 2, split)
    return paths


def _config(text: str):
    """An argument made in the test's own folder: ``exp.yaml`` holding ``text``."""
    def write(tmp_path: Path) -> Path:
        (tmp_path / "exp.yaml").write_text(text)
        return tmp_path / "exp.yaml"

    return write


def _garbled_experiment(model: Path):
    """An argument made in the test's own folder: a root whose experiment ``garbled`` has a model and a
    manifest.json edited by hand into invalid JSON."""
    def make(tmp_path: Path) -> Path:
        (tmp_path / "models" / "garbled").mkdir(parents=True)
        shutil.copy(model, tmp_path / "models" / "garbled" / "best.keras")
        (tmp_path / "results" / "garbled").mkdir(parents=True)
        (tmp_path / "results" / "garbled" / "manifest.json").write_text('{"experiment": "garbled", "config": ')
        return tmp_path

    return make


def cases(root: Path, f: dict[str, Path], data_root: Path, repo_root: Path) -> dict:
    """Case id -> (arguments, what the error line must contain); an argument may be made in the test's folder."""
    train = ["train", *italy(root, data_root), "--no-progress"]
    digits = ["train", "--dataset", "cluttered_digits", "--kind", "images", "--data-root", data_root,
              "--root", root, "--name", "exp", "--no-progress"]
    hires = ["train", "--dataset", f["digits"], "--kind", "images", "--image-size", 32, "--root", root,
             "--model", "densenet-full", "--epochs", 1, "--no-progress"]
    gunpoint = ["train", "-c", repo_root / "configs" / "gunpoint_fcn.yaml", "--data-root", data_root,
                "--root", root, "--epochs", 1, "--no-progress"]

    def weights(name: str, says: str) -> tuple[list, str]:
        """Training from the file ``name`` as --weights, refused with ``--weights: FILE`` + ``says``."""
        return [*train, "--epochs", 1, "--weights", f[name]], f"--weights: {f[name]}{says}"

    return {
        # a model for the other kind of data
        "series model on images": ([*digits, "--image-size", 64, "--model", "fcn", "--epochs", 1],
                                   "--model fcn: a time-series model; cluttered_digits is an image dataset "
                                   "(choose one of conv-ae, densenet-full, densenet-half, small-gap-cnn, vgg16, "
                                   "vgg16-gap)"),
        "image model on series": ([*train, "--model", "vgg16-gap", "--epochs", 1],
                                  "--model vgg16-gap: an image model; ItalyPowerDemand is a time-series dataset "
                                  "(choose one of fcn, resnet1d, resnet1d-ae)"),
        "cluster task with a classifier": ([*train, "--task", "cluster", "--model", "fcn", "--epochs", 1],
                                           "--model fcn: task cluster needs an autoencoder"),
        # --weights that do not fit, or are not a model at all
        "weights of an image model": ([*gunpoint, "--weights", f["image.keras"]],
                                      f"--weights: {f['image.keras']}: the model expects inputs (64, 64, 3) but "
                                      "GunPoint gives (150, 1)"),
        "weights with other classes": weights("three.keras", ": its output (None, 3) is not one probability per "
                                                             "class of ItalyPowerDemand (2)"),
        "weights truncated": weights("truncated.keras", " is not a Keras model file (truncated or not a .keras zip "
                                                        "archive)"),
        "weights empty": weights("empty.keras", " is not a Keras model file (truncated"),
        "weights a zip but no model": weights("zip.keras", " is a zip archive but not a Keras model (it has no "
                                                           "config.json or model.weights.h5)"),
        "weights damaged": weights("damaged.keras", " is a damaged .keras archive (model.weights.h5 fails its "
                                                    "checksum)"),
        "weights a folder": weights("folder.keras", " is a folder, not a .keras model file"),
        "weights not hdf5": weights("garbage.h5", " is not a Keras model file (truncated or not an HDF5 file)"),
        "weights a text file": weights("notes.txt", ": expected a .keras or .h5 model file"),
        "own weights never trained": (["train", *italy(root, data_root, "fresh"), "--epochs", 1, "--weights"],
                                      f"--weights: {root / 'models' / 'fresh' / 'best.keras'} does not exist"),
        "half weights not a half model": ([*hires, "--half-weights", f["image.keras"]],
                                          f"--half-weights: {f['image.keras']} is not a densenet-half model"),
        "half weights truncated": ([*hires, "--half-weights", f["truncated.keras"]],
                                   f"--half-weights: {f['truncated.keras']} is not a Keras model file (truncated"),
        "half weights a folder": ([*hires, "--half-weights", f["folder.keras"]],
                                  f"--half-weights: {f['folder.keras']} is a folder, not a .keras model file"),
        # model files of evaluate and explain, and the experiment lookup
        "evaluate truncated model": (["evaluate", *italy(root, data_root), "--model-path", f["truncated.keras"]],
                                     f"--model-path: {f['truncated.keras']} is not a Keras model file (truncated"),
        "explain truncated model": (["explain", "--model-path", f["truncated.keras"], "--dataset", "ItalyPowerDemand",
                                     "--data-root", data_root, "--root", root],
                                    f"{f['truncated.keras']} is not a Keras model file (truncated"),
        "evaluate untrained experiment": (["evaluate", *italy(root, data_root, "never")],
                                          f"--name: no experiment named 'never' under {root} "
                                          f"({Path('models/never/best.keras')} missing); known: exp"),
        "explain unknown experiment": (["explain", "--experiment", "no_such_exp", "--root", root],
                                       f"--experiment: no experiment named 'no_such_exp' under {root} "
                                       f"({Path('models/no_such_exp/best.keras')} missing); known: exp"),
        "eval-localization unknown experiment": (["eval-localization", "--method", "gradcam", "--experiment",
                                                  "no_such_exp", "--root", root],
                                                 "--experiment: no experiment named 'no_such_exp' under"),
        "explain garbled manifest": (["explain", "--experiment", "garbled", "--root",
                                      _garbled_experiment(root / "models" / "exp" / "best.keras")],
                                     f"{Path('results/garbled/manifest.json')}: not a camkit manifest (not valid JSON"),
        # numbers out of range, as options and as config keys
        "image size 0": ([*digits, "--image-size", 0, "--model", "small-gap-cnn", "--epochs", 1],
                         RANGE.format("--image-size", "0", "x>=1")),
        "config image size 0": (["train", "-c", _config("data:\n  image_size: [0, 0]\n"), *train[1:]],
                                "exp.yaml: data.image_size: must be two positive integers"),
        "config image size scalar": (["train", "-c", _config("data:\n  image_size: 0\n"), *train[1:]],
                                     "exp.yaml: data.image_size: expected a list, got 0"),
        "epochs negative": ([*train, "--epochs", -1], RANGE.format("--epochs", "-1", "x>=0")),
        "batch size 0": ([*train, "--epochs", 1, "--batch-size", 0], RANGE.format("--batch-size", "0", "x>=1")),
        "learning rate 0": ([*train, "--epochs", 1, "--lr", 0], RANGE.format("--lr", "0.0", "x>0")),
        "learning rate negative": ([*train, "--epochs", 1, "--lr", -0.1], RANGE.format("--lr", "-0.1", "x>0")),
        "seed negative": ([*train, "--epochs", 1, "--seed", -1], RANGE.format("--seed", "-1", "0<=x<=4294967295")),
        "config seed negative": (["train", "-c", _config("train:\n  seed: -1\n"), *train[1:], "--epochs", 1],
                                 "exp.yaml: train.seed: must be in 0..2**32-1 (NumPy's seeds), got -1"),
        "config seed too large": (["train", "-c", _config(f"train:\n  seed: {2**32}\n"), *train[1:]],
                                  f"exp.yaml: train.seed: must be in 0..2**32-1 (NumPy's seeds), got {2**32}"),
        "config reduce_lr_factor 1.5": (["train", "-c", _config("train:\n  reduce_lr_factor: 1.5\n"),
                                         *train[1:], "--epochs", 1],
                                        "exp.yaml: train.reduce_lr_factor: must be in (0, 1), got 1.5"),
        "mirrored batch 1": ([*train, "--epochs", 1, "--strategy", "mirrored", "--batch-size", 1],
                             "--batch-size 1: the mirrored strategy has 2 replicas; use a multiple of 2"),
        # where the run would go
        "root is a file": (["train", *italy(root / "results" / "exp" / "manifest.json", data_root), "--epochs", 1],
                           f"{root / 'results' / 'exp' / 'manifest.json'} is a file, so the folder cannot be made"),
        "name with a separator": ([*train, "--epochs", 1, "--name", "a/b"], f"{PLAIN}, got 'a/b'"),
        "name ..": ([*train, "--epochs", 1, "--name", ".."], f"{PLAIN}, got '..'"),
        "name hidden": ([*train, "--epochs", 1, "--name", ".exp"], f"{PLAIN}, got '.exp'"),
        "name too long": ([*train, "--epochs", 1, "--name", "x" * 250], "more than the file system allows (255)"),
        "name is a file": ([*train, "--epochs", 1, "--name", "clash"],
                           f"--name {root / 'results' / 'clash'}: a file is there, not a folder"),
        # configs that fail before or while training
        "run with an unknown step": (["run", _config("steps: [train, deploy]\n"), *train[1:]],
                                     "exp.yaml: steps: unknown step 'deploy'"),
        "monitor not logged (fails while training)": (["train", "-c", _config("train:\n  monitor: acc\n"),
                                                       *train[1:], "--epochs", 1],
                                                      "train.monitor: 'acc' is not logged; logged: accuracy"),
    }


CASES = list(cases(Path("root"), {name: Path(name) for name in FILES}, Path("data"), Path(".")))


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_error_line_and_changes_nothing(case, trained, files, data_root, repo_root, tmp_path):
    args, culprit = cases(trained, files, data_root, repo_root)[case]
    refused([a(tmp_path) if callable(a) else a for a in args], culprit, trained)
    assert leftovers(trained) == []


def _stop_after_first_epoch(monkeypatch, exception: BaseException) -> None:
    """Make training save its best model (into its staging folder) after the first epoch, then raise."""
    on_epoch_end = fit_module.KeepBest.on_epoch_end

    def stop(self, epoch, logs=None):
        on_epoch_end(self, epoch, logs)
        self._save()
        raise exception

    monkeypatch.setattr(fit_module.KeepBest, "on_epoch_end", stop)


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "ctrl-c while resuming"])
def test_interrupted_rerun_leaves_the_earlier_run(how, monkeypatch, trained, data_root):
    before = snapshot(trained)
    _stop_after_first_epoch(monkeypatch, Terminated(15) if how == "sigterm" else KeyboardInterrupt())
    args = ["train", *italy(trained, data_root), "--epochs", 2, "--no-progress"]
    args += ["--weights"] if how == "ctrl-c while resuming" else []
    if how == "sigterm":
        with pytest.raises(Terminated):
            CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    else:
        result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
        assert result.exit_code == 1 and "Aborted!" in result.output  # click's Ctrl-C
    assert snapshot(trained) == before
    assert leftovers(trained) == []


def _full_disk_in_model_save(monkeypatch) -> None:
    def save_model(model, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(fit_module, "save_model", save_model)


def _full_disk_in_commit(monkeypatch) -> None:
    """The disk fills while the new run's folders take the entries they keep (plots/exp/explain_probe)."""
    def link(source, dest):
        raise OSError(errno.ENOSPC, "No space left on device", str(dest))

    monkeypatch.setattr(results_module, "_link_or_copy", link)


@pytest.mark.parametrize("where", [_full_disk_in_model_save, _full_disk_in_commit],
                         ids=["model save", "moving into place"])
def test_full_disk_while_training_leaves_the_earlier_run(where, monkeypatch, trained, data_root):
    where(monkeypatch)
    line = refused(["train", *italy(trained, data_root), "--epochs", 1, "--no-progress"], "No space left on device",
                   trained)
    assert str(trained) in line  # the file that could not be written
    assert leftovers(trained) == []


def test_successful_rerun_replaces_what_training_writes_and_keeps_the_rest(trained, files, data_root, tmp_path):
    """The rerun's files are those of the same training into a fresh folder (the ``trained`` fixture's own run)."""
    root = tmp_path / "rerun"
    shutil.copytree(trained, root)
    shutil.copy(files["three.keras"], root / "models" / "exp" / "best.keras")  # an earlier run that differs
    (root / "models" / "exp" / "encoder.keras").write_bytes(b"from an earlier clustering run")
    (root / "results" / "exp" / "train_log.csv").write_text("epoch,loss\n0,9\n")
    (root / "results" / "exp" / "metrics.json").write_text("{}")  # an evaluation of the model being replaced
    (root / "plots" / "exp" / "confusion_matrix.png").write_bytes(b"old figure")
    ok("train", *italy(root, data_root), "--epochs", 1, "--seed", 0, "--no-progress")

    assert sorted(p.name for p in (root / "models" / "exp").iterdir()) == ["best.keras"]
    assert sorted(p.name for p in (root / "results" / "exp").iterdir()) == [
        "manifest.json", "train_log.csv", "train_metrics.json"]  # the stale evaluation is gone
    assert sorted(p.name for p in (root / "plots" / "exp").iterdir()) == ["explain_probe"]  # the figure too
    assert [p.name for p in (root / "plots" / "exp" / "explain_probe").iterdir()] == ["maps.npz"]
    assert (root / "plots" / "exp" / "explain_probe" / "maps.npz").read_bytes() == b"maps of the first model"
    log = "results/exp/train_log.csv"
    assert (root / log).read_bytes() == (trained / log).read_bytes()  # the fresh run's values, bit for bit
    metrics = {r: json.loads((r / "results/exp/train_metrics.json").read_text()) for r in (root, trained)}
    for key in ("best_loss", "final", "parameters", "epochs", "batch_size"):
        assert metrics[root][key] == metrics[trained][key], key
    new, expected = (keras.saving.load_model(r / "models/exp/best.keras").get_weights() for r in (root, trained))
    assert len(new) == len(expected) and all(np.array_equal(a, b) for a, b in zip(new, expected, strict=True))
    assert json.loads((root / "results/exp/manifest.json").read_text())["status"] == "trained"
    assert leftovers(root) == []


def test_a_killed_runs_staging_folders_are_removed_by_the_next_training(tmp_path, data_root):
    """SIGKILL runs no cleanup: the next training of the experiment removes the folders of a dead process,
    not those of a live one (another training of it in progress)."""
    dead, live = f".exp.partial-{2**31 - 1}", f".exp.partial-{os.getppid()}"
    for kind in ("results", "models", "plots"):
        for name in (dead, live):
            (tmp_path / kind / name).mkdir(parents=True)
            (tmp_path / kind / name / "train_log.csv").write_text("epoch\n")
    ok("train", *italy(tmp_path, data_root), "--epochs", 1, "--no-progress")
    assert sorted(p.name for p in tmp_path.glob("*/.*")) == [live] * 3
    assert (tmp_path / "models" / "exp" / "best.keras").is_file()
