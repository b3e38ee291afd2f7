"""Noisy linear imputation (ROAD): Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and Efficient
Evaluation Strategy for Attribution Methods", ICML 2022 (the authors' ``NoisyLinearImputer``).

Every removed position takes, per channel, the weighted mean of its in-bounds neighbours, removed or not:
``x_i = Σ_j w_j x_j / Σ_j w_j`` over the neighbours ``j`` of ``i`` that lie inside the image or series.

- images: the 4 direct neighbours weigh 1/6 and the 4 diagonal ones 1/12 (the authors' weights; they sum to 1);
- series: the steps t − 1 and t + 1 weigh 1/2 each (the 1-D analogue: both direct neighbours alike).

At an edge the missing neighbours drop out of both sums (so the weights of the others are renormalised, as in
the authors' code, whose diagonal is the sum of the in-bounds weights). Moving the removed neighbours to the left
gives one sparse linear system over the removed positions, ``A x = b`` with ``A_ii = Σ_j w_j`` (in-bounds),
``A_ij = −w_j`` for a removed neighbour ``j`` and ``b_i = Σ_j w_j v_j`` over the known neighbours (one column
per channel). It is solved with ``scipy.sparse.linalg.spsolve`` on a CSC matrix, as the authors do (one
factorisation for all channels). A removed position without known neighbours is an unknown like the others:
its value comes from its removed neighbours, so known values propagate across a removed region (a gap in a
series is filled by the straight line between its ends). The system is regular whenever some position is known
(each removed region touches a known position: the grid is connected through these neighbours); when every
position is removed there is nothing to interpolate from and :func:`impute` raises a :class:`CamkitError`.

Then Gaussian noise of standard deviation ``noise`` (default 0.01, the authors') is added to the imputed
positions only, independently per position and channel, drawn from the given ``numpy.random.Generator``. The
scale is absolute, in the units of the values imputed (the model's inputs in camkit). The authors impute images
in [0, 1] before the normalisation, where 0.01 is 1 % of the range; for inputs on another scale (0..255,
standardised) set ``noise`` to the same fraction of their range.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from camkit.errors import CamkitError

NOISE = 0.01
# (offset, weight) of each neighbour, by the number of spatial dimensions
NEIGHBOURS: dict[int, tuple[tuple[tuple[int, ...], float], ...]] = {
    1: (((-1,), 1 / 2), ((1,), 1 / 2)),
    2: (((-1, 0), 1 / 6), ((1, 0), 1 / 6), ((0, -1), 1 / 6), ((0, 1), 1 / 6),
        ((-1, -1), 1 / 12), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((1, 1), 1 / 12)),
}


def linear_system(values: np.ndarray, removed: np.ndarray) -> tuple[sparse.csc_matrix, np.ndarray, np.ndarray]:
    """``values`` (*spatial, C), ``removed`` (*spatial) bool -> (A, b, flat indices of the removed positions):
    the system of the module docstring, one row per removed position in row-major order, b (R, C)."""
    spatial = removed.shape
    flat_removed = removed.ravel()
    flat_values = values.reshape(flat_removed.size, -1)
    unknown = np.flatnonzero(flat_removed)
    variable = np.full(flat_removed.size, -1)
    variable[unknown] = np.arange(unknown.size)
    coords = np.stack(np.unravel_index(unknown, spatial), axis=1)
    diagonal = np.zeros(unknown.size)
    rhs = np.zeros((unknown.size, flat_values.shape[1]))
    rows, cols, weights = [np.arange(unknown.size)], [np.arange(unknown.size)], []
    for offset, weight in NEIGHBOURS[len(spatial)]:
        moved = coords + np.asarray(offset)
        inside = np.all((moved >= 0) & (moved < np.asarray(spatial)), axis=1)
        equation = np.flatnonzero(inside)
        neighbour = np.ravel_multi_index(tuple(moved[inside].T), spatial)
        diagonal[equation] += weight
        known = ~flat_removed[neighbour]
        rhs[equation[known]] += weight * flat_values[neighbour[known]]
        rows.append(equation[~known])
        cols.append(variable[neighbour[~known]])
        weights.append(np.full(int((~known).sum()), -weight))
    matrix = sparse.coo_matrix((np.concatenate([diagonal, *weights]), (np.concatenate(rows), np.concatenate(cols))),
                               shape=(unknown.size, unknown.size)).tocsc()
    return matrix, rhs, unknown


def impute(x: np.ndarray, removed: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """``x`` (*spatial, C) with its ``removed`` (*spatial) positions imputed (module docstring), float32; ``rng``
    draws the noise (nothing is drawn when ``noise`` is 0)."""
    x = np.asarray(x)
    removed = np.asarray(removed, bool)
    if removed.shape != x.shape[:-1] or removed.ndim not in NEIGHBOURS:
        raise ValueError(f"impute: expected x (*spatial, C) with 1 or 2 spatial dimensions and removed (*spatial), "
                         f"got {x.shape} and {removed.shape}")
    out = np.array(x, np.float64).reshape(removed.size, -1)
    if not removed.any():
        return out.reshape(x.shape).astype(np.float32)
    if removed.all():
        raise CamkitError("imputation: every position is removed, there is no known value to interpolate from")
    matrix, rhs, unknown = linear_system(out, removed)
    solution = np.asarray(spsolve(matrix, rhs)).reshape(rhs.shape)
    if noise:
        solution += noise * rng.standard_normal(solution.shape)
    out[unknown] = solution
    return out.reshape(x.shape).astype(np.float32)
