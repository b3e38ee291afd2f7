"""Deletion against hand-computed curves on a linear-softmax model whose ideal map is known."""

from __future__ import annotations

import numpy as np
import pytest
from faithfulness_models import linear_model
from scipy.special import expit

from camkit.metrics.faithfulness.base import Explained
from camkit.metrics.faithfulness.deletion import Deletion
from camkit.metrics.faithfulness.perturb import auc, baseline, ranks, step_counts


def test_ranks_break_ties_by_position() -> None:
    assert ranks(np.array([[0.5, 1.0, 0.5, 0.0]])).tolist() == [[1, 0, 2, 3]]


def test_step_counts() -> None:
    assert step_counts(4, 4).tolist() == [0, 1, 2, 3, 4]
    assert step_counts(10, 4).tolist() == [0, 2, 5, 8, 10]


def test_deletion_auc_by_hand() -> None:
    x = np.array([[1.0, 1.0, 1.0, 1.0]], np.float32)[..., None]
    ideal = np.array([[0.6, 0.0, 1.0, 0.2]])  # positive contributions first: 3 (pos 2), 1 (pos 0), 0.5 (pos 3)
    got = Deletion(steps=4).score(Explained(linear_model(), x, ideal, np.array([1])))
    # removal order 2, 0, 3, 1: logits 2.5, -0.5, -1.5, -2, 0
    p = expit(np.array([2.5, -0.5, -1.5, -2.0, 0.0]))
    assert got.curve[0] == pytest.approx(p, abs=1e-6)
    assert got.values[0] == pytest.approx((p[:-1] + p[1:]).sum() / 8, abs=1e-6)
    reverse = Deletion(steps=4).score(Explained(linear_model(), x, 1 - ideal, np.array([1])))
    assert got.values[0] < reverse.values[0]


def test_auc_of_a_line() -> None:
    assert auc(np.array([[1.0, 0.5, 0.0]])) == pytest.approx([0.5])


def test_baselines() -> None:
    x = np.arange(24, dtype=np.float32).reshape(2, 4, 3)
    assert baseline(x, "zero").tolist() == np.zeros_like(x).tolist()
    assert baseline(x, "mean")[0, :, 0] == pytest.approx([4.5] * 4)
    assert baseline(np.ones((1, 10, 2), np.float32), "blur") == pytest.approx(np.ones((1, 10, 2)))
