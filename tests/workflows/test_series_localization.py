"""`camkit eval-localization` on series end to end: a tiny planted-patterns benchmark, a tiny FCN trained for 2
epochs, scores against an independent NumPy computation, the --maps path, resume, shards and bad inputs."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from helpers import ok, refused, tiny_fcn

from camkit.data import planted
from camkit.data.timeseries import load_timeseries
from camkit.workflows.store import MapStore

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
LENGTH, N_TEST = 96, 20
THRESHOLDS = np.arange(0, 1, 0.01)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, Path]:
    """``root`` with experiment ``planted_fcn`` (a tiny FCN, 2 epochs) and ``data`` with a tiny planted_patterns."""
    root = tmp_path_factory.mktemp("series_loc")
    data = root / "data"
    planted.build(data / "planted_patterns", seed=1, n_train=60, n_test=N_TEST, length=LENGTH, progress=False)
    ds = load_timeseries("planted_patterns", data)
    model = tiny_fcn(LENGTH, ds.n_classes)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(ds.x_train, ds.y_train, epochs=2, batch_size=10, verbose=0)
    path = root / "models" / "planted_fcn" / "best.keras"
    path.parent.mkdir(parents=True)
    model.save(path)
    return root, data


def args(bench, *extra) -> list:
    root, data = bench
    return ["eval-localization", "-c", CONFIGS / "planted_fcn.yaml", "--method", "gradcam", "--root", root,
            "--data-root", data, "--batch-size", 8, "--n-figures", 3, "--no-progress", *extra]


@pytest.fixture(scope="module")
def whole(bench) -> tuple[Path, str]:
    out = bench[0] / "results" / "planted_fcn" / "localization_gradcam"
    return out, ok(*args(bench)).output


def maps_dir(bench) -> Path:
    return bench[0] / "plots" / "planted_fcn" / "explain_gradcam"


def largest_run(m: np.ndarray, threshold: float) -> tuple[int, int]:
    """The longest run of samples with ``m >= threshold × max`` (the first on ties); all samples for an all-zero map."""
    if not m.max() > 0:
        return 0, len(m)
    mask = np.concatenate([[False], m >= threshold * m.max(), [False]])
    edges = np.flatnonzero(np.diff(mask.astype(int)))
    starts, ends = edges[0::2], edges[1::2]
    k = int(np.argmax(ends - starts))
    return int(starts[k]), int(ends[k])


def iou(a: tuple[int, int], b: tuple[int, int]) -> float:
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (a[1] - a[0] + b[1] - b[0] - inter)


def test_scores_match_an_independent_computation(bench, whole) -> None:
    out, output = whole
    stored = MapStore(maps_dir(bench)).read_all()
    columns = [str(c) for c in stored["columns"]]
    maps = stored["maps_gradcam"].astype(np.float64)  # (N, K, T): what the evaluation reads, float16 on disk
    true = maps[:, columns.index("true")]
    with open(bench[1] / "planted_patterns" / "intervals_test.csv") as f:
        truth = [(int(r["start"]), int(r["end"])) for r in csv.DictReader(f)]
    gt_known = np.mean([iou(largest_run(m, 0.15), g) >= 0.5 for m, g in zip(true, truth, strict=True)])
    pointing = np.mean([g[0] <= int(np.argmax(m)) < g[1] and m.max() > 0 for m, g in zip(true, truth, strict=True)])
    per_threshold = [np.mean([iou(largest_run(m, t), g) >= 0.5 for m, g in zip(true, truth, strict=True)])
                     for t in THRESHOLDS]
    s = json.loads((out / "summary.json").read_text())["variants"]["gradcam"]
    assert s["n_images"] == N_TEST and s["gt_known_loc_accuracy"] == pytest.approx(gt_known)
    assert s["pointing_game"] == pytest.approx(pointing) and s["max_box_acc"] == pytest.approx(max(per_threshold))
    assert s["max_box_acc_threshold"] == pytest.approx(THRESHOLDS[int(np.argmax(per_threshold))])
    assert json.loads((out / "summary.json").read_text())["pointing_tolerance"] == 0
    row = next(line.split() for line in output.splitlines() if line.startswith("gradcam"))
    assert float(row[3]) == pytest.approx(s["gt_known_loc_accuracy"], abs=5e-4)  # the table: loc errs, GT-known
    top1 = maps[:, columns.index("top1")]
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["sample"] for r in rows] == [f"test_{i:05d}" for i in range(N_TEST)]
    assert [(int(r["start"]), int(r["end"])) for r in rows] == [largest_run(m, 0.15) for m in top1]
    assert sorted(p.name for p in (out / "figures").iterdir()) == [f"series_0000{i}.png" for i in range(3)]
    assert min(p.stat().st_size for p in (out / "figures").iterdir()) > 10_000


def test_stored_maps_resume_and_shards_give_the_same_summary(bench, whole, tmp_path) -> None:
    out, _ = whole
    again = ok(*args(bench))
    assert "evaluated 0 of 3 batch(es)" in again.output
    summary = json.loads((out / "summary.json").read_text())["variants"]
    stored = tmp_path / "stored"
    ok("eval-localization", "--maps", maps_dir(bench), "--out", stored, "--no-progress")  # the dataset's intervals
    assert json.loads((stored / "summary.json").read_text())["variants"] == summary
    sharded = tmp_path / "sharded"
    first = ok("eval-localization", "--maps", maps_dir(bench), "--out", sharded, "--shard", "0/2", "--no-progress")
    assert "not every batch is evaluated yet" in first.output and not (sharded / "summary.json").exists()
    ok("eval-localization", "--maps", maps_dir(bench), "--out", sharded, "--shard", "1/2", "--no-progress")
    assert json.loads((sharded / "summary.json").read_text())["variants"] == summary


def intervals_with(bench, tmp_path, edit) -> Path:
    """A copy of the benchmark's test intervals with ``edit(lines)`` applied."""
    lines = (bench[1] / "planted_patterns" / "intervals_test.csv").read_text().splitlines()
    path = tmp_path / "intervals.csv"
    path.write_text("\n".join(edit(lines)) + "\n")
    return path


