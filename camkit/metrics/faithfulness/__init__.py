"""Faithfulness metrics (registered :class:`FaithfulnessMetric` plugins), imported here so that the registry
lists them."""

# isort: off
from camkit.metrics.faithfulness import deletion  # noqa: F401
from camkit.metrics.faithfulness import randomization  # noqa: F401
# isort: on
from camkit.metrics.faithfulness.base import DIRECTION, Explained, FaithfulnessMetric, Scores

__all__ = ["DIRECTION", "Explained", "FaithfulnessMetric", "Scores"]
