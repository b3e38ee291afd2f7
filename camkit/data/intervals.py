"""1-D ground truth for time series: one labelled interval (and its channel) per series, in a CSV.

Format (``intervals_<split>.csv`` beside a series dataset's ``.npy`` files, as ``camkit make-benchmark
planted-patterns`` writes it): the header ``sample,label,start,end,channel`` (``channel`` optional), then one row per
series:

- ``sample``: the series' 0-based row in ``x_<split>.npy`` (the map store names it ``<split>_IIIII``);
- ``label``: its class name, as ``labels.json`` names the classes;
- ``start``, ``end``: **0-based, end exclusive**, so the pattern is ``x[sample, start:end, channel]`` and
  ``0 <= start < end <= T``;
- ``channel``: the 0-based channel the pattern sits in (0 when the column is absent).

For the localization metrics an interval is a box one sample high: ``[start, end)`` is the 1-based inclusive box
``(start + 1, 1, end, 1)`` of a ``T × 1`` image and a series map (T,) is a ``1 × T`` map, so IoU, the largest
component above a threshold, MaxBoxAcc and the pointing game's distance are exactly their 1-D versions (an
8-connected component of one row is a run of consecutive samples; the IoU of two such boxes is
``|A ∩ B| / |A ∪ B|`` in samples). :func:`interval_of` turns such a box back into ``(start, end)``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from camkit.data.boxes import Annotation, Box
from camkit.errors import CamkitError

COLUMNS = ("sample", "label", "start", "end", "channel")
REQUIRED = COLUMNS[:4]


@dataclass(frozen=True)
class Interval:
    """One series' ground truth: its class name and the samples ``[start, end)`` of ``channel`` (0-based)."""

    label: str
    start: int
    end: int
    channel: int = 0

    @property
    def box(self) -> Box:
        """The interval as a one-row box (:func:`interval_box`)."""
        return interval_box(self.start, self.end)


def interval_box(start: int, end: int) -> Box:
    """``[start, end)`` (0-based, end exclusive) as a one-row box, 1-based inclusive: ``(start + 1, 1, end, 1)``."""
    return Box(start + 1, 1, end, 1)


def interval_of(box: Box) -> tuple[int, int]:
    """``(start, end)``, 0-based and end exclusive, of a one-row box (the inverse of :attr:`Interval.box`)."""
    return box.xmin - 1, box.xmax


def series_name(split: str, index: int) -> str:
    """How a map store names series ``index`` of ``split``: ``test_00000``."""
    return f"{split}_{index:05d}"


def intervals_csv(intervals: Sequence[Interval]) -> str:
    """The CSV text of one interval per series, series ``i`` on row ``i`` (the module docstring's format)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([i, g.label, g.start, g.end, g.channel] for i, g in enumerate(intervals))
    return buffer.getvalue()


def _integer(text: str, where: str, column: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise CamkitError(f"{where}: {column} must be an integer, got {text!r}") from None


def read_intervals(path: Path | str) -> dict[int, Interval]:
    """The intervals of a CSV by sample (row of ``x_<split>.npy``); errors name the file and the line.

    Checked here: the header, integer fields, ``0 <= start < end``, ``channel >= 0``, one row per sample. Against the
    series themselves (``end <= T``, the channel count, the labels) by :func:`interval_annotations`.
    """
    path = Path(path)
    if not path.is_file():
        raise CamkitError(f"--annotations {path}: no such interval file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise CamkitError(f"--annotations {path}: cannot read it ({e})") from None
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    if any(c not in header for c in REQUIRED):
        raise CamkitError(f"--annotations {path}, line 1: expected the header {','.join(COLUMNS)} (channel optional) "
                          f"of series intervals, got {','.join(header) or 'nothing'}")
    col = {name: header.index(name) for name in COLUMNS if name in header}
    out: dict[int, Interval] = {}
    for row in reader:
        where = f"--annotations {path}, line {reader.line_num}"
        if len(row) != len(header):
            raise CamkitError(f"{where}: {len(row)} fields, the header has {len(header)}")
        cell = {name: row[i].strip() for name, i in col.items()}
        sample, start, end = (_integer(cell[c], where, c) for c in ("sample", "start", "end"))
        channel = _integer(cell["channel"], where, "channel") if "channel" in cell else 0
        if not cell["label"]:
            raise CamkitError(f"{where}: empty label")
        if sample < 0 or channel < 0 or not 0 <= start < end:
            raise CamkitError(f"{where}: needs sample >= 0, channel >= 0 and 0 <= start < end (0-based, end "
                              f"exclusive), got sample {sample}, start {start}, end {end}, channel {channel}")
        if sample in out:
            raise CamkitError(f"{where}: sample {sample} has a second interval (one per series)")
        out[sample] = Interval(cell["label"], start, end, channel)
    if not out:
        raise CamkitError(f"--annotations {path}: no intervals")
    return out


def interval_annotations(intervals: Mapping[int, Interval], split: str, shape: tuple[int, int],
                         where: str) -> dict[str, Annotation]:
    """The intervals as one-row annotations of ``T × 1`` images keyed by series name, after checking each against
    the series' ``shape`` ``(T, C)``; ``where`` (the file) starts the error lines."""
    length, channels = shape
    out = {}
    for sample, g in sorted(intervals.items()):
        if g.end > length or g.channel >= channels:
            raise CamkitError(f"{where}: the interval of sample {sample} ([{g.start}, {g.end}) in channel {g.channel}) "
                              f"lies outside its series of {length} steps and {channels} channel(s)")
        name = series_name(split, sample)
        out[name] = Annotation(name, length, 1, ((g.label, g.box),))
    return out
