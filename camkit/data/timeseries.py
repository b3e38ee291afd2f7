"""Time-series datasets: sktime ``.ts`` files -> ``.npy`` folders, and validated loading.

A dataset folder holds ``x_train.npy y_train.npy x_test.npy y_test.npy labels.json``; x is
float32 ``(N, T, C)``, y is int64 in ``0..K-1``. ``labels.json`` keeps the original class names
(``labels[i]`` is the name of class ``i``) and how the series were made equal length.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camkit.config import culprit, is_plain_name
from camkit.data.npyfile import read_numbers
from camkit.data.tsfile import TsFile, read_ts
from camkit.errors import CamkitError
from camkit.io import replace_dir_atomically

SPLITS = ("train", "test")


@dataclass
class TimeSeriesDataset:
    """A loaded time-series classification dataset."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    labels: list[str]
    info: dict = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


# --------------------------------------------------------------------------- conversion


def sktime_dataset_dir(name: str) -> Path:
    """The folder of a classification dataset that sktime ships (``NAME_TRAIN.ts`` inside)."""
    import sktime.datasets

    root = Path(sktime.datasets.__file__).parent / "data"
    shipped = sorted(p.name for p in root.iterdir() if (p / f"{p.name}_TRAIN.ts").is_file())
    if name not in shipped:
        raise CamkitError(f"--sktime-dataset: {name!r} is not shipped by sktime; choose one of {', '.join(shipped)}")
    return root / name


def find_ts_pair(source: Path) -> tuple[str, Path, Path]:
    """Resolve a folder or a ``NAME_TRAIN.ts``/``NAME_TEST.ts`` path to (name, train, test)."""
    source = Path(source)
    if source.is_dir():
        trains = sorted(source.glob("*_TRAIN.ts"))
        if len(trains) != 1:
            raise CamkitError(f"{source}: expected exactly one *_TRAIN.ts file, found {len(trains)}")
        train = trains[0]
    elif source.name.endswith(("_TRAIN.ts", "_TEST.ts")):
        train = source.with_name(source.name.replace("_TEST.ts", "_TRAIN.ts"))
    elif not source.exists():
        raise CamkitError(f"{source}: no such file or folder")
    else:
        raise CamkitError(f"{source}: not a folder nor a NAME_TRAIN.ts / NAME_TEST.ts file")
    name = train.name[: -len("_TRAIN.ts")]
    test = train.with_name(f"{name}_TEST.ts")
    for path in (train, test):
        if not path.is_file():
            raise CamkitError(f"{path}: file not found")
    return name, train, test


def _sorted_labels(names: set[str]) -> list[str]:
    """Label names in sorted order: numerically when every name is a number, else as text."""
    try:
        return sorted(names, key=float)
    except ValueError:
        return sorted(names)


def _pad(series: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(series), length, series[0].shape[1]), dtype=np.float32)
    for i, s in enumerate(series):
        out[i, : len(s)] = s
    return out


def _check_pair(train: TsFile, test: TsFile) -> None:
    """What the two files of a pair must share, and no missing values (the loader would refuse them)."""
    for ts in (train, test):
        if ts.missing:
            raise CamkitError(f"{ts.path}: holds {ts.missing} missing or non-finite value(s) (first on line "
                              f"{ts.first_missing_line}); camkit needs complete series, so fill or drop them first")
    if set(train.classes) != set(test.classes):
        raise CamkitError(f"{test.path}: @classLabel declares {' '.join(test.classes)}, but {train.path.name} "
                          f"declares {' '.join(train.classes)}; both files must declare the same classes")
    channels = train.series[0].shape[1], test.series[0].shape[1]
    if channels[0] != channels[1]:
        raise CamkitError(f"{train.path.parent}: train and test must have one common channel count, "
                          f"got train [{channels[0]}] and test [{channels[1]}]")


def _checked_out(out_root: Path, name: str, given: bool) -> Path:
    """``out_root/name``, after checking both can hold a dataset folder."""
    if not is_plain_name(name):
        where = "--name" if given else "the dataset name taken from the .ts file names"
        raise CamkitError(f"{where}: {name!r} must be a plain folder name (no / or \\, not . or ..)")
    if out_root.exists() and not out_root.is_dir():
        raise CamkitError(f"--out: {out_root} is a file, not a folder")
    return out_root / name


