"""The random baseline (method ``random-map``): a map of independent uniform values, one per position.

    M(p) ~ U[0, 1) i.i.d. over the positions (pixels, time steps) of each sample,

drawn from ``numpy.random.default_rng([seed, crc32(sample)])`` (``seed`` default 0; the CRC of the sample's float32
bytes), so a sample gets the same map alone or in any batch, and different samples different maps. The same map
for every class (:mod:`camkit.methods.baseline`). It is the chance level of every metric: a faithfulness metric
ranks positions in a random order (deletion, insertion, ROAD), and a localization box comes from whichever
positions pass the threshold. ``cells`` (default None: one value per position) draws the values on a coarser grid
of ``cells`` per side instead, upsampled bilinearly like a CAM, for a random map as smooth as a layer's.
"""

from __future__ import annotations

import numbers
import zlib

import numpy as np

from camkit.errors import CamkitError
from camkit.methods.base import register_method
from camkit.methods.baseline import BaselineMap
from camkit.methods.mapmath import upsample
from camkit.methods.scorecam import positive_int


def sample_stream(seed: int, sample: np.ndarray) -> np.random.Generator:
    """The random stream of one sample: from ``seed`` and the CRC-32 of its float32 bytes."""
    return np.random.default_rng([seed, zlib.crc32(np.ascontiguousarray(sample, np.float32).tobytes())])


@register_method("random-map")
class RandomMap(BaselineMap):
    """Independent uniform values per position (or per cell of a ``cells`` grid), seeded by the sample."""

    title = "random map (baseline)"

    def __init__(self, seed: int = 0, cells: int | None = None) -> None:
        super().__init__()
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise CamkitError(f"seed: expected an integer of at least 0, got {seed!r}")
        self.seed, self.cells = int(seed), positive_int("cells", cells, allow_none=True)

    def baseline_maps(self, inputs: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
        grid = size if self.cells is None else tuple(min(self.cells, n) for n in size)
        maps = np.stack([sample_stream(self.seed, x).random(grid) for x in inputs]).astype(np.float32)
        return maps if grid == size else np.asarray(upsample(maps, size))
