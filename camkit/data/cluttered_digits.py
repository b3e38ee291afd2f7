"""``cluttered-digits`` (format 2): scikit-learn's digits on crops of its sample photographs, with VOC boxes.

Images are rendered by :mod:`camkit.data.digits_render`. Digit sizes are chosen in cells of the benchmark model's
CAM grid (``configs/cluttered_digits_cnn16.yaml``: 16×16 at 64×64, 4 px a cell), so that a digit spans about
3..10 cells a side; ``benchmark.json`` and the folder's README.md give the measured distribution.

Layout of the output folder::

    train/<0..9>/train_0000.png ...        test/<0..9>/test_0000.png ...
    pairs/<c>/pairs_0000_<c>.png ...       (two digits of different classes; the image is stored once under
                                            each of its two class folders, identical bytes)
    annotations/<split>/<image stem>.xml   (PASCAL VOC; a pairs file lists its own class's object first)
    annotations/<split>.csv                (image,label,xmin,ymin,xmax,ymax,width,height,digit: one row a box)
    benchmark.json  README.md

The digits are split once, stratified by class, into disjoint train and test **source** digits (80/20); the
test and pairs images use only test digits. Image ``i`` of a split is rendered from its own random stream
``(seed, split, i)``; the whole folder is byte-identical for a seed (PNG without timestamps, no dates anywhere)
on one software stack, and is written atomically.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from camkit.data.benchmark import check_out, command_out, package_versions
from camkit.data.boxes import Box
from camkit.data.digits_render import (
    ASPECT,
    BACKGROUND_CONTRAST,
    DIGIT_CELLS,
    GAP_CELLS,
    GRID,
    MIN_CONTRAST,
    PALETTE_COLOURS,
    Sample,
    Sources,
    digit_heights,
    load_sources,
    render_sample,
)
from camkit.errors import CamkitError
from camkit.io import replace_dir_atomically

OPTIONS = {"n_train": 3000, "n_test": 500, "n_pairs": 250, "size": 64}
SPLITS = ("train", "test", "pairs")
CLASSES = tuple(str(c) for c in range(10))
MIN_SIZE, MAX_SIZE = 32, 256
MAX_IMAGES = 100_000
TEST_FRACTION = 0.2
TARGET_CELLS = (3.0, 10.0)  # what the sizes aim at: a box side in cells of the CAM grid
CSV_HEADER = ("image", "label", "xmin", "ymin", "xmax", "ymax", "width", "height", "digit")
FORMAT_VERSION = 2
_SPLIT_CODE = {"train": 1, "test": 2, "pairs": 3}
_POOL = {"train": "train", "test": "test", "pairs": "test"}  # the source digits each split draws from


@dataclass(frozen=True)
class ImageFile:
    """One written image: its path under the folder, its bytes and its objects ``(class name, box, digit)``."""

    path: str
    png: bytes
    objects: tuple[tuple[str, Box, int], ...]


def split_digits(targets: np.ndarray, seed: int, test_fraction: float = TEST_FRACTION) -> dict[str, np.ndarray]:
    """Disjoint, class-stratified train/test source-digit indices (each sorted)."""
    rng = np.random.default_rng([seed, 0])
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(targets == c))
        n_test = max(1, round(test_fraction * len(idx)))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


def _assign(labels: np.ndarray, pool: np.ndarray, targets: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A source digit of ``labels``' class for each label: each class cycles through its digits of ``pool`` in a
    random order, so digits are reused as evenly as possible."""
    digits = np.empty(labels.shape, dtype=np.int64)
    flat = labels.ravel()
    out = digits.ravel()
    for c in range(10):
        where = np.flatnonzero(flat == c)
        if not len(where):
            continue
        members = pool[targets[pool] == c]
        reps = -(-len(where) // len(members))
        out[where] = np.concatenate([rng.permutation(members) for _ in range(reps)])[: len(where)]
    return digits


def plan_split(pool: np.ndarray, targets: np.ndarray, n: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The classes ``(n, k)`` and source digits ``(n, k)`` of the ``n`` images of ``split`` (k digits each).

    train/test: one digit, the classes balanced over 0..9 and shuffled. pairs: two digits of different classes,
    cycling through the 45 class pairs in random orders, each pair's order random.
    """
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], 0])
    if split == "pairs":
        both = np.array(list(combinations(range(10), 2)))
        order = np.concatenate([rng.permutation(len(both)) for _ in range(-(-n // len(both)))])[:n]
        labels = both[order]
        swap = rng.random(n) < 0.5
        labels[swap] = labels[swap, ::-1]
    else:
        labels = rng.permutation(np.arange(n) % 10)[:, None]
    return labels, _assign(labels, pool, targets, rng)


def sample_rng(seed: int, split: str, i: int) -> np.random.Generator:
    """The random stream image ``i`` of ``split`` is rendered from."""
    return np.random.default_rng([seed, _SPLIT_CODE[split], 1, i])


def image_files(split: str, i: int, width: int, sample: Sample) -> list[ImageFile]:
    """The files of image ``i``: one under its class folder, or one per object (its own object listed first)."""
    stem = f"{split}_{i:0{width}d}"
    objects = [(CLASSES[o.label], o.box, o.digit) for o in sample.objects]
    if len(objects) == 1:
        return [ImageFile(f"{split}/{objects[0][0]}/{stem}.png", sample.png, tuple(objects))]
    return [ImageFile(f"{split}/{name}/{stem}_{name}.png", sample.png, (objects[j], *objects[:j], *objects[j + 1:]))
            for j, (name, _, _) in enumerate(objects)]


def voc_xml(folder: str, filename: str, size: int, objects: tuple[tuple[str, Box, int], ...]) -> str:
    """A PASCAL-VOC annotation with ``objects`` in order; ``read_voc_xml`` reads it."""
    body = "".join(
        f"  <object>\n    <name>{name}</name>\n    <difficult>0</difficult>\n"
        f"    <bndbox><xmin>{box.xmin}</xmin><ymin>{box.ymin}</ymin><xmax>{box.xmax}</xmax><ymax>{box.ymax}</ymax>"
        "</bndbox>\n  </object>\n" for name, box, _ in objects)
    return (f"<annotation>\n  <folder>{folder}</folder>\n  <filename>{filename}</filename>\n"
            f"  <size><width>{size}</width><height>{size}</height><depth>3</depth></size>\n{body}</annotation>\n")


def cell_stats(boxes: list[Box], size: int) -> dict[str, dict[str, float] | float]:
    """Box heights and widths in cells of the ``GRID`` × ``GRID`` CAM grid (min, 5 %, median, 95 %, max), and the
    fraction of boxes with both sides within ``TARGET_CELLS``."""
    cell = size / GRID
    sides = {"height": np.array([b.height for b in boxes]) / cell, "width": np.array([b.width for b in boxes]) / cell}
    stats: dict[str, dict[str, float] | float] = {
        axis: dict(zip(("min", "p5", "median", "p95", "max"),
                       (round(float(v), 2) for v in np.percentile(values, [0, 5, 50, 95, 100])), strict=True))
        for axis, values in sides.items()}
    lo, hi = TARGET_CELLS
    within = (sides["height"] >= lo) & (sides["height"] <= hi) & (sides["width"] >= lo) & (sides["width"] <= hi)
    stats["within_target"] = round(float(within.mean()), 4)
    return stats


def check_options(*, n_train: int, n_test: int, n_pairs: int, size: int) -> None:
    """CamkitError naming the option for an out-of-range value."""
    for option, n, low in (("--n-train", n_train, 1), ("--n-test", n_test, 1), ("--n-pairs", n_pairs, 0)):
        if not low <= n <= MAX_IMAGES:
            raise CamkitError(f"{option} must be between {low} and {MAX_IMAGES}, got {n}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise CamkitError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")


def _rendered(sources: Sources, pools: dict[str, np.ndarray], plans: dict[str, tuple[np.ndarray, np.ndarray]],
              seed: int, size: int, bar: Any) -> Iterator[tuple[str, list[ImageFile], Sample]]:
    """Every image of every split, rendered in order, with its files (``bar``: a tqdm bar, one step an image)."""
    for split, (_, digits) in plans.items():
        width = max(4, len(str(len(digits) - 1)))
        for i, row in enumerate(digits.tolist()):
            sample = render_sample(sources, row, pools[_POOL[split]], size, sample_rng(seed, split, i))
            bar.update(1)
            yield split, image_files(split, i, width, sample), sample


def _write(tmp: Path, split: str, files: list[ImageFile], size: int) -> None:
    """A split's images, their XMLs and their CSV (one row per box) under ``tmp``."""
    (tmp / "annotations" / split).mkdir(parents=True)
    rows = []
    for f in files:
        path = tmp / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f.png)
        stem = path.stem
        (tmp / "annotations" / split / f"{stem}.xml").write_text(voc_xml(split, path.name, size, f.objects))
        rows += [[f.path, name, *box.as_tuple(), size, size, digit] for name, box, digit in f.objects]
    with open(tmp / "annotations" / f"{split}.csv", "w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_HEADER)
        writer.writerows(rows)


def _info(seed: int, options: dict[str, int], out: Path, pools: dict[str, np.ndarray], sources: Sources) -> dict:
    args = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in options.items())
    return {"benchmark": "cluttered-digits", "format_version": FORMAT_VERSION, "seed": seed, **options,
            "classes": list(CLASSES), "source_digits": {split: len(pools[split]) for split in ("train", "test")},
            "photos": list(sources.photo_names),
            "command": f"camkit make-benchmark cluttered-digits --seed {seed} --out {command_out(out)} {args}",
            "versions": package_versions("scikit-learn", "numpy", "pillow")}


def _cells_table(info: dict) -> str:
    rows = []
    for split in info["splits"]:
        stats = info["object_cells"][split]
        for axis in ("height", "width"):
            s = stats[axis]
            rows.append(f"| {split} | {axis} | {s['min']:g} | {s['p5']:g} | {s['median']:g} | {s['p95']:g} | "
                        f"{s['max']:g} | {stats['within_target']:.1%} |")
    return "\n".join(rows)


def _pairs_section(gap: int) -> str:
    return f"""## The pairs split

Each pairs image holds two test digits of **different** classes, their rectangles at least {gap} px (one cell)
apart, so their boxes never overlap (IoU 0). The image is stored twice, identical bytes:
`pairs/<a>/pairs_NNNN_<a>.png` and `pairs/<b>/pairs_NNNN_<b>.png`; each file's XML holds both objects, its
own class first. So `camkit explain --images DIR/pairs --target true` explains class `a` for the first file
and `b` for the second, and GT-known accuracy, MaxBoxAcc and the pointing game score each file's true-class map
against the box of that class only: the map of `a` must find the `a`. A class-agnostic map (Eigen-CAM) gives
the same box for both files, so it is right for at most one of the two (GT-known ≤ 50 %; the
pointing game's 15 px tolerance may reach both). The classes cycle through the 45 class pairs.

"""


def readme(info: dict) -> str:
    """The folder's README.md: what the images are, how big the digits are in CAM cells, the annotation format."""
    size, cell = info["size"], info["grid"]["pixels_per_cell"]
    lo, hi = digit_heights(size)
    counts = "\n".join(f"| {split} | {sum(info['counts'][split].values())} | "
                       f"{' / '.join(str(v) for v in info['counts'][split].values())} |" for split in info["splits"])
    gap = max(2, round(GAP_CELLS * size / GRID))
    n_train_digits, n_test_digits = info["source_digits"]["train"], info["source_digits"]["test"]
    cells, target, aspect, fade = (f"{a:g}..{b:g}" for a, b in (DIGIT_CELLS, TARGET_CELLS, ASPECT,
                                                                  BACKGROUND_CONTRAST))
    return f"""# cluttered-digits (format {info['format_version']})

A weak-localization benchmark built by camkit from real data that ships with scikit-learn:
its 1,797 handwritten digits (`sklearn.datasets.load_digits`, 8×8; UCI "Optical Recognition of
Handwritten Digits", CC BY 4.0) pasted onto random crops of its two sample photographs
(`load_sample_images`: china.jpg and flower.jpg; Flickr, CC BY 2.0) as clutter.

Regenerate it exactly (same software versions) with:

```sh
{info['command']}
```

Seed {info['seed']}; {size}×{size} PNG images (decoded as RGB); classes `0`..`9` (the folder names).

| split | image files | per class folder 0..9 |
|---|---|---|
{counts}

The digits are split once, stratified by class, into disjoint train and test source digits
({1 - TEST_FRACTION:.0%} / {TEST_FRACTION:.0%}: {n_train_digits} / {n_test_digits}): no test or pairs image uses a
train digit, not even as a fragment.

## Object sizes in CAM cells

Sizes are chosen for the benchmark model `{info['grid']['model']}`, whose CAM layer is a {GRID}×{GRID} grid
over the image ({cell:g} px a cell here): a digit is pasted {lo}..{hi} px high ({cells} cells), its width
{aspect} of its height, so that its box spans about {target} cells a side. The boxes (the digits' visible
pixels, narrower than the pasted rectangle: a `1` is thin; pairs are smaller, as two must fit) measure, in cells:

| split | side | min | 5 % | median | 95 % | max | both sides in {target} |
|---|---|---|---|---|---|---|---|
{_cells_table(info)}

## Each image

- background: a random square crop of one photograph ({size}..{4 * size} px a side), resized bilinearly,
  flipped at random, its contrast around its mean colour scaled by {fade};
- the digit(s): upscaled bilinearly at a random position, blended in through an anti-aliased alpha from its
  intensity, in a random colour whose luminance differs from the background under it by at least
  {MIN_CONTRAST:g} (so bright or dark);
- distractors: one or two much smaller fragments of other digits of the same source digits (3..5 × 3..5 of
  their 8×8 pixels), at least 2 px outside every digit's rectangle;
- stored as a PNG with its own {PALETTE_COLOURS}-colour palette (nearest colour, no dithering) to keep the
  folder small.

{_pairs_section(gap) if 'pairs' in info['splits'] else ''}## Annotations

`annotations/<split>/<image stem>.xml` (PASCAL VOC: `<object>`s whose `<name>` is the class) and
`annotations/<split>.csv` (`image,label,xmin,ymin,xmax,ymax,width,height,digit`, one row per box, a pairs
file's own class first; `digit` is the index into `load_digits()`). Boxes are 1-based and inclusive: the tight
box of the digit's visible pixels (those whose colour differs from the same image rendered without the digits),
not the paste rectangle.

Built with scikit-learn {info['versions']['scikit-learn']}, numpy {info['versions']['numpy']}, Pillow
{info['versions']['pillow']}; other versions may resample or decode the photographs slightly differently.
"""


def build(out: Path, *, seed: int = 0, progress: bool = True, n_train: int = OPTIONS["n_train"],
          n_test: int = OPTIONS["n_test"], n_pairs: int = OPTIONS["n_pairs"], size: int = OPTIONS["size"]) -> dict:
    """Write the cluttered-digits benchmark to ``out`` (replaced atomically); returns its ``benchmark.json``."""
    check_options(n_train=n_train, n_test=n_test, n_pairs=n_pairs, size=size)
    check_out(out)
    from tqdm.auto import tqdm

    sources = load_sources()
    pools = split_digits(sources.targets, seed)
    counts = {"train": n_train, "test": n_test, "pairs": n_pairs}
    plans = {split: plan_split(pools[_POOL[split]], sources.targets, n, seed, split)
             for split, n in counts.items() if n}
    info = _info(seed, {"n_train": n_train, "n_test": n_test, "n_pairs": n_pairs, "size": size}, out, pools,
                 sources)

    def fill(tmp: Path) -> None:
        files: dict[str, list[ImageFile]] = {split: [] for split in plans}
        boxes: dict[str, list[Box]] = {split: [] for split in plans}
        with tqdm(total=sum(counts.values()), desc="cluttered-digits", unit="image", disable=not progress) as bar:
            for split, written, sample in _rendered(sources, pools, plans, seed, size, bar):
                files[split] += written
                boxes[split] += [o.box for o in sample.objects]
        for split, split_files in files.items():
            _write(tmp, split, split_files, size)
        info["splits"] = list(plans)
        info["counts"] = {split: {c: sum(f.objects[0][0] == c for f in files[split]) for c in CLASSES}
                          for split in plans}
        info["grid"] = {"cells": GRID, "pixels_per_cell": size / GRID, "model": "configs/cluttered_digits_cnn16.yaml"}
        info["object_cells"] = {split: cell_stats(b, size) for split, b in boxes.items()}
        (tmp / "benchmark.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "README.md").write_text(readme(info))

    replace_dir_atomically(out, fill)
    return info


def describe(info: dict, out: Path) -> str:
    """What ``camkit make-benchmark cluttered-digits`` prints."""
    pairs = f" / {info['n_pairs']} pairs ({2 * info['n_pairs']} files)" if info["n_pairs"] else ""
    return (f"wrote {out}: {info['n_train']} train / {info['n_test']} test{pairs} {info['size']}x{info['size']} "
            f"images of {len(info['classes'])} classes with VOC boxes (seed {info['seed']})")


def source_digits(folder: Path | str, splits: tuple[str, ...] = SPLITS) -> dict[str, set[int]]:
    """The ``load_digits`` indices each split of a written benchmark uses (from ``annotations/<split>.csv``)."""
    folder = Path(folder)
    used: dict[str, set[int]] = {}
    for split in splits:
        with open(folder / "annotations" / f"{split}.csv", newline="") as f:
            used[split] = {int(row["digit"]) for row in csv.DictReader(f)}
    return used