def convert_ts(source: Path | str | None, out_root: Path | str, sktime_dataset: str | None = None,
               name: str | None = None, overwrite: bool = False) -> tuple[Path, bool]:
    """Convert a ``.ts`` train/test pair to ``out_root/NAME/``; returns that folder and whether it was written.

    Unequal lengths are zero-padded at the end to the longest series of both splits (as the
    Grad-CeAM original did) and the choice is recorded in ``labels.json``. Labels map to
    ``0..K-1`` in sorted order. Nothing is written unless both files convert; an existing folder
    that holds the same conversion is left as it is, a different one is replaced only with ``overwrite``.
    """
    if (source is None) == (sktime_dataset is None):
        raise CamkitError("convert-sktime: give either a SOURCE path or --sktime-dataset NAME")
    src = sktime_dataset_dir(sktime_dataset) if sktime_dataset else Path(source)  # type: ignore[arg-type]
    ds_name, train_path, test_path = find_ts_pair(src)
    folder = _checked_out(Path(out_root), ds_name if name is None else name, name is not None)
    train, test = read_ts(train_path), read_ts(test_path)
    _check_pair(train, test)
    lengths = [len(s) for s in train.series + test.series]
    length = max(lengths)
    equal = min(lengths) == length
    labels = _sorted_labels(set(train.labels) | set(test.labels))
    index = {label: i for i, label in enumerate(labels)}
    arrays = {
        "x_train": _pad(train.series, length),
        "y_train": np.array([index[v] for v in train.labels], dtype=np.int64),
        "x_test": _pad(test.series, length),
        "y_test": np.array([index[v] for v in test.labels], dtype=np.int64),
    }
    info = {
        "name": folder.name,
        "labels": labels,
        "source": {"train": train_path.name, "test": test_path.name,
                   "sktime_dataset": sktime_dataset},
        "length": length,
        "channels": int(train.series[0].shape[1]),
        "equal_length": equal,
        "padding": None if equal else {"mode": "zeros at the end", "min_length": min(lengths),
                                       "max_length": length},
        "missing_values": 0,  # series with missing values are refused above
    }
    return folder, _write_dataset(folder, arrays, info, overwrite)


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _write_dataset(folder: Path, arrays: dict[str, np.ndarray], info: dict, overwrite: bool) -> bool:
    """Write a whole dataset folder so that it either appears complete or not at all; False: already there."""
    files = {f"{key}.npy": _npy_bytes(array) for key, array in arrays.items()}
    files["labels.json"] = (json.dumps(info, indent=2) + "\n").encode()
    if folder.exists():
        if not folder.is_dir():
            raise CamkitError(f"{folder}: exists and is not a folder")
        present = {p.name for p in folder.iterdir()}
        changed = sorted(n for n in files if n not in present or (folder / n).read_bytes() != files[n])
        changed += sorted(f"{n} (not written by a conversion)" for n in present - set(files))
        if not changed:
            return False
        if not overwrite:
            raise CamkitError(f"{folder}: already holds a different dataset ({', '.join(changed)} would change); "
                              "pass --overwrite to replace it")

    def fill(tmp: Path) -> None:
        for name, data in files.items():
            (tmp / name).write_bytes(data)

    replace_dir_atomically(folder, fill)
    return True


# --------------------------------------------------------------------------- loading


def resolve_dataset_dir(name_or_path: str | Path, data_root: Path | str = "data") -> Path:
    """A dataset given by folder path or by name under ``data_root``; errors name where the name was set."""
    where = culprit(name_or_path, "--dataset")
    if not str(name_or_path):
        raise CamkitError(f"{where}: empty dataset name")
    path = Path(name_or_path)
    candidate = Path(data_root) / str(name_or_path)
    for folder in (path, candidate):
        if folder.is_dir():
            return folder
        if folder.exists():
            raise CamkitError(f"{where}: {folder} is a file, not a dataset folder")
    raise CamkitError(
        f"{where}: no dataset folder {str(name_or_path)!r} (looked in {path} and {candidate}); "
        "convert one with `camkit convert-sktime`"
    )


def _load_x(folder: Path, split: str) -> np.ndarray:
    """``x_SPLIT.npy`` as float32 ``(N, T, C)``: real, finite numbers, at least one series of one step."""
    path = folder / f"x_{split}.npy"
    if not path.exists() and (folder / split).is_dir():
        raise CamkitError(f"{folder}: holds a {split}/ folder but no x_{split}.npy: an image dataset? "
                          "(--kind images, data.kind: images)")
    x = read_numbers(path, (2, 3), "(series, length, channels) or (series, length)")
    x = x[..., None] if x.ndim == 2 else x  # univariate (N, T) saved without the channel axis
    if 0 in x.shape:
        what = "no series" if not len(x) else "series of length 0" if not x.shape[1] else "series of 0 channels"
        raise CamkitError(f"{path}: holds {what} (shape {x.shape})")
    bad = ~np.isfinite(x)
    if bad.any():
        i, t, _ = np.argwhere(bad)[0]
        raise CamkitError(f"{path}: holds {int(bad.sum())} NaN/Inf value(s) (the first in series {i}, step {t})")
    big = np.abs(x) > np.finfo(np.float32).max
    if big.any():
        raise CamkitError(f"{path}: {int(big.sum())} value(s) lie beyond float32's range (+-3.4e38)")
    return x.astype(np.float32)


