"""MuFidelity (metric ``mufidelity``): Bhatt, Weller, Moura, "Evaluating and Aggregating Feature-based Model
Explanations", IJCAI 2020 (definition 3, faithfulness µF).

For ``n`` random subsets ``S`` of the positions (pixels, time steps; all channels together), each sample scores
the Pearson correlation over the subsets between the map's sum over the subset, ``Σ_{i∈S} m_i``, and the drop of
the explained class's probability when the subset is set to the baseline, ``p(x) − p(x with S replaced)``.
Higher is better: a faithful map puts more mass where removing hurts more. The summary is the mean over samples.

Choices, after the paper and xplique's ``MuFidelity`` (deel-ai/xplique, ``metrics/fidelity.py``):

- Subsets are unions of cells (xplique's super-pixels): an image is cut into a ``grid`` × ``grid`` grid (default
  9, as xplique), a series into ``grid`` segments (xplique's series masks are per time segment AND channel; here a
  segment's channels move together, as every camkit metric). A side shorter than ``grid`` gets one cell per
  position; bands are contiguous and equal up to one position (:func:`camkit.metrics.faithfulness.perturb.cells`).
- Each subset holds exactly ``k = round(subset · cells)`` cells (halves to even; ``subset`` default 0.2; ``k`` in
  ``1 .. cells − 1``), drawn without replacement: the paper's fixed ``|S| = k``. xplique instead drops each cell
  with probability ``subset``, so its subset sizes vary and even a constant map correlates with the drops
  through them; with a fixed size, a constant map over equal cells scores 0.
- The ``n`` subsets (default 128) are drawn once per evaluation from ``numpy.random.default_rng(seed)`` (``seed``
  default 0): subset ``r``'s cells are the ``k`` first of ``argsort(rng.random((n, cells))[r])``. Every sample
  gets the same subsets, so a sample's value does not depend on its batch.
- Pearson's correlation, as the paper's ``Corr`` (and xplique's first version; it now uses Spearman's). When
  either side is constant over the subsets, no correlation is defined and the value is 0 (xplique: NaN -> 0): a
  constant map over equal cells, a model blind to the subsets. Constant means a spread of at most ``1e-6`` of the
  largest sum, or of the largest probability for the drops (float32 noise of the model).
- Baseline (``baseline``): ``zero`` by default (as xplique), or ``mean`` / ``blur``. Option ``chunk``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from camkit.metrics.base import register_metric
from camkit.metrics.faithfulness.base import Explained, FaithfulnessMetric, Scores
from camkit.metrics.faithfulness.options import CHUNK_CHECK, SEED_CHECK, Check, baseline_kind, integer, real
from camkit.metrics.faithfulness.perturb import (
    CHUNK,
    baseline,
    cells,
    probabilities,
    subset_swapped_probabilities,
)

FLAT = 1e-6  # a side whose spread is at most this fraction of its magnitude is constant


def draw_subsets(n: int, cell_count: int, fraction: float, seed: int) -> np.ndarray:
    """(n, cells) bool: ``n`` subsets of ``round(fraction · cells)`` cells each (module docstring)."""
    k = max(1, min(cell_count - 1, round(fraction * cell_count)))
    keys = np.random.default_rng(seed).random((n, cell_count))
    subsets = np.zeros((n, cell_count), bool)
    np.put_along_axis(subsets, np.argsort(keys, axis=1)[:, :k], True, axis=1)
    return subsets


def subset_sums(maps: np.ndarray, cell: np.ndarray, subsets: np.ndarray) -> np.ndarray:
    """(N, n) each map's sum over each subset's positions (``maps`` (N, *spatial), ``cell`` (P,))."""
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    cell_sums = np.zeros((len(maps), subsets.shape[1]))
    np.add.at(cell_sums, (slice(None), cell), flat)
    return cell_sums @ subsets.T


def correlations(a: np.ndarray, b: np.ndarray, scale_a: np.ndarray, scale_b: np.ndarray) -> np.ndarray:
    """(N,) Pearson's correlation of each row of ``a`` and ``b`` (N, R); 0 where a row's spread is at most
    ``FLAT`` times its scale (N,)."""
    da, db = a - a.mean(axis=1, keepdims=True), b - b.mean(axis=1, keepdims=True)
    flat = (np.ptp(a, axis=1) <= FLAT * scale_a) | (np.ptp(b, axis=1) <= FLAT * scale_b)
    norm = np.sqrt((da**2).sum(axis=1) * (db**2).sum(axis=1))
    return np.where(flat, 0.0, (da * db).sum(axis=1) / np.where(flat, 1.0, norm))


@register_metric
class MuFidelity(FaithfulnessMetric):
    """Correlation between the map's sum over random subsets and the probability's drop when they are removed."""

    name = "mufidelity"
    paper = "Bhatt et al., IJCAI 2020"
    higher_is_better = True
    options: ClassVar[dict[str, Any]] = {"n": 128, "subset": 0.2, "grid": 9, "baseline": "zero", "seed": 0,
                                         "chunk": CHUNK}
    checks: ClassVar[dict[str, Check]] = {"n": integer(2, "the number of subsets"),
                                          "subset": real(0, 1, "the fraction of cells per subset", include_low=False),
                                          "grid": integer(1, "the cells per side"), "baseline": baseline_kind,
                                          "seed": SEED_CHECK, "chunk": CHUNK_CHECK}

    def score(self, explained: Explained) -> Scores:
        cell = cells(explained.spatial, self.settings["grid"])
        subsets = draw_subsets(self.settings["n"], int(cell.max()) + 1, self.settings["subset"], self.settings["seed"])
        full, removed = self.removal_probabilities(explained, cell, subsets)
        sums = subset_sums(explained.maps, cell, subsets)
        return Scores(correlations(sums, full[:, None] - removed, np.abs(sums).max(axis=1),
                                   np.maximum(full, removed.max(axis=1))))

    def removal_probabilities(self, explained: Explained, cell: np.ndarray,
                              subsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) the probability on the inputs and (N, n) with each subset set to the baseline."""
        x, targets, chunk = explained.inputs, explained.targets, self.settings["chunk"]
        n, r = len(x), len(subsets)
        removed = subset_swapped_probabilities(explained.model, x, baseline(x, self.settings["baseline"]), cell,
                                               subsets, np.repeat(np.arange(n), r), np.tile(np.arange(r), n),
                                               np.repeat(targets, r), chunk)
        return probabilities(explained.model, x, targets, chunk), removed.reshape(n, r)
