"""MuFidelity against an explicit NumPy loop (the same subsets from the same seed), its cells and subsets, and
its zero cases."""

from __future__ import annotations

import numpy as np
import pytest
from faithfulness_models import linear_model
from scipy.special import expit

from camkit.errors import CamkitError
from camkit.metrics.faithfulness.base import Explained
from camkit.metrics.faithfulness.mufidelity import MuFidelity, draw_subsets
from camkit.metrics.faithfulness.perturb import baseline, cells


def test_cells() -> None:
    assert cells((4, 4), 2).reshape(4, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    assert cells((6,), 4).tolist() == [0, 0, 1, 2, 2, 3]  # floor(i · 4 / 6)
    assert cells((2, 3), 9).tolist() == [0, 1, 2, 3, 4, 5]  # sides shorter than the grid: a cell per position


def test_subsets_have_k_cells_and_follow_the_seed() -> None:
    subsets = draw_subsets(50, 81, 0.2, seed=0)
    assert subsets.shape == (50, 81) and (subsets.sum(axis=1) == 16).all()  # round(0.2 · 81)
    assert (draw_subsets(50, 81, 0.2, seed=0) == subsets).all() and (draw_subsets(50, 81, 0.2, 1) != subsets).any()
    assert (draw_subsets(4, 3, 0.99, 0).sum(axis=1) == 2).all()  # at most cells - 1: subsets must differ


def explicit_mufidelity(w: np.ndarray, x: np.ndarray, maps: np.ndarray, targets: np.ndarray, base: np.ndarray,
                        grid: int, n: int, fraction: float, seed: int) -> np.ndarray:
    """The definition, one sample and subset at a time, on p(class 1) = sigmoid(Σ w ⊙ x)."""
    spatial = w.shape
    bands = [np.arange(side) * min(grid, side) // side for side in spatial]
    cell = bands[0] if len(spatial) == 1 else bands[0][:, None] * min(grid, spatial[1]) + bands[1][None, :]
    count = int(cell.max()) + 1
    k = round(fraction * count)
    keys = np.random.default_rng(seed).random((n, count))
    out = []
    for i in range(len(x)):
        sign = 1.0 if targets[i] == 1 else -1.0
        full = expit(sign * np.sum(w * x[i, ..., 0]))
        sums, drops = [], []
        for r in range(n):
            removed = np.isin(cell, np.argsort(keys[r])[:k])
            copy = np.where(removed, base[i, ..., 0], x[i, ..., 0])
            sums.append(maps[i][removed].sum())
            drops.append(full - expit(sign * np.sum(w * copy)))
        out.append(np.corrcoef(sums, drops)[0, 1])
    return np.array(out)


@pytest.mark.parametrize(("spatial", "grid", "fraction", "kind"),
                         [((6, 6), 3, 0.3, "zero"), ((10,), 4, 0.5, "mean")], ids=["image", "series"])
def test_matches_an_explicit_loop(spatial: tuple[int, ...], grid: int, fraction: float, kind: str) -> None:
    """Images: 9 equal cells of 2 × 2, 3 per subset; series: segments of 3, 2, 3, 2 steps, 2 per subset."""
    rng = np.random.default_rng(1)
    w, x = rng.normal(size=spatial), rng.uniform(size=(3, *spatial, 1)).astype(np.float32)
    maps, targets = rng.uniform(size=(3, *spatial)).astype(np.float32), np.array([1, 0, 1])
    metric = MuFidelity(n=12, subset=fraction, grid=grid, baseline=kind, seed=7)
    got = metric.score(Explained(linear_model(w), x, maps, targets)).values
    expected = explicit_mufidelity(w, x, maps, targets, baseline(x, kind), grid, 12, fraction, 7)
    assert got == pytest.approx(expected, abs=1e-4)
    assert np.abs(expected).max() > 0.2  # a case where the correlation is not 0
    reversed_map = metric.score(Explained(linear_model(w), x, 1 - maps, targets)).values
    if spatial == (6, 6):  # equal cells: the reversed map's subset sums are a constant minus the map's
        assert reversed_map == pytest.approx(-got, abs=1e-4)


def test_same_subsets_for_every_batch() -> None:
    rng = np.random.default_rng(2)
    w, x = rng.normal(size=(12,)), rng.uniform(size=(3, 12, 1)).astype(np.float32)
    maps, targets, model = rng.uniform(size=(3, 12)).astype(np.float32), np.array([1, 1, 0]), linear_model(w)
    whole = MuFidelity(n=16).score(Explained(model, x, maps, targets)).values
    parts = [MuFidelity(n=16).score(Explained(model, x[s], maps[s], targets[s])).values
             for s in (slice(0, 1), slice(1, 3))]
    assert whole == pytest.approx(np.concatenate(parts), abs=1e-9)


def test_constant_map_or_blind_model_scores_zero() -> None:
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(2, 6, 6, 1)).astype(np.float32)
    constant = np.full((2, 6, 6), 0.3, np.float32)  # 6 × 6 cells of one pixel: every subset sums to 7 · 0.3
    assert MuFidelity(n=16).score(Explained(linear_model(rng.normal(size=(6, 6))), x, constant,
                                            np.array([1, 0]))).values.tolist() == [0.0, 0.0]
    blind = linear_model(np.zeros((6, 6)))
    maps = rng.uniform(size=(2, 6, 6)).astype(np.float32)
    assert MuFidelity(n=16).score(Explained(blind, x, maps, np.array([1, 0]))).values.tolist() == [0.0, 0.0]


@pytest.mark.parametrize(("option", "value", "message"), [
    ("n", 1, "n: expected the number of subsets, an integer of at least 2"),
    ("subset", 1.0, r"subset: expected the fraction of cells per subset, a number in \(0, 1\), got 1.0"),
    ("grid", 0, "grid: expected the cells per side"),
    ("seed", -1, "seed: expected the random seed"),
    ("baseline", "noise", "baseline: expected one of zero, mean, blur"),
])
def test_bad_options(option: str, value: object, message: str) -> None:
    with pytest.raises(CamkitError, match=message):
        MuFidelity(**{option: value})
