"""Target columns in the engine: each column's codes per chunk, the class check, and stacking the chunks' results.

``explain`` runs every column of a :class:`~camkit.methods.targets.TargetPlan` on every chunk and joins the
chunks with :func:`stack_results`: along N, then (a stacked plan) along a K axis right after N.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from camkit.errors import CamkitError
from camkit.methods.targets import LOWEST, PREDICTED, TargetPlan


@dataclass(frozen=True)
class ChunkResult:
    """One chunk's results (NumPy, padding removed); see :class:`~camkit.methods.base.Explanation` for the fields."""

    maps: np.ndarray
    raw: np.ndarray
    targets: np.ndarray
    scores: np.ndarray
    variants: dict[str, np.ndarray] = field(default_factory=dict)
    stats: dict[str, np.ndarray] = field(default_factory=dict)
    variant_raw: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class ColumnCodes:
    """A column's engine codes: one ``code`` for every sample, or per-sample ``classes`` (from ``source``)."""

    code: int
    classes: np.ndarray | None = None
    source: str = "targets"  # the argument the per-sample classes came from: targets or y_true

    def chunk(self, offset: int, n: int, size: int) -> np.ndarray:
        """The (size,) codes of the chunk of samples ``offset .. offset + n`` padded to ``size``."""
        spec = np.full(size, self.code, np.int32)
        if self.classes is not None:
            part = self.classes[offset : offset + n]
            if len(part) < n:
                raise CamkitError(f"{self.source}: {len(self.classes)} targets, but x has more samples")
            spec[:n] = part
        return spec

    def check_count(self, n_samples: int) -> None:
        """A per-sample column must have one class per sample."""
        if self.classes is not None and len(self.classes) != n_samples:
            raise CamkitError(f"{self.source}: {len(self.classes)} targets for {n_samples} samples")


def _true_classes(y_true: Any) -> np.ndarray:
    if y_true is None:
        raise CamkitError("targets: a 'true' column needs y_true, the true class of every sample")
    arr = np.asarray(y_true)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any():
        raise CamkitError("y_true: expected one class index (>= 0) per sample")
    return arr.astype(np.int32)


def column_codes(plan: TargetPlan, y_true: Any = None) -> list[ColumnCodes]:
    """The codes of each column of ``plan``; a ``true`` column takes its classes from ``y_true``."""
    codes = []
    for column in plan.columns:
        if column.name == "true":
            codes.append(ColumnCodes(PREDICTED, _true_classes(y_true), "y_true"))
        elif column.classes is not None:
            codes.append(ColumnCodes(PREDICTED, column.classes))
        else:
            codes.append(ColumnCodes(int(column.code)))
    return codes


def check_classes(spec: np.ndarray, n_classes: int) -> None:
    """Explicit classes and ranks of ``spec`` must exist in a model with ``n_classes`` classes."""
    explicit = spec[spec >= 0]
    if explicit.size and explicit.max() >= n_classes:
        raise CamkitError(f"targets: class {explicit.max()} is out of range; the model has {n_classes} classes")
    ranks = -1 - spec[(spec < 0) & (spec != LOWEST)]
    if ranks.size and ranks.max() >= n_classes:
        raise CamkitError(f"targets: top{ranks.max() + 1} needs that many classes; the model has {n_classes}")


def stack_results(parts: Sequence[Sequence[ChunkResult]], stacked: bool) -> ChunkResult:
    """``parts[chunk][column]`` joined along N, then along a K axis after N when ``stacked`` (else one column)."""
    first = parts[0][0]
    n_columns = len(parts[0])

    def gather(get: Callable[[ChunkResult], np.ndarray]) -> np.ndarray:
        per_column = [np.concatenate([get(part[j]) for part in parts]) for j in range(n_columns)]
        return np.stack(per_column, axis=1) if stacked else per_column[0]

    out: dict[str, Any] = {}
    for f in fields(ChunkResult):
        value = getattr(first, f.name)
        if isinstance(value, dict):
            out[f.name] = {key: gather(lambda r, f=f.name, key=key: getattr(r, f)[key]) for key in value}
        else:
            out[f.name] = gather(lambda r, f=f.name: getattr(r, f))
    return ChunkResult(**out)
