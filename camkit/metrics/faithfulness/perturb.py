"""What the faithfulness metrics share: the order of positions, baselines, and compiled runners of perturbed copies.

- :func:`ranks`: each position's place in the order of decreasing map value; ties are broken by position order
  (row-major: the earlier pixel or time step first), so the order is deterministic.
- :func:`baseline`: ``zero``; ``mean`` (each sample's per-channel mean over its positions); ``blur`` (images: a
  Gaussian filter of σ = ``BLUR_SIGMA`` of the shorter side per channel, ``scipy.ndimage.gaussian_filter``;
  series: a centred moving average over ``BLUR_WINDOW`` of the length, ``scipy.ndimage.uniform_filter1d``, edges
  reflected).
- :func:`swapped_probabilities`: the explained class's probability on copies ``x[s]`` whose ``count`` first
  positions in ``rank`` order come from ``other[s]`` — deletion (``x`` the input, ``other`` the baseline) and
  insertion (the other way round). The copies are made inside ONE ``tf.function`` from the samples, chunk by
  chunk (:func:`camkit.methods.forward.run_chunks`): memory is bounded by the chunk, and S steps cost S forward
  passes plus a gather and a select per copy.
- :func:`subset_swapped_probabilities`: the same with the positions of a chosen subset of cells (a grid's cells,
  a series' segments: :func:`cells`) taken from ``other`` — MuFidelity's random subsets, shared by every sample.
- :func:`copy_probabilities`: the same on copies built outside (ROAD's imputed inputs, the input times its map).
- :func:`default_steps` and :func:`step_counts`: the steps of a deletion or insertion curve.

The probability is the softmax of the class scores (logits read past a final softmax), as ``camkit explain``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

from camkit.errors import CamkitError
from camkit.methods.forward import cached_function, even_chunk, picked_scores, run_chunks
from camkit.methods.layers import pre_softmax

BASELINES = ("zero", "mean", "blur")
BLUR_SIGMA = 0.05  # images: the Gaussian's σ as a fraction of the shorter side
BLUR_WINDOW = 0.1  # series: the moving average's width as a fraction of the length
CHUNK = 64  # copies per compiled forward call
IMAGE_STEPS = 100  # default steps of an image's curve (a series': its length)


def class_scores(outputs: Any) -> tf.Tensor:
    """(B, classes) logits of the model's first output (a final softmax read past)."""
    return pre_softmax(keras.tree.flatten(outputs)[0])


