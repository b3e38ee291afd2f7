"""Tests for camkit.data.timeseries: .ts -> .npy conversion (library and CLI), loading, z-norm.

Expected values come from sktime's own reader (``load_from_tsfile``) on the .ts files that sktime
ships, from hand-written tiny .ts files, or are computed by hand.
"""

from __future__ import annotations

import json
import re
import shutil
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import sktime.datasets
from click.testing import CliRunner
from sktime.datasets import load_from_tsfile

from camkit.cli import main
from camkit.data.timeseries import convert_ts, default_batch_size, load_timeseries, znormalise
from camkit.errors import CamkitError

SKTIME_DATA = Path(sktime.datasets.__file__).parent / "data"


@cache
def _sktime(name: str, split: str) -> tuple[list[np.ndarray], list[str]]:
    """sktime's reading of NAME_SPLIT.ts: one ``(T_i, C)`` float array per series, and the labels."""
    frame, labels = load_from_tsfile(str(SKTIME_DATA / name / f"{name}_{split.upper()}.ts"),
                                     return_data_type="nested_univ")
    series = [np.stack([np.asarray(frame.iloc[i, c], dtype=np.float64) for c in range(frame.shape[1])], axis=-1)
              for i in range(len(frame))]
    return series, [str(v) for v in labels]


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory):
    """Convert each sktime dataset at most once per module; returns name -> loaded dataset."""
    out = tmp_path_factory.mktemp("converted")
    cache: dict = {}

    def get(name: str):
        if name not in cache:
            cache[name] = load_timeseries(convert_ts(None, out, sktime_dataset=name)[0])
        return cache[name]

    return get


