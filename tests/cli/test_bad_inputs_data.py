"""Bad inputs of the data layer through the CLI: `.npy` datasets, `.ts` files, image folders, config files.

Every case runs ``camkit ARGS`` on real files (the shipped data, or copies of it spoiled in ``tmp_path``) and
checks the contract of tests/helpers.refused: exit code 2, one ``Error:`` line naming the culprit, and no
file changed, added or removed under the kept folders (the dataset, the outputs). The cases that are not
refusals (a conversion recomputed under --overwrite, skipped images reported) compare with fresh results.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from helpers import digit_folder, ok, refused, snapshot

Case = tuple[list, str, list[Path]]
Build = Callable[[Path, Path], Case]
CASES: dict[str, Build] = {}


def case(name: str) -> Callable[[Build], Build]:
    """Register ``build(tmp_path, data_root) -> (args, culprit, kept folders)`` as the bad-input case ``name``."""
    def register(build: Build) -> Build:
        CASES[name] = build
        return build

    return register


def train(*args: str | Path, out: Path) -> list:
    return ["train", *args, "--root", out, "--epochs", 1, "--no-progress"]


# --------------------------------------------------------------------------- .npy datasets


def gunpoint_copy(tmp: Path, data_root: Path, **files: np.ndarray | bytes | str | None) -> Path:
    """The shipped GunPoint copied to ``tmp/GP``; each keyword replaces (array, raw bytes, text) or removes a file."""
    folder = tmp / "GP"
    shutil.copytree(data_root / "GunPoint", folder)
    for stem, content in files.items():
        name = "labels.json" if stem == "labels" else f"{stem}.npy"
        if content is None:
            (folder / name).unlink()
        elif isinstance(content, np.ndarray):
            np.save(folder / name, content, allow_pickle=content.dtype.hasobject)
        elif isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content)
    return folder


def x_train(data_root: Path) -> np.ndarray:
    return np.load(data_root / "GunPoint" / "x_train.npy")


def y_train(data_root: Path) -> np.ndarray:
    return np.load(data_root / "GunPoint" / "y_train.npy")


def npy_case(name: str, culprit: Callable[[Path], str], **spoil: Callable[[Path], object]) -> None:
    """A case that trains on a spoiled GunPoint copy; ``culprit(folder)`` is the text the error must hold."""
    def build(tmp: Path, data_root: Path) -> Case:
        folder = gunpoint_copy(tmp, data_root, **{k: f(data_root) for k, f in spoil.items()})
        return train("--dataset", folder, out=tmp / "out"), culprit(folder), [folder, tmp / "out"]

    CASES[name] = build


def _npz(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=array)
    return buffer.getvalue()


def _with(array: np.ndarray, index: tuple | int, value: float) -> np.ndarray:
    array = array.copy()
    array[index] = value
    return array


npy_case("x complex", lambda f: f"{f / 'x_train.npy'}: holds complex numbers (dtype complex128), not real numbers",
         x_train=lambda d: x_train(d).astype(np.complex128) + 1j)
npy_case("y objects", lambda f: f"{f / 'y_test.npy'}: holds Python objects (dtype object)",
         y_test=lambda d: np.array([1, "a", None] * 50, dtype=object))
npy_case("x strings", lambda f: f"{f / 'x_train.npy'}: holds text (dtype <U3)",
         x_train=lambda d: x_train(d).astype("U3"))
npy_case("x NaN", lambda f: f"{f / 'x_train.npy'}: holds 3 NaN/Inf value(s) (the first in series 2, step 7)",
         x_train=lambda d: _with(_with(x_train(d), (2, 7, 0), np.nan), (slice(10, 12), 0, 0), np.nan))
npy_case("x inf", lambda f: f"{f / 'x_test.npy'}: holds 1 NaN/Inf value(s) (the first in series 149, step 149)",
         x_test=lambda d: _with(np.load(d / "GunPoint" / "x_test.npy"), (149, 149, 0), -np.inf))
npy_case("x beyond float32", lambda f: f"{f / 'x_train.npy'}: 1 value(s) lie beyond float32's range",
         x_train=lambda d: _with(x_train(d).astype(np.float64), (0, 0, 0), 1e300))
npy_case("x/y length mismatch", lambda f: f"{f / 'y_train.npy'}: holds 49 labels but x_train.npy holds 50 series",
         y_train=lambda d: y_train(d)[:-1])
npy_case("x 4-D", lambda f: f"{f / 'x_train.npy'}: expected (series, length, channels) or (series, length), "
                            "got shape (50, 150, 1, 1)",
         x_train=lambda d: x_train(d)[..., None])
npy_case("x 0-D", lambda f: f"{f / 'x_test.npy'}: expected (series, length, channels) or (series, length), "
                            "got shape ()",
         x_test=lambda d: np.array(1.0))
npy_case("y 2-D", lambda f: f"{f / 'y_train.npy'}: expected one label per series, shape (N,), got shape (50, 1)",
         y_train=lambda d: y_train(d)[:, None])
npy_case("y fractions", lambda f: f"{f / 'y_train.npy'}: labels must be integers 0..K-1, got float64 values such as "
                                  "0.5",
         y_train=lambda d: _with(y_train(d).astype(np.float64), 3, 0.5))
npy_case("y negative", lambda f: f"{f / 'y_train.npy'}: labels must lie in 0..1 (labels.json names 2 classes), "
                                 "found -1..1",
         y_train=lambda d: _with(y_train(d), 0, -1))
npy_case("truncated .npy", lambda f: f"{f / 'x_train.npy'}: truncated: its header promises shape (50, 150, 1) of "
                                     "float32 (30000 bytes of data) but the file holds 29900",
         x_train=lambda d: (d / "GunPoint" / "x_train.npy").read_bytes()[:-100])
npy_case("truncated .npy header", lambda f: f"{f / 'x_test.npy'}: damaged .npy header (EOF: reading array header",
         x_test=lambda d: (d / "GunPoint" / "x_test.npy").read_bytes()[:20])
npy_case("bytes after the data", lambda f: f"{f / 'y_test.npy'}: altered (bytes after the data)",
         y_test=lambda d: (d / "GunPoint" / "y_test.npy").read_bytes() + b"\0" * 8)
npy_case("not an .npy", lambda f: f"{f / 'x_test.npy'}: not an .npy file (it does not start with the NumPy header)",
         x_test=lambda d: "1,2,3\n4,5,6\n")
npy_case("an .npz named .npy", lambda f: f"{f / 'x_train.npy'}: not an .npy file (a .npz archive)",
         x_train=lambda d: _npz(x_train(d)))
npy_case("missing y", lambda f: f"{f / 'y_test.npy'}: file not found", y_test=lambda d: None)
npy_case("labels.json garbled", lambda f: f"{f / 'labels.json'}: not valid JSON",
         labels=lambda d: '{"labels": ["1", "2"')
npy_case("labels.json names too few classes", lambda f: f"{f / 'y_train.npy'}: labels must lie in 0..0 "
                                                        "(labels.json names 1 classes), found 0..1",
         labels=lambda d: '{"labels": ["1"]}')
npy_case("labels.json names a class twice", lambda f: f"{f / 'labels.json'}: class name 'gun' is listed more than once",
         labels=lambda d: '{"labels": ["gun", "gun"]}')
npy_case("labels.json a name that is no string", lambda f: f"{f / 'labels.json'}: a class name must be a non-empty "
                                                           "string, got None",
         labels=lambda d: '{"labels": ["gun", null]}')
npy_case("one class only", lambda f: f"{f}: has one class only (gun); a classifier needs at least two",
         y_train=lambda d: np.zeros(50, np.int64), y_test=lambda d: np.zeros(150, np.int64),
         labels=lambda d: '{"labels": ["gun"]}')
npy_case("a class in no split", lambda f: f"{f / 'y_train.npy'}: 1 of the classes 0..2 occur in neither split (e.g. 1)",
         y_train=lambda d: y_train(d) * 2, y_test=lambda d: np.load(d / "GunPoint" / "y_test.npy") * 2,
         labels=lambda d: None)


@case("dataset is a file")
def _dataset_file(tmp: Path, data_root: Path) -> Case:
    path = tmp / "GunPoint.npy"
    path.write_bytes((data_root / "GunPoint" / "x_train.npy").read_bytes())
    return train("--dataset", path, out=tmp / "out"), f"--dataset: {path} is a file, not a dataset folder", [tmp]


@case("image dataset read as time series")
def _images_as_series(tmp: Path, data_root: Path) -> Case:
    folder = digits(tmp, data_root, ("0", "1"))
    return (train("--dataset", folder, out=tmp / "out"), f"{folder}: holds a train/ folder but no x_train.npy",
            [folder, tmp / "out"])


@case("time series read as images")
def _series_as_images(tmp: Path, data_root: Path) -> Case:
    args = train("--dataset", "GunPoint", "--data-root", data_root, "--kind", "images", "--model", "small-gap-cnn",
                 out=tmp / "out")
    return args, f"missing train folder: {data_root / 'GunPoint' / 'train'}", [data_root / "GunPoint", tmp / "out"]


# --------------------------------------------------------------------------- .ts files (convert-sktime)

HEADER = ("@problemName Toy\n@timeStamps false\n@missing false\n@univariate true\n@equalLength true\n"
          "@seriesLength 3\n@classLabel true a b\n@data\n")  # 8 lines: the first series is on line 9
TRAIN_ROWS, TEST_ROWS = ("1,2,3:a", "4,5,6.5:b"), ("0.5,0,-1:a", "2,2,2:b")


def ts_pair(folder: Path, train_text: str | None = None, test_text: str | None = None) -> Path:
    """``folder/Toy_TRAIN.ts`` and ``Toy_TEST.ts`` (2 + 2 univariate series of length 3, classes a and b)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Toy_TRAIN.ts").write_text(HEADER + "\n".join(TRAIN_ROWS) + "\n" if train_text is None else train_text)
    (folder / "Toy_TEST.ts").write_text(HEADER + "\n".join(TEST_ROWS) + "\n" if test_text is None else test_text)
    return folder


