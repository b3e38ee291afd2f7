"""Average Gain (metric ``average-gain``): Zhang, Torres, Sicre, Avrithis, Ayache, "Opti-CAM: Optimizing
saliency maps for interpretability", 2023 (arXiv:2301.07002).

Per sample ``100 · max(0, O − Y) / (1 − Y)``: ``Y`` the explained class's probability on the input, ``O`` on the
input multiplied by the map (:mod:`camkit.metrics.faithfulness.confidence`); the summary is the mean over the
samples, in percent. It is Average Drop's counterpart: the share of the room left above ``Y`` that the map alone
gains. Higher is better. ``Y = 1`` (a saturated probability) scores 0: there is no room to gain. Option ``chunk``.
"""

from __future__ import annotations

import numpy as np

from camkit.metrics.base import register_metric
from camkit.metrics.faithfulness.confidence import ConfidenceMetric


@register_metric
class AverageGain(ConfidenceMetric):
    """Mean relative gain of the probability when the input is multiplied by its map (higher is better)."""

    name = "average-gain"
    paper = "Zhang et al., Opti-CAM, 2023"
    higher_is_better = True

    def from_probabilities(self, y: np.ndarray, o: np.ndarray) -> np.ndarray:
        room = y < 1
        return np.where(room, 100 * np.maximum(0.0, o - y) / np.where(room, 1.0 - y, 1.0), 0.0)
