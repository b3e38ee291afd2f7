"""``planted-patterns``: a time-series localization benchmark with ground truth, built by camkit.

Each series is a realistic background — AR(1) noise (``φ`` drawn in ``AR_PHI``, unit variance) plus a random walk
(step standard deviation drawn in ``WALK_STEP``), z-normalised per channel — with one class-specific pattern added
at a random position: the class *is* the pattern's shape (``PATTERNS``: sine burst, square pulse, spikes, chirp,
Gaussian dip). Its width is drawn in ``WIDTH`` (fractions of the length: 26..64 samples at 256), its start
uniformly where it fits, its amplitude in ``AMPLITUDE`` (multiples of the background's standard deviation, 1 after
the z-normalisation). With ``channels > 1`` (the multivariate variant) every channel has its own background and the
pattern sits in one random channel.

Ground truth: the pattern's **samples** are those where the planted signal's magnitude is at least ``NEGLIGIBLE`` of
its amplitude (it is exactly 0 outside its window); the interval is their tight hull, 0-based and end exclusive,
in ``intervals_<split>.csv`` (:mod:`camkit.data.intervals`). Layout of the output folder::

    x_train.npy y_train.npy x_test.npy y_test.npy labels.json      (camkit.data.timeseries.load_timeseries)
    intervals_train.csv intervals_test.csv                         (sample,label,start,end,channel)
    benchmark.json README.md

Series ``i`` of a split is drawn from its own random stream ``(seed, split, i)`` and the labels (balanced, shuffled)
from ``(seed, split)``: the folder is byte-identical for a seed on one software stack, and written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from camkit.data.benchmark import check_out, command_out, package_versions
from camkit.data.intervals import Interval, intervals_csv
from camkit.errors import CamkitError
from camkit.io import replace_dir_atomically

NAME = "planted-patterns"
SPLITS = ("train", "test")
OPTIONS = {"n_train": 1000, "n_test": 300, "length": 256, "channels": 1}  # the shipped univariate set (the
# multivariate one: 2000 train series, 3 channels)
MIN_LENGTH, MAX_LENGTH, MAX_CHANNELS, MAX_SERIES = 64, 4096, 16, 100_000
WIDTH = (0.10, 0.25)  # pattern width as a fraction of the length
AMPLITUDE = (2.5, 3.5)  # peak |pattern| in background standard deviations
AR_PHI = (0.5, 0.9)
WALK_STEP = (0.02, 0.05)  # random-walk step std, relative to the AR(1) noise's unit std
NEGLIGIBLE = 0.01  # a planted sample counts when |signal| >= NEGLIGIBLE * amplitude
SINE_PERIOD = (12.0, 20.0)  # samples
CHIRP_START, CHIRP_END = (24.0, 32.0), (4.0, 5.0)  # the chirp's period at its start and at its end, in samples
DIP_SIGMA = (0.12, 0.18)  # of the width
SPIKES, SPIKE_SIGMA = (3, 4), 1.5  # how many spikes, their sigma in samples
FORMAT_VERSION = 1
_SPLIT_CODE = {"train": 1, "test": 2}


def _sine(width: int, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.sin(2 * np.pi * width * u / rng.uniform(*SINE_PERIOD))


def _square(width: int, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.ones_like(u)


def _spikes(width: int, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    count = int(rng.integers(SPIKES[0], SPIKES[1] + 1))
    centres = (np.arange(count) + 0.5) / count
    return np.exp(-0.5 * ((u[:, None] - centres[None, :]) * width / SPIKE_SIGMA) ** 2).sum(axis=1)


def _chirp(width: int, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    start, end = 1 / rng.uniform(*CHIRP_START), 1 / rng.uniform(*CHIRP_END)  # cycles per sample
    return np.sin(2 * np.pi * width * (start * u + (end - start) * u**2 / 2))


def _gaussian_dip(width: int, u: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return -np.exp(-0.5 * ((u - 0.5) / rng.uniform(*DIP_SIGMA)) ** 2)


Shape = Callable[[int, np.ndarray, np.random.Generator], np.ndarray]
# class name -> (shape on the window's sample centres u in (0, 1), scaled to a peak magnitude of 1; what it is)
PATTERNS: dict[str, tuple[Shape, str]] = {
    "sine-burst": (_sine, f"a sine of period {SINE_PERIOD[0]:g}..{SINE_PERIOD[1]:g} samples"),
    "square-pulse": (_square, "a constant step up for the whole width"),
    "spikes": (_spikes, f"{SPIKES[0]}..{SPIKES[1]} evenly spaced narrow Gaussian peaks, sigma {SPIKE_SIGMA:g} samples"),
    "chirp": (_chirp, f"a sine whose frequency rises linearly, from a period of {CHIRP_START[0]:g}.."
                      f"{CHIRP_START[1]:g} samples to one of {CHIRP_END[0]:g}..{CHIRP_END[1]:g}"),
    "gaussian-dip": (_gaussian_dip, f"a downward Gaussian bump, sigma {DIP_SIGMA[0]:g}..{DIP_SIGMA[1]:g} of the width"),
}
CLASSES = tuple(PATTERNS)


@dataclass(frozen=True)
class Sample:
    """One generated series with what it is made of (for tests and figures)."""

    series: np.ndarray  # float32 (T, C): background + planted signal
    background: np.ndarray  # float64 (T, C)
    planted: np.ndarray  # float64 (T,): the pattern alone, added to ``interval.channel``
    amplitude: float
    interval: Interval


def background(rng: np.random.Generator, length: int) -> np.ndarray:
    """AR(1) noise of unit variance plus a random walk, z-normalised: float64 (T,)."""
    phi, step = rng.uniform(*AR_PHI), rng.uniform(*WALK_STEP)
    innovations = rng.standard_normal(length)
    gain = np.sqrt(1.0 - phi**2)
    innovations[0] /= gain  # the first value from the stationary distribution N(0, 1)
    noise = lfilter([gain], [1.0, -phi], innovations) + np.cumsum(rng.normal(0.0, step, length))
    return (noise - noise.mean()) / noise.std()


def render_sample(label: int, length: int, channels: int, rng: np.random.Generator) -> Sample:
    """One series of class ``label``: backgrounds, then the pattern at a random width, start, channel, amplitude."""
    name = CLASSES[label]
    backgrounds = np.stack([background(rng, length) for _ in range(channels)], axis=1)
    width = int(rng.integers(round(WIDTH[0] * length), round(WIDTH[1] * length) + 1))
    start = int(rng.integers(length - width + 1))
    channel = int(rng.integers(channels))
    amplitude = float(rng.uniform(*AMPLITUDE))
    shape = PATTERNS[name][0](width, (np.arange(width) + 0.5) / width, rng)
    planted = np.zeros(length)
    planted[start : start + width] = amplitude * shape / np.abs(shape).max()
    visible = np.flatnonzero(np.abs(planted) >= NEGLIGIBLE * amplitude)
    series = backgrounds.copy()
    series[:, channel] += planted
    interval = Interval(name, int(visible[0]), int(visible[-1]) + 1, channel)
    return Sample(series.astype(np.float32), backgrounds, planted, amplitude, interval)


def sample_rng(seed: int, split: str, i: int) -> np.random.Generator:
    """The random stream series ``i`` of ``split`` is drawn from."""
    return np.random.default_rng([seed, _SPLIT_CODE[split], 1, i])


def split_labels(seed: int, split: str, n: int) -> np.ndarray:
    """``n`` labels, balanced over the classes and shuffled."""
    return np.random.default_rng([seed, _SPLIT_CODE[split], 0]).permutation(np.arange(n) % len(CLASSES))


def check_options(*, n_train: int, n_test: int, length: int, channels: int) -> None:
    """CamkitError naming the option for a value out of range."""
    for option, n in (("--n-train", n_train), ("--n-test", n_test)):
        if not 1 <= n <= MAX_SERIES:
            raise CamkitError(f"--n-train and --n-test must be between 1 and {MAX_SERIES}: {option} is {n}")
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise CamkitError(f"--length must be between {MIN_LENGTH} and {MAX_LENGTH} samples, got {length}")
    if not 1 <= channels <= MAX_CHANNELS:
        raise CamkitError(f"--channels must be between 1 and {MAX_CHANNELS}, got {channels}")


def _command(out: Path, seed: int, n_train: int, n_test: int, length: int, channels: int) -> str:
    return (f"camkit make-benchmark {NAME} --seed {seed} --out {command_out(out)} --n-train {n_train} --n-test "
            f"{n_test} --length {length} --channels {channels}")


def _npy(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _readme(info: dict) -> str:
    length = info["length"]
    low, high = (round(f * length) for f in WIDTH)
    shapes = "\n".join(f"| `{name}` | {what} |" for name, (_, what) in PATTERNS.items())
    counts = {split: " / ".join(str(c) for c in info["counts"][split].values()) for split in SPLITS}
    rows = "\n".join(f"| {split} | {info[f'n_{split}']} | {counts[split]} |" for split in SPLITS)
    where = ("the channel is always 0" if info["channels"] == 1 else
             f"every channel has its own background and the pattern sits in one channel drawn uniformly from "
             f"0..{info['channels'] - 1}")
    return f"""# planted-patterns