def ts_case(name: str, culprit: str, train_text: str | None = None, test_text: str | None = None) -> None:
    """A case that converts a spoiled toy pair; ``culprit`` is after ``SRC/`` in the error line."""
    def build(tmp: Path, data_root: Path) -> Case:
        src = ts_pair(tmp / "src", train_text, test_text)
        return ["convert-sktime", src, "--out", tmp / "out"], f"{src}/{culprit}", [src, tmp / "out"]

    CASES[name] = build


def rows(*lines: str, header: str = HEADER) -> str:
    return header + "\n".join(lines) + "\n"


ts_case("ts label not declared", "Toy_TRAIN.ts line 10: label 'c' is not declared in @classLabel (a b)",
        train_text=rows("1,2,3:a", "4,5,6:c"))
ts_case("ts without @data", "Toy_TEST.ts: no @data line", test_text=HEADER.replace("@data\n", "") + "1,2,3:a\n")
ts_case("ts row without label", "Toy_TRAIN.ts line 9: the class label is missing", train_text=rows("1,2,3", "4,5,6:b"))
ts_case("ts value not a number", "Toy_TEST.ts line 10: channel 1 holds 'x', not a number",
        test_text=rows("1,2,3:a", "4,x,6:b"))
ts_case("ts missing value", "Toy_TRAIN.ts: holds 1 missing or non-finite value(s) (first on line 10)",
        train_text=rows("1,2,3:a", "4,?,6:b"))
