"""Time-series datasets: sktime ``.ts`` files -> ``.npy`` folders, and validated loading.

A dataset folder holds ``x_train.npy y_train.npy x_test.npy y_test.npy labels.json``; x is
float32 ``(N, T, C)``, y is int64 in ``0..K-1``. ``labels.json`` keeps the original class names
(``labels[i]`` is the name of class ``i``) and how the series were made equal length.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

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
    else:
        raise CamkitError(f"{source}: not a folder nor a NAME_TRAIN.ts / NAME_TEST.ts file")
    name = train.name[: -len("_TRAIN.ts")]
    test = train.with_name(f"{name}_TEST.ts")
    for path in (train, test):
        if not path.is_file():
            raise CamkitError(f"{path}: file not found")
    return name, train, test


def _read_ts(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """Read one ``.ts`` file with sktime into a list of ``(T_i, C)`` arrays and string labels."""
    from sktime.datasets import load_from_tsfile

    try:
        frame, labels = load_from_tsfile(str(path), return_data_type="nested_univ")
    except Exception as exc:  # sktime raises IOError/ValueError/TsFileParseException variants
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CamkitError(f"{path}: not a readable .ts classification file ({first})") from None
    if len(frame) == 0:
        raise CamkitError(f"{path}: holds no series")
    series = [
        np.stack([np.asarray(frame.iloc[i, c], dtype=np.float64) for c in range(frame.shape[1])], axis=-1)
        for i in range(len(frame))
    ]
    return series, np.asarray(labels).astype(str)


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


def convert_ts(source: Path | str | None, out_root: Path | str, sktime_dataset: str | None = None,
               name: str | None = None) -> Path:
    """Convert a ``.ts`` train/test pair to ``out_root/NAME/``; returns that folder.

    Unequal lengths are zero-padded at the end to the longest series of both splits (as the
    Grad-CeAM original did) and the choice is recorded in ``labels.json``. Labels map to
    ``0..K-1`` in sorted order. Nothing is written unless both files convert.
    """
    if (source is None) == (sktime_dataset is None):
        raise CamkitError("convert-sktime: give either a SOURCE path or --sktime-dataset NAME")
    src = sktime_dataset_dir(sktime_dataset) if sktime_dataset else Path(source)  # type: ignore[arg-type]
    ds_name, train_path, test_path = find_ts_pair(src)
    ds_name = name or ds_name
    (xs_tr, y_tr), (xs_te, y_te) = _read_ts(train_path), _read_ts(test_path)
    for path, xs in ((train_path, xs_tr), (test_path, xs_te)):
        missing = int(sum((~np.isfinite(s)).sum() for s in xs))
        if missing:  # the loader rejects NaN, so refuse here before anything is written
            raise CamkitError(f"{path}: holds {missing} missing or non-finite value(s); "
                              "camkit needs complete series, so fill or drop them first")
    channels = {s.shape[1] for s in xs_tr}, {s.shape[1] for s in xs_te}
    if len(channels[0]) != 1 or channels[0] != channels[1]:
        raise CamkitError(
            f"{train_path.parent}: train and test must have one common channel count, "
            f"got train {sorted(channels[0])} and test {sorted(channels[1])}"
        )
    lengths = [len(s) for s in xs_tr + xs_te]
    length = max(lengths)
    equal = min(lengths) == length
    labels = _sorted_labels(set(y_tr) | set(y_te))
    index = {label: i for i, label in enumerate(labels)}
    arrays = {
        "x_train": _pad(xs_tr, length),
        "y_train": np.array([index[v] for v in y_tr], dtype=np.int64),
        "x_test": _pad(xs_te, length),
        "y_test": np.array([index[v] for v in y_te], dtype=np.int64),
    }
    info = {
        "name": ds_name,
        "labels": labels,
        "source": {"train": train_path.name, "test": test_path.name,
                   "sktime_dataset": sktime_dataset},
        "length": length,
        "channels": int(xs_tr[0].shape[1]),
        "equal_length": equal,
        "padding": None if equal else {"mode": "zeros at the end", "min_length": min(lengths),
                                       "max_length": length},
        "missing_values": 0,  # series with missing values are refused above
    }
    return _write_dataset(Path(out_root) / ds_name, arrays, info)


def _write_dataset(folder: Path, arrays: dict[str, np.ndarray], info: dict) -> Path:
    """Write a whole dataset folder so that it either appears complete or not at all."""

    def fill(tmp: Path) -> None:
        for key, array in arrays.items():
            np.save(tmp / f"{key}.npy", array, allow_pickle=False)
        (tmp / "labels.json").write_text(json.dumps(info, indent=2) + "\n")

    replace_dir_atomically(folder, fill)
    return folder


# --------------------------------------------------------------------------- loading


def resolve_dataset_dir(name_or_path: str | Path, data_root: Path | str = "data") -> Path:
    """A dataset given by folder path or by name under ``data_root``."""
    path = Path(name_or_path)
    if path.is_dir():
        return path
    candidate = Path(data_root) / str(name_or_path)
    if candidate.is_dir():
        return candidate
    raise CamkitError(
        f"--dataset: no dataset folder {str(name_or_path)!r} (looked in {path} and {candidate}); "
        "convert one with `camkit convert-sktime`"
    )


def _load_array(path: Path, ndim: int) -> np.ndarray:
    if not path.is_file():
        raise CamkitError(f"{path}: file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise CamkitError(f"{path}: not a readable .npy file ({exc})") from None
    if ndim == 3 and array.ndim == 2:  # univariate (N, T) saved without the channel axis
        array = array[..., None]
    if array.ndim != ndim:
        raise CamkitError(f"{path}: expected {ndim} dimensions, got shape {array.shape}")
    return array


def load_timeseries(name_or_path: str | Path, data_root: Path | str = "data",
                    znorm: bool = False) -> TimeSeriesDataset:
    """Load and validate a ``.npy`` dataset folder; optionally z-normalise each series per channel."""
    folder = resolve_dataset_dir(name_or_path, data_root)
    x = {s: _load_array(folder / f"x_{s}.npy", 3) for s in SPLITS}
    y = {s: _load_array(folder / f"y_{s}.npy", 1) for s in SPLITS}
    for s in SPLITS:
        if not np.issubdtype(x[s].dtype, np.number):
            raise CamkitError(f"{folder / f'x_{s}.npy'}: dtype {x[s].dtype} is not numeric")
        if not np.isfinite(x[s]).all():
            bad = int((~np.isfinite(x[s])).sum())
            raise CamkitError(f"{folder / f'x_{s}.npy'}: holds {bad} NaN/Inf value(s)")
        if len(x[s]) != len(y[s]):
            raise CamkitError(f"{folder}: x_{s} has {len(x[s])} series but y_{s} has {len(y[s])} labels")
        if len(x[s]) == 0:
            raise CamkitError(f"{folder / f'x_{s}.npy'}: holds no series")
        if not np.issubdtype(y[s].dtype, np.integer):
            if np.issubdtype(y[s].dtype, np.floating) and np.all(y[s] == np.round(y[s])):
                y[s] = y[s].astype(np.int64)
            else:
                raise CamkitError(f"{folder / f'y_{s}.npy'}: labels must be integers 0..K-1, got {y[s].dtype}")
    if x["train"].shape[2] != x["test"].shape[2]:
        raise CamkitError(
            f"{folder}: train has {x['train'].shape[2]} channel(s) but test has {x['test'].shape[2]}"
        )
    if x["train"].shape[1] != x["test"].shape[1]:
        raise CamkitError(f"{folder}: train series have length {x['train'].shape[1]}, test {x['test'].shape[1]}")
    info = _read_info(folder)
    labels = [str(v) for v in info.get("labels", [])]
    n_classes = len(labels) or int(max(y["train"].max(), y["test"].max())) + 1
    labels = labels or [str(i) for i in range(n_classes)]
    for s in SPLITS:
        if y[s].min() < 0 or y[s].max() >= n_classes:
            raise CamkitError(
                f"{folder / f'y_{s}.npy'}: labels must lie in 0..{n_classes - 1}, "
                f"found {int(y[s].min())}..{int(y[s].max())}"
            )
    xs = {s: x[s].astype(np.float32) for s in SPLITS}
    if znorm:
        xs = {s: znormalise(v) for s, v in xs.items()}
    return TimeSeriesDataset(info.get("name", folder.name), xs["train"], y["train"].astype(np.int64),
                             xs["test"], y["test"].astype(np.int64), labels, info)


def _read_info(folder: Path) -> dict:
    path = folder / "labels.json"
    if not path.is_file():
        return {}
    try:
        info = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CamkitError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(info, list):
        info = {"labels": info}
    if not isinstance(info, dict) or not isinstance(info.get("labels", []), list):
        raise CamkitError(f"{path}: expected an object with a 'labels' list")
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
