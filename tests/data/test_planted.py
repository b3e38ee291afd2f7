"""`camkit make-benchmark planted-patterns`: determinism, intervals that cover the planted samples, the multivariate
variant, the interval file format, bad options, and the shipped folders."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, ok, refused

from camkit.data.intervals import Interval, interval_annotations, intervals_csv, read_intervals
from camkit.data.planted import AMPLITUDE, CLASSES, NEGLIGIBLE, WIDTH, build, render_sample, sample_rng
from camkit.data.timeseries import load_timeseries
from camkit.errors import CamkitError

SEED, N_TRAIN, N_TEST, LENGTH = 3, 40, 15, 96
SPLITS = ("train", "test")


def make(out: Path, *extra: str | int, seed: int = SEED):
    return invoke("make-benchmark", "planted-patterns", "--seed", seed, "--out", out, "--n-train", N_TRAIN,
                  "--n-test", N_TEST, "--length", LENGTH, "--no-progress", *extra)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir())}


def rows_of(root: Path, split: str) -> list[dict[str, str]]:
    with open(root / f"intervals_{split}.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("planted") / "pp"
    result = make(out)
    assert result.exit_code == 0, result.output
    assert result.output == (f"wrote {out}: {N_TRAIN} train / {N_TEST} test series of {LENGTH} steps and 1 "
                             f"channel(s), 5 classes with intervals (seed {SEED})\n")
    return out


@pytest.fixture(scope="module")
def multivariate(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("planted_mv") / "pp_mv"
    ok("make-benchmark", "planted-patterns", "--seed", SEED, "--out", out, "--n-train", N_TRAIN, "--n-test", N_TEST,
       "--length", LENGTH, "--channels", 3, "--no-progress")
    return out


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_series(tiny, tmp_path) -> None:
    again = tmp_path / "a" / "pp"
    make(again)
    assert files_of(again) == files_of(tiny)
    other = tmp_path / "b" / "pp"
    make(other, seed=SEED + 1)
    assert json.loads(files_of(other)["labels.json"])["labels"] == list(CLASSES)
    assert not np.array_equal(np.load(other / "x_train.npy"), np.load(tiny / "x_train.npy"))


def test_the_folder_loads_and_holds_one_interval_per_series(tiny) -> None:
    ds = load_timeseries(tiny)
    assert ds.labels == list(CLASSES) and ds.x_train.shape == (N_TRAIN, LENGTH, 1)
    assert ds.x_test.shape == (N_TEST, LENGTH, 1)
    info = json.loads((tiny / "benchmark.json").read_text())
    for split, y in (("train", ds.y_train), ("test", ds.y_test)):
        rows = rows_of(tiny, split)
        assert [int(r["sample"]) for r in rows] == list(range(len(y)))
        assert [r["label"] for r in rows] == [CLASSES[c] for c in y]
        assert all(0 <= int(r["start"]) < int(r["end"]) <= LENGTH and r["channel"] == "0" for r in rows)
        assert list(info["counts"][split].values()) == np.bincount(y, minlength=5).tolist()
        assert max(np.bincount(y)) - min(np.bincount(y)) <= 1  # balanced
    assert "0-based, end exclusive" in (tiny / "README.md").read_text()


@pytest.mark.parametrize("split", SPLITS)
def test_each_interval_covers_exactly_the_planted_samples(tiny, split) -> None:
    x = np.load(tiny / f"x_{split}.npy")
    y = np.load(tiny / f"y_{split}.npy")
    low, high = (round(f * LENGTH) for f in WIDTH)
    for i, row in enumerate(rows_of(tiny, split)):
        sample = render_sample(int(y[i]), LENGTH, 1, sample_rng(SEED, split, i))
        np.testing.assert_array_equal(sample.series, x[i])  # the file holds what the generator drew
        start, end = int(row["start"]), int(row["end"])
        assert sample.interval == Interval(CLASSES[y[i]], start, end, 0)
        planted = x[i, :, 0].astype(np.float64) - sample.background[:, 0]  # the pattern, recovered from the file
        visible = np.flatnonzero(np.abs(sample.planted) >= NEGLIGIBLE * sample.amplitude)
        assert visible[0] == start and visible[-1] == end - 1  # the tight hull of the planted samples
        window = np.flatnonzero(sample.planted)
        assert low <= len(window) <= high and window[-1] - window[0] + 1 == len(window)
        assert np.abs(planted[: window[0]]).max(initial=0) < 1e-5 and np.abs(planted[window[-1] + 1:]).max(
            initial=0) < 1e-5  # nothing planted outside the window
        assert AMPLITUDE[0] <= np.abs(sample.planted).max() == sample.amplitude <= AMPLITUDE[1]


def test_the_multivariate_pattern_changes_only_its_channel(multivariate) -> None:
    ds = load_timeseries(multivariate)
    assert ds.x_train.shape == (N_TRAIN, LENGTH, 3)
    rows = rows_of(multivariate, "train")
    channels = [int(r["channel"]) for r in rows]
    assert set(channels) == {0, 1, 2}  # drawn at random over 40 series
    for i, row in enumerate(rows):
        sample = render_sample(int(ds.y_train[i]), LENGTH, 3, sample_rng(SEED, "train", i))
        changed = np.flatnonzero((ds.x_train[i] != sample.background.astype(np.float32)).any(axis=0))
        assert changed.tolist() == [channels[i]]
        steps = np.flatnonzero(ds.x_train[i, :, channels[i]] != sample.background[:, channels[i]].astype(np.float32))
        assert set(steps.tolist()) <= set(np.flatnonzero(sample.planted).tolist())  # only where it was planted
        visible = np.flatnonzero(np.abs(sample.planted) >= NEGLIGIBLE * sample.amplitude)
        assert (int(row["start"]), int(row["end"])) == (visible[0], visible[-1] + 1)


def test_interval_file_round_trip_and_its_errors(tmp_path) -> None:
    path = tmp_path / "intervals_test.csv"
    path.write_text(intervals_csv([Interval("a", 0, 5, 1), Interval("b", 3, 10, 0)]))
    intervals = read_intervals(path)
    assert intervals == {0: Interval("a", 0, 5, 1), 1: Interval("b", 3, 10, 0)}
    annotations = interval_annotations(intervals, "test", (10, 2), "f")
    assert annotations["test_00000"].objects == (("a", Interval("a", 0, 5).box),)
    assert (annotations["test_00001"].width, annotations["test_00001"].height) == (10, 1)
    assert Interval("b", 3, 10).box.as_tuple() == (4, 1, 10, 1)  # 1-based inclusive, one row high
    with pytest.raises(CamkitError, match=r"interval of sample 1 \(\[3, 10\) in channel 0\) lies outside its series "
                                          r"of 9 steps"):
        interval_annotations(intervals, "test", (9, 2), "f")
    for text, message in [("image,label,xmin\n", "expected the header sample,label,start,end,channel"),
                          ("sample,label,start,end\n0,a,4,4\n", "0 <= start < end"),
                          ("sample,label,start,end\n0,a,1,x\n", "line 2: end must be an integer"),
                          ("sample,label,start,end\n0,a,1,3\n0,a,1,3\n", "line 3: sample 0 has a second interval"),
                          ("sample,label,start,end\n", "no intervals")]:
        path.write_text(text)
        with pytest.raises(CamkitError, match=message):
            read_intervals(path)


@pytest.mark.parametrize(("args", "culprit"), [
    (["--length", 10], "--length must be between 64 and 4096 samples, got 10"),
    (["--channels", 0], "--channels must be between 1 and 16, got 0"),
    (["--n-train", 0], "--n-train is 0"),
    (["--size", 64], "--size: planted-patterns takes no such option (it takes --n-train, --n-test, --length, "
                     "--channels)"),
    (["--seed", -2], "--seed must be at least 0"),
])
def test_bad_options_are_one_line_and_write_nothing(tmp_path, args, culprit) -> None:
    refused(["make-benchmark", "planted-patterns", "--out", tmp_path / "pp", "--no-progress", *args], culprit,
            tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_a_benchmark_is_not_replaced(tmp_path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    refused(["make-benchmark", "planted-patterns", "--out", tmp_path, "--no-progress"], "holds no benchmark", tmp_path)
    refused(["make-benchmark", "cluttered-digits", "--length", 100, "--out", tmp_path / "cd"],
            "--length: cluttered-digits takes no such option", tmp_path)


@pytest.mark.parametrize(("folder", "n_train", "channels"), [("planted_patterns", 1000, 1),
                                                          ("planted_patterns_mv", 2000, 3)])
def test_the_shipped_folders_are_their_regeneration(data_root, tmp_path, monkeypatch, folder, n_train,
                                                    channels) -> None:
    shipped = data_root / folder
    info = json.loads((shipped / "benchmark.json").read_text())
    assert info["command"] == (f"camkit make-benchmark planted-patterns --seed 0 --out data/{folder} --n-train "
                               f"{n_train} --n-test 300 --length 256 --channels {channels}")
    monkeypatch.chdir(tmp_path)
    build(Path("data") / folder, seed=0, n_train=n_train, channels=channels, progress=False)
    assert files_of(tmp_path / "data" / folder) == files_of(shipped)


def test_the_default_folder_names_the_multivariate_variant(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    ok("make-benchmark", "planted-patterns", "--channels", 2, "--n-train", 5, "--n-test", 5, "--length", 64,
       "--no-progress")
    assert load_timeseries(tmp_path / "data" / "planted_patterns_mv").x_test.shape == (5, 64, 2)
    assert json.loads((tmp_path / "data" / "planted_patterns_mv" / "benchmark.json").read_text())["command"] == (
        "camkit make-benchmark planted-patterns --seed 0 --out data/planted_patterns_mv --n-train 5 --n-test 5 "
        "--length 64 --channels 2")
