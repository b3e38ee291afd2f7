"""Benchmarks camkit builds itself from data that ships with its dependencies.

``cluttered-digits``: scikit-learn's 1,797 handwritten digits (8×8, values 0..16) pasted at random size,
aspect and position onto random crops of scikit-learn's two sample photographs (``china.jpg``,
``flower.jpg``), with one or two much smaller fragments of other digits as distractors. Each image is
stored as a PNG with its own 64-colour palette (a third of the bytes of RGB; the loaders decode it to RGB)
and gets a PASCAL-VOC XML whose box is the tight box of the digit's **visible** pixels (those whose
colour differs from the same image rendered without the digit), so ``eval-localization`` reads it like an
ILSVRC val annotation.

Layout of the output folder::

    train/<0..9>/train_0000.png ...       test/<0..9>/test_0000.png ...
    annotations/train/train_0000.xml ...  annotations/test/test_0000.xml ...
    annotations/train.csv  annotations/test.csv   (image,label,xmin,ymin,xmax,ymax,width,height,digit)
    benchmark.json  README.md

The digits are split once, stratified by class, into disjoint train and test **source** digits (80/20);
no test image uses a train digit, not even as a distractor fragment. Image ``i`` of a split is rendered
from its own random stream ``(seed, split, i)``; the whole folder is byte-identical for a seed (PNG
without timestamps, no dates anywhere) on one software stack, and is written atomically.
"""

from __future__ import annotations

import colorsys
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
from PIL import Image

from camkit.data.boxes import Box
from camkit.errors import CamkitError
from camkit.io import replace_dir_atomically

BENCHMARKS = ("cluttered-digits",)
SPLITS = ("train", "test")
CLASSES = tuple(str(c) for c in range(10))
MIN_SIZE, MAX_SIZE = 32, 256
MAX_IMAGES = 100_000
N_TRAIN, N_TEST = 3000, 500  # the shipped set: a small GAP CNN reaches >= 95 % in a few CPU minutes
TEST_FRACTION = 0.2
DIGIT_SIDE = (0.4, 0.65)  # digit height as a fraction of the image side: 26..42 px at 64×64
ASPECT = (0.65, 0.9)  # digit width / height
FRAGMENT_SCALE = (0.9, 1.6)  # distractor pixels per 8×8 source pixel (the digit has 2.5..5 at 64×64)
BACKGROUND_CONTRAST = (0.25, 0.5)  # the crop's contrast around its mean colour is scaled by this
MIN_CONTRAST = 0.5  # |luminance(colour) - luminance(local background)|, in 0..1
PALETTE_COLOURS = 64  # per image: about a third of the bytes of full RGB, hardly visible at 64×64
FORMAT_VERSION = 1
_SPLIT_CODE = {"train": 1, "test": 2}


@dataclass(frozen=True)
class Sources:
    """The real data a benchmark is built from."""

    digits: np.ndarray  # (1797, 8, 8) float32 in 0..1
    targets: np.ndarray  # (1797,) int64
    photos: tuple[np.ndarray, ...]  # uint8 (H, W, 3)
    photo_names: tuple[str, ...]


@dataclass(frozen=True)
class Sample:
    """One rendered image with what it was made of (for tests and figures)."""

    image: np.ndarray  # uint8 (size, size, 3)
    background: np.ndarray  # uint8: the image without the digit and the fragments (same palette)
    digit_mask: np.ndarray  # bool: the digit's visible pixels (its box is their tight box)
    distractor_mask: np.ndarray  # bool: pixels changed by the distractor fragments
    box: Box  # 1-based inclusive
    label: int
    digit: int  # index into sklearn's load_digits()
    photo: str
    png: bytes  # the image as a PALETTE_COLOURS-colour PNG


def load_sources() -> Sources:
    """scikit-learn's digits and sample photographs (both ship inside the scikit-learn package)."""
    from sklearn.datasets import load_digits, load_sample_images

    digits = load_digits()
    photos = load_sample_images()
    return Sources(
        digits=(digits.images / 16.0).astype(np.float32),
        targets=digits.target.astype(np.int64),
        photos=tuple(np.ascontiguousarray(p, dtype=np.uint8) for p in photos.images),
        photo_names=tuple(Path(f).name for f in photos.filenames),
    )


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