ts_case("ts classes differ", "Toy_TEST.ts: @classLabel declares a b c, but Toy_TRAIN.ts declares a b",
        test_text=rows(*TEST_ROWS, header=HEADER.replace("true a b", "true a b c")))
ts_case("ts shorter series", "Toy_TRAIN.ts line 10: a series of length 2, but @seriesLength is 3",
        train_text=rows("1,2,3:a", "4,5:b"))
ts_case("ts time stamps", "Toy_TRAIN.ts line 2: @timeStamps true: time-stamped series are not supported",
        train_text=rows(*TRAIN_ROWS, header=HEADER.replace("@timeStamps false", "@timeStamps true")))
ts_case("ts no class labels", "Toy_TEST.ts: no '@classLabel true CLASS ...' line",
        test_text=rows("1,2,3", header=HEADER.replace("@classLabel true a b", "@classLabel false")))
ts_case("ts channels of unequal length", "Toy_TRAIN.ts line 10: its channels have different lengths (2, 3)",
        train_text=rows("1,2,3:4,5:a", header=HEADER.replace("@univariate true\n", "@univariate false\n@dimensions 2\n")
                        .replace("@equalLength true", "@equalLength false")))

ts_case("ts a channel short", "Toy_TEST.ts line 10: 1 channel(s), but the file has 2",
        test_text=rows("1,2:3,4:a", "1,2:b", header=HEADER.replace("@missing false", "@dimensions 2")
                       .replace("@univariate true", "@univariate false")
                       .replace("@seriesLength 3", "@seriesLength 2")))
