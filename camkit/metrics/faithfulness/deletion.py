"""Deletion (metric ``deletion``): Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for Explanation of
Black-box Models", BMVC 2018.

The positions (pixels, time steps; all channels together) are replaced by the baseline in order of decreasing
map value, in ``steps`` equal steps (default 100 for images, T for a series of length T; ties in the map broken
by position order), and the explained class's probability is read after each step: ``p_0 = p(x), ..., p_S`` (all
positions removed). The score is the area under that curve over the removed fraction 0..1 (trapezoid rule):
``Σ_k (p_k + p_{k+1}) / 2S``. Lower is better: a faithful map removes what the model uses first. Baseline
(``baseline``): ``zero`` by default, or ``mean`` / ``blur`` (:mod:`camkit.metrics.faithfulness.perturb`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from camkit.metrics.base import register_metric
from camkit.metrics.faithfulness.base import Explained, FaithfulnessMetric, Scores
from camkit.metrics.faithfulness.options import CHUNK_CHECK, STEPS_CHECK, Check, baseline_kind
from camkit.metrics.faithfulness.perturb import CHUNK, auc, baseline, default_steps, swap_curves


@register_metric
class Deletion(FaithfulnessMetric):
    """Area under the probability curve as the most relevant positions are removed first (lower is better)."""

    name = "deletion"
    paper = "Petsiuk et al., BMVC 2018"
    higher_is_better = False
    options: ClassVar[dict[str, Any]] = {"steps": None, "baseline": "zero", "chunk": CHUNK}
    checks: ClassVar[dict[str, Check]] = {"steps": STEPS_CHECK, "baseline": baseline_kind, "chunk": CHUNK_CHECK}

    def score(self, explained: Explained) -> Scores:
        steps = default_steps(explained.spatial, self.settings["steps"])
        base = baseline(explained.inputs, self.settings["baseline"])
        curves = swap_curves(explained.model, explained.inputs, base, explained.maps, explained.targets, steps,
                             self.settings["chunk"])
        return Scores(auc(curves), curve=curves, curve_x=[k / steps for k in range(steps + 1)],
                      curve_label="fraction removed")
