"""Faithfulness metrics (registered :class:`FaithfulnessMetric` plugins), imported here so that the registry
lists them."""

# isort: off
from camkit.metrics.faithfulness import deletion  # noqa: F401
from camkit.metrics.faithfulness import insertion  # noqa: F401
from camkit.metrics.faithfulness import average_drop  # noqa: F401
from camkit.metrics.faithfulness import increase_in_confidence  # noqa: F401
from camkit.metrics.faithfulness import average_gain  # noqa: F401
from camkit.metrics.faithfulness import road  # noqa: F401
from camkit.metrics.faithfulness import mufidelity  # noqa: F401
from camkit.metrics.faithfulness import randomization  # noqa: F401
# isort: on
from camkit.metrics.faithfulness.base import DIRECTION, Curve, Explained, FaithfulnessMetric, Scores

__all__ = ["DIRECTION", "Curve", "Explained", "FaithfulnessMetric", "Scores"]