@pytest.mark.parametrize(("edit", "culprit"), [
    (lambda lines: ["image,label,xmin,ymin,xmax,ymax", "test_00000,sine-burst,1,1,5,1"],
     "expected the header sample,label,start,end,channel"),
    (lambda lines: [*lines[:1], lines[1].replace(lines[1].split(",")[1], "chirp" if "chirp" not in lines[1]
                                                 else "sawtooth"), *lines[2:]], "sample 0 is labelled"),
    (lambda lines: [*lines[:2], "1,{},3,{},0".format(lines[2].split(",")[1], LENGTH + 1), *lines[3:]],
     f"lies outside its series of {LENGTH} steps"),
    (lambda lines: lines[:-1], f"no interval for 1 of the {N_TEST} series"),
])
def test_bad_ground_truth_is_one_line_and_writes_nothing(bench, whole, tmp_path, edit, culprit) -> None:
    path = intervals_with(bench, tmp_path, edit)
    refused(["eval-localization", "--maps", maps_dir(bench), "--annotations", path, "--out", tmp_path / "loc"],
            culprit, bench[0])
    assert not (tmp_path / "loc").exists()


def test_a_series_dataset_without_intervals_is_refused_before_explaining(bench, tmp_path) -> None:
    data = tmp_path / "data"
    shutil.copytree(bench[1] / "planted_patterns", data / "planted_patterns")
    (data / "planted_patterns" / "intervals_test.csv").unlink()
    root = tmp_path / "root"
    shutil.copytree(bench[0] / "models", root / "models")
    line = refused(["eval-localization", "-c", CONFIGS / "planted_fcn.yaml", "--method", "gradcam", "--root", root,
                    "--data-root", data, "--no-progress"], "no interval ground truth", root)
    assert "eval-faithfulness" in line and not (root / "plots").exists()


def test_multivariate_series_are_scored_as_one_map_per_time_step(tmp_path) -> None:
    data = tmp_path / "data"
    planted.build(data / "mv", seed=2, n_train=30, n_test=10, length=64, channels=2, progress=False)
    model = tiny_fcn(64, 5, channels=2)
    model.save(tmp_path / "mv.keras")
    ok("explain", "--model-path", tmp_path / "mv.keras", "--dataset", "mv", "--data-root", data, "--n-images", "all",
       "--target", "top1,true", "--save-dir", tmp_path / "maps", "--no-progress")
    out = tmp_path / "loc"
    ok("eval-localization", "--maps", tmp_path / "maps", "--out", out, "--n-figures", 1, "--no-progress")
    with open(out / "per_image.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 10 and all(0 <= int(r["start"]) < int(r["end"]) <= 64 for r in rows)
    assert (out / "figures" / "series_00000.png").stat().st_size > 10_000
