"""Bad input on the command line: every case is one ``Error:`` line naming the option, exit code 2, and the
earlier results of the experiment are untouched (snapshot of every file under the root).

The data, store and training cases live beside this file (test_bad_inputs_*.py); these are the options
themselves, the options checked against the model, and the operating system refusing a write.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import gunpoint, ok, refused, snapshot


@pytest.fixture(scope="module")
def gp(tmp_path_factory, data_root) -> Path:
    """A root holding a 1-epoch GunPoint FCN (experiment ``gp``) and one explain run of it."""
    root = tmp_path_factory.mktemp("bad")
    ok("train", *gunpoint(root, data_root), "--epochs", 1, "--no-progress", "--name", "gp")
    ok("explain", "--experiment", "gp", "--root", root, "--data-root", data_root, "--n-images", 2, "--no-progress")
    return root


def _explain(root: Path, data_root: Path, *args) -> list:
    return ["explain", "--experiment", "gp", "--root", root, "--data-root", data_root, "--n-images", 2,
            "--no-progress", *args]


# (arguments after `camkit`, the culprit the one line must name)
USAGE_CASES = {
    "misspelt command": (["trian"], "No such command 'trian'"),
    "unknown option": (["train", "--bogus"], "--bogus"),
    "option without its value": (["explain", "--n-images"], "--n-images"),
    "not a choice": (["train", "--kind", "movies"], "--kind"),
    "not a number": (["train", "--epochs", "abc"], "--epochs"),
    "not a float": (["train", "--lr", "fast"], "--lr"),
    "unexpected argument": (["models", "extra"], "extra"),
    "strategy not a choice": (["train", "--strategy", "tpu"], "--strategy"),
    "format not a choice": (["explain", "--format", "jpg"], "--format"),
    "split not a choice": (["explain", "--split", "valid"], "--split"),
    "preprocess not a choice": (["explain", "--preprocess", "imagenet"], "--preprocess"),
    "unknown method": (["explain", "--method", "nosuchcam"], "nosuchcam"),
    "option not KEY=VALUE": (["explain", "-o", "n_augment"], "--option"),
    "option key not a name": (["explain", "-o", "2x=1"], "--option"),
    "n-images zero": (["explain", "--n-images", "0"], "--n-images"),
    "n-images words": (["explain", "--n-images", "many"], "--n-images"),
    "batch size zero": (["explain", "--batch-size", "0"], "--batch-size"),
    "backcount zero": (["explain", "--layer-backcount", "0"], "--layer-backcount"),
    "layer and backcount": (["explain", "--layer", "conv", "--layer-backcount", "1"], "--layer"),
    "target top0": (["explain", "--target", "top0"], "--target"),
    "target not a target": (["explain", "--target", "banana"], "--target"),
    "target list with a bad item": (["explain", "--target", "top1,banana"], "banana"),
    "shard not I/N": (["explain", "--shard", "abc"], "--shard"),
    "shard out of range": (["explain", "--shard", "3/2"], "--shard"),
    "make-benchmark unknown name": (["make-benchmark", "cifar"], "cifar"),
}


@pytest.mark.parametrize("case", USAGE_CASES, ids=list(USAGE_CASES))
def test_bad_options_are_one_line(case, gp):
    args, culprit = USAGE_CASES[case]
    refused(args, culprit, gp)


# Options that are only wrong for this model (2 classes, 3 conv layers): checked before anything is written.
MODEL_CASES = {
    "topK beyond the classes": (["--target", "top99"], "--target top99: the model has 2 classes, so top2 at most"),
    "class beyond the classes": (["--target", "class5"], "--target class5: class 5 is out of range"),
    "class index beyond the classes": (["--target", "7"], "--target 7: class 7 is out of range"),
    "backcount beyond the convs": (["--layer-backcount", "99"], "--layer-backcount 99: the model has 3 conv layers"),
    "one of several backcounts too deep": (["--layer-backcount", "1", "4"], "--layer-backcount 4"),
    "no such layer": (["--layer", "nope"], "--layer nope: no layer named 'nope'"),
    "no such layer path": (["--layer", "outer/nope"], "--layer outer/nope"),
    "-N beyond the convs": (["--layer", "-9"], "--layer -9"),
    "unknown method option": (["-o", "bogus=1"], "bogus"),
}


@pytest.mark.parametrize("case", MODEL_CASES, ids=list(MODEL_CASES))
def test_options_checked_against_the_model(case, gp, data_root, tmp_path):
    args, culprit = MODEL_CASES[case]
    refused(_explain(gp, data_root, *args, "--save-dir", tmp_path / "new"), culprit, gp)
    assert not (tmp_path / "new").exists()


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "explanation.npz")


def test_full_disk_while_explaining_keeps_the_earlier_run(gp, data_root, monkeypatch):
    """ENOSPC while the maps are saved: one line, and the earlier maps and figures stay as they were."""
    out = gp / "plots" / "gp" / "explain_gradcam"
    before = snapshot(out)
    assert any(name.endswith("explanation.npz") for name in before)
    monkeypatch.setattr(np, "savez_compressed", _no_space)
    refused(_explain(gp, data_root, "--target", "lowest"), "explanation.npz: No space left on device", gp)
    assert snapshot(out) == before and not list(out.glob(".staging*"))


def test_full_disk_while_drawing_removes_a_new_folder(gp, data_root, tmp_path, monkeypatch):
    """ENOSPC on the third figure: the new save-dir is not left behind half full."""
    from matplotlib.figure import Figure

    calls = {"n": 0}
    savefig = Figure.savefig

    def third_fails(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device", "series_1.png")
        return savefig(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", third_fails)
    refused(_explain(gp, data_root, "--save-dir", tmp_path / "fresh"), "No space left on device", gp)
    assert calls["n"] == 3 and not (tmp_path / "fresh").exists()


def test_full_disk_while_converting_keeps_the_earlier_dataset(tmp_path, monkeypatch):
    """convert-sktime --overwrite builds the new folder aside: ENOSPC leaves the earlier conversion whole."""
    ok("convert-sktime", "--sktime-dataset", "ItalyPowerDemand", "--out", tmp_path)
    x_test = tmp_path / "ItalyPowerDemand" / "x_test.npy"
    np.save(x_test, np.load(x_test)[:10])  # an earlier, different conversion
    before = snapshot(tmp_path)

    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_bytes", no_space)
    refused(["convert-sktime", "--sktime-dataset", "ItalyPowerDemand", "--out", tmp_path, "--overwrite"],
            ".npy: No space left on device", tmp_path)
    assert snapshot(tmp_path) == before


def test_permission_denied_is_one_line(gp, data_root, monkeypatch):
    """EACCES from the system names the file; a traceback never reaches the user."""
    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", "plots/gp/explain_gradcam")

    monkeypatch.setattr(np, "savez_compressed", denied)
    refused(_explain(gp, data_root), "plots/gp/explain_gradcam: Permission denied", gp)


_ENTRY = "import sys; from camkit.cli import run_cli; sys.argv[0] = 'camkit'; run_cli()"


def _clean_env() -> dict[str, str]:
    """This environment without the variables that would turn TensorFlow's lines on or off for us."""
    return {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CAMKIT_VERBOSE")}


def _camkit(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _ENTRY, *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=_clean_env())


def test_a_real_process_prints_no_tensorflow_start_up_lines(gp):
    """The console command loads TensorFlow and still writes nothing but camkit's own lines."""
    listed = _camkit("models")
    assert listed.returncode == 0 and listed.stderr == "", listed.stderr
    assert "fcn" in listed.stdout.split()
    bad = _camkit("explain", "--experiment", "nosuch", "--root", gp)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1, bad.stderr
    assert bad.stderr.startswith("Error: --experiment"), bad.stderr


def test_verbose_asks_for_the_start_up_lines_back(monkeypatch):
    """--verbose leaves TensorFlow's logging settings alone (the quiet import hook is not installed)."""
    from camkit.cli import quiet

    installed = []
    monkeypatch.setattr(quiet, "quiet_start_up", lambda: installed.append(True))
    monkeypatch.setattr("camkit.cli.app.quiet_start_up", lambda: installed.append(True))
    ok("--verbose", "models")
    assert installed == []
    ok("models")
    assert installed == [True]
    monkeypatch.setenv("CAMKIT_VERBOSE", "1")
    ok("models")
    assert installed == [True]


def test_sigterm_unwinds_with_one_line_and_exit_143(tmp_path, data_root):
    """SIGTERM during a long run: exit 143, one line, no temporary files left under the root."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-c", _ENTRY, "train", *map(str, gunpoint(tmp_path, data_root)),
                             "--epochs", "400", "--name", "long", "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_clean_env())
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.rglob("*.partial*")) and not list(tmp_path.rglob(".*")):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, (proc.returncode, err)
    assert err.splitlines() == ["Aborted (SIGTERM); unfinished files were removed."], err
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], list(tmp_path.rglob("*"))
