"""The target grammar: which class each explanation explains, for the Python API, the CLI and the store.

``parse_targets(targets)`` turns what a user writes into a :class:`TargetPlan`, one :class:`Column` per
explanation of every sample:

- None or ``"predicted"``: ``top1``, the predicted class;
- an int or a digit string ``"3"``, or ``"class3"``: ``class3``;
- a 1-D integer array (or a list of ints): ``target``, one class per sample;
- ``"lowest"``: the lowest-scoring class; ``"true"``: each sample's true class (``y_true``);
- ``"topK"`` / ``"top-K"``: ``top1`` .. ``topK``;
- a comma list (``"top5,true"``, ``"top3,lowest"``) or a list/tuple of such strings: every column in order,
  duplicates dropped;
- a :class:`TargetPlan` (already parsed).

``topK``, comma lists and string lists are *stacked*: every result array gets a K axis right after N; a
single column otherwise. Tokens are case-insensitive. Engine codes: ``>= 0`` a class, ``-1 - r`` the class
ranked ``r`` by score (``PREDICTED = -1``), ``LOWEST`` the lowest.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from camkit.errors import CamkitError

PREDICTED = -1
LOWEST = int(np.iinfo(np.int32).min)
_TOKEN = re.compile(r"predicted|lowest|true|top-?(\d+)|(?:class)?(\d+)")
GRAMMAR = "predicted, lowest, true, topK, class<k> or a class index"


@dataclass(frozen=True)
class Column:
    """One explanation of every sample: ``top1``..``topK``, ``lowest``, ``true``, ``class<k>`` or ``target``."""

    name: str
    code: int | None  # engine code (>= 0 a class, -1 - r the class ranked r, LOWEST); None: one class per sample
    classes: np.ndarray | None = None  # the per-sample classes of a "target" column


@dataclass(frozen=True)
class TargetPlan:
    """The columns to explain; ``stacked``: every result array gets a K axis right after N."""

    columns: tuple[Column, ...]
    stacked: bool

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def needs_truth(self) -> bool:
        """Whether a column explains the true class (``y_true`` needed)."""
        return any(c.name == "true" for c in self.columns)


def _class_column(k: int, n_classes: int | None) -> Column:
    if n_classes is not None and k >= n_classes:
        raise CamkitError(f"targets: class {k} is out of range; the model has {n_classes} classes")
    return Column(f"class{k}", k)


def _token_columns(token: str, n_classes: int | None) -> list[Column]:
    """The columns one token stands for."""
    text = token.strip().lower()
    match = _TOKEN.fullmatch(text)
    if not match:
        raise CamkitError(f"targets: {token!r} is not {GRAMMAR}")
    if text == "predicted":
        return [Column("top1", PREDICTED)]
    if text == "lowest":
        return [Column("lowest", LOWEST)]
    if text == "true":
        return [Column("true", None)]
    if match.group(2) is not None:
        return [_class_column(int(match.group(2)), n_classes)]
    k = int(match.group(1))
    if k < 1:
        raise CamkitError(f"targets: {token!r}: K must be at least 1")
    k = k if n_classes is None else min(k, n_classes)  # top5 of a 3-class model: its 3
    return [Column(f"top{r + 1}", -1 - r) for r in range(k)]


def _list_plan(tokens: Sequence[str], n_classes: int | None) -> TargetPlan:
    columns: dict[str, Column] = {}
    for token in tokens:
        for column in _token_columns(token, n_classes):
            columns.setdefault(column.name, column)
    if not columns:
        raise CamkitError(f"targets: no target in {list(tokens)!r}; expected {GRAMMAR}")
    return TargetPlan(tuple(columns.values()), stacked=True)


def _per_sample(targets: Any, n_classes: int | None) -> TargetPlan:
    arr = np.asarray(targets)
    if arr.ndim != 1 or not len(arr) or not np.issubdtype(arr.dtype, np.integer) or (arr < 0).any():
        raise CamkitError(f"targets: expected None, {GRAMMAR}, a comma list of these, or one class index per sample")
    if n_classes is not None and arr.max() >= n_classes:
        raise CamkitError(f"targets: class {arr.max()} is out of range; the model has {n_classes} classes")
    return TargetPlan((Column("target", None, arr.astype(np.int32)),), stacked=False)


def parse_targets(targets: Any, n_classes: int | None = None) -> TargetPlan:
    """The :class:`TargetPlan` of ``targets`` (module docstring). With ``n_classes``, topK is capped at it and
    class indices are checked; without it the engine checks them when the step runs. A plan is returned as is."""
    if isinstance(targets, TargetPlan):
        return targets
    if targets is None:
        return TargetPlan((Column("top1", PREDICTED),), stacked=False)
    if isinstance(targets, (int, np.integer)) and not isinstance(targets, (bool, np.bool_)):
        if targets < 0:
            raise CamkitError(f"targets: class {targets} is negative")
        return TargetPlan((_class_column(int(targets), n_classes),), stacked=False)
    if isinstance(targets, str):
        tokens = targets.split(",")
        if len(tokens) > 1:
            return _list_plan([t for t in tokens if t.strip()], n_classes)
        columns = _token_columns(targets, n_classes)
        return TargetPlan(tuple(columns), stacked=_TOKEN.fullmatch(targets.strip().lower()).group(1) is not None)
    if isinstance(targets, (list, tuple)) and targets and all(isinstance(t, str) for t in targets):
        return _list_plan([part for t in targets for part in t.split(",") if part.strip()], n_classes)
    return _per_sample(targets, n_classes)
