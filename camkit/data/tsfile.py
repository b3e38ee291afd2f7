"""Reading sktime/aeon ``.ts`` classification files; every error names the file and, for a series, its line.

A ``.ts`` file holds comment lines (``#``, or any line before ``@data`` that is not a tag), ``@tag value``
lines (``@problemName``, ``@timeStamps``, ``@missing``, ``@univariate``, ``@dimensions``, ``@equalLength``,
``@seriesLength``, ``@classLabel true A B ...``) up to ``@data``, then one series a line: its channels separated
by ``:``, a channel's values by ``,`` (``?`` for a missing value), the class label last. Time-stamped
series and regression files (``@targetLabel``) are refused, as are labels that ``@classLabel`` does not
declare. Labels are lower-cased, as sktime's reader does (so conversions match the datasets it made).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camkit.errors import CamkitError


@dataclass
class TsFile:
    """The series of one ``.ts`` file: ``(T_i, C)`` float64 arrays, their labels and the declared classes."""

    path: Path
    series: list[np.ndarray]
    labels: list[str]
    classes: list[str]
    missing: int = 0  # missing (``?``) or non-finite values
    first_missing_line: int | None = None


@dataclass
class _Header:
    classes: list[str]
    channels: int | None  # None: as many as the first series has
    length: int | None  # @equalLength true: the length every series must have (None: the first's)
    equal: bool
    data_line: int  # 0-based index of the @data line
    length_source: str = "@seriesLength is"


def _text(path: Path) -> list[str]:
    try:
        return path.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise CamkitError(f"{path}: not a text .ts file (byte {exc.start} is not UTF-8)") from None


def _flag(path: Path, tags: dict[str, tuple[int, str]], tag: str) -> bool:
    line, value = tags.get(tag, (0, "false"))
    word = value.split()[0].lower() if value.split() else ""
    if word not in ("true", "false"):
        raise CamkitError(f"{path} line {line}: @{tag} must be true or false, got {value!r}")
    return word == "true"


def _count(path: Path, tags: dict[str, tuple[int, str]], tag: str) -> int | None:
    if tag not in tags:
        return None
    line, value = tags[tag]
    if not value.isdigit() or int(value) < 1:
        raise CamkitError(f"{path} line {line}: @{tag} must be a positive integer, got {value!r}")
    return int(value)


def _header(path: Path, lines: list[str]) -> _Header:
    """The header up to ``@data``; CamkitError for what camkit cannot convert."""
    tags: dict[str, tuple[int, str]] = {}
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line.startswith("@"):
            continue  # a comment
        tag, _, value = line[1:].partition(" ")
        if tag.lower() == "data":
            break
        tags[tag.lower()] = (i + 1, value.strip())
    else:
        raise CamkitError(f"{path}: no @data line (a .ts file lists its header, then @data, then the series)")
    if _flag(path, tags, "timestamps"):
        raise CamkitError(f"{path} line {tags['timestamps'][0]}: @timeStamps true: time-stamped series are not "
                          "supported")
    if "targetlabel" in tags and _flag(path, tags, "targetlabel"):
        raise CamkitError(f"{path} line {tags['targetlabel'][0]}: @targetLabel: a regression file, not classification")
    if "classlabel" not in tags or not _flag(path, tags, "classlabel"):
        raise CamkitError(f"{path}: no '@classLabel true CLASS ...' line: camkit converts classification files")
    line, value = tags["classlabel"]
    classes = value.lower().split()[1:]
    if not classes:
        raise CamkitError(f"{path} line {line}: @classLabel true declares no class")
    channels = 1 if "univariate" in tags and _flag(path, tags, "univariate") else _count(path, tags, "dimensions")
    equal = "equallength" in tags and _flag(path, tags, "equallength")
    length = _count(path, tags, "serieslength") if equal else None
    return _Header(classes, channels, length, equal, i)


def _values(path: Path, n: int, channel: str, c: int) -> np.ndarray:
    tokens = [t.strip() for t in channel.split(",")]
    try:
        return np.array(["nan" if t == "?" else t for t in tokens], dtype=np.float64)
    except ValueError:
        bad = next(t for t in tokens if t != "?" and not _is_number(t))
        what = "is empty" if not channel.strip() else f"holds {bad!r}, not a number"
        raise CamkitError(f"{path} line {n}: channel {c + 1} {what}") from None


def _is_number(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _row(path: Path, n: int, line: str, head: _Header) -> tuple[np.ndarray, str]:
    """One series ``(T, C)`` and its label, from line ``n``."""
    *channels, label = [f.strip() for f in line.split(":")]
    label = label.lower()
    short = head.channels is not None and len(channels) == head.channels - 1 and _is_number(label)
    if not channels or not label or "," in label or (short and label not in head.classes):
        raise CamkitError(f"{path} line {n}: the class label is missing (a series line is CHANNEL:...:LABEL)")
    if label not in head.classes:
        raise CamkitError(f"{path} line {n}: label {label!r} is not declared in @classLabel "
                          f"({' '.join(head.classes)})")
    if head.channels is not None and len(channels) != head.channels:
        raise CamkitError(f"{path} line {n}: {len(channels)} channel(s), but the file has {head.channels}")
    values = [_values(path, n, channel, c) for c, channel in enumerate(channels)]
    lengths = sorted({len(v) for v in values})
    if len(lengths) > 1:
        raise CamkitError(f"{path} line {n}: its channels have different lengths ({', '.join(map(str, lengths))})")
    if head.length is not None and lengths[0] != head.length:
        raise CamkitError(f"{path} line {n}: a series of length {lengths[0]}, but {head.length_source} {head.length}")
    return np.stack(values, axis=-1), label


def read_ts(path: Path) -> TsFile:
    """Read a ``.ts`` classification file (see the module doc)."""
    lines = _text(path)
    head = _header(path, lines)
    out = TsFile(path, [], [], head.classes)
    for i in range(head.data_line + 1, len(lines)):
        line = lines[i].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            raise CamkitError(f"{path} line {i + 1}: a header line after @data: {line[:40]!r}")
        series, label = _row(path, i + 1, line, head)
        head.channels = series.shape[1]  # every series has as many channels as the first
        if head.equal and head.length is None:
            head.length, head.length_source = len(series), "@equalLength true and the first series has"
        bad = int((~np.isfinite(series)).sum())
        if bad and out.first_missing_line is None:
            out.first_missing_line = i + 1
        out.missing += bad
        out.series.append(series)
        out.labels.append(label)
    if not out.series:
        raise CamkitError(f"{path}: holds no series after @data")
    return out
