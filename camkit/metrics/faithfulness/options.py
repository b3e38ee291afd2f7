"""The checks of the faithfulness metrics' options, declared per metric in ``FaithfulnessMetric.checks``.

A check takes the option's name and value and raises one :class:`~camkit.errors.CamkitError` naming the option
and what it expects; the metric runs its checks when it is made, so a bad value fails before any map is computed.
"""

from __future__ import annotations

import itertools
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from camkit.errors import CamkitError
from camkit.metrics.faithfulness.perturb import check_baseline

Check = Callable[[str, Any], None]


def integer(minimum: int, what: str, allow_none: bool = False) -> Check:
    """An integer of at least ``minimum`` (``what`` it is, for the error); None too when ``allow_none``."""
    def check(name: str, value: Any) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
            raise CamkitError(f"{name}: expected {what}, an integer of at least {minimum}, got {value!r}")
    return check


def real(low: float, high: float, what: str, *, include_low: bool) -> Check:
    """A finite number in ``[low, high)`` (``include_low``) or ``(low, high)``."""
    def check(name: str, value: Any) -> None:
        number = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
        if not number or not (low <= value if include_low else low < value) or not value < high:
            bounds = f"{'[' if include_low else '('}{low:g}, {high:g})"
            raise CamkitError(f"{name}: expected {what}, a number in {bounds}, got {value!r}")
    return check


def baseline_kind(name: str, value: Any) -> None:
    """One of the baselines of :func:`camkit.metrics.faithfulness.perturb.baseline`."""
    check_baseline(value, name)


def increasing_percentiles(name: str, value: Any) -> None:
    """A non-empty increasing sequence of numbers in [0, 100)."""
    ok = (isinstance(value, (Sequence, np.ndarray)) and not isinstance(value, str) and len(value) > 0
          and all(isinstance(p, numbers.Real) and not isinstance(p, bool) and 0 <= p < 100 for p in value)
          and all(a < b for a, b in itertools.pairwise(value)))
    if not ok:
        raise CamkitError(f"{name}: expected an increasing list of numbers in [0, 100), got {value!r}")


STEPS_CHECK = integer(1, "the steps of the curve", allow_none=True)
CHUNK_CHECK = integer(1, "the copies per forward call")
SEED_CHECK = integer(0, "the random seed")