ts_case("ts missing value after blank lines", "Toy_TRAIN.ts: holds 1 missing or non-finite value(s) (first on line 12)",
        train_text=rows("", "1,2,3:a", "", "4,?,6:b"))
ts_case("ts value beyond float64", "Toy_TEST.ts: holds 1 missing or non-finite value(s) (first on line 9)",
        test_text=rows("1,2,1e999:a", "4,5,6:b"))
ts_case("ts comment after @data", "Toy_TRAIN.ts line 10: '# one more' after @data, where sktime reads only series",
        train_text=rows("1,2,3:a", "# one more", "4,5,6:b"))
ts_case("ts header line after @data", "Toy_TEST.ts line 11: '@missing true' after @data, where sktime reads only",
        test_text=rows(*TEST_ROWS, "@missing true"))
ts_case("ts without @univariate",
        "Toy_TRAIN.ts: no @univariate line before @data (sktime needs @problemName, @timeStamps, @univariate, "
        "@classLabel)",
        train_text=rows(*TRAIN_ROWS, header=HEADER.replace("@univariate true\n", "")))
ts_case("ts label with ?", "Toy_TRAIN.ts line 10: label 'b?' holds '?', which sktime reads as a missing value",
        train_text=rows("1,2,3:a", "4,5,6:b?", header=HEADER.replace("true a b", "true a b?")))
ts_case("ts refused by sktime", "Toy_TEST.ts: sktime cannot read it (data tag should not have an associated value)",
        test_text=rows(*TEST_ROWS, header=HEADER.replace("@data", "@data follows")))


@case("ts not text")
def _ts_binary(tmp: Path, data_root: Path) -> Case:
    src = ts_pair(tmp / "src")
    (src / "Toy_TRAIN.ts").write_bytes(b"@problemName Toy\n\xff\xfe\x00\x01")
    return ["convert-sktime", src, "--out", tmp / "out"], f"{src / 'Toy_TRAIN.ts'}: not a text .ts file", [tmp]


@case("ts regression file")
def _ts_regression(tmp: Path, data_root: Path) -> Case:
    return (["convert-sktime", "--sktime-dataset", "Tecator", "--out", tmp / "out"],
            "Tecator_TRAIN.ts line 16: @targetLabel: a regression file, not classification", [tmp])


