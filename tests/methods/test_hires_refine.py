"""High-Resolution CAM post-processing steps on small hand-made arrays (camkit.methods.hires_refine)."""

from __future__ import annotations

import numpy as np
import pytest

from camkit.methods import hires_refine as hr


def test_scaled_constants_follow_the_original_at_224():
    assert hr.n_seeds((224, 224)) == 15  # round(sqrt(224))
    assert hr.n_seeds((64, 64)) == 8
    assert hr.hole_area((224, 224)) == 256
    assert hr.hole_area((64, 64)) == 21  # 256 * 64² / 224² = 20.9
    assert hr.hole_area((4, 4)) == 1


def test_minmax_and_constant_map():
    assert np.allclose(hr.minmax(np.array([2.0, 4.0, 3.0])), [0.0, 1.0, 0.5])
    assert not hr.minmax(np.full((3, 3), 7.0)).any()


def test_blurred_gradient_peaks_on_the_edge_of_a_step():
    high = np.zeros((20, 20))
    high[:, 10:] = 5.0  # vertical step between columns 9 and 10
    g = hr.blurred_gradient(high)
    assert g.shape == (20, 20) and g.min() >= 0 and g.max() == pytest.approx(1.0)
    row = g[10]
    # the 5x5 box turns the step into a ramp over columns 8..11 (slope constant there); Sobel smears it by 1
    assert row[8:12] == pytest.approx(np.ones(4))
    assert row[7] == pytest.approx(0.5) and row[12] == pytest.approx(0.5)
    assert not row[:7].any() and not row[13:].any()
    assert np.allclose(g, g[:1])  # the same on every row
    assert not hr.blurred_gradient(np.ones((8, 8))).any()


def test_roi_is_the_top_15_percent_of_the_low_res_map():
    low = np.arange(100, dtype=float).reshape(10, 10)
    roi = hr.roi_mask(low)
    assert roi.sum() == 15 and roi.ravel()[85:].all()  # strictly above the 85th percentile (84.15)


def test_top_mask_counts_and_breaks_ties_in_raster_order():
    values = np.array([[1.0, 3.0, 3.0], [3.0, 0.0, 2.0]])
    assert hr.top_mask(values, 2).tolist() == [[False, True, True], [False, False, False]]
    assert hr.top_mask(values, 0).sum() == 0
    assert hr.top_mask(values, 99).all()


def _band_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 7x7 gradient: 0.5 (the band) on a ring and a path leaving the ROI, 0.0 below, 1.0 above; ROI = 5 columns."""
    g = np.array([
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.5],
        [0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.5, 0.5],
        [0.0, 0.5, 0.5, 0.5, 1.0, 0.5, 0.5],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0],
        [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    ])
    roi = np.zeros((7, 7), dtype=bool)
    roi[:, :5] = True
    seeds = np.zeros((7, 7), dtype=bool)
    seeds[1, 1] = True
    return g, roi, seeds


def test_region_growing_stays_inside_band_and_roi():
    g, roi, seeds = _band_case()
    # in the ROI: 18 zeros, 10 halves, 7 ones -> P60 = P75 = 0.5
    region, (lower, upper) = hr.grow_region(g, seeds, roi, band=(60.0, 75.0))
    assert (lower, upper) == (0.5, 0.5)
    expected = np.zeros((7, 7), dtype=bool)
    expected[1, 1:5] = expected[2, [1, 3]] = expected[3, 1:4] = True  # the ring and the path up to the ROI's edge
    assert np.array_equal(region, expected)
    assert not region[~roi].any()  # the band goes on outside the ROI (columns 5, 6): not followed
    assert (g[region] >= lower).all() and (g[region] <= upper).all()
    assert not region[5, 1]  # in the band but not connected to the seed
    wide, _ = hr.grow_region(g, seeds, np.ones((7, 7), dtype=bool), band=(60.0, 75.0))
    assert wide[:4, 5:].all()  # without the ROI limit the region would leave it


def test_region_growing_is_four_connected_and_seeds_outside_the_band_do_not_grow():
    g = np.zeros((5, 5))
    g[1, 1] = g[2, 2] = 0.5  # diagonal neighbours only
    g[4, 4] = 1.0
    roi = np.ones((5, 5), dtype=bool)
    seeds = np.zeros((5, 5), dtype=bool)
    seeds[1, 1] = True
    region, _ = hr.grow_region(g, seeds, roi, band=(90.0, 95.0))  # both bounds are 0.5 here
    assert region.sum() == 1 and region[1, 1]
    seeds_out = np.zeros((5, 5), dtype=bool)
    seeds_out[4, 4] = True  # 1.0 lies above the band
    assert not hr.grow_region(g, seeds_out, roi, band=(90.0, 95.0))[0].any()
    assert not hr.grow_region(g, seeds, np.zeros((5, 5), dtype=bool))[0].any()  # empty ROI


def test_fill_holes_fills_small_holes_and_keeps_large_ones():
    mask = np.zeros((12, 20), dtype=bool)
    mask[1:6, 1:6] = True
    mask[3, 3] = False  # 1-pixel hole
    mask[1:11, 8:19] = True
    mask[3:7, 10:14] = False  # 16-pixel hole
    filled = hr.fill_holes(mask, area=16)  # holes of fewer than 16 pixels
    assert filled[3, 3] and not filled[3:7, 10:14].any()
    assert hr.fill_holes(mask, area=17)[3:7, 10:14].all()
    assert np.array_equal(hr.fill_holes(mask, area=1), mask)
    assert (filled | ~mask).all()  # nothing removed


def test_keep_top_keeps_the_right_count_and_the_largest_values():
    rng = np.random.default_rng(0)
    blend = rng.random((20, 30))
    kept = hr.keep_top(blend)
    assert (kept > 0).sum() == round(0.15 * 600) == 90
    assert kept[kept > 0].min() >= np.sort(blend.ravel())[-90]
    assert np.array_equal(kept[kept > 0], blend[kept > 0])


def test_refine_end_to_end_on_a_square_object():
    h = w = 64
    yy, xx = np.mgrid[:h, :w]
    low = np.exp(-((yy - 30) ** 2 + (xx - 34) ** 2) / (2 * 12.0**2))  # a blurry peak near the object
    high = np.zeros((h, w))
    high[20:44, 22:46] = 1.0  # a sharp-edged object
    out = hr.refine(low, high)
    assert out.seeds.sum() == 8 and out.roi.sum() == (low > np.percentile(low, 85)).sum()
    assert not out.region[~out.roi].any()
    assert (out.filled >= out.region).all()
    assert out.blend.min() >= 0 and out.blend.max() <= 1
    assert (out.refined > 0).sum() == round(0.15 * h * w)
    kept = out.refined > 0
    assert kept[20:44, 22:46].sum() / kept.sum() > 0.75  # the object is 14 % of the image
    with pytest.raises(ValueError, match="same"):
        hr.refine(low, high[:32])
