"""Average Drop (metric ``average-drop``): Chattopadhay, Sarkar, Howlader, Balasubramanian, "Grad-CAM++:
Generalized Gradient-based Visual Explanations for Deep Convolutional Networks", WACV 2018.

Per sample ``100 · max(0, Y − O) / Y``: ``Y`` the explained class's probability on the input, ``O`` on the input
multiplied by the map (:mod:`camkit.metrics.faithfulness.confidence`); the summary is the mean over the samples,
in percent. Lower is better: the map alone keeps the model's confidence. ``Y = 0`` (a probability that underflowed)
scores 0: there is nothing to drop. Option ``chunk``.
"""

from __future__ import annotations

import numpy as np

from camkit.metrics.base import register_metric
from camkit.metrics.faithfulness.confidence import ConfidenceMetric


@register_metric
class AverageDrop(ConfidenceMetric):
    """Mean relative drop of the probability when the input is multiplied by its map (lower is better)."""

    name = "average-drop"
    paper = "Chattopadhay et al., WACV 2018"
    higher_is_better = False

    def from_probabilities(self, y: np.ndarray, o: np.ndarray) -> np.ndarray:
        positive = y > 0
        return np.where(positive, 100 * np.maximum(0.0, y - o) / np.where(positive, y, 1.0), 0.0)
