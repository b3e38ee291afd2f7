"""Rendering of the cluttered-digits images: scikit-learn's digits pasted onto crops of its sample photographs.

An image is a background crop of one of scikit-learn's two sample photographs (``china.jpg``, ``flower.jpg``),
its contrast faded, with one or more digits (8×8, values 0..16) upscaled to a random size and aspect at random,
pairwise separated positions, in colours that contrast with the background under them, and one or two much
smaller fragments of other digits as distractors outside every digit's rectangle. The image is stored as a PNG
with its own ``PALETTE_COLOURS``-colour palette; a digit's box is the tight box of its **visible** pixels (those
inside its rectangle whose colour differs from the same image rendered without the digits and fragments).

Sizes are fractions of the image side, chosen in cells of the benchmark model's CAM grid (``GRID`` × ``GRID``
cells over the image, whatever its side): a digit is ``DIGIT_CELLS`` cells high before its blank margins are cut.
"""

from __future__ import annotations

import colorsys
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from camkit.data.boxes import Box
from camkit.errors import CamkitError

GRID = 16  # the benchmark model's CAM grid: 16×16 cells (its `features` layer at stride 4 of its 64×64 input)
DIGIT_CELLS = (5.0, 10.0)  # a digit's pasted height, in cells of the grid (20..40 px at 64×64)
ASPECT = (0.9, 1.2)  # pasted width / height (wider than the 8×8 square: the digits leave blank columns)
GAP_CELLS = 1.0  # two digits' rectangles are at least this far apart (so their boxes never overlap)
FRAGMENT_SCALE = (0.9, 1.6)  # distractor pixels per 8×8 source pixel at 64×64 (a digit has 2.5..5)
BACKGROUND_CONTRAST = (0.25, 0.5)  # the crop's contrast around its mean colour is scaled by this
MIN_CONTRAST = 0.5  # |luminance(colour) - luminance(local background)|, in 0..1
PALETTE_COLOURS = 64  # per image: about a third of the bytes of full RGB, hardly visible at 64×64
MIN_VISIBLE = 8  # a digit with fewer visible pixels is redrawn
Rect = tuple[int, int, int, int]  # x, y (0-based), width, height


@dataclass(frozen=True)
class Sources:
    """The real data a benchmark is built from."""

    digits: np.ndarray  # (1797, 8, 8) float32 in 0..1
    targets: np.ndarray  # (1797,) int64
    photos: tuple[np.ndarray, ...]  # uint8 (H, W, 3)
    photo_names: tuple[str, ...]


@dataclass(frozen=True)
class Planted:
    """One digit of an image: its class, its index into ``load_digits()``, its visible pixels and their box."""

    label: int
    digit: int
    mask: np.ndarray  # bool (size, size)
    box: Box  # 1-based inclusive: the tight box of ``mask``


@dataclass(frozen=True)
class Sample:
    """One rendered image with what it was made of (for tests and figures)."""

    image: np.ndarray  # uint8 (size, size, 3)
    background: np.ndarray  # uint8: the image without the digits and the fragments (same palette)
    objects: tuple[Planted, ...]  # in the order of the digits asked for
    distractor_mask: np.ndarray  # bool: pixels changed by the distractor fragments
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


def digit_heights(size: int) -> tuple[int, int]:
    """The range of pasted digit heights in pixels at image side ``size`` (``DIGIT_CELLS`` of the grid)."""
    low, high = (max(8, round(cells * size / GRID)) for cells in DIGIT_CELLS)
    return low, high


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


