"""The inputs ``explain`` takes, as batches: arrays or a ``tf.data.Dataset``, regrouped into equal chunks."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from camkit.errors import CamkitError


def _as_array(x: Any, what: str) -> np.ndarray:
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise CamkitError(f"{what}: not a numeric array ({exc})") from None
    if arr.ndim not in (3, 4):
        raise CamkitError(f"{what}: expected a batch (N, T, C) or (N, H, W, C), got shape {arr.shape}")
    return arr


def input_batches(x: Any) -> tuple[Iterable[np.ndarray], int | None, int | None]:
    """Batches of ``x``, the number of samples and of batches (None where a dataset does not say)."""
    if isinstance(x, tf.data.Dataset):

        def batches() -> Iterator[np.ndarray]:
            for element in x:
                if isinstance(element, dict):
                    raise CamkitError("x: dataset elements must be x or (x, y) batches, not dicts")
                yield _as_array(element[0] if isinstance(element, (tuple, list)) else element, "x (dataset batch)")

        n_batches = int(x.cardinality())
        return batches(), None, n_batches if n_batches >= 0 else None
    arr = _as_array(x, "x")
    return [arr], len(arr), None


def rechunk(batches: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Regroup batches into chunks of exactly ``size`` samples (the last one may be short)."""
    pending: list[np.ndarray] = []
    count = 0
    shape = None
    for batch in batches:
        shape = shape or batch.shape[1:]
        if batch.shape[1:] != shape:
            raise CamkitError(f"x: a batch has samples of shape {batch.shape[1:]}, the first had {shape}")
        while len(batch):
            take = batch[: size - count]
            pending.append(take)
            count += len(take)
            batch = batch[len(take) :]
            if count == size:
                yield np.concatenate(pending)
                pending, count = [], 0
    if count:
        yield np.concatenate(pending)
