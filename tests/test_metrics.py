"""Metrics on hand-made maps whose scores are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prodepth_cli.metrics import (
    affine_invariant_scores,
    edge_f1,
    fit_scale_shift,
    seam_ratio,
    spearman,
)


def _scene_disparity(h: int = 60, w: int = 80) -> np.ndarray:
    """A ramp floor with a nearer box in front: smooth areas and sharp depth edges."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    disp = 10.0 + 20.0 * yy / h + 2.0 * xx / w
    disp[15:35, 20:50] = 45.0
    return disp


def test_perfect_prediction_scores_perfectly():
    gt = _scene_disparity()
    valid = np.ones(gt.shape, bool)
    scores = affine_invariant_scores(gt, gt, valid)
    # Exact up to float64 round-off of the least-squares fit.
    assert scores["absrel"] == pytest.approx(0.0, abs=1e-9)
    assert scores["delta1"] == 1.0
    assert scores["spearman"] == pytest.approx(1.0, abs=1e-12)


def test_scaled_and_shifted_prediction_scores_like_the_exact_one():
    gt = _scene_disparity()
    valid = np.ones(gt.shape, bool)
    valid[:5] = False  # the fit must ignore invalid pixels, whatever they hold
    gt_with_holes = np.where(valid, gt, 0.0)
    exact = affine_invariant_scores(gt, gt_with_holes, valid)
    affine = affine_invariant_scores(0.37 * gt - 2.5, gt_with_holes, valid)
    # 1e-9: fit round-off. Spearman gets 1e-6: round-off in 0.37 * gt can merge or split a
    # few nearly tied values, moving ranks by a hair.
    for key in ("absrel", "delta1"):
        assert affine[key] == pytest.approx(exact[key], abs=1e-9), key
    assert affine["spearman"] == pytest.approx(exact["spearman"], abs=1e-6)


def test_fit_scale_shift_recovers_the_transform():
    pred = _scene_disparity()
    s, t = fit_scale_shift(pred, 3.0 * pred + 7.0)
    assert (s, t) == pytest.approx((3.0, 7.0), rel=1e-9)


def test_wrong_prediction_scores_worse_than_the_truth():
    gt = _scene_disparity()
    valid = np.ones(gt.shape, bool)
    flipped = affine_invariant_scores(gt[::-1].copy(), gt, valid)
    assert flipped["delta1"] < 0.9
    assert flipped["absrel"] > 0.05
    assert flipped["spearman"] < 0.5


def test_spearman_gives_tied_values_their_mean_rank():
    # A map constant along rows: ties must not be ranked by scan order (which would make a
    # row-constant map correlate with a column ramp).
    rows = np.repeat(np.arange(4.0)[:, None], 5, axis=1)
    cols = np.repeat(np.arange(5.0)[None, :], 4, axis=0)
    assert spearman(rows, cols) == pytest.approx(0.0, abs=1e-12)
    assert spearman(rows, rows * 2 + 1) == pytest.approx(1.0, abs=1e-12)
    assert spearman(np.ones((3, 3)), cols[:3, :3]) == 0.0


def test_seam_ratio_is_one_on_a_smooth_ramp():
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float64)
    tiles = [(0, 0, 72, 56), (56, 0, 128, 56), (0, 40, 72, 96), (56, 40, 128, 96)]
    # A linear ramp has the same gradient on every line: exactly 1 whatever its direction.
    for ramp in (xx, yy, 0.3 * xx + 2.0 * yy):
        assert seam_ratio(ramp, tiles) == pytest.approx(1.0, rel=1e-9)


def test_seam_ratio_rises_with_a_step_at_a_tile_edge():
    yy, xx = np.mgrid[0:96, 0:128].astype(np.float64)
    ramp = 0.01 * xx
    stepped = ramp.copy()
    stepped[:, 64:] += 0.5  # one tile pasted 0.5 higher from column 64 on
    tiles = [(0, 0, 64, 96), (64, 0, 128, 96)]
    # Step 0.5 against a gradient of 0.01 per pixel: about 50x (8x keeps a wide margin).
    assert seam_ratio(stepped, tiles) > 8.0
    assert seam_ratio(ramp, tiles) == pytest.approx(1.0, rel=1e-9)


def test_seam_ratio_is_one_without_interior_tile_edges():
    disp = _scene_disparity()
    h, w = disp.shape
    assert seam_ratio(disp, [(0, 0, w, h)]) == 1.0


def test_edge_f1_is_one_for_identical_maps():
    gt = _scene_disparity()
    valid = np.ones(gt.shape, bool)
    assert edge_f1(gt, gt, valid) == 1.0
    # Scale and shift do not move edges.
    assert edge_f1(4.0 * gt + 1.0, gt, valid) == 1.0


def test_edge_f1_is_low_without_the_edges():
    gt = _scene_disparity()
    valid = np.ones(gt.shape, bool)
    yy = np.mgrid[0 : gt.shape[0], 0 : gt.shape[1]][0].astype(np.float64)
    assert edge_f1(yy, gt, valid) == 0.0  # a smooth map finds no edge at all
    shifted = np.roll(gt, 10, axis=1)  # edges 10 px away, beyond the 2 px tolerance
    assert edge_f1(shifted, gt, valid) < 0.6


def test_edge_f1_is_nan_when_ground_truth_has_no_edges():
    gt = _scene_disparity()
    valid = np.zeros(gt.shape, bool)
    valid[::3, ::3] = True  # isolated points, like sparse LiDAR: no neighbour pairs
    assert math.isnan(edge_f1(gt, gt, valid))
