"""Increase in Confidence (metric ``increase-in-confidence``): Chattopadhay, Sarkar, Howlader, Balasubramanian,
"Grad-CAM++: Generalized Gradient-based Visual Explanations for Deep Convolutional Networks", WACV 2018.

Per sample ``100 · [O > Y]``: ``Y`` the explained class's probability on the input, ``O`` on the input multiplied
by the map (:mod:`camkit.metrics.faithfulness.confidence`); the summary, their mean, is the percentage of samples
whose probability rises. A tie (``O = Y``) is no increase. Higher is better. Option ``chunk``.
"""

from __future__ import annotations

import numpy as np

from camkit.metrics.base import register_metric
from camkit.metrics.faithfulness.confidence import ConfidenceMetric


@register_metric
class IncreaseInConfidence(ConfidenceMetric):
    """Percentage of samples whose probability rises when the input is multiplied by its map (higher is better)."""

    name = "increase-in-confidence"
    paper = "Chattopadhay et al., WACV 2018"
    higher_is_better = True

    def from_probabilities(self, y: np.ndarray, o: np.ndarray) -> np.ndarray:
        return 100.0 * (o > y)
