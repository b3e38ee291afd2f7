"""ROAD (metrics ``road-morf``, ``road-lerf``, ``road``): Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent
and Efficient Evaluation Strategy for Attribution Methods", ICML 2022 (RemOve And Debias).

At each percentile ``p`` of ``percentiles`` (default 10, 20, ..., 90) the ``floor(P · p / 100)`` positions (of
P; pixels or time steps, all channels together) first in one order are removed and filled by noisy linear
imputation (:mod:`camkit.metrics.faithfulness.imputation`, noise std ``noise`` = 0.01 in the input's units), and
the explained class's probability is read on the imputed copy: a curve ``c(p)`` over the percentiles.

- ``road-morf``: most relevant first (decreasing map value; ties by position order, ``perturb.ranks``). Lower
  is better: a faithful map removes what the model uses first.
- ``road-lerf``: least relevant first (the same order from its end). Higher is better.
- ``road``: ``LeRF(p) − MoRF(p)`` per percentile. Higher is better.

The paper plots the curves; camkit's single number is the mean of the curve over the percentiles (no area:
the percentiles need not be evenly spaced), and the curve (percent removed on x) is kept for the figure. The
authors' code indexes LeRF by the fraction kept (its ``th_p = p`` removes all but the top p); here every curve
is indexed by the percent removed. Over the default percentiles, symmetric about 50, the mean is the same. The
authors break ties by adding a fixed 1e-4 random field to the normalised map; camkit breaks them by position.

Noise: the copies of each (sample, order) draw from ``numpy.random.default_rng([seed, order, crc32(sample)])``
(order 0 MoRF, 1 LeRF; the CRC of the sample's float32 bytes), over the percentiles in turn, so a sample's score
does not depend on the batch it is scored in and the same ``seed`` gives the same scores.

Cost: one sparse solve per copy (``percentiles`` copies per sample and order; on this CPU about 0.06 s for a
224×224×3 image with half its pixels removed at random, 0.25 s for a removed disc of half the image, 0.5 s at
90 %), then one compiled forward pass per copy (``perturb.copy_probabilities``, ``chunk`` copies at a time,
which also bounds the copies held in memory). ``road`` needs both curves; the curves of the last batch are
kept per model (weakly), keyed by a digest of the model's weights, the inputs, maps and targets, and the
settings, so evaluating all three metrics on a batch computes each curve once. The digest reads the weights
once per metric and batch: about 3 s for VGG16's 553 MB on this (loaded) CPU, against some 290 s of solves for
both curves of 64 images of 224×224.
"""

from __future__ import annotations

import hashlib
import math
import weakref
import zlib
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import keras
import numpy as np

from camkit.metrics.base import register_metric
from camkit.metrics.faithfulness.base import Explained, FaithfulnessMetric, Scores
from camkit.metrics.faithfulness.imputation import NOISE, impute
from camkit.metrics.faithfulness.options import CHUNK_CHECK, SEED_CHECK, Check, increasing_percentiles, real
from camkit.metrics.faithfulness.perturb import CHUNK, copy_probabilities, ranks

PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)
MORF, LERF = 0, 1  # the orders: most / least relevant first
_CURVES: weakref.WeakKeyDictionary[keras.Model, dict[tuple[Any, ...], np.ndarray]] = weakref.WeakKeyDictionary()