def plan_split(pool: np.ndarray, targets: np.ndarray, n: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Labels (balanced over the 10 classes, shuffled) and the source digit of each of ``n`` images.

    Each class cycles through its source digits in a random order, so digits are reused as evenly as
    possible when ``n`` exceeds the pool.
    """
    rng = np.random.default_rng([seed, _SPLIT_CODE[split], 0])
    labels = rng.permutation(np.arange(n) % 10)
    digits = np.empty(n, dtype=np.int64)
    for c in range(10):
        where = np.flatnonzero(labels == c)
        if not len(where):
            continue
        members = pool[targets[pool] == c]
        reps = -(-len(where) // len(members))
        order = np.concatenate([rng.permutation(members) for _ in range(reps)])
        digits[where] = order[: len(where)]
    return labels, digits


def _luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def _colour(rng: np.random.Generator, background_lum: float) -> np.ndarray:
    """A random RGB colour (0..255) whose luminance differs from ``background_lum`` by MIN_CONTRAST or more.

    Bright on a dark background, dark on a light one; white or black when 32 random draws all miss.
    """
    bright = background_lum < 0.5
    for _ in range(32):
        hue, sat = rng.random(), rng.uniform(0.0, 0.9)
        value = rng.uniform(0.75, 1.0) if bright else rng.uniform(0.0, 0.35)
        rgb = np.array(colorsys.hsv_to_rgb(hue, sat, value))
        if abs(float(_luminance(rgb)) - background_lum) >= MIN_CONTRAST:
            return rgb * 255.0
    return np.full(3, 255.0 if bright else 0.0)


def _alpha(intensity: np.ndarray, width: int, height: int, opacity: float) -> np.ndarray:
    """The 0..1 intensity image upscaled bilinearly to ``width × height``, as a soft (anti-aliased) alpha."""
    up = np.asarray(Image.fromarray(intensity.astype(np.float32)).resize((width, height), Image.BILINEAR))
    return np.clip((up - 0.35) / 0.3, 0.0, 1.0) * opacity


def _background(rng: np.random.Generator, sources: Sources, size: int) -> tuple[np.ndarray, str]:
    k = int(rng.integers(len(sources.photos)))
    photo = sources.photos[k]
    h, w = photo.shape[:2]
    side = int(rng.integers(size, min(4 * size, h, w) + 1)) if min(h, w) > size else min(h, w)
    y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
    crop = Image.fromarray(photo[y:y + side, x:x + side]).resize((size, size), Image.BILINEAR)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    pixels = np.asarray(crop, dtype=np.float64)
    mean = pixels.mean(axis=(0, 1))
    faded = mean + (pixels - mean) * rng.uniform(*BACKGROUND_CONTRAST)
    return np.clip(np.rint(faded), 0, 255).astype(np.uint8), sources.photo_names[k]


def _paste(canvas: np.ndarray, alpha: np.ndarray, x: int, y: int, rng: np.random.Generator) -> None:
    """Blend a colour that contrasts with the local background into float ``canvas`` through ``alpha`` at (x, y)."""
    h, w = alpha.shape
    region = canvas[y:y + h, x:x + w]
    under = alpha > 0
    local = float(_luminance(region[under]).mean()) / 255.0 if under.any() else 0.5
    colour = _colour(rng, local)
    canvas[y:y + h, x:x + w] = region * (1.0 - alpha[..., None]) + colour * alpha[..., None]


def _bbox(mask: np.ndarray) -> Box:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return Box(int(cols[0]) + 1, int(rows[0]) + 1, int(cols[-1]) + 1, int(rows[-1]) + 1)


def _to_palette(composite: np.ndarray, background: np.ndarray) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """The composite as a PALETTE_COLOURS-colour image, and both it and the background mapped to that palette.

    Both go through the same nearest-colour mapping (no dithering), so pixels the digit and the fragments
    did not touch are identical in the two, and a pixel is *visible* exactly when the two differ.
    """
    rgb = Image.fromarray(np.clip(np.rint(composite), 0, 255).astype(np.uint8))
    palette = rgb.quantize(PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image = rgb.quantize(palette=palette, dither=Image.Dither.NONE)
    plain = Image.fromarray(background).quantize(palette=palette, dither=Image.Dither.NONE)
    return image, np.asarray(image.convert("RGB")), np.asarray(plain.convert("RGB"))


def _fragments(sources: Sources, pool: np.ndarray, size: int, keep_out: tuple[int, int, int, int],
               rng: np.random.Generator) -> list[tuple[np.ndarray, int, int]]:
    """1-2 small fragments of other digits as ``(alpha, x, y)``, 2 pixels or more away from ``keep_out``."""
    x0, y0, x1, y1 = keep_out  # 0-based, exclusive end
    out = []
    for _ in range(int(rng.integers(1, 3))):
        frag = sources.digits[int(rng.choice(pool))]
        fh, fw = (int(v) for v in rng.integers(3, 6, size=2))
        r0, c0 = int(rng.integers(0, 9 - fh)), int(rng.integers(0, 9 - fw))
        part = frag[r0:r0 + fh, c0:c0 + fw]
        if part.max() < 0.5:  # an empty corner: nothing to show
            continue
        scale = rng.uniform(*FRAGMENT_SCALE) * size / 64
        pw, ph = max(2, round(fw * scale)), max(2, round(fh * scale))
        alpha = _alpha(part, pw, ph, rng.uniform(0.7, 1.0))
        for _ in range(32):
            fx, fy = int(rng.integers(size - pw + 1)), int(rng.integers(size - ph + 1))
            if fx + pw + 2 <= x0 or fx >= x1 + 2 or fy + ph + 2 <= y0 or fy >= y1 + 2:
                out.append((alpha, fx, fy))
                break
    return out


def render_sample(sources: Sources, digit: int, fragment_pool: np.ndarray, size: int,
                  rng: np.random.Generator) -> Sample:
    """Render one image: a background crop, the digit, and 1-2 distractor fragments outside the digit's rectangle."""
    background, photo = _background(rng, sources, size)
    lo, hi = (max(8, round(f * size)) for f in DIGIT_SIDE)
    for _ in range(16):  # a digit that ends up (nearly) invisible against its background is redrawn (rare)
        height = int(rng.integers(lo, hi + 1))
        width = min(size, max(6, round(height * rng.uniform(*ASPECT))))
        alpha = _alpha(sources.digits[digit], width, height, rng.uniform(0.8, 1.0))
        x, y = int(rng.integers(size - width + 1)), int(rng.integers(size - height + 1))
        composite = background.astype(np.float64)
        _paste(composite, alpha, x, y, rng)
        fragments = _fragments(sources, fragment_pool, size, (x, y, x + width, y + height), rng)
        for falpha, fx, fy in fragments:
            _paste(composite, falpha, fx, fy, rng)
        encoded, image, plain = _to_palette(composite, background)
        changed = (image != plain).any(axis=-1)
        inside = np.zeros((size, size), dtype=bool)
        inside[y:y + height, x:x + width] = True
        digit_mask = changed & inside
        if digit_mask.sum() >= 8:
            break
    else:
        raise CamkitError(f"cluttered-digits: could not render digit {digit} visibly")
    buffer = io.BytesIO()
    encoded.save(buffer, format="PNG", compress_level=9)  # no metadata chunks: equal pixels, equal bytes
    return Sample(image, plain, digit_mask, changed & ~inside, _bbox(digit_mask), int(sources.targets[digit]),
                  digit, photo, buffer.getvalue())


def sample_rng(seed: int, split: str, i: int) -> np.random.Generator:
    """The random stream image ``i`` of ``split`` is rendered from."""
    return np.random.default_rng([seed, _SPLIT_CODE[split], 1, i])


def voc_xml(split: str, filename: str, size: int, label: str, box: Box) -> str:
    """A PASCAL-VOC annotation with one object; ``read_voc_xml`` reads it."""
    return (
        f"<annotation>\n  <folder>{split}</folder>\n  <filename>{filename}</filename>\n"
        f"  <size><width>{size}</width><height>{size}</height><depth>3</depth></size>\n"
        f"  <object>\n    <name>{label}</name>\n    <difficult>0</difficult>\n"
        f"    <bndbox><xmin>{box.xmin}</xmin><ymin>{box.ymin}</ymin><xmax>{box.xmax}</xmax><ymax>{box.ymax}</ymax>"
        "</bndbox>\n  </object>\n</annotation>\n"
    )


def check_options(name: str, *, seed: int, n_train: int, n_test: int, size: int) -> None:
    """CamkitError naming the option for an unknown benchmark or an out-of-range value."""
    if name not in BENCHMARKS:
        raise CamkitError(f"make-benchmark: unknown benchmark {name!r}; choose one of {', '.join(BENCHMARKS)}")
    if seed < 0:
        raise CamkitError(f"--seed must be at least 0, got {seed}")
    for option, n in (("--n-train", n_train), ("--n-test", n_test)):
        if not 1 <= n <= MAX_IMAGES:
            raise CamkitError(f"{option} must be between 1 and {MAX_IMAGES}, got {n}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise CamkitError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size} "
                          f"(digits are drawn {DIGIT_SIDE[0]:g}..{DIGIT_SIDE[1]:g} of the side)")


def _check_out(out: Path) -> None:
    """Refuse to replace anything but an earlier benchmark folder (``--out data`` must not wipe data/)."""
    if out.exists() and not out.is_dir():
        raise CamkitError(f"--out: {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "benchmark.json").is_file():
        raise CamkitError(f"--out: {out} is a non-empty folder that holds no benchmark (no benchmark.json); "
                          "choose a new or an empty folder, e.g. data/cluttered_digits")


def _versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in ("scikit-learn", "numpy", "pillow")}


def _command(out: Path, seed: int, n_train: int, n_test: int, size: int) -> str:
    where = out.as_posix() if not out.is_absolute() else "DIR"
    return (f"camkit make-benchmark cluttered-digits --seed {seed} --out {where} "
            f"--n-train {n_train} --n-test {n_test} --size {size}")


def _readme(info: dict, counts: dict[str, list[int]]) -> str:
    size = info["size"]
    lo, hi = (max(8, round(f * size)) for f in DIGIT_SIDE)
    fade = "..".join(f"{c:g}" for c in BACKGROUND_CONTRAST)
    rows = "\n".join(f"| {split} | {sum(counts[split])} | {' / '.join(str(c) for c in counts[split])} | "
                     f"{info['source_digits'][split]} |" for split in SPLITS)
    return f"""# cluttered-digits

A weak-localization benchmark built by camkit from real data that ships with scikit-learn:
its 1,797 handwritten digits (`sklearn.datasets.load_digits`, 8×8; UCI "Optical Recognition of
Handwritten Digits", CC BY 4.0) pasted onto random crops of its two sample photographs
(`load_sample_images`: china.jpg and flower.jpg; Flickr, CC BY 2.0) as clutter.

Regenerate it exactly (same software versions) with:

```sh
{info['command']}
```

Seed {info['seed']}; {size}×{size} PNG images (decoded as RGB); classes `0`..`9` (the folder names).

| split | images | per class 0..9 | source digits |
|---|---|---|---|
{rows}

The digits are split once, stratified by class, into disjoint train and test source digits
({1 - TEST_FRACTION:.0%} / {TEST_FRACTION:.0%}): no test image uses a train digit, not even as a fragment.

Each image:

- background: a random square crop of one photograph ({size}..{4 * size} px a side), resized bilinearly,
  flipped at random, its contrast around its mean colour scaled by {fade};
- the digit: upscaled bilinearly to {lo}..{hi} px high (width {ASPECT[0]:g}..{ASPECT[1]:g} of the height) at a
  random position, blended in through an anti-aliased alpha from its intensity, in a random colour whose
  luminance differs from the background under it by at least {MIN_CONTRAST:g} (so bright or dark);
- distractors: one or two much smaller fragments of other digits of the same split (3..5 × 3..5 of their
  8×8 pixels), at least 2 px outside the digit's rectangle;
- stored as a PNG with its own {PALETTE_COLOURS}-colour palette (nearest colour, no dithering) to keep the
  folder small.

Annotations: `annotations/<split>/<image stem>.xml` (PASCAL VOC, one `<object>` whose `<name>` is the
class folder name) and `annotations/<split>.csv` (`image,label,xmin,ymin,xmax,ymax,width,height,digit`;
`digit` is the index into `load_digits()`). Boxes are 1-based and inclusive: the tight box of the digit's
visible pixels (those whose colour differs from the same image rendered without the digit), not the paste
rectangle.

Built with scikit-learn {info['versions']['scikit-learn']}, numpy {info['versions']['numpy']}, Pillow
{info['versions']['pillow']}; other versions may resample or decode the photographs slightly differently.
"""


def make_cluttered_digits(out: Path | str, *, seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST,
                          size: int = 64, progress: bool = True) -> dict:
    """Write the cluttered-digits benchmark to ``out`` (replaced atomically); returns its ``benchmark.json``."""
    check_options("cluttered-digits", seed=seed, n_train=n_train, n_test=n_test, size=size)
    out = Path(out)
    _check_out(out)
    from tqdm.auto import tqdm

    sources = load_sources()
    pools = split_digits(sources.targets, seed)
    plans = {split: plan_split(pools[split], sources.targets, n, seed, split)
             for split, n in (("train", n_train), ("test", n_test))}
    counts = {split: np.bincount(plans[split][0], minlength=10).tolist() for split in SPLITS}
    info = {
        "benchmark": "cluttered-digits",
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "size": size,
        "n_train": n_train,
        "n_test": n_test,
        "classes": list(CLASSES),
        "counts": {split: dict(zip(CLASSES, counts[split], strict=True)) for split in SPLITS},
        "source_digits": {split: len(pools[split]) for split in SPLITS},
        "photos": list(sources.photo_names),
        "command": _command(out, seed, n_train, n_test, size),
        "versions": _versions(),
    }

    def fill(tmp: Path) -> None:
        with tqdm(total=n_train + n_test, desc="cluttered-digits", unit="image", disable=not progress) as bar:
            for split in SPLITS:
                labels, digits = plans[split]
                width = max(4, len(str(len(labels) - 1)))
                (tmp / "annotations" / split).mkdir(parents=True)
                for c in sorted(set(labels.tolist())):
                    (tmp / split / CLASSES[c]).mkdir(parents=True)
                rows = []
                for i, (label, digit) in enumerate(zip(labels.tolist(), digits.tolist(), strict=True)):
                    sample = render_sample(sources, digit, pools[split], size, sample_rng(seed, split, i))
                    stem = f"{split}_{i:0{width}d}"
                    name = CLASSES[label]
                    (tmp / split / name / f"{stem}.png").write_bytes(sample.png)
                    (tmp / "annotations" / split / f"{stem}.xml").write_text(
                        voc_xml(split, f"{stem}.png", size, name, sample.box))
                    rows.append([f"{split}/{name}/{stem}.png", name, *sample.box.as_tuple(), size, size, digit])
                    bar.update(1)
                with open(tmp / "annotations" / f"{split}.csv", "w", newline="") as f:
                    writer = csv.writer(f, lineterminator="\n")
                    writer.writerow(["image", "label", "xmin", "ymin", "xmax", "ymax", "width", "height", "digit"])
                    writer.writerows(rows)
        (tmp / "benchmark.json").write_text(json.dumps(info, indent=2) + "\n")
        (tmp / "README.md").write_text(_readme(info, counts))

    replace_dir_atomically(out, fill)
    return info


def make_benchmark(name: str, out: Path | str, *, seed: int = 0, n_train: int = N_TRAIN, n_test: int = N_TEST,
                   size: int = 64, progress: bool = True) -> dict:
    """Build a named benchmark (see ``BENCHMARKS``) into ``out``."""
    check_options(name, seed=seed, n_train=n_train, n_test=n_test, size=size)
    return make_cluttered_digits(out, seed=seed, n_train=n_train, n_test=n_test, size=size, progress=progress)


def source_digits(folder: Path | str, splits: Sequence[str] = SPLITS) -> dict[str, set[int]]:
    """The ``load_digits`` indices each split of a written benchmark uses (from ``annotations/<split>.csv``)."""
    folder = Path(folder)
    used: dict[str, set[int]] = {}
    for split in splits:
        with open(folder / "annotations" / f"{split}.csv", newline="") as f:
            used[split] = {int(row["digit"]) for row in csv.DictReader(f)}
    return used