@case("ts TEST file missing")
def _ts_no_test(tmp: Path, data_root: Path) -> Case:
    src = ts_pair(tmp / "src")
    (src / "Toy_TEST.ts").unlink()
    return (["convert-sktime", src / "Toy_TRAIN.ts", "--out", tmp / "out"], f"{src / 'Toy_TEST.ts'}: file not found",
            [tmp])


@case("convert SOURCE missing")
def _ts_no_source(tmp: Path, data_root: Path) -> Case:
    return (["convert-sktime", tmp / "downloads", "--out", tmp / "out"], f"{tmp / 'downloads'}: no such file or folder",
            [tmp])


@case("convert --out a file")
def _ts_out_file(tmp: Path, data_root: Path) -> Case:
    src = ts_pair(tmp / "src")
    (tmp / "data.txt").write_text("not a folder")
    return (["convert-sktime", src, "--out", tmp / "data.txt"], f"--out: {tmp / 'data.txt'} is a file, not a folder",
            [tmp])


@pytest.mark.parametrize("name", ["a/b", "..", ""])
def test_convert_name_must_be_one_folder(tmp_path: Path, name: str) -> None:
    src = ts_pair(tmp_path / "src")
    refused(["convert-sktime", src, "--out", tmp_path / "out", "--name", name],
            f"--name: {name!r} must be a plain folder name", tmp_path)


@case("convert over a different dataset")
def _ts_changed(tmp: Path, data_root: Path) -> Case:
    src = ts_pair(tmp / "src")
    ok("convert-sktime", src, "--out", tmp / "out")
    ts_pair(src, train_text=rows("1,2,3:a", "4,5,7:b"))
    return (["convert-sktime", src, "--out", tmp / "out"],
            f"{tmp / 'out' / 'Toy'}: already holds a different dataset (x_train.npy would change); "
            "pass --overwrite to replace it", [tmp])


def test_convert_again_is_unchanged_and_overwrite_recomputes(tmp_path: Path) -> None:
    src = ts_pair(tmp_path / "src")
    out = tmp_path / "out"
    ok("convert-sktime", src, "--out", out)
    before = snapshot(out)
    assert ok("convert-sktime", src, "--out", out).output.startswith(f"unchanged {out / 'Toy'}: train (2, 3, 1)")
    assert snapshot(out) == before
    ts_pair(src, train_text=rows("1,2,3:a", "4,5,7:b"))
    assert ok("convert-sktime", src, "--out", out, "--overwrite").output.startswith(f"wrote {out / 'Toy'}: ")
    fresh = tmp_path / "fresh"
    ok("convert-sktime", src, "--out", fresh)
    assert {Path(k).name: v for k, v in snapshot(out).items()} == {Path(k).name: v for k, v in snapshot(fresh).items()}
    np.testing.assert_array_equal(np.load(out / "Toy" / "x_train.npy")[..., 0], [[1, 2, 3], [4, 5, 7]])


# --------------------------------------------------------------------------- image folders


def digits(tmp: Path, data_root: Path, classes: tuple[str, ...], count: int = 2) -> Path:
    """``tmp/D/{train,test}/<digit>/``: the first ``count`` shipped cluttered digits of each class."""
    for split in ("train", "test"):
        digit_folder(data_root, tmp / "D" / split, classes, count, split)
    return tmp / "D"


def train_images(folder: Path, out: Path, *more: str | Path) -> list:
    return train("--dataset", folder, "--kind", "images", "--image-size", 16, "--model", "small-gap-cnn", *more,
                 out=out)


@case("image beside the class folders")
def _stray_image(tmp: Path, data_root: Path) -> Case:
    folder = digits(tmp, data_root, ("0", "1"))
    shutil.copy(next((folder / "train" / "0").iterdir()), folder / "train" / "stray.png")
    shutil.copy(next((folder / "train" / "1").iterdir()), folder / "train" / "other.png")
    return (train_images(folder, tmp / "out"), f"{folder / 'train' / 'other.png'}: an image beside the class folders "
            "(0, 1), in none of them; move it into one (and 1 more image(s) there)", [folder, tmp / "out"])


