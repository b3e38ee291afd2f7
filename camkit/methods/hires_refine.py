"""High-Resolution CAM post-processing: low-res CAM + high-res CAM -> refined map (one image, NumPy/SciPy).

Tagaris et al., ICIP 2019 (code: ``postprocessing.pipeline`` of high-res-mapping). With ``low`` the low-res
CAM upsampled to the input size and ``high`` the high-res CAM, both (H, W):

1. ``G`` = Sobel gradient magnitude (``scipy.ndimage.sobel`` on both axes, ``hypot``) of the 5×5 box blur
   (``scipy.ndimage.uniform_filter``) of the min-max normalised ``high``, min-max normalised.
2. ROI = ``low`` above its 85th percentile.
3. Seeds = the ``n`` highest pixels of ``low`` (``n = round(sqrt(side))``, the original's rule: 15 at 224, 8 at
   64; ``side`` = geometric mean of H and W; ties broken in raster order).
4. Region growing: from the seeds, 4-connected (``scipy.ndimage.binary_propagation``, as SimpleITK's
   ``ConnectedThreshold``) over the pixels with ``P25 <= G <= P75``, the percentiles of ``G`` inside the ROI,
   **restricted to the ROI** (the original grows over the whole image; restricting it keeps the region where
   the classifier looks). Seeds outside that band do not grow (as in ``ConnectedThreshold``).
5. As the original, the strong edges of the ROI (``G >= P75``) are added to the region, then holes smaller than
   ``hole_area`` pixels are filled (``skimage.morphology.remove_small_holes``); ``hole_area`` is the original's
   256 at 224×224, scaled with the pixel count: ``round(256 · H·W / 224²)`` (21 at 64×64), at least 1.
6. ``blend = 0.5 · norm(region) + 0.5 · norm(low)`` (min-max; a constant map normalises to 0).
7. Keep the top 15 %: the ``round(0.15 · H·W)`` largest pixels of ``blend`` (ties in raster order) keep their
   value, the rest become 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import remove_small_holes

ROI_PERCENTILE = 85.0
BAND = (25.0, 75.0)
BLUR_SIZE = 5
REFERENCE_SIDE = 224
REFERENCE_HOLE_AREA = 256
KEEP_FRACTION = 0.15
ALPHA = 0.5


@dataclass(frozen=True)
class Refined:
    """Every step of :func:`refine` for one image, all (H, W)."""

    gradient: np.ndarray  # G, in [0, 1]
    roi: np.ndarray  # bool
    seeds: np.ndarray  # bool
    region: np.ndarray  # bool, grown region (inside band and ROI)
    bounds: tuple[float, float]  # (P25, P75) of G in the ROI
    filled: np.ndarray  # bool, region + ROI edges, small holes filled
    blend: np.ndarray  # 0.5 norm(filled) + 0.5 norm(low), in [0, 1]
    refined: np.ndarray  # blend with only its top KEEP_FRACTION pixels kept


def minmax(x: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1]; a constant array becomes zeros."""
    x = np.asarray(x, dtype=np.float64)
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x)


def n_seeds(shape: tuple[int, int]) -> int:
    """The original's ``round(sqrt(image side))`` seeds (15 at 224), with side = sqrt(H·W)."""
    return max(1, round(np.sqrt(np.sqrt(shape[0] * shape[1]))))


def hole_area(shape: tuple[int, int]) -> int:
    """256 pixels at 224×224, scaled with the pixel count (at least 1)."""
    return max(1, round(REFERENCE_HOLE_AREA * shape[0] * shape[1] / REFERENCE_SIDE**2))


def blurred_gradient(high: np.ndarray, size: int = BLUR_SIZE) -> np.ndarray:
    """Sobel magnitude of the box-blurred, min-max normalised map, min-max normalised."""
    blurred = ndimage.uniform_filter(minmax(high), size=size, mode="nearest")
    return minmax(np.hypot(ndimage.sobel(blurred, axis=0, mode="nearest"),
                           ndimage.sobel(blurred, axis=1, mode="nearest")))


def roi_mask(low: np.ndarray, percentile: float = ROI_PERCENTILE) -> np.ndarray:
    """Pixels of ``low`` strictly above its ``percentile``-th percentile."""
    return low > np.percentile(low, percentile)


def top_mask(values: np.ndarray, count: int) -> np.ndarray:
    """The ``count`` largest pixels (ties in raster order) as a boolean mask."""
    flat = np.asarray(values).ravel()
    mask = np.zeros(flat.size, dtype=bool)
    mask[np.argsort(-flat, kind="stable")[: max(0, min(count, flat.size))]] = True
    return mask.reshape(np.shape(values))


def grow_region(gradient: np.ndarray, seeds: np.ndarray, roi: np.ndarray,
                band: tuple[float, float] = BAND) -> tuple[np.ndarray, tuple[float, float]]:
    """4-connected region grown from ``seeds`` over ROI pixels whose gradient lies in the band's percentiles."""
    if not roi.any():
        return np.zeros_like(roi, dtype=bool), (0.0, 0.0)
    lower, upper = (float(v) for v in np.percentile(gradient[roi], band))
    allowed = roi & (gradient >= lower) & (gradient <= upper)
    return ndimage.binary_propagation(seeds & allowed, mask=allowed), (lower, upper)


def fill_holes(mask: np.ndarray, area: int) -> np.ndarray:
    """Fill holes (4-connected background enclaves) of fewer than ``area`` pixels; larger holes stay."""
    mask = np.asarray(mask, dtype=bool)
    if area <= 1:
        return mask.copy()
    try:  # scikit-image >= 0.26: holes of up to max_size pixels
        return remove_small_holes(mask, max_size=area - 1)
    except TypeError:  # older: holes strictly smaller than area_threshold
        return remove_small_holes(mask, area_threshold=area)


def keep_top(blend: np.ndarray, fraction: float = KEEP_FRACTION) -> np.ndarray:
    """``blend`` where it is among its ``round(fraction · size)`` largest pixels, 0 elsewhere."""
    return np.where(top_mask(blend, round(fraction * blend.size)), blend, 0.0)


def refine(low: np.ndarray, high: np.ndarray) -> Refined:
    """The whole pipeline for one image; ``low`` (upsampled low-res CAM) and ``high`` are (H, W)."""
    low, high = np.asarray(low, np.float64), np.asarray(high, np.float64)
    if low.shape != high.shape or low.ndim != 2:
        raise ValueError(f"refine needs two maps of the same (H, W) shape, got {low.shape} and {high.shape}")
    gradient = blurred_gradient(high)
    roi = roi_mask(low)
    seeds = top_mask(low, n_seeds(low.shape))
    region, (lower, upper) = grow_region(gradient, seeds, roi)
    filled = fill_holes(region | (roi & (gradient >= upper)), hole_area(low.shape))
    blend = ALPHA * minmax(filled.astype(np.float64)) + (1 - ALPHA) * minmax(low)
    return Refined(gradient, roi, seeds, region, (lower, upper), filled, blend, keep_top(blend))
