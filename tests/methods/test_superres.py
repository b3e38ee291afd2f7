"""Augmented Grad-CAM super-resolution: the operator, its adjoint, the solver against max / avg / Adam."""

import numpy as np
import pytest
import tensorflow as tf

from camkit.methods.superres import (
    WarpDownsample,
    _grad,
    _grad_adjoint,
    adam_baseline,
    aggregate,
    normalise_maps,
    objective,
    resize_matrix,
    solve_superres,
)
from camkit.methods.warps import identity_warps, sample_warps, warp

SIZE, LOW, N_WARPS = 32, 8, 16


def _blobs(centres, sigmas, weights=(1.0, 0.7)) -> np.ndarray:
    yy, xx = np.mgrid[:SIZE, :SIZE]
    out = sum(
        w * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s**2))
        for (cy, cx), s, w in zip(centres, sigmas, weights, strict=False)
    )
    return out.astype(np.float32)


def _error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Relative L2 error after the best scalar rescaling: the methods give maps in different units (and the
    engine rescales maps anyway), so only the shape is compared."""
    scale = (estimate * truth).sum() / max((estimate * estimate).sum(), 1e-12)
    return float(np.linalg.norm(scale * estimate - truth) / np.linalg.norm(truth))


@pytest.fixture(scope="module")
def problem():
    truth = _blobs([(11, 12), (21, 20)], [3.5, 2.5])
    warps = sample_warps(N_WARPS, (SIZE, SIZE), seed=0)
    low = WarpDownsample(warps, (SIZE, SIZE), (LOW, LOW), 1)(truth[None]).numpy()  # (1, L, 8, 8), raw
    return truth, warps, low


@pytest.fixture(scope="module")
def solved(problem):
    _, warps, low = problem
    return solve_superres(low, warps, (SIZE, SIZE))


def test_resize_matrix_is_tf_resize():
    x = np.random.default_rng(0).normal(size=(SIZE, SIZE)).astype(np.float32)
    ry, rx = resize_matrix(SIZE, LOW), resize_matrix(SIZE, 7)
    ref = tf.image.resize(x[None, ..., None], (LOW, 7), method="bilinear")[0, ..., 0].numpy()
    np.testing.assert_allclose(ry @ x @ rx.T, ref, atol=1e-5)


def test_operator_is_downsample_of_warp():
    rng = np.random.default_rng(1)
    h = rng.uniform(size=(2, SIZE, SIZE)).astype(np.float32)
    warps = sample_warps(5, (SIZE, SIZE), seed=2)
    op = WarpDownsample(warps, (SIZE, SIZE), (LOW, 7), 2)
    warped = warp(h[..., None], warps)  # (2, 5, H, W, 1)
    ref = tf.image.resize(tf.reshape(warped, (10, SIZE, SIZE, 1)), (LOW, 7), method="bilinear")
    np.testing.assert_allclose(op(h).numpy(), tf.reshape(ref, (2, 5, LOW, 7)).numpy(), atol=2e-5)
    plain = WarpDownsample(identity_warps(1, (SIZE, SIZE)), (SIZE, SIZE), (LOW, LOW), 2)(h).numpy()[:, 0]
    np.testing.assert_allclose(plain, tf.image.resize(h[..., None], (LOW, LOW))[..., 0].numpy(), atol=1e-6)


def test_adjoint_is_exact_and_matches_autodiff():
    rng = np.random.default_rng(3)
    warps = [sample_warps(6, (SIZE, SIZE), seed=s) for s in (4, 5)]
    op = WarpDownsample(warps, (SIZE, SIZE), (LOW, LOW))
    x = tf.constant(rng.normal(size=(2, SIZE, SIZE)), tf.float32)
    y = tf.constant(rng.normal(size=(2, 6, LOW, LOW)), tf.float32)
    lhs = np.sum(op(x).numpy().astype(np.float64) * y.numpy())
    rhs = np.sum(x.numpy().astype(np.float64) * op.adjoint(y).numpy())
    assert abs(lhs - rhs) <= 1e-5 * abs(lhs)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = op(x)
    np.testing.assert_allclose(tape.gradient(out, x, output_gradients=y).numpy(), op.adjoint(y).numpy(), atol=1e-6)
    p = [tf.constant(rng.normal(size=(2, SIZE, SIZE)), tf.float32) for _ in range(2)]
    gy, gx = _grad(x)
    lhs = np.sum(gy.numpy() * p[0].numpy()) + np.sum(gx.numpy() * p[1].numpy())
    assert lhs == pytest.approx(np.sum(x.numpy() * _grad_adjoint(*p).numpy()), rel=1e-5)


def test_solver_beats_max_avg_and_adam(problem, solved):
    truth, warps, low = problem
    adam = adam_baseline(low, warps, (SIZE, SIZE))
    errors = {
        "solver": _error(solved.maps[0], truth),
        "max": _error(aggregate(low, warps, (SIZE, SIZE), "max")[0], truth),
        "avg": _error(aggregate(low, warps, (SIZE, SIZE), "avg")[0], truth),
        "adam": _error(adam.maps[0], truth),
    }
    # measured: solver 0.125, max 0.182, avg 0.158, adam 0.484
    assert errors["solver"] < 0.9 * min(errors["max"], errors["avg"]), errors
    assert errors["solver"] < 0.5 * errors["adam"], errors
    assert solved.objective[0] < 0.5 * adam.objective[0]


def test_solver_converges_with_certificate(problem, solved):
    _, warps, low = problem
    assert solved.maps.shape == (1, SIZE, SIZE) and solved.maps.dtype == np.float32
    assert solved.converged.tolist() == [True]
    assert 0 < solved.iterations[0] < 10000 and solved.gap[0] <= 1e-4
    h = tf.constant(solved.maps)
    f = objective(h, low, warps).numpy()
    assert f[0] == pytest.approx(solved.objective[0], rel=1e-5)
    assert f[0] < 0.1 * objective(tf.zeros_like(h), low, warps).numpy()[0]  # final vs initial
    # Suboptimality ≤ tol·F (what the gap certifies): no nearby point is better by more than that.
    rng = np.random.default_rng(6)
    for eps in (1e-1, 1e-2):
        d = tf.constant(rng.normal(size=(4, SIZE, SIZE)) * eps, tf.float32)
        moved = objective(h + d, np.repeat(low, 4, 0), warps).numpy()
        assert np.all(moved >= f[0] * (1 - 1e-4))
    short = solve_superres(low, warps, (SIZE, SIZE), max_iter=30)
    assert short.iterations[0] == 30 and not short.converged[0]
    assert solved.objective[0] < short.objective[0] < f[0] * 10


def test_consistent_data_is_super_resolved(problem):
    """Without the per-map normalisation the data are exactly A h*: the solve then recovers h* closely."""
    truth, warps, low = problem
    result = solve_superres(low, warps, (SIZE, SIZE), normalise=False, lambda_tv=0.008)
    err = _error(result.maps[0], truth)
    assert err < 0.08  # measured 0.049
    assert err < 0.5 * _error(aggregate(low, warps, (SIZE, SIZE), "avg")[0], truth)


def test_batch_equals_alone(problem):
    _, warps, low = problem
    other_truth = _blobs([(8, 22), (22, 9)], [3.0, 4.0])
    other_warps = sample_warps(N_WARPS, (SIZE, SIZE), seed=9)
    other_low = WarpDownsample(other_warps, (SIZE, SIZE), (LOW, LOW), 1)(other_truth[None]).numpy()
    both = solve_superres(np.concatenate([low, other_low]), [warps, other_warps], (SIZE, SIZE))
    alone = [solve_superres(low, warps, (SIZE, SIZE)), solve_superres(other_low, other_warps, (SIZE, SIZE))]
    for i, single in enumerate(alone):
        assert both.iterations[i] == single.iterations[0]
        assert both.converged[i] and single.converged[0]
        np.testing.assert_allclose(both.maps[i], single.maps[0], atol=1e-5)
        assert both.objective[i] == pytest.approx(single.objective[0], rel=1e-5)


def test_zero_maps_give_no_nan(problem):
    _, warps, low = problem
    some_zero = low.copy()
    some_zero[0, 3:7] = 0.0
    maps = np.concatenate([np.zeros_like(low), some_zero])
    g = normalise_maps(maps).numpy()
    assert np.isfinite(g).all() and np.all(g[0] == 0) and np.all(g[1, 3:7] == 0) and g[1, 0].max() == 1
    result = solve_superres(maps, warps, (SIZE, SIZE), max_iter=2000)
    assert np.isfinite(result.maps).all() and np.isfinite(result.objective).all()
    assert result.converged.all()
    assert np.all(result.maps[0] == 0) and result.objective[0] == 0
    assert np.isfinite(adam_baseline(maps, warps, (SIZE, SIZE), steps=5).maps).all()
    assert np.isfinite(aggregate(maps, warps, (SIZE, SIZE), "avg")).all()


def test_bad_arguments_raise(problem):
    _, warps, low = problem
    with pytest.raises(ValueError, match="lambda_e"):
        solve_superres(low, warps, (SIZE, SIZE), lambda_e=0.0)
    with pytest.raises(ValueError, match="warps"):
        solve_superres(low[:, :5], warps, (SIZE, SIZE))
    with pytest.raises(ValueError, match="drawn for"):
        solve_superres(low, warps, (SIZE * 2, SIZE * 2))