def _check_against_sktime(ds, name: str) -> None:
    """Every converted value equals sktime's reading; the padding after each series is exactly zero."""
    for split, x, y in (("train", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        series, labels = _sktime(name, split)
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (len(series), ds.info["length"], series[0].shape[1])
        lengths = np.array([len(s) for s in series])
        padded = np.zeros_like(x)
        for i, s in enumerate(series):
            padded[i, : len(s)] = s
        np.testing.assert_array_equal(x, padded)  # values, and zeros after each true length
        after_end = np.arange(x.shape[1])[None, :] >= lengths[:, None]
        assert np.all(x[after_end] == 0)
        np.testing.assert_array_equal(y, [ds.labels.index(v) for v in labels])


# --------------------------------------------------------------------------- sources of a conversion


def test_cli_converts_by_sktime_name(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["convert-sktime", "--sktime-dataset", "GunPoint", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "GunPoint"
    assert result.output == f"wrote {folder}: train (50, 150, 1), test (150, 150, 1), 2 classes ['1', '2']\n"
    assert sorted(p.name for p in folder.iterdir()) == [
        "labels.json", "x_test.npy", "x_train.npy", "y_test.npy", "y_train.npy"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GunPoint"]  # no temporary folder left behind
    info = json.loads((folder / "labels.json").read_text())
    assert info["labels"] == ["1", "2"]
    assert info["source"] == {"train": "GunPoint_TRAIN.ts", "test": "GunPoint_TEST.ts", "sktime_dataset": "GunPoint"}
    assert (info["length"], info["channels"], info["equal_length"], info["padding"]) == (150, 1, True, None)


@pytest.mark.parametrize("given", ["folder", "train", "test"])
def test_convert_from_folder_or_either_file(tmp_path: Path, given: str) -> None:
    src = tmp_path / "downloads" / "IPD"
    src.mkdir(parents=True)
    for split in ("TRAIN", "TEST"):
        shutil.copy(SKTIME_DATA / "ItalyPowerDemand" / f"ItalyPowerDemand_{split}.ts", src)
    source = {"folder": src, "train": src / "ItalyPowerDemand_TRAIN.ts", "test": src / "ItalyPowerDemand_TEST.ts"}
    folder, written = convert_ts(source[given], tmp_path / "out")
    assert written
    assert folder == tmp_path / "out" / "ItalyPowerDemand"  # the name comes from the file names
    ds = load_timeseries(folder)
    assert ds.x_train.shape == (67, 24, 1) and ds.x_test.shape == (1029, 24, 1)
    assert ds.labels == ["1", "2"]
    assert ds.info["source"] == {"train": "ItalyPowerDemand_TRAIN.ts", "test": "ItalyPowerDemand_TEST.ts",
                                 "sktime_dataset": None}
    _check_against_sktime(ds, "ItalyPowerDemand")


def test_cli_converts_test_file_path_with_name_and_reports_padding(tmp_path: Path) -> None:
    for split in ("TRAIN", "TEST"):
        shutil.copy(SKTIME_DATA / "JapaneseVowels" / f"JapaneseVowels_{split}.ts", tmp_path)
    result = CliRunner().invoke(main, ["convert-sktime", str(tmp_path / "JapaneseVowels_TEST.ts"),
                                       "--out", str(tmp_path / "out"), "--name", "JV"])
    assert result.exit_code == 0, result.output
    labels = [str(i) for i in range(1, 10)]
    assert result.output == (f"wrote {tmp_path / 'out' / 'JV'}: train (270, 29, 12), test (370, 29, 12), "
                             f"9 classes {labels}, zero-padded at the end\n")
    assert json.loads((tmp_path / "out" / "JV" / "labels.json").read_text())["name"] == "JV"


# --------------------------------------------------------------------------- real datasets


def test_gunpoint_matches_sktime(converted) -> None:
    ds = converted("GunPoint")
    assert ds.x_train.shape == (50, 150, 1) and ds.x_test.shape == (150, 150, 1)
    assert ds.x_train.dtype == np.float32
    assert ds.labels == ["1", "2"] and ds.n_classes == 2 and ds.input_shape == (150, 1)
    _, train_labels = _sktime("GunPoint", "train")
    np.testing.assert_array_equal(ds.y_train, [int(v) - 1 for v in train_labels])  # '1' -> 0, '2' -> 1
    assert sorted(set(ds.y_train.tolist())) == [0, 1]
    _check_against_sktime(ds, "GunPoint")


@pytest.mark.parametrize("name", ["GunPoint", "ItalyPowerDemand"])
def test_shipped_datasets_equal_a_fresh_conversion(converted, data_root: Path, name: str) -> None:
    shipped, fresh = load_timeseries(name, data_root=data_root), converted(name)
    for key in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(shipped, key), getattr(fresh, key))
    assert shipped.labels == fresh.labels == ["1", "2"]
    assert shipped.name == name


def test_basicmotions_keeps_channel_order(converted) -> None:
    ds = converted("BasicMotions")
    assert ds.x_train.shape == (40, 100, 6) and ds.x_test.shape == (40, 100, 6)
    assert ds.labels == ["badminton", "running", "standing", "walking"]
    series, labels = _sktime("BasicMotions", "train")
    first = series[0]
    assert len({tuple(first[:, c]) for c in range(6)}) == 6  # the six channels differ, so order is testable
    for c in range(6):
        np.testing.assert_array_equal(ds.x_train[0, :, c], first[:, c].astype(np.float32))
    assert ds.labels[ds.y_train[0]] == labels[0]
    _check_against_sktime(ds, "BasicMotions")


def test_japanese_vowels_padded_to_longest_of_train_and_test(converted) -> None:
    ds = converted("JapaneseVowels")
    train_lengths = [len(s) for s in _sktime("JapaneseVowels", "train")[0]]
    test_lengths = [len(s) for s in _sktime("JapaneseVowels", "test")[0]]
    assert (min(train_lengths), max(train_lengths)) == (7, 26)
    assert (min(test_lengths), max(test_lengths)) == (7, 29)  # the longest series is in the test split
    assert ds.x_train.shape == (270, 29, 12) and ds.x_test.shape == (370, 29, 12)
    assert ds.labels == [str(i) for i in range(1, 10)]
    assert ds.info["equal_length"] is False
    assert ds.info["padding"] == {"mode": "zeros at the end", "min_length": 7, "max_length": 29}
    _check_against_sktime(ds, "JapaneseVowels")


def test_plaid_unequal_univariate_with_numeric_labels(converted) -> None:
    ds = converted("PLAID")
    assert ds.x_train.shape == (537, 1344, 1) and ds.x_test.shape == (537, 1344, 1)
    assert ds.labels == [str(i) for i in range(11)]  # numeric order: '10' after '9', not after '1'
    assert ds.info["padding"] == {"mode": "zeros at the end", "min_length": 100, "max_length": 1344}
    _, train_labels = _sktime("PLAID", "train")
    np.testing.assert_array_equal(ds.y_train, [int(v) for v in train_labels])  # so '10' -> 10
    assert 10 in ds.y_train and "10" in train_labels
    _check_against_sktime(ds, "PLAID")


# --------------------------------------------------------------------------- conversion errors


def _write_ts(path: Path, series: list[list[list[float | str]]], labels: list[str]) -> Path:
    """Write a small equal-length .ts file; ``series[i][c]`` is channel ``c`` of series ``i``."""
    channels = len(series[0])
    header = [f"@problemName {path.stem.split('_')[0]}", "@timeStamps false",
              f"@missing {'true' if any('?' in ch for s in series for ch in s) else 'false'}",
              f"@univariate {'true' if channels == 1 else 'false'}"]
    if channels > 1:
        header.append(f"@dimensions {channels}")
    header += ["@equalLength true", f"@seriesLength {len(series[0][0])}",
               f"@classLabel true {' '.join(sorted(set(labels)))}", "@data"]
    rows = [":".join(",".join(str(v) for v in ch) for ch in s) + f":{label}"
            for s, label in zip(series, labels, strict=True)]
    path.write_text("\n".join(header + rows) + "\n")
    return path


TOY_TRAIN = [[[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.5]]]
TOY_TEST = [[[0.5, 0.0, -1.0]], [[2.0, 2.0, 2.0]]]


def _toy_pair(folder: Path, train=TOY_TRAIN, test=TOY_TEST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    _write_ts(folder / "Toy_TRAIN.ts", train, ["b", "a"])
    _write_ts(folder / "Toy_TEST.ts", test, ["a", "b"])
    return folder


def test_toy_pair_converts_to_hand_written_values(tmp_path: Path) -> None:
    ds = load_timeseries(convert_ts(_toy_pair(tmp_path / "src"), tmp_path / "out")[0])
    np.testing.assert_array_equal(ds.x_train[..., 0], [[1, 2, 3], [4, 5, 6.5]])
    np.testing.assert_array_equal(ds.x_test[..., 0], [[0.5, 0, -1], [2, 2, 2]])
    assert ds.labels == ["a", "b"]
    np.testing.assert_array_equal(ds.y_train, [1, 0])
    np.testing.assert_array_equal(ds.y_test, [0, 1])


SPELLINGS = {  # ways of writing the same .ts text that sktime reads alike
    "CRLF line ends": lambda text: text.replace("\n", "\r\n"),
    "CR line ends": lambda text: text.replace("\n", "\r"),
    "UTF-8 BOM": lambda text: "\ufeff" + text,
    "upper case": str.upper,
    "blank and comment lines": lambda text: "# written by hand\n\n" + text.replace("\n", "\n\n"),
    "spaces around values": lambda text: text.replace(",", " , ").replace(":", " : "),
}


@pytest.mark.parametrize("spelling", list(SPELLINGS))
def test_other_spellings_convert_to_the_same_bytes(tmp_path: Path, spelling: str) -> None:
    plain, _ = convert_ts(_toy_pair(tmp_path / "plain"), tmp_path / "out_plain")
    src = _toy_pair(tmp_path / "src")
    for path in src.iterdir():
        path.write_bytes(SPELLINGS[spelling](path.read_text()).encode())
    folder, _ = convert_ts(src, tmp_path / "out")
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in plain.iterdir())
    for path in plain.iterdir():
        assert (folder / path.name).read_bytes() == path.read_bytes(), path.name
    np.testing.assert_array_equal(load_timeseries(folder).x_train[..., 0], [[1, 2, 3], [4, 5, 6.5]])


def _garbage_test(src: Path) -> str:
    (src / "Toy_TEST.ts").write_text("hello\nthis is not a .ts file\n")
    return "Toy_TEST.ts: no @data line"


def _channel_mismatch(src: Path) -> str:
    _write_ts(src / "Toy_TEST.ts", [[[1, 2, 3], [4, 5, 6]], [[0, 0, 1], [1, 0, 0]]], ["a", "b"])
    return "train and test must have one common channel count, got train [1] and test [2]"


def _missing_values(src: Path) -> str:
    _write_ts(src / "Toy_TRAIN.ts", [[[1, "?", 3]], [[4, 5, 6]]], ["a", "b"])
    return "Toy_TRAIN.ts: holds 1 missing or non-finite value(s) (first on line 9)"


def _missing_test(src: Path) -> str:
    (src / "Toy_TEST.ts").unlink()
    return "Toy_TEST.ts: file not found"


@pytest.mark.parametrize("spoil", [_garbage_test, _channel_mismatch, _missing_values, _missing_test])
def test_failed_conversion_writes_nothing(tmp_path: Path, spoil) -> None:
    src = _toy_pair(tmp_path / "src")
    expected = spoil(src)
    with pytest.raises(CamkitError, match=re.escape(expected)):
        convert_ts(src, tmp_path / "out")
    assert not (tmp_path / "out" / "Toy").exists()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []

    result = CliRunner().invoke(main, ["convert-sktime", str(src), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert expected in result.output and str(src) in result.output  # names the file (or folder)
    assert not (tmp_path / "out" / "Toy").exists()


@pytest.mark.parametrize("spoil", [_garbage_test, _channel_mismatch, _missing_values])
def test_failed_reconversion_keeps_earlier_dataset(tmp_path: Path, spoil) -> None:
    src = _toy_pair(tmp_path / "src")
    folder, _ = convert_ts(src, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    spoil(src)
    with pytest.raises(CamkitError):
        convert_ts(src, tmp_path / "out")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["Toy"]  # no temporary or .old folder left
    np.testing.assert_array_equal(load_timeseries(folder).x_train[..., 0], [[1, 2, 3], [4, 5, 6.5]])


def test_folder_without_train_file(tmp_path: Path) -> None:
    src = _toy_pair(tmp_path / "src")
    (src / "Toy_TRAIN.ts").unlink()
    with pytest.raises(CamkitError, match=r"src: expected exactly one \*_TRAIN.ts file, found 0"):
        convert_ts(src, tmp_path / "out")
    result = CliRunner().invoke(main, ["convert-sktime", str(src), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and result.output.startswith(f"Error: {src}: expected exactly one")
    assert not (tmp_path / "out").exists()


def test_source_that_is_neither_folder_nor_ts_pair_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("x")
    with pytest.raises(CamkitError, match=r"notes\.txt: not a folder nor a NAME_TRAIN\.ts"):
        convert_ts(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_sktime_dataset(tmp_path: Path) -> None:
    with pytest.raises(CamkitError, match=r"--sktime-dataset: 'NoSuchSet' is not shipped by sktime; .*GunPoint"):
        convert_ts(None, tmp_path, sktime_dataset="NoSuchSet")
    result = CliRunner().invoke(main, ["convert-sktime", "--sktime-dataset", "NoSuchSet", "--out", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("Error: --sktime-dataset: 'NoSuchSet'")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [[], ["SRC", "--sktime-dataset", "GunPoint"]])
def test_source_and_sktime_dataset_are_exclusive(tmp_path: Path, args: list[str]) -> None:
    src = _toy_pair(tmp_path / "src")
    args = [str(src) if a == "SRC" else a for a in args]
    result = CliRunner().invoke(main, ["convert-sktime", *args, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.output == "Error: convert-sktime: give either a SOURCE path or --sktime-dataset NAME\n"
    assert not (tmp_path / "out").exists()
    with pytest.raises(CamkitError, match="either a SOURCE path or --sktime-dataset"):
        convert_ts(src if args else None, tmp_path / "out", sktime_dataset="GunPoint" if args else None)


# --------------------------------------------------------------------------- loading


def _write_npy(folder: Path, x_train=None, y_train=None, x_test=None, y_test=None, labels=("a", "b")) -> Path:
    """A valid small dataset folder (4 train, 3 test series of length 5 with 2 channels) unless overridden."""
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.normal(size=(4, 5, 2)).astype(np.float32) if x_train is None else x_train,
        "y_train": np.array([0, 1, 1, 0]) if y_train is None else y_train,
        "x_test": rng.normal(size=(3, 5, 2)).astype(np.float32) if x_test is None else x_test,
        "y_test": np.array([1, 0, 1]) if y_test is None else y_test,
    }
    folder.mkdir(parents=True, exist_ok=True)
    for key, array in arrays.items():
        np.save(folder / f"{key}.npy", array)
    if labels is not None:
        (folder / "labels.json").write_text(json.dumps({"name": "Toy", "labels": list(labels)}))
    return folder


def test_load_valid_folder(tmp_path: Path) -> None:
    folder = _write_npy(tmp_path / "Toy")
    ds = load_timeseries(folder)
    assert ds.name == "Toy" and ds.labels == ["a", "b"] and ds.n_classes == 2 and ds.input_shape == (5, 2)
    np.testing.assert_array_equal(ds.x_train, np.load(folder / "x_train.npy"))
    np.testing.assert_array_equal(ds.y_test, [1, 0, 1])
    assert ds.y_train.dtype == np.int64
    same = load_timeseries("Toy", data_root=tmp_path)  # by name under data_root
    np.testing.assert_array_equal(same.x_test, ds.x_test)


def test_two_dimensional_x_is_univariate(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    ds = load_timeseries(_write_npy(tmp_path / "d", x_train=x, x_test=x[:3] * 2))
    assert ds.x_train.shape == (4, 3, 1) and ds.x_test.shape == (3, 3, 1) and ds.x_train.dtype == np.float32
    np.testing.assert_array_equal(ds.x_train[:, :, 0], x)
    np.testing.assert_array_equal(ds.x_test[2, :, 0], [12, 14, 16])


def test_integer_valued_float_labels_are_accepted(tmp_path: Path) -> None:
    ds = load_timeseries(_write_npy(tmp_path / "d", y_train=np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32)))
    assert ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.y_train, [0, 1, 1, 0])


def test_labels_without_labels_json_or_as_a_list(tmp_path: Path) -> None:
    ds = load_timeseries(_write_npy(tmp_path / "none", y_train=np.array([0, 2, 1, 0]), labels=None))
    assert ds.labels == ["0", "1", "2"] and ds.name == "none"
    folder = _write_npy(tmp_path / "list", labels=None)
    (folder / "labels.json").write_text('["cat", "dog"]')
    assert load_timeseries(folder).labels == ["cat", "dog"]


X_SHAPE = "expected (series, length, channels) or (series, length), got shape"


def first(series: int, step: int) -> str:
    return f"(the first in series {series}, step {step})"


def _bad(tmp_path: Path, case: str) -> tuple[Path, str]:
    """Build the broken folder of one loader error case; returns (folder, expected message part)."""
    folder = tmp_path / "bad"
    x3 = np.zeros((4, 5, 2), dtype=np.float32)
    if case == "missing x":
        _write_npy(folder)
        (folder / "x_test.npy").unlink()
        return folder, f"{folder / 'x_test.npy'}: file not found"
    if case == "missing y":
        _write_npy(folder)
        (folder / "y_train.npy").unlink()
        return folder, f"{folder / 'y_train.npy'}: file not found"
    if case == "not npy":
        _write_npy(folder)
        (folder / "x_train.npy").write_text("1,2,3\n")
        return folder, f"{folder / 'x_train.npy'}: not an .npy file (it does not start with the NumPy header)"
    if case == "pickled objects":
        _write_npy(folder)
        np.save(folder / "y_test.npy", np.array([1, "a", None], dtype=object), allow_pickle=True)
        return folder, f"{folder / 'y_test.npy'}: holds Python objects (dtype object), not real numbers"
    if case == "x 4-D":
        return _write_npy(folder, x_train=x3[..., None]), f"{folder / 'x_train.npy'}: {X_SHAPE} (4, 5, 2, 1)"
    if case == "x 1-D":
        return _write_npy(folder, x_test=np.zeros(3)), f"{folder / 'x_test.npy'}: {X_SHAPE} (3,)"
    if case == "y 2-D":
        return (_write_npy(folder, y_train=np.zeros((4, 1), int)),
                f"{folder / 'y_train.npy'}: expected one label per series, shape (N,), got shape (4, 1)")
    if case == "x text":
        text = np.full((4, 5, 2), "a")
        return _write_npy(folder, x_train=text), f"{folder / 'x_train.npy'}: holds text (dtype <U1), not real numbers"
    if case == "nan":
        x = x3.copy()
        x[1, 2, 0] = np.nan
        return _write_npy(folder, x_train=x), f"{folder / 'x_train.npy'}: holds 1 NaN/Inf value(s) {first(1, 2)}"
    if case == "inf":
        x = np.zeros((3, 5, 2))
        x[0, 0, 1], x[2, 4, 0] = np.inf, -np.inf
        return _write_npy(folder, x_test=x), f"{folder / 'x_test.npy'}: holds 2 NaN/Inf value(s) {first(0, 0)}"
    if case == "len mismatch":
        return (_write_npy(folder, y_train=np.array([0, 1, 0])),
                f"{folder / 'y_train.npy'}: holds 3 labels but x_train.npy holds 4 series")
    if case == "no series":
        return (_write_npy(folder, x_test=np.zeros((0, 5, 2)), y_test=np.zeros(0, int)),
                f"{folder / 'x_test.npy'}: holds no series (shape (0, 5, 2))")
    if case == "fractional labels":
        return (_write_npy(folder, y_train=np.array([0, 0.5, 1, 0])),
                f"{folder / 'y_train.npy'}: labels must be integers 0..K-1, got float64 values such as 0.5")
    if case == "negative label":
        return (_write_npy(folder, y_test=np.array([1, -1, 0])),
                f"{folder / 'y_test.npy'}: labels must lie in 0..1 (labels.json names 2 classes), found -1..1")
    if case == "label too large":
        return (_write_npy(folder, y_train=np.array([0, 2, 1, 0])),
                f"{folder / 'y_train.npy'}: labels must lie in 0..1 (labels.json names 2 classes), found 0..2")
    if case == "channel mismatch":
        return (_write_npy(folder, x_test=np.zeros((3, 5, 3), np.float32)),
                f"{folder}: train has 2 channel(s) but test has 3")
    if case == "length mismatch":
        return (_write_npy(folder, x_test=np.zeros((3, 6, 2), np.float32)),
                f"{folder}: train series have length 5, test 6")
    if case == "labels.json not json":
        _write_npy(folder)
        (folder / "labels.json").write_text("{labels: [a, b]")
        return folder, f"{folder / 'labels.json'}: not valid JSON"
    if case == "labels.json labels not a list":
        _write_npy(folder)
        (folder / "labels.json").write_text('{"labels": "ab"}')
        return folder, f"{folder / 'labels.json'}: expected an object with a 'labels' list"
    if case == "labels.json a number":
        _write_npy(folder)
        (folder / "labels.json").write_text("3")
        return folder, f"{folder / 'labels.json'}: expected an object with a 'labels' list"
    raise AssertionError(case)


LOADER_ERRORS = ["missing x", "missing y", "not npy", "pickled objects", "x 4-D", "x 1-D", "y 2-D", "x text", "nan",
                 "inf", "len mismatch", "no series", "fractional labels", "negative label", "label too large",
                 "channel mismatch", "length mismatch", "labels.json not json", "labels.json labels not a list",
                 "labels.json a number"]


@pytest.mark.parametrize("case", LOADER_ERRORS)
def test_loader_errors_name_the_file(tmp_path: Path, case: str) -> None:
    folder, expected = _bad(tmp_path, case)
    with pytest.raises(CamkitError) as info:
        load_timeseries(folder)
    message = str(info.value)
    assert expected in message
    assert str(folder) in message and "\n" not in message


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(CamkitError) as info:
        load_timeseries("NoSuchSet", data_root=tmp_path)
    assert str(info.value).startswith(
        f"--dataset: no dataset folder 'NoSuchSet' (looked in NoSuchSet and {tmp_path / 'NoSuchSet'})")


# --------------------------------------------------------------------------- z-normalisation, batch size


def test_znormalise_hand_computed() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32)[None, :, None]
    # mean 2.5, population std sqrt(1.25)
    expected = (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25)
    np.testing.assert_allclose(znormalise(x)[0, :, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(expected, [-1.3416408, -0.4472136, 0.4472136, 1.3416408], rtol=1e-6)


def test_znormalise_per_series_and_channel_constant_becomes_zero() -> None:
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(3, 50, 3)) * [1.0, 10.0, 0.1] + [0.0, 100.0, -5.0]).astype(np.float32)
    x[1, :, 2] = -3.3  # constant: its float32 mean is off by rounding, which must not become +-1
    x[2, :, 0] = 1000.1
    x[0, :, 1] = 0.0
    z = znormalise(x)
    assert z.dtype == np.float32 and z.shape == x.shape and np.isfinite(z).all()
    constant = np.zeros((3, 3), bool)
    constant[1, 2] = constant[2, 0] = constant[0, 1] = True
    assert np.all(z.transpose(0, 2, 1)[constant] == 0)
    np.testing.assert_allclose(z.mean(axis=1)[~constant], 0, atol=1e-6)
    np.testing.assert_allclose(z.std(axis=1)[~constant], 1, rtol=1e-5)
    # each series and channel separately: series 0 channel 0 alone gives the same result
    np.testing.assert_allclose(z[0, :, 0], znormalise(x[:1, :, :1])[0, :, 0], rtol=1e-6)


def test_load_with_znorm(tmp_path: Path) -> None:
    x_train = np.zeros((4, 5, 2), np.float32)
    x_train[:, :, 0] = [[1, 2, 3, 4, 5], [2, 2, 2, 2, 2], [0, 0, 0, 0, 10], [5, 4, 3, 2, 1]]
    x_train[:, :, 1] = 7.0
    ds = load_timeseries(_write_npy(tmp_path / "d", x_train=x_train), znorm=True)
    sqrt2 = np.sqrt(2.0)  # [1..5]: mean 3, std sqrt(2)
    np.testing.assert_allclose(ds.x_train[0, :, 0], [-2 / sqrt2, -1 / sqrt2, 0, 1 / sqrt2, 2 / sqrt2], rtol=1e-6)
    np.testing.assert_allclose(ds.x_train[2, :, 0], [-0.5, -0.5, -0.5, -0.5, 2.0], rtol=1e-6)  # mean 2, std 4
    assert np.all(ds.x_train[1, :, 0] == 0) and np.all(ds.x_train[:, :, 1] == 0)
    np.testing.assert_allclose(ds.x_test.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(ds.x_test.std(axis=1), 1, rtol=1e-5)


@pytest.mark.parametrize(("n_train", "expected"), [(50, 5), (67, 6), (1000, 16), (3, 1), (160, 16), (169, 16),
                                                   (159, 15), (10, 1), (0, 1)])
def test_default_batch_size(n_train: int, expected: int) -> None:
    assert default_batch_size(n_train) == expected


def test_default_batch_size_cap() -> None:
    assert default_batch_size(1000, cap=32) == 32
    assert default_batch_size(1000, cap=200) == 100