def tight_box(mask: np.ndarray) -> Box:
    """The 1-based inclusive box of a non-empty boolean mask's true pixels."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return Box(int(cols[0]) + 1, int(rows[0]) + 1, int(cols[-1]) + 1, int(rows[-1]) + 1)


def _to_palette(composite: np.ndarray, background: np.ndarray) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """The composite as a PALETTE_COLOURS-colour image, and both it and the background mapped to that palette.

    Both go through the same nearest-colour mapping (no dithering), so pixels the digits and the fragments
    did not touch are identical in the two, and a pixel is *visible* exactly when the two differ.
    """
    rgb = Image.fromarray(np.clip(np.rint(composite), 0, 255).astype(np.uint8))
    palette = rgb.quantize(PALETTE_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    image = rgb.quantize(palette=palette, dither=Image.Dither.NONE)
    plain = Image.fromarray(background).quantize(palette=palette, dither=Image.Dither.NONE)
    return image, np.asarray(image.convert("RGB")), np.asarray(plain.convert("RGB"))


def apart(a: Rect, b: Rect, gap: int) -> bool:
    """Whether rectangles ``a`` and ``b`` are separated by ``gap`` pixels or more along x or along y."""
    (ax, ay, aw, ah), (bx, by, bw, bh) = a, b
    return ax + aw + gap <= bx or bx + bw + gap <= ax or ay + ah + gap <= by or by + bh + gap <= ay


def _layout(n: int, size: int, rng: np.random.Generator) -> list[Rect]:
    """``n`` digit rectangles at random sizes and positions, pairwise ``GAP_CELLS`` apart (sizes are redrawn
    when 32 positions of the last one all fail)."""
    lo, hi = digit_heights(size)
    gap = max(2, round(GAP_CELLS * size / GRID))
    for _ in range(256):
        rects: list[Rect] = []
        for _ in range(n):
            height = int(rng.integers(lo, hi + 1))
            width = min(size, max(6, round(height * rng.uniform(*ASPECT))))
            for _ in range(32):
                rect = (int(rng.integers(size - width + 1)), int(rng.integers(size - height + 1)), width, height)
                if all(apart(rect, other, gap) for other in rects):
                    rects.append(rect)
                    break
            else:
                break
        if len(rects) == n:
            return rects
    raise CamkitError(f"cluttered-digits: could not place {n} digits {gap} px apart on a {size}x{size} image")


def _fragments(sources: Sources, pool: np.ndarray, size: int, keep_out: Sequence[Rect],
               rng: np.random.Generator) -> list[tuple[np.ndarray, int, int]]:
    """1-2 small fragments of other digits as ``(alpha, x, y)``, 2 pixels or more away from every ``keep_out``."""
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
            if all(apart((fx, fy, pw, ph), rect, 2) for rect in keep_out):
                out.append((alpha, fx, fy))
                break
    return out


def _inside(rect: Rect, size: int) -> np.ndarray:
    x, y, w, h = rect
    mask = np.zeros((size, size), dtype=bool)
    mask[y:y + h, x:x + w] = True
    return mask


def render_sample(sources: Sources, digits: Sequence[int], fragment_pool: np.ndarray, size: int,
                  rng: np.random.Generator) -> Sample:
    """Render one image: a background crop, ``digits`` (indices into ``load_digits()``) pairwise apart, and 1-2
    distractor fragments outside every digit's rectangle. A layout where a digit ends up (nearly) invisible
    against its background is redrawn (rare)."""
    background, photo = _background(rng, sources, size)
    for _ in range(16):
        rects = _layout(len(digits), size, rng)
        composite = background.astype(np.float64)
        for digit, (x, y, w, h) in zip(digits, rects, strict=True):
            _paste(composite, _alpha(sources.digits[digit], w, h, rng.uniform(0.8, 1.0)), x, y, rng)
        for falpha, fx, fy in _fragments(sources, fragment_pool, size, rects, rng):
            _paste(composite, falpha, fx, fy, rng)
        encoded, image, plain = _to_palette(composite, background)
        changed = (image != plain).any(axis=-1)
        insides = [_inside(rect, size) for rect in rects]
        masks = [changed & inside for inside in insides]
        if min(int(m.sum()) for m in masks) >= MIN_VISIBLE:
            break
    else:
        raise CamkitError(f"cluttered-digits: could not render digits {list(digits)} visibly")
    buffer = io.BytesIO()
    encoded.save(buffer, format="PNG", compress_level=9)  # no metadata chunks: equal pixels, equal bytes
    objects = tuple(Planted(int(sources.targets[d]), int(d), m, tight_box(m))
                    for d, m in zip(digits, masks, strict=True))
    return Sample(image, plain, objects, changed & ~np.logical_or.reduce(insides), photo, buffer.getvalue())