def removed_masks(rank: np.ndarray, spatial: tuple[int, ...], percentiles: Sequence[float],
                  order: int) -> np.ndarray:
    """(N, P) ranks -> (N, len(percentiles), *spatial) bool: the positions removed at each percentile."""
    positions = rank.shape[1]
    counts = np.array([int(positions * p // 100) for p in percentiles])
    place = rank if order == MORF else positions - 1 - rank  # the place in the order of removal
    return (place[:, None, :] < counts[None, :, None]).reshape(len(rank), len(percentiles), *spatial)


def imputed_copies(x: np.ndarray, removed: np.ndarray, order: int, noise: float, seed: int) -> Iterator[np.ndarray]:
    """Each sample's imputed copies, one per percentile (the module docstring's generators), sample by sample."""
    for sample, masks in zip(x, removed, strict=True):
        rng = np.random.default_rng([seed, order, zlib.crc32(np.ascontiguousarray(sample, np.float32).tobytes())])
        for mask in masks:
            yield impute(sample, mask, noise, rng)


def road_curve(explained: Explained, order: int, percentiles: Sequence[float], noise: float, seed: int,
               chunk: int) -> np.ndarray:
    """(N, len(percentiles)) the explained class's probability on the imputed copies of one order."""
    n = len(explained.inputs)
    removed = removed_masks(ranks(explained.maps), explained.spatial, percentiles, order)
    targets = np.repeat(explained.targets, len(percentiles))
    copies = imputed_copies(explained.inputs, removed, order, noise, seed)
    probs = []
    for start in range(0, n * len(percentiles), chunk):
        block = [next(copies) for _ in range(min(chunk, len(targets) - start))]
        probs.append(copy_probabilities(explained.model, np.stack(block), targets[start : start + len(block)],
                                        chunk))
    return np.concatenate(probs).reshape(n, len(percentiles))


def batch_digest(explained: Explained) -> str:
    """What a batch's curves depend on besides the settings and the model's architecture: a digest of the model's
    weights, the inputs, maps and targets."""
    digest = hashlib.blake2b(digest_size=16)
    for array in [*explained.model.get_weights(), explained.inputs, explained.maps, explained.targets]:
        digest.update(repr((array.dtype, array.shape)).encode())
        digest.update(np.ascontiguousarray(array))
    return digest.hexdigest()


def cached_curve(explained: Explained, digest: str, order: int, settings: tuple[Any, ...], chunk: int) -> np.ndarray:
    """:func:`road_curve`, kept per model for the batch of ``digest`` (the curves of earlier batches dropped)."""
    cached = _CURVES.setdefault(explained.model, {})
    key = (digest, order, *settings)
    if key not in cached:
        for old in [k for k in cached if k[0] != digest]:
            del cached[old]
        cached[key] = road_curve(explained, order, *settings, chunk)
    return cached[key]


class RoadMetric(FaithfulnessMetric):
    """The ROAD metrics (module docstring): ``weights`` (order -> factor) combines the curves of the orders."""

    weights: ClassVar[dict[int, float]] = {}
    curve_y: ClassVar[str] = "probability"
    paper = "Rong et al., ICML 2022"
    options: ClassVar[dict[str, Any]] = {"percentiles": PERCENTILES, "noise": NOISE, "seed": 0, "chunk": CHUNK}
    checks: ClassVar[dict[str, Check]] = {"percentiles": increasing_percentiles, "seed": SEED_CHECK,
                                          "noise": real(0, math.inf, "the imputation noise's std", include_low=True),
                                          "chunk": CHUNK_CHECK}

    def score(self, explained: Explained) -> Scores:
        percentiles = tuple(float(p) for p in self.settings["percentiles"])
        settings = (percentiles, float(self.settings["noise"]), int(self.settings["seed"]))
        chunk = self.settings["chunk"]
        digest = batch_digest(explained)
        curve = sum(weight * cached_curve(explained, digest, order, settings, chunk)
                    for order, weight in self.weights.items())
        return Scores(curve.mean(axis=1), curve=curve, curve_x=list(percentiles), curve_label="percent removed",
                      curve_y=self.curve_y)


@register_metric
class RoadMoRF(RoadMetric):
    """Mean probability over the percentiles with the most relevant positions imputed first (lower is better)."""

    name = "road-morf"
    higher_is_better = False
    weights: ClassVar[dict[int, float]] = {MORF: 1.0}


@register_metric
class RoadLeRF(RoadMetric):
    """Mean probability over the percentiles with the least relevant positions imputed first (higher is better)."""

    name = "road-lerf"
    higher_is_better = True
    weights: ClassVar[dict[int, float]] = {LERF: 1.0}


@register_metric
class Road(RoadMetric):
    """Mean over the percentiles of LeRF − MoRF (higher is better)."""

    name = "road"
    higher_is_better = True
    weights: ClassVar[dict[int, float]] = {LERF: 1.0, MORF: -1.0}
    curve_y = "probability, LeRF − MoRF"
