"""What Average Drop, Increase in Confidence and Average Gain share (Chattopadhay et al., WACV 2018; Zhang et al.,
2023): the explained class's probability ``Y`` on the input and ``O`` on the input multiplied by its map (every
channel of a position times the map's value there, the map in [0, 1]), and :class:`ConfidenceMetric`, whose
subclasses turn ``(Y, O)`` into each sample's value. Option ``chunk``: copies per compiled forward call.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np

from camkit.metrics.faithfulness.base import Explained, FaithfulnessMetric, Scores
from camkit.metrics.faithfulness.options import CHUNK_CHECK, Check
from camkit.metrics.faithfulness.perturb import CHUNK, copy_probabilities, probabilities


def input_and_masked_probabilities(explained: Explained, chunk: int = CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """(Y, O), each (N,): the explained class's probability on the inputs and on the inputs times their maps."""
    masked = explained.inputs * explained.maps[..., None]
    return (probabilities(explained.model, explained.inputs, explained.targets, chunk),
            copy_probabilities(explained.model, masked, explained.targets, chunk))


class ConfidenceMetric(FaithfulnessMetric):
    """A metric of ``Y`` and ``O`` alone (module docstring): subclasses implement :meth:`from_probabilities`."""

    options: ClassVar[dict[str, Any]] = {"chunk": CHUNK}
    checks: ClassVar[dict[str, Check]] = {"chunk": CHUNK_CHECK}

    def score(self, explained: Explained) -> Scores:
        return Scores(self.from_probabilities(*input_and_masked_probabilities(explained, self.settings["chunk"])))

    @abstractmethod
    def from_probabilities(self, y: np.ndarray, o: np.ndarray) -> np.ndarray:
        """(N,) values from ``y`` (N,), the probability on the inputs, and ``o`` (N,), on the masked inputs."""
