"""Boxes from class activation maps, in the original image's pixel coordinates.

Zhou et al., CVPR 2016, "Learning Deep Features for Discriminative Localization";
Selvaraju et al., ICCV 2017, "Grad-CAM"): the map is brought back to the original image
(:func:`undo_geometry`), pixels ``>= threshold × max`` are kept (0.20 for CAM, 0.15 for Grad-CAM
methods), the largest 8-connected component is taken (``scipy.ndimage.label`` with a 3×3 structure;
on a size tie the component met first in raster order) and its bounding box is returned in 1-based
inclusive pixel coordinates of the original image. **Fallback:** a map with no positive value (all
zero) gives the whole image ``(1, 1, W, H)``.

Geometry: the model saw the original ``H × W`` image either resized to the input size
(``mode="resize"``) or resized so that its shorter side is ``shorter`` (default: the input size ``S``)
and centre-cropped to ``S × S`` (``mode="resize_shorter_centre_crop"``, torchvision conventions: longer
side ``int(shorter × long / short)``, crop offset ``int(round((resized − S) / 2))``). A map of any size
covers the model input; :func:`undo_geometry` samples it at the centres of the original pixels with
half-pixel bilinear interpolation (``scipy.ndimage.map_coordinates``, order 1, edge values extended;
for ``mode="resize"`` this equals ``skimage.transform.resize(order=1, mode="edge", anti_aliasing=False)``
and Keras/TF ``tf.image.resize(method="bilinear")``) and sets the pixels whose centres fall outside the
crop window to 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from camkit.data.boxes import Box
from camkit.errors import CamkitError

GRADCAM_THRESHOLD = 0.15
CAM_THRESHOLD = 0.20
MODES = ("resize", "resize_shorter_centre_crop")
_EIGHT = np.ones((3, 3), dtype=bool)



@dataclass(frozen=True)
class Geometry:
    """How one original ``height × width`` image became the model input (see the module docstring)."""

    height: int
    width: int
    input_size: int | tuple[int, int]
    mode: str = "resize"
    shorter: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise CamkitError(f"geometry mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        h, w = self.input_hw
        if min(self.height, self.width, h, w) < 1:
            raise CamkitError(f"geometry sizes must be positive: image {self.height}x{self.width}, input {h}x{w}")
        if self.mode == "resize":
            if self.shorter is not None:
                raise CamkitError("geometry option shorter only applies to mode resize_shorter_centre_crop")
        elif h != w:
            raise CamkitError(f"geometry mode resize_shorter_centre_crop needs a square input, got {h}x{w}")
        elif self.shorter is not None and self.shorter < h:
            raise CamkitError(f"geometry option shorter ({self.shorter}) is smaller than the crop ({h})")

    @property
    def input_hw(self) -> tuple[int, int]:
        size = self.input_size
        return (int(size), int(size)) if isinstance(size, int | np.integer) else (int(size[0]), int(size[1]))

    def layout(self) -> tuple[int, int, int, int]:
        """``(resized height, resized width, crop top, crop left)`` of the model input."""
        h, w = self.input_hw
        if self.mode == "resize":
            return h, w, 0, 0
        target = self.shorter or h
        if self.height <= self.width:
            rh, rw = target, int(target * self.width / self.height)
        else:
            rh, rw = int(target * self.height / self.width), target
        return rh, rw, round((rh - h) / 2.0), round((rw - w) / 2.0)  # Python round, as torchvision


@dataclass(frozen=True)
class Preprocessing:
    """The resize rule of a model, applied to each image's size by :meth:`geometry`."""

    input_size: int | tuple[int, int]
    mode: str = "resize"
    shorter: int | None = None

    def geometry(self, height: int, width: int) -> Geometry:
        return Geometry(height, width, self.input_size, self.mode, self.shorter)


GeometrySpec = Mapping[str, Geometry] | Geometry | Preprocessing | None


def as_map(map2d: Any) -> np.ndarray:
    m = np.asarray(map2d, dtype=np.float64)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"expected a non-empty 2-D map, got shape {m.shape}")
    if not np.isfinite(m).all():
        raise ValueError("the map contains NaN or infinite values")
    return m


def _axis(n: int, resized: int, offset: int, crop: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Map sample positions of the ``n`` original pixel centres along one axis, and which lie in the crop."""
    in_crop = (np.arange(n) + 0.5) * resized / n - offset
    return in_crop * m / crop - 0.5, (in_crop >= 0) & (in_crop < crop)


def undo_geometry(map2d: Any, geometry: Geometry) -> np.ndarray:
    """The map (any size, covering the model input) at the original ``height × width`` of the image."""
    m = as_map(map2d)
    rh, rw, top, left = geometry.layout()
    ih, iw = geometry.input_hw
    rows, in_rows = _axis(geometry.height, rh, top, ih, m.shape[0])
    cols, in_cols = _axis(geometry.width, rw, left, iw, m.shape[1])
    out = ndimage.map_coordinates(m, np.meshgrid(rows, cols, indexing="ij"), order=1, mode="nearest")
    out[~(in_rows[:, None] & in_cols[None, :])] = 0.0
    return out


def component_boxes(m: np.ndarray, threshold: float, largest_only: bool) -> list[Box]:
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be a fraction of the maximum in [0, 1], got {threshold}")
    peak = m.max()
    if not peak > 0:
        return [Box(1, 1, m.shape[1], m.shape[0])]
    mask = m >= threshold * peak
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    y0, x0 = int(rows[0]), int(cols[0])  # label only the mask's bounding window (the same components, faster)
    labels, n = ndimage.label(mask[y0:rows[-1] + 1, x0:cols[-1] + 1], structure=_EIGHT)
    slices = ndimage.find_objects(labels)
    if largest_only:
        slices = [slices[int(np.argmax(np.bincount(labels.ravel(), minlength=n + 1)[1:]))]]
    return [Box(x0 + sx.start + 1, y0 + sy.start + 1, x0 + sx.stop, y0 + sy.stop) for sy, sx in slices]


def box_from_map(map2d: Any, geometry: Geometry | None = None, threshold: float = GRADCAM_THRESHOLD) -> Box:
    """The box of the largest 8-connected component of ``map >= threshold × max`` in original coordinates.

    ``geometry=None``: the map is already at the original image size. All-zero map -> the whole image.
    """
    m = as_map(map2d) if geometry is None else undo_geometry(map2d, geometry)
    return component_boxes(m, threshold, largest_only=True)[0]


def boxes_from_map(map2d: Any, geometry: Geometry | None = None, threshold: float = GRADCAM_THRESHOLD) -> list[Box]:
    """The boxes of all 8-connected components (raster order), as MaxBoxAccV2 uses them."""
    m = as_map(map2d) if geometry is None else undo_geometry(map2d, geometry)
    return component_boxes(m, threshold, largest_only=False)