@case("empty class folders")
def _empty_classes(tmp: Path, data_root: Path) -> Case:
    folder = digits(tmp, data_root, ("0", "1"))
    for name in ("7", "8"):
        (folder / "train" / name).mkdir()
    (folder / "train" / "8" / "notes.txt").write_text("not an image")
    args = ["--verbose", *train_images(folder, tmp / "out")]  # --verbose: Python warnings would show
    return args, f"{folder / 'train' / '7'}: holds no images (.bmp", [folder, tmp / "out"]


@case("class of unreadable images")
def _unreadable_class(tmp: Path, data_root: Path) -> Case:
    folder = digits(tmp, data_root, ("0", "1"))
    for path in (folder / "test" / "1").iterdir():
        path.write_bytes(path.read_bytes()[:40])  # truncated PNGs
    return (train_images(folder, tmp / "out"), f"{folder / 'test' / '1'}: none of its 2 image(s) could be read",
            [folder, tmp / "out"])


@case("image dataset of one class")
def _one_image_class(tmp: Path, data_root: Path) -> Case:
    folder = digits(tmp, data_root, ("3",))
    return train_images(folder, tmp / "out"), f"{folder}: has one class only (3)", [folder, tmp / "out"]


@case("data.classes file missing")
def _classes_missing(tmp: Path, data_root: Path) -> Case:
    folder = digits(tmp, data_root, ("0", "1"))
    config = tmp / "digits.yaml"
    config.write_text(f"data:\n  kind: images\n  classes: {tmp / 'classes.txt'}\n")
    return (train_images(folder, tmp / "out", "-c", config),
            f"{config}: data.classes: {tmp / 'classes.txt'} is neither animal_synsets nor a file", [tmp])


def test_unreadable_images_are_skipped_and_counted_on_stdout(tmp_path: Path, data_root: Path) -> None:
    folder = digits(tmp_path, data_root, ("0", "1"))
    broken = folder / "train" / "1" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    result = ok(*train_images(folder, tmp_path / "out"))
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"skipped 1 unreadable image(s) in {folder / 'train'}: 1/broken.png (") and first[-1] == ")"
    assert result.stderr == ""
    assert "trained small-gap-cnn on D: 1 epochs" in result.stdout


# --------------------------------------------------------------------------- config files


def config_case(name: str, text: str | bytes, culprit: str, *more: str) -> None:
    """A case that trains with ``-c FILE`` holding ``text``; ``culprit`` follows ``FILE`` in the error line."""
    def build(tmp: Path, data_root: Path) -> Case:
        path = tmp / "exp.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
        args = train("-c", path, "--data-root", data_root, *more, out=tmp / "out")
        return args, f"{path}{culprit}", [tmp, data_root / "GunPoint"]

    CASES[name] = build


config_case("config 0 bytes", "", ": the config is empty")
config_case("config only comments", "# train: {epochs: 3}\n\n", ": the config is empty")
config_case("config a list", "- train\n- evaluate\n", ": the config must be a mapping of sections, got a list")
config_case("config a scalar", "gunpoint\n", ": the config must be a mapping of sections, got a string")
config_case("config YAML syntax", "train:\n  epochs: 3\n batch_size: 4\n",
            " line 3, column 2: expected <block end>, but found '<block mapping start>' "
            "(while parsing a block mapping on line 1)")
config_case("config key twice", "train: {epochs: 3}\nmodel: {name: fcn}\ntrain: {epochs: 4}\n",
            " line 3, column 1: the key 'train' is given twice")
