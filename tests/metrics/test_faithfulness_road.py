"""ROAD: the noisy linear imputation against hand-solved systems, and the metrics on linear-softmax models whose
ideal map is known."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from scipy.special import expit

from camkit.errors import CamkitError
from camkit.metrics.faithfulness import road
from camkit.metrics.faithfulness.base import Explained
from camkit.metrics.faithfulness.imputation import impute
from camkit.metrics.faithfulness.road import Road, RoadLeRF, RoadMoRF

NO_NOISE = {"noise": 0.0}


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def linear_model(weights: np.ndarray) -> keras.Model:
    """(*weights.shape) inputs -> softmax over 2 classes with logits (0, weights·x): p(class 1) = sigmoid(w·x)."""
    inputs = keras.Input(weights.shape)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(inputs))
    model = keras.Model(inputs, out)
    w = weights.reshape(-1)
    model.layers[-1].set_weights([np.stack([np.zeros_like(w), w], axis=1).astype(np.float32), np.zeros(2, np.float32)])
    return model


def test_one_removed_pixel_is_the_weighted_mean_of_its_neighbours() -> None:
    x = np.array([[0, 1, 0], [2, 9, 3], [0, 0, 4]], np.float32)[..., None]
    removed = np.zeros((3, 3), bool)
    removed[1, 1] = True
    got = impute(x, removed, 0.0, rng())
    # direct neighbours 1, 2, 3, 0 weigh 1/6, diagonal ones 0, 0, 0, 4 weigh 1/12: 6/6 + 4/12
    assert got[1, 1, 0] == pytest.approx(4 / 3, abs=1e-6)
    kept = ~removed
    assert got[kept].tolist() == x[kept].tolist()


def test_two_removed_pixels_at_the_corner_by_hand() -> None:
    v = np.array([[[9, 1], [9, 2], [5, 3]], [[2, 4], [7, 5], [1, 6]], [[3, 7], [8, 8], [6, 9]]], np.float32)
    removed = np.zeros((3, 3), bool)
    removed[0, 0] = removed[0, 1] = True
    got = impute(v, removed, 0.0, rng())
    for c in range(2):
        a = v[..., c]
        # a = x(0,0): in-bounds neighbours (0,1) 1/6 [removed], (1,0) 1/6, (1,1) 1/12; their weights sum to 5/12
        # b = x(0,1): (0,0) 1/6 [removed], (0,2) 1/6, (1,1) 1/6, (1,0) 1/12, (1,2) 1/12; sum 2/3
        lhs = np.array([[5 / 12, -1 / 6], [-1 / 6, 2 / 3]])
        rhs = np.array([a[1, 0] / 6 + a[1, 1] / 12,
                        a[0, 2] / 6 + a[1, 1] / 6 + a[1, 0] / 12 + a[1, 2] / 12])
        assert got[0, :2, c] == pytest.approx(np.linalg.solve(lhs, rhs), abs=1e-5)
    assert got[1:].tolist() == v[1:].tolist() and got[0, 2].tolist() == v[0, 2].tolist()


def test_series_gaps_are_filled_by_lines_and_edges_by_their_neighbour() -> None:
    x = np.array([1, 9, 9, 9, 7, 3, 9], np.float32)[:, None]
    gap = np.array([0, 1, 1, 1, 0, 0, 1], bool)  # t = 1..3: no known neighbour at t = 2; t = 6: the end
    got = impute(x, gap, 0.0, rng())[:, 0]
    assert got == pytest.approx([1, 2.5, 4, 5.5, 7, 3, 3], abs=1e-6)
    start = impute(np.array([0, 0, 6, 1], np.float32)[:, None], np.array([1, 1, 0, 0], bool), 0.0, rng())[:, 0]
    assert start == pytest.approx([6, 6, 6, 1], abs=1e-6)


def test_every_position_removed_is_an_error() -> None:
    with pytest.raises(CamkitError, match="every position is removed"):
        impute(np.ones((4, 1), np.float32), np.ones(4, bool), 0.0, rng())


def test_noise_touches_only_removed_positions_and_follows_the_seed() -> None:
    x = np.random.default_rng(1).random((40, 40, 2)).astype(np.float32)
    removed = np.random.default_rng(2).random((40, 40)) < 0.5
    plain = impute(x, removed, 0.0, rng())
    noisy = impute(x, removed, 0.1, np.random.default_rng(5))
    assert noisy[~removed].tolist() == x[~removed].tolist()
    diff = noisy[removed] - plain[removed]
    assert np.all(diff != 0) and diff.std() == pytest.approx(0.1, rel=0.05) and abs(diff.mean()) < 0.01
    assert impute(x, removed, 0.1, np.random.default_rng(5)).tolist() == noisy.tolist()
    assert impute(x, removed, 0.1, np.random.default_rng(6)).tolist() != noisy.tolist()


def test_a_224_image_with_half_its_pixels_removed() -> None:
    x = np.random.default_rng(3).random((224, 224, 3)).astype(np.float32)
    removed = np.random.default_rng(4).random((224, 224)) < 0.5
    got = impute(x, removed, 0.01, rng())
    assert got.shape == x.shape and np.isfinite(got).all() and got[~removed].tolist() == x[~removed].tolist()


def test_road_curves_by_hand_on_a_series() -> None:
    w = np.array([0.3, -0.2, 0.4, 0.1])
    model = linear_model(w[:, None])
    x = np.array([[1, 2, 4, 8]], np.float32)[..., None]
    explained = Explained(model, x, np.array([[0.6, 0.0, 1.0, 0.2]]), np.array([1]))  # order 2, 0, 3, 1
    options = {"percentiles": (25, 50, 75), **NO_NOISE}
    # MoRF removes t = 2, then 2 and 0, then 2, 0 and 3; LeRF removes t = 1, then 1 and 3, then 1, 3 and 0
    morf = expit([w @ [1, 2, 5, 8], w @ [2, 2, 5, 8], w @ [2, 2, 2, 2]])
    lerf = expit([w @ [1, 2.5, 4, 8], w @ [1, 2.5, 4, 4], w @ [4, 4, 4, 4]])
    got_morf = RoadMoRF(**options).score(explained)
    assert got_morf.curve[0] == pytest.approx(morf, abs=1e-6)
    assert got_morf.values[0] == pytest.approx(morf.mean(), abs=1e-6)
    assert list(got_morf.curve_x) == [25, 50, 75] and got_morf.curve_label == "percent removed"
    assert RoadLeRF(**options).score(explained).values[0] == pytest.approx(lerf.mean(), abs=1e-6)
    got = Road(**options).score(explained)
    assert got.curve[0] == pytest.approx(lerf - morf, abs=1e-6)
    assert got.values[0] == pytest.approx((lerf - morf).mean(), abs=1e-6)


@pytest.mark.parametrize("spatial", [(6, 6), (16,)])
def test_the_ideal_map_beats_random_and_reversed_maps(spatial: tuple[int, ...]) -> None:
    gen = np.random.default_rng(7)
    w = 0.4 * gen.standard_normal((*spatial, 1))
    x = gen.standard_normal((8, *spatial, 1)).astype(np.float32)
    ideal = (x * w)[..., 0]  # class 1's logit is the sum of these contributions
    ideal = (ideal - ideal.min()) / (ideal.max() - ideal.min())
    maps = {"ideal": ideal, "random": gen.random(ideal.shape), "reversed": 1 - ideal}
    model = linear_model(w)
    for metric in (RoadMoRF(), RoadLeRF(), Road()):
        got = {k: metric.score(Explained(model, x, m, np.ones(8, np.int64))).values.mean() for k, m in maps.items()}
        sign = 1 if metric.higher_is_better else -1
        assert sign * got["ideal"] > sign * got["random"] + 0.05, (metric.name, got)
        assert sign * got["ideal"] > sign * got["reversed"] + 0.05, (metric.name, got)


def test_noise_is_seeded_per_sample_and_curves_are_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    gen = np.random.default_rng(8)
    w = gen.standard_normal((10, 1))
    model = linear_model(w)
    x = gen.standard_normal((3, 10, 1)).astype(np.float32)
    explained = Explained(model, x, gen.random((3, 10)), np.ones(3, np.int64))
    calls = []
    compute = road.road_curve
    monkeypatch.setattr(road, "road_curve", lambda *a: calls.append(a[1]) or compute(*a))
    noisy = {"noise": 0.5, "seed": 3}
    morf, lerf, both = (cls(**noisy).score(explained) for cls in (RoadMoRF, RoadLeRF, Road))
    assert calls == [road.MORF, road.LERF]  # road reuses both curves
    assert both.values == pytest.approx(lerf.values - morf.values, abs=1e-12)
    alone = RoadMoRF(**noisy).score(Explained(model, x[1:2], explained.maps[1:2], np.ones(1, np.int64)))
    assert alone.values[0] == pytest.approx(morf.values[1], abs=1e-6)  # independent of the batch
    assert RoadMoRF(noise=0.5, seed=4).score(explained).values.tolist() != morf.values.tolist()
    assert RoadMoRF(**noisy).score(explained).values.tolist() == morf.values.tolist()
    model.layers[-1].set_weights([np.zeros((10, 2), np.float32), np.zeros(2, np.float32)])
    assert RoadMoRF(**noisy).score(explained).values == pytest.approx([0.5] * 3)  # new weights: computed again


def test_each_sample_draws_its_own_noise() -> None:
    x = np.stack([np.zeros((8, 1)), np.ones((8, 1))]).astype(np.float32)
    removed = np.zeros((2, 1, 8), bool)
    removed[:, :, 2:6] = True
    first, second = (copy - sample for copy, sample in zip(road.imputed_copies(x, removed, road.MORF, 1.0, 0), x,
                                                            strict=True))
    assert np.abs(first[2:6] - second[2:6]).min() > 1e-3  # the same mask, independent draws


@pytest.mark.parametrize(("option", "value"), [("percentiles", (50, 10)), ("percentiles", (10, 100)),
                                               ("percentiles", ()), ("noise", -0.1), ("seed", 1.5), ("chunk", 0)])
def test_bad_options(option: str, value: object) -> None:
    explained = Explained(linear_model(np.ones((4, 1))), np.ones((1, 4, 1), np.float32), np.ones((1, 4)),
                          np.ones(1, np.int64))
    with pytest.raises(CamkitError, match=f"^{option}: expected"):
        RoadMoRF(**{option: value}).score(explained)
