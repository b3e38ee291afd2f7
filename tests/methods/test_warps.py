"""Augmented Grad-CAM warps: conventions, exact inverse, batching, the seeded sampler."""

import numpy as np
import pytest

from camkit.methods.warps import (
    SHIFT_RANGE,
    Warps,
    identity_warps,
    sample_warps,
    unwarp,
    unwarp_matrices,
    warp,
    warp_matrices,
)


def _smooth(size: int, channels: int = 1) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size
    out = [
        np.sin(2 * np.pi * (yy + 0.3 * c)) * np.cos(np.pi * xx) + np.exp(-((yy - 0.4) ** 2 + (xx - 0.6) ** 2) * 8)
        for c in range(channels)
    ]
    return np.stack(out, -1).astype(np.float32)


def test_identity_returns_input_exactly():
    x = np.random.default_rng(0).normal(size=(2, 11, 13, 3)).astype(np.float32)
    out = warp(x, identity_warps(3)).numpy()
    assert out.shape == (2, 3, 11, 13, 3)
    np.testing.assert_array_equal(out, np.broadcast_to(x[:, None], out.shape))
    np.testing.assert_array_equal(unwarp(out, identity_warps(3)).numpy(), out)
    sampled = sample_warps(4, (11, 13), seed=0)
    np.testing.assert_array_equal(warp(x[0], sampled).numpy()[0], x[0])


def test_integer_shift_moves_a_pixel_exactly_positive_dx_right_dy_down():
    x = np.zeros((16, 16, 1), np.float32)
    x[5, 7] = 1.0
    out = warp(x, Warps([0.0, 0.0], [[2.0, 3.0], [-4.0, -1.0]])).numpy()[..., 0]
    expected = np.zeros((2, 16, 16), np.float32)
    expected[0, 7, 10] = 1.0  # dy = +2 (down), dx = +3 (right)
    expected[1, 1, 6] = 1.0
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(unwarp(out, Warps([0.0, 0.0], [[2.0, 3.0], [-4.0, -1.0]])).numpy()[0], x[..., 0])


def test_quarter_turn_about_the_centre_is_counter_clockwise():
    size = 8
    x = np.zeros((size, size, 1), np.float32)
    x[1, 6] = 1.0  # top right, (x, y) = (6, 1); centre (3.5, 3.5)
    out = warp(x, Warps([np.pi / 2], [[0.0, 0.0]])).numpy()[0, ..., 0]
    # counter-clockwise as displayed: top right -> top left, (row, col) -> (size-1-col, row) = (1, 1)
    assert out[1, 1] == pytest.approx(1.0, abs=1e-4)
    assert np.abs(out).sum() == pytest.approx(1.0, abs=1e-4)
    rng = np.random.default_rng(1)
    y = rng.normal(size=(9, 9, 2)).astype(np.float32)
    np.testing.assert_allclose(warp(y, Warps([np.pi / 2], [[0.0, 0.0]])).numpy()[0], np.rot90(y, 1), atol=1e-4)


def test_rotation_then_shift_order():
    size = 16
    x = np.zeros((size, size, 1), np.float32)
    x[2, 9] = 1.0
    out = warp(x, Warps([np.pi / 2], [[1.0, 2.0]])).numpy()[0, ..., 0]
    # rotate first: (2, 9) -> (15 - 9, 2) = (6, 2); then shift by (dy, dx) = (1, 2): (7, 4)
    assert out[7, 4] == pytest.approx(1.0, abs=1e-4)


def test_unwarp_matrices_invert_warp_matrices():
    warps = sample_warps(6, (20, 30), seed=3)
    product = unwarp_matrices(warps, (20, 30)) @ warp_matrices(warps, (20, 30))
    np.testing.assert_allclose(product, np.broadcast_to(np.eye(3), product.shape), atol=1e-12)


def test_unwarp_of_warp_recovers_smooth_interior():
    size = 48
    x = _smooth(size, 2)
    warps = sample_warps(8, (size, size), seed=4)
    back = unwarp(warp(x, warps), warps).numpy()
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    max_shift = np.hypot(*np.abs(warps.shifts).max(0))
    interior = np.hypot(yy, xx) < size / 2 - max_shift - 2  # never pushed out of the frame
    assert interior.sum() > 100
    err = np.abs(back - x[None])[:, interior]
    assert err.max() < 0.015  # bilinear blur, twice, on a smooth image (measured 0.006)
    assert err.mean() < 0.003


def test_batched_equals_per_copy():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 12, 10, 2)).astype(np.float32)
    warps = sample_warps(4, (12, 10), seed=6)
    batched = warp(x, warps).numpy()
    for b in range(3):
        for i in range(4):
            np.testing.assert_array_equal(batched[b, i], warp(x[b], warps[i]).numpy()[0])
    back = unwarp(batched, warps).numpy()
    for b in range(3):
        np.testing.assert_array_equal(back[b], unwarp(batched[b], warps).numpy())
        np.testing.assert_array_equal(back[b, ..., 0], unwarp(batched[b, ..., 0], warps).numpy())


def test_sampler_reproducible_identity_first_in_range_and_scaled():
    a = sample_warps(50, (112, 224), seed=7)
    b = sample_warps(50, (112, 224), seed=7)
    np.testing.assert_array_equal(a.angles, b.angles)
    np.testing.assert_array_equal(a.shifts, b.shifts)
    assert not np.array_equal(a.angles, sample_warps(50, (112, 224), seed=8).angles)
    assert a.angles.dtype == np.float32 and a.shifts.dtype == np.float32
    assert a.angles.shape == (50,) and a.shifts.shape == (50, 2) and a.image_size == (112, 224)
    assert a.angles[0] == 0 and np.all(a.shifts[0] == 0)
    assert np.all(np.abs(a.angles) <= 0.5) and np.abs(a.angles).max() > 0.3
    assert np.all(np.abs(a.shifts[:, 0]) <= SHIFT_RANGE * 112 + 1e-4)
    assert np.all(np.abs(a.shifts[:, 1]) <= SHIFT_RANGE * 224 + 1e-4)
    assert np.abs(a.shifts[:, 1]).max() > 20  # ±30 px at 224
    small = sample_warps(50, (56, 112), seed=7)  # same draws, half the size: half the shifts
    np.testing.assert_allclose(small.shifts * 2, a.shifts, rtol=1e-6)
    np.testing.assert_array_equal(small.angles, a.angles)


def test_size_mismatch_and_bad_shapes_raise():
    warps = sample_warps(2, (16, 16), seed=0)
    with pytest.raises(ValueError, match="drawn for"):
        warp(np.zeros((8, 8, 1), np.float32), warps)
    with pytest.raises(ValueError, match="warps"):
        unwarp(np.zeros((3, 16, 16), np.float32), warps)
    with pytest.raises(ValueError):
        warp(np.zeros((16, 16), np.float32), warps)
