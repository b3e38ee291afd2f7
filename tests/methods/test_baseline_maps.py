"""The model-free baselines: the centre Gaussian by hand, the random map's seeding, both class-agnostic."""

from __future__ import annotations

import numpy as np
import pytest
from cam_reference import KINDS, inputs, tiny

import camkit
from camkit.errors import CamkitError
from camkit.methods import Passes, method_class
from camkit.methods.center_gaussian import center_gaussian
from camkit.methods.random_map import sample_stream


def test_center_gaussian_by_hand() -> None:
    # n = 4, σ = 0.25: σ·n = 1, centre 1.5 -> exp(-(p - 1.5)² / 2)
    assert center_gaussian((4,), 0.25) == pytest.approx(np.exp(-np.array([2.25, 0.25, 0.25, 2.25]) / 2))
    # 3 × 5, σ = 0.5: rows σ·n = 1.5 around 1, columns 2.5 around 2
    rows = np.exp(-((np.arange(3) - 1) / 1.5) ** 2 / 2)
    cols = np.exp(-((np.arange(5) - 2) / 2.5) ** 2 / 2)
    assert center_gaussian((3, 5), 0.5) == pytest.approx(np.outer(rows, cols))


@pytest.mark.parametrize("kind", KINDS)
def test_center_gaussian_is_the_same_for_every_input_and_class(kind: str) -> None:
    net, x = tiny(kind), inputs(kind, n=3)
    exp = camkit.explain(net.model, x, method="center-gaussian", targets="top2", batch_size=2)
    size = x.shape[1:-1]
    expected = center_gaussian(size, 0.25)
    assert exp.maps.shape == (3, 2, *size) and exp.layer is None
    np.testing.assert_allclose(exp.maps, np.broadcast_to(expected / expected.max(), exp.maps.shape), atol=1e-6)
    np.testing.assert_allclose(exp.scores[:, 0], net.logits(x).max(axis=1), rtol=1e-5, atol=1e-6)
    assert method_class("center-gaussian")().passes(8) == Passes(1, 0)


@pytest.mark.parametrize("kind", KINDS)
def test_random_map_seeded_by_the_sample(kind: str) -> None:
    net, x = tiny(kind), inputs(kind, n=4)
    whole = camkit.explain(net.model, x, method="random-map", targets="top2", batch_size=3)
    alone = camkit.explain(net.model, x[2:3], method="random-map")
    np.testing.assert_array_equal(whole.maps[2, 0], alone.maps[0])
    np.testing.assert_array_equal(whole.maps[:, 0], whole.maps[:, 1])  # the same map for every class
    expected = sample_stream(0, x[1]).random(x.shape[1:-1])
    np.testing.assert_allclose(whole.raw[1, 0], expected, atol=1e-7)
    np.testing.assert_allclose(whole.maps[1, 0], expected / expected.max(), atol=1e-6)
    assert not np.allclose(whole.maps[0, 0], whole.maps[1, 0])
    other = camkit.explain(net.model, x[:1], method="random-map", seed=1)
    assert not np.allclose(other.maps[0], whole.maps[0, 0])


def test_random_map_on_a_coarse_grid() -> None:
    net, x = tiny("images"), inputs("images", n=2)
    exp = camkit.explain(net.model, x, method="random-map", cells=2)
    assert exp.raw.shape == (2, *x.shape[1:-1])
    corners = np.asarray(exp.raw)[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # bilinear corners = the 2×2 grid's values
    grid = np.stack([sample_stream(0, s).random((2, 2)).reshape(-1) for s in x])
    np.testing.assert_allclose(corners, grid, atol=1e-6)


@pytest.mark.parametrize(("method", "options", "message"), [
    ("center-gaussian", {"sigma": 0}, "sigma: expected the Gaussian's σ"),
    ("random-map", {"seed": -1}, "seed: expected an integer of at least 0"),
    ("random-map", {"cells": 0}, "cells: expected a positive integer"),
])
def test_bad_options(method: str, options: dict, message: str) -> None:
    net, x = tiny("series"), inputs("series", n=1)
    with pytest.raises(CamkitError, match=message):
        camkit.explain(net.model, x, method=method, **options)
