"""Reading sktime/aeon ``.ts`` classification files with sktime's ``load_from_tsfile``, after a pre-check.

sktime parses the file, but it reports a wrong channel count or a non-number without naming the line, and
does not check each series' label against ``@classLabel``, its length against ``@seriesLength`` (or the first
series under ``@equalLength true``), nor that its channels are equally long. :func:`check_ts` scans the lines
for those errors and for what camkit does not convert (non-UTF-8 text, no ``@data``, ``@timeStamps true``,
regression files with ``@targetLabel``), raising ``CamkitError("FILE line L: ...")`` before sktime runs;
whatever sktime still raises becomes one CamkitError line naming the file. Labels are lower-cased, as sktime
reads every line lower-cased.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camkit.errors import CamkitError

REQUIRED = ("problemName", "timeStamps", "univariate", "classLabel")  # sktime reads no file without them


@dataclass
class TsFile:
    """The series of one ``.ts`` file: ``(T_i, C)`` float64 arrays, their labels and the declared classes."""

    path: Path
    series: list[np.ndarray]
    labels: list[str]
    classes: list[str]
    missing: int = 0  # missing (``?``) or non-finite values
    first_missing_line: int | None = None


def _flag(tags: dict[str, tuple[int, str]], tag: str) -> bool:
    """Whether ``@tag`` is true (sktime itself refuses values other than true/false where it reads them)."""
    return tags.get(tag, (0, ""))[1].split()[:1] == ["true"]


def _header(path: Path, lines: list[str]) -> tuple[list[str], int | None, int | None, bool, int]:
    """Classes, channel count, series length, @equalLength and the index of the line after ``@data``."""
    tags: dict[str, tuple[int, str]] = {}
    for n, line in enumerate(lines, 1):
        tag, _, value = line.partition(" ")
        if tag == "@data":
            break
        if tag.startswith("@"):
            tags[tag[1:]] = (n, value.strip())
    else:
        raise CamkitError(f"{path}: no @data line (a .ts file lists its header, then @data, then the series)")
    if _flag(tags, "timestamps"):
        raise CamkitError(f"{path} line {tags['timestamps'][0]}: @timeStamps true: time-stamped series are not "
                          "supported")
    if _flag(tags, "targetlabel"):
        raise CamkitError(f"{path} line {tags['targetlabel'][0]}: @targetLabel: a regression file, not classification")
    if not _flag(tags, "classlabel"):
        raise CamkitError(f"{path}: no '@classLabel true CLASS ...' line: camkit converts classification files")
    line, value = tags["classlabel"]
    classes = value.split()[1:]
    if not classes:
        raise CamkitError(f"{path} line {line}: @classLabel true declares no class")
    absent = [f"@{tag}" for tag in REQUIRED if tag.lower() not in tags]
    if absent:
        raise CamkitError(f"{path}: no {absent[0]} line before @data (sktime needs @{', @'.join(REQUIRED)})")
    equal = _flag(tags, "equallength")
    line, length = tags.get("serieslength", (0, "")) if equal else (0, "")
    if length and (not length.isdecimal() or int(length) < 1):
        raise CamkitError(f"{path} line {line}: @serieslength must be a positive integer, got {length!r}")
    return classes, 1 if _flag(tags, "univariate") else None, int(length) if length else None, equal, n


def _not_number(text: str) -> str | None:
    """The first of the ``,``-separated values that sktime cannot read as a number (``?``: missing), or None."""
    for token in text.split(","):
        try:
            float(token.replace("?", "nan"))
        except ValueError:
            return token.strip()
    return None


def _row(path: Path, n: int, line: str, classes: list[str], channels: int | None) -> tuple[int, int]:
    """Check series line ``n``, ``CHANNEL:...:LABEL``; returns its channel count and length."""
    *values, label = [field.strip() for field in line.split(":")]
    short = channels is not None and len(values) == channels - 1 and _not_number(label) is None
    if not values or not label or "," in label or (short and label not in classes):
        raise CamkitError(f"{path} line {n}: the class label is missing (a series line is CHANNEL:...:LABEL)")
    if label not in classes:
        raise CamkitError(f"{path} line {n}: label {label!r} is not declared in @classLabel ({' '.join(classes)})")
    if "?" in label:
        raise CamkitError(f"{path} line {n}: label {label!r} holds '?', which sktime reads as a missing value")
    if channels is not None and len(values) != channels:
        raise CamkitError(f"{path} line {n}: {len(values)} channel(s), but the file has {channels}")
    for c, channel in enumerate(values):
        bad = _not_number(channel)
        if bad is not None:
            what = "is empty" if not channel else f"holds {bad!r}, not a number"
            raise CamkitError(f"{path} line {n}: channel {c + 1} {what}")
    lengths = sorted({channel.count(",") + 1 for channel in values})
    if len(lengths) > 1:
        raise CamkitError(f"{path} line {n}: its channels have different lengths ({', '.join(map(str, lengths))})")
    return len(values), lengths[0]


def check_ts(path: Path) -> tuple[list[str], list[int]]:
    """Pre-check a ``.ts`` file (see the module doc); returns its declared classes and each series' line number."""
    try:  # the lines as sktime reads them: split at any newline, stripped, lower-cased
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CamkitError(f"{path}: not a text .ts file (byte {exc.start} is not UTF-8)") from None
    lines = [line.strip().lower() for line in io.StringIO(text, newline=None)]
    classes, channels, length, equal, start = _header(path, lines)
    source, rows = "@seriesLength is", []
    for n, line in enumerate(lines[start:], start + 1):
        if line.startswith(("@", "#")):
            raise CamkitError(f"{path} line {n}: {line[:40]!r} after @data, where sktime reads only series lines")
        if line:
            channels, size = _row(path, n, line, classes, channels)
            if equal and length is None:
                length, source = size, "@equalLength true and the first series has"
            if length is not None and size != length:
                raise CamkitError(f"{path} line {n}: a series of length {size}, but {source} {length}")
            rows.append(n)
    return classes, rows


def read_ts(path: Path) -> TsFile:
    """Read a ``.ts`` classification file with sktime, after :func:`check_ts`."""
    from sktime.datasets import load_from_tsfile

    classes, rows = check_ts(path)
    try:
        frame, labels = load_from_tsfile(str(path), return_data_type="nested_univ", encoding="utf-8-sig")
    except Exception as exc:  # sktime raises OSError/ValueError variants for what the pre-check lets through
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CamkitError(f"{path}: sktime cannot read it ({reason})") from None
    series = [np.stack([np.asarray(s, dtype=np.float64) for s in cells], axis=-1) for cells in frame.to_numpy()]
    bad = [int((~np.isfinite(s)).sum()) for s in series]
    first = next((n for n, count in zip(rows, bad, strict=True) if count), None)
    return TsFile(path, series, [str(v) for v in labels], classes, sum(bad), first)