A time-series weak-localization benchmark built by camkit: realistic backgrounds with one class-specific pattern
planted per series, and the pattern's interval as ground truth. Regenerate it exactly (same software versions):

```sh
{info['command']}
```

Seed {info['seed']}; {length} samples, {info['channels']} channel(s) ({where}); classes (the pattern shapes, in
`labels.json` order):

| class | pattern |
|---|---|
{shapes}

| split | series | per class |
|---|---|---|
{rows}

Each series: per channel an AR(1) process (φ uniform in {AR_PHI[0]:g}..{AR_PHI[1]:g}, unit variance) plus a random
walk (step standard deviation uniform in {WALK_STEP[0]:g}..{WALK_STEP[1]:g}), z-normalised; then the pattern,
{low}..{high} samples wide ({WIDTH[0]:g}..{WIDTH[1]:g} of the length), starting uniformly where it fits, with a peak
magnitude of {AMPLITUDE[0]:g}..{AMPLITUDE[1]:g} background standard deviations.

Files: `x_<split>.npy` float32 (N, {length}, {info['channels']}), `y_<split>.npy` int64 class indices, `labels.json`
(class names), read by `camkit.data.timeseries.load_timeseries`. Ground truth: `intervals_<split>.csv` with the
columns `sample,label,start,end,channel`, one row per series: `sample` is the row of `x_<split>.npy`, `label` the
class name, `start`/`end` **0-based, end exclusive** (the pattern is `x[sample, start:end, channel]`), `channel`
0-based. The interval is the tight hull of the samples where the planted signal's magnitude is at least
{NEGLIGIBLE:g} × its amplitude (it is exactly 0 outside its window), so it may be a little shorter than the
window (a Gaussian dip's tails). `camkit eval-localization` reads it by default for a series experiment on this
folder.

Built with numpy {info['versions']['numpy']} and scipy {info['versions']['scipy']}.
"""


def _split_files(seed: int, split: str, n: int, length: int, channels: int, bar) -> dict[str, bytes]:
    labels = split_labels(seed, split, n)
    x = np.empty((n, length, channels), np.float32)
    intervals = []
    for i, label in enumerate(labels.tolist()):
        sample = render_sample(label, length, channels, sample_rng(seed, split, i))
        x[i] = sample.series
        intervals.append(sample.interval)
        bar.update(1)
    return {f"x_{split}.npy": _npy(x), f"y_{split}.npy": _npy(labels.astype(np.int64)),
            f"intervals_{split}.csv": intervals_csv(intervals).encode()}


def build(out: Path, *, seed: int = 0, progress: bool = True, n_train: int = OPTIONS["n_train"],
          n_test: int = OPTIONS["n_test"], length: int = OPTIONS["length"],
          channels: int = OPTIONS["channels"]) -> dict:
    """Write the planted-patterns benchmark to ``out`` (replaced atomically); returns its ``benchmark.json``."""
    check_options(n_train=n_train, n_test=n_test, length=length, channels=channels)
    out = Path(out)
    check_out(out)
    from tqdm.auto import tqdm

    sizes = {"train": n_train, "test": n_test}
    info = {"benchmark": NAME, "format_version": FORMAT_VERSION, "seed": seed, "length": length, "channels": channels,
            "n_train": n_train, "n_test": n_test, "classes": list(CLASSES),
            "counts": {s: dict(zip(CLASSES, np.bincount(split_labels(seed, s, sizes[s]), minlength=len(CLASSES))
                                   .tolist(), strict=True)) for s in SPLITS},
            "width": [round(f * length) for f in WIDTH], "amplitude": list(AMPLITUDE), "ar_phi": list(AR_PHI),
            "walk_step": list(WALK_STEP), "negligible": NEGLIGIBLE,
            "intervals": "intervals_<split>.csv: sample,label,start,end,channel; 0-based, end exclusive",
            "command": _command(out, seed, n_train, n_test, length, channels),
            "versions": package_versions("numpy", "scipy")}
    labels = {"name": out.name, "labels": list(CLASSES), "length": length, "channels": channels,
              "source": {"benchmark": NAME, "seed": seed}}
    with tqdm(total=n_train + n_test, desc=NAME, unit="series", disable=not progress) as bar:
        files = {name: data for s in SPLITS for name, data in
                 _split_files(seed, s, sizes[s], length, channels, bar).items()}
    files["labels.json"] = (json.dumps(labels, indent=2) + "\n").encode()
    files["benchmark.json"] = (json.dumps(info, indent=2) + "\n").encode()
    files["README.md"] = _readme(info).encode()

    def fill(tmp: Path) -> None:
        for name, data in files.items():
            (tmp / name).write_bytes(data)

    replace_dir_atomically(out, fill)
    return info


def describe(info: dict, out: Path) -> str:
    """What ``camkit make-benchmark planted-patterns`` prints."""
    return (f"wrote {out}: {info['n_train']} train / {info['n_test']} test series of {info['length']} steps and "
            f"{info['channels']} channel(s), {len(info['classes'])} classes with intervals (seed {info['seed']})")
