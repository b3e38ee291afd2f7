"""The centre-Gaussian baseline (method ``center-gaussian``): Choe, Oh, Lee, Chun, Akata, Shim, "Evaluating Weakly
Supervised Object Localization Methods Right", CVPR 2020, whose "center-gaussian baseline" scores every image with
the same Gaussian map centred on the image, to show what a localization metric gives a map that sees nothing.

    M(p) = exp(−Σ_d (p_d − c_d)² / (2 (σ · n_d)²)),   c_d = (n_d − 1) / 2,

over the positions ``p`` of an input of side lengths ``n_d`` (an image's rows and columns, a series' time steps),
``σ`` = ``sigma`` (default 0.25) a fraction of each side, so the map is isotropic on square images and stretched
with the sides on others. The same map for every input and class (:mod:`camkit.methods.baseline`). Choe et al.
do not state their σ; with the default the box at the threshold ``τ`` (a fraction of the max) spans
``2 σ √(−2 ln τ)`` of each side: 0.97 at Grad-CAM's 0.15, 0.59 at 0.5, so MaxBoxAcc's sweep over ``τ`` reaches
every centred box of up to the whole input.
"""

from __future__ import annotations

import numbers

import numpy as np

from camkit.errors import CamkitError
from camkit.methods.base import register_method
from camkit.methods.baseline import BaselineMap


def center_gaussian(size: tuple[int, ...], sigma: float) -> np.ndarray:
    """(*size) the Gaussian of the module docstring, peak 1 at the centre."""
    exponent = np.zeros(size)
    for axis, n in enumerate(size):
        offset = (np.arange(n) - (n - 1) / 2) / (sigma * n)
        exponent = exponent + (offset**2 / 2).reshape([-1 if a == axis else 1 for a in range(len(size))])
    return np.exp(-exponent)


@register_method("center-gaussian")
class CenterGaussian(BaselineMap):
    """A Gaussian centred on the input, σ = ``sigma`` of each side; the same for every input and class."""

    title = "centre Gaussian (baseline)"

    def __init__(self, sigma: float = 0.25) -> None:
        super().__init__()
        if isinstance(sigma, bool) or not isinstance(sigma, numbers.Real) or not 0 < sigma < np.inf:
            raise CamkitError(f"sigma: expected the Gaussian's σ as a positive fraction of each side, got {sigma!r}")
        self.sigma = float(sigma)

    def baseline_maps(self, inputs: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
        return np.broadcast_to(center_gaussian(size, self.sigma), (len(inputs), *size)).astype(np.float32)