config_case("config not UTF-8", b"name: caf\xe9\n", ": not UTF-8 text (byte 9)")
config_case("config unknown model", "model:\n  name: lenet\n", ": model.name: unknown model 'lenet'")
config_case("config unknown dataset", "data:\n  dataset: GunPiont\n", ": data.dataset: no dataset folder 'GunPiont'")
config_case("config image_size 0", "data:\n  image_size: 0\n", ": data.image_size: expected a list, got 0")
config_case("config image_size [0, 0]", "data:\n  image_size: [0, 0]\n",
            ": data.image_size: must be two positive integers, got [0, 0]")
config_case("config unknown section", "trian:\n  epochs: 3\n", ": trian: unknown key (did you mean train?); known: ")
config_case("config unknown key", "data:\n  datset: GunPoint\n",
            ": data.datset: unknown key (did you mean data.dataset?); known: ")
config_case("config wrong type", "train:\n  batch_size: big\n", ": train.batch_size: expected an integer, got 'big'")
config_case("config out of range", "train:\n  validation_split: 1.5\n",
            ": train.validation_split: must be in [0, 1), got 1.5")
config_case("config name with a slash", "name: ../../elsewhere\n",
            ": name: must be a plain folder name (no / or \\, not starting with .), got '../../elsewhere'")
config_case("config unknown kind", "data:\n  kind: image\n",
            ": data.kind: must be one of timeseries, images, got 'image' (did you mean images?)")


@case("config python tag")
def _python_tag(tmp: Path, data_root: Path) -> Case:
    path = tmp / "exp.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {tmp / 'ran'}']\n")
    return (train("-c", path, out=tmp / "out"), f"{path} line 1, column 7: the tag !!python/object/apply:os.system "
            "would build a Python object; a config holds plain values only", [tmp])


@case("config a folder")
def _config_folder(tmp: Path, data_root: Path) -> Case:
    (tmp / "configs").mkdir()
    return train("-c", tmp / "configs", out=tmp / "out"), f"{tmp / 'configs'}: is a folder, not a config file", [tmp]


@case("config unknown step")
def _unknown_step(tmp: Path, data_root: Path) -> Case:
    path = tmp / "exp.yaml"
    path.write_text("steps: [train, evalute]\n")
    return (["run", path, "--root", tmp / "out", "--epochs", 1],
            f"{path}: steps: unknown step 'evalute' (did you mean evaluate?); known: train, evaluate", [tmp])


@case("option overrides the config's model")
def _model_option(tmp: Path, data_root: Path) -> Case:
    path = tmp / "exp.yaml"
    path.write_text("model:\n  name: fcn\n")
    args = train("-c", path, "--dataset", "GunPoint", "--data-root", data_root, "--model", "resnt", out=tmp / "out")
    return args, "Error: --model: unknown model 'resnt' (did you mean resnet1d?)", [tmp]


@case("option out of range names the option")
def _epochs_option(tmp: Path, data_root: Path) -> Case:
    path = tmp / "exp.yaml"
    path.write_text("train:\n  epochs: 3\n")
    return (["train", "-c", path, "--root", tmp / "out", "--epochs", -1],
            "Error: Invalid value for '--epochs': -1 is not in the range x>=0.", [tmp])


# --------------------------------------------------------------------------- make-benchmark


@pytest.mark.parametrize(("args", "culprit"), [
    (["cluttered-digits", "--n-train", 0], "--n-train must be between 1 and"),
    (["cluttered-digits", "--size", 3], "--size must be between"),
    (["cluttered-letters"], "make-benchmark: unknown benchmark 'cluttered-letters'"),
])
def test_make_benchmark_options(tmp_path: Path, args: list, culprit: str) -> None:
    refused(["make-benchmark", *args, "--out", tmp_path / "bench", "--no-progress"], culprit, tmp_path)


# --------------------------------------------------------------------------- every case


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(tmp_path: Path, data_root: Path, name: str) -> None:
    args, culprit, keep = CASES[name](tmp_path, data_root)
    refused(args, culprit, *keep)
    assert not (tmp_path / "ran").exists()  # nothing in a config is ever run