def _load_y(folder: Path, split: str, n: int) -> np.ndarray:
    """``y_SPLIT.npy``: one integer label per series (floats only when they are whole numbers)."""
    path = folder / f"y_{split}.npy"
    y = read_numbers(path, (1,), "one label per series, shape (N,)")
    if len(y) != n:
        raise CamkitError(f"{path}: holds {len(y)} labels but x_{split}.npy holds {n} series")
    if np.issubdtype(y.dtype, np.floating):
        fraction = ~(np.isfinite(y) & (y == np.round(y)))
        if fraction.any():
            raise CamkitError(f"{path}: labels must be integers 0..K-1, got {y.dtype} values such as "
                              f"{y[fraction][0]}")
    return y


def _class_names(folder: Path, info: dict, y: dict[str, np.ndarray]) -> list[str]:
    """labels.json's names, or ``0..K-1`` when every class occurs; every label must index one."""
    named = "labels" in info
    top = max(float(v.max()) for v in y.values())
    n_classes = len(info["labels"]) if named else int(top) + 1 if top >= 0 else 0
    for s in SPLITS:
        low, high = float(y[s].min()), float(y[s].max())
        if low < 0 or high >= n_classes:
            names = f" (labels.json names {n_classes} classes)" if named else ""
            raise CamkitError(f"{folder / f'y_{s}.npy'}: labels must lie in 0..{n_classes - 1}{names}, "
                              f"found {int(low)}..{int(high)}")
    if named:
        return [str(v) for v in info["labels"]]
    present = np.unique(np.concatenate([y[s] for s in SPLITS]).astype(np.int64))
    if len(present) != n_classes:
        first = next(i for i, v in enumerate([*present.tolist(), -1]) if v != i)
        raise CamkitError(f"{folder / 'y_train.npy'}: {n_classes - len(present)} of the classes 0..{n_classes - 1} "
                          f"occur in neither split (e.g. {first}); name the classes in labels.json or number them "
                          "0..K-1")
    return [str(i) for i in range(n_classes)]


def load_timeseries(name_or_path: str | Path, data_root: Path | str = "data",
                    znorm: bool = False) -> TimeSeriesDataset:
    """Load and validate a ``.npy`` dataset folder; optionally z-normalise each series per channel."""
    folder = resolve_dataset_dir(name_or_path, data_root)
    x = {s: _load_x(folder, s) for s in SPLITS}
    y = {s: _load_y(folder, s, len(x[s])) for s in SPLITS}
    if x["train"].shape[2] != x["test"].shape[2]:
        raise CamkitError(
            f"{folder}: train has {x['train'].shape[2]} channel(s) but test has {x['test'].shape[2]}"
        )
    if x["train"].shape[1] != x["test"].shape[1]:
        raise CamkitError(f"{folder}: train series have length {x['train'].shape[1]}, test {x['test'].shape[1]}")
    info = _read_info(folder)
    labels = _class_names(folder, info, y)
    if znorm:
        x = {s: znormalise(v) for s, v in x.items()}
    return TimeSeriesDataset(info.get("name", folder.name), x["train"], y["train"].astype(np.int64),
                             x["test"], y["test"].astype(np.int64), labels, info)


def _read_info(folder: Path) -> dict:
    """``labels.json``: ``{"name": ..., "labels": [class names]}`` (or just the list); {} when absent."""
    path = folder / "labels.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CamkitError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(info, list):
        info = {"labels": info}
    if not isinstance(info, dict) or not isinstance(info.get("labels", []), list):
        raise CamkitError(f"{path}: expected an object with a 'labels' list")
    names = info.get("labels", [])
    bad = [v for v in names if isinstance(v, bool) or not isinstance(v, str | int | float) or not str(v).strip()]
    if bad:
        raise CamkitError(f"{path}: a class name must be a non-empty string, got {bad[0]!r}")
    twice = sorted({str(v) for v in names if [str(n) for n in names].count(str(v)) > 1})
    if twice:
        raise CamkitError(f"{path}: class name {twice[0]!r} is listed more than once")
    if not isinstance(info.get("name", ""), str):
        raise CamkitError(f"{path}: 'name' must be a string, got {info['name']!r}")
    if "labels" in info and not names:
        raise CamkitError(f"{path}: the 'labels' list is empty")
    return info


def znormalise(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Z-normalise each series and channel over time; constant series become zeros.

    Works in float64 and calls a series constant when its std is below ``eps`` relative to its
    magnitude: in float32 the rounding error of the mean of a constant series such as -3.3 is
    ~1e-7 and would otherwise be blown up to +-1.
    """
    x64 = np.asarray(x, dtype=np.float64)
    mean = x64.mean(axis=1, keepdims=True)
    std = x64.std(axis=1, keepdims=True)
    constant = std <= eps * np.maximum(1.0, np.abs(mean))
    return np.where(constant, 0.0, (x64 - mean) / np.where(constant, 1.0, std)).astype(np.float32)


def default_batch_size(n_train: int, cap: int = 16) -> int:
    """The FCN papers' batch size ``min(N/10, 16)``, at least 1."""
    return max(1, min(cap, math.floor(n_train / 10)))