def ranks(maps: np.ndarray) -> np.ndarray:
    """(N, *spatial) maps -> (N, P) int: the rank of each position (0 = the highest value; ties by position)."""
    flat = np.asarray(maps, np.float64).reshape(len(maps), -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    out = np.empty_like(order)
    np.put_along_axis(out, order, np.arange(flat.shape[1])[None].repeat(len(flat), 0), axis=1)
    return out


def check_baseline(kind: str, option: str = "baseline") -> str:
    if kind not in BASELINES:
        raise CamkitError(f"{option}: expected one of {', '.join(BASELINES)}, got {kind!r}")
    return kind


def baseline(x: np.ndarray, kind: str) -> np.ndarray:
    """(N, *spatial, C) inputs -> their baselines of ``kind`` (module docstring), float32."""
    x = np.asarray(x, np.float32)
    check_baseline(kind)
    if kind == "zero":
        return np.zeros_like(x)
    spatial = tuple(range(1, x.ndim - 1))
    if kind == "mean":
        return np.broadcast_to(x.mean(axis=spatial, keepdims=True), x.shape).astype(np.float32)
    if x.ndim == 3:  # series (N, T, C)
        width = max(1, round(BLUR_WINDOW * x.shape[1]))
        return ndimage.uniform_filter1d(x, width, axis=1, mode="reflect").astype(np.float32)
    sigma = BLUR_SIGMA * min(x.shape[1:-1])
    return ndimage.gaussian_filter(x, sigma=(0, *(sigma,) * len(spatial), 0), mode="reflect").astype(np.float32)


def probabilities(model: keras.Model, x: np.ndarray, targets: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """(N,) the explained class's probability on the inputs themselves."""
    return copy_probabilities(model, x, targets, chunk)


def copy_probabilities(model: keras.Model, copies: np.ndarray, targets: np.ndarray, chunk: int = CHUNK) -> np.ndarray:
    """(M,) the probability of class ``targets[i]`` on ``copies[i]``, through one compiled forward in chunks."""

    def build(model_ref: weakref.ref) -> Callable[..., Any]:
        def run(copies: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return picked_scores(class_scores(model_ref()(copies, training=False)), targets)

        return run

    fn = cached_function(model, ("faithfulness-copies",), build)
    copies = tf.convert_to_tensor(np.asarray(copies, np.float32))
    got = run_chunks(fn, [], [copies, tf.constant(np.asarray(targets), tf.int32)], even_chunk(len(copies), chunk))
    return np.asarray(got[1], np.float64)


def _swapped_scores(model: keras.Model, x: tf.Tensor, other: tf.Tensor, swap: tf.Tensor, sample: tf.Tensor,
                    targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(traced) The model on ``x[sample]`` with the positions where ``swap`` (chunk, P) taken from ``other[sample]``."""
    swap = tf.reshape(swap, (-1, *x.shape[1:-1], 1))
    copies = tf.where(swap, tf.gather(other, sample), tf.gather(x, sample))
    return picked_scores(class_scores(model(copies, training=False)), targets)


def swapped_probabilities(model: keras.Model, x: np.ndarray, other: np.ndarray, rank: np.ndarray,
                          sample: np.ndarray, count: np.ndarray, targets: np.ndarray,
                          chunk: int = CHUNK) -> np.ndarray:
    """(M,) the probability of ``targets[i]`` on ``x[sample[i]]`` with the positions of ``rank[sample[i]]`` below
    ``count[i]`` taken from ``other[sample[i]]`` (module docstring). ``x``, ``other``: (N, *spatial, C); ``rank``:
    (N, P) from :func:`ranks`; ``sample``, ``count``, ``targets``: (M,) int."""

    def build(model_ref: weakref.ref) -> Callable[..., Any]:
        def run(x: tf.Tensor, other: tf.Tensor, rank: tf.Tensor, sample: tf.Tensor, count: tf.Tensor,
                targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            return _swapped_scores(model_ref(), x, other, tf.gather(rank, sample) < count[:, None], sample, targets)

        return run

    fn = cached_function(model, ("faithfulness-swapped",), build)
    shared = [tf.constant(np.asarray(a, np.float32)) for a in (x, other)] + [tf.constant(rank, tf.int32)]
    per_copy = [tf.constant(np.asarray(a), tf.int32) for a in (sample, count, targets)]
    return np.asarray(run_chunks(fn, shared, per_copy, even_chunk(len(sample), chunk))[1], np.float64)


def cells(spatial: tuple[int, ...], grid: int) -> np.ndarray:
    """(P,) int: the cell of each position (row-major) when every axis of ``spatial`` is cut into ``min(grid,
    side)`` contiguous bands, position ``i`` of a side of length L in band ``floor(i · bands / L)`` (equal bands,
    or sizes differing by one); cells are numbered row-major over the bands."""
    bands = [min(grid, side) for side in spatial]
    index = np.zeros((), np.int64)
    for side, count in zip(spatial, bands, strict=True):
        index = index[..., None] * count + np.arange(side) * count // side
    return index.reshape(-1)


def subset_swapped_probabilities(model: keras.Model, x: np.ndarray, other: np.ndarray, cell: np.ndarray,
                                 subsets: np.ndarray, sample: np.ndarray, subset: np.ndarray, targets: np.ndarray,
                                 chunk: int = CHUNK) -> np.ndarray:
    """(M,) the probability of ``targets[i]`` on ``x[sample[i]]`` with the positions whose cell is in
    ``subsets[subset[i]]`` taken from ``other[sample[i]]``. ``x``, ``other``: (N, *spatial, C); ``cell``: (P,) from
    :func:`cells`; ``subsets``: (R, cells) bool; ``sample``, ``subset``, ``targets``: (M,) int."""

    def build(model_ref: weakref.ref) -> Callable[..., Any]:
        def run(x: tf.Tensor, other: tf.Tensor, cell: tf.Tensor, subsets: tf.Tensor, sample: tf.Tensor,
                subset: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            swap = tf.gather(tf.gather(subsets, subset), cell, axis=1)
            return _swapped_scores(model_ref(), x, other, swap, sample, targets)

        return run

    fn = cached_function(model, ("faithfulness-subsets",), build)
    shared = [tf.constant(np.asarray(a, np.float32)) for a in (x, other)]
    shared += [tf.constant(np.asarray(cell), tf.int32), tf.constant(np.asarray(subsets, bool))]
    per_copy = [tf.constant(np.asarray(a), tf.int32) for a in (sample, subset, targets)]
    return np.asarray(run_chunks(fn, shared, per_copy, even_chunk(len(sample), chunk))[1], np.float64)


def default_steps(spatial: tuple[int, ...], steps: int | None) -> int:
    """``steps``, or the default for inputs of ``spatial`` positions: ``IMAGE_STEPS`` for images, a series' length."""
    if steps is not None:
        return steps
    return spatial[0] if len(spatial) == 1 else IMAGE_STEPS


def step_counts(positions: int, steps: int) -> np.ndarray:
    """(S + 1,) how many positions are swapped after each of ``steps`` equal steps: ``round(k · P / S)``."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise CamkitError(f"steps: expected a positive integer, got {steps!r}")
    return np.rint(np.arange(steps + 1) * positions / steps).astype(np.int64)


def swap_curves(model: keras.Model, x: np.ndarray, other: np.ndarray, maps: np.ndarray, targets: np.ndarray,
                steps: int, chunk: int = CHUNK) -> np.ndarray:
    """(N, S + 1) the probability of each sample's target after 0, 1, ..., S steps of swapping its positions from
    ``x`` to ``other`` in order of decreasing map value (:func:`swapped_probabilities`)."""
    n, positions = len(x), int(np.prod(x.shape[1:-1]))
    counts = step_counts(positions, steps)
    sample = np.repeat(np.arange(n), len(counts))
    probs = swapped_probabilities(model, x, other, ranks(maps), sample, np.tile(counts, n),
                                  np.repeat(np.asarray(targets), len(counts)), chunk)
    return probs.reshape(n, len(counts))


def auc(curves: np.ndarray) -> np.ndarray:
    """(N, S + 1) curves at fractions 0, 1/S, ..., 1 -> (N,) their trapezoid areas over [0, 1]."""
    curves = np.asarray(curves, np.float64)
    steps = curves.shape[1] - 1
    return (curves[:, 1:] + curves[:, :-1]).sum(axis=1) / (2 * steps)
