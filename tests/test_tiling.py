"""Tile plans, blend weights and coarse alignment."""

from __future__ import annotations

import numpy as np
import pytest

from prodepth_cli.errors import OptionError
from prodepth_cli.tiling.align import crop_coarse, fit_robust_scale_shift
from prodepth_cli.tiling.blend import BandBlender
from prodepth_cli.tiling.plan import plan_tiles

SHAPES = [(1, 1), (1, 5000), (5000, 3), (700, 741), (1024, 1024), (1025, 1024), (3000, 2049)]


@pytest.mark.parametrize("hw", SHAPES)
@pytest.mark.parametrize("tile,overlap", [(1024, None), (256, 128), (100, 0), (64, 7)])
def test_plan_covers_every_pixel_with_at_most_four_tiles(hw, tile, overlap):
    plan = plan_tiles(*hw, tile, overlap)
    cover = np.zeros(hw, np.int32)
    for t in plan.tiles:
        x0, y0, x1, y1 = t.box
        assert 0 <= x0 < x1 <= hw[1] and 0 <= y0 < y1 <= hw[0], "tiles stay inside the image"
        cover[y0:y1, x0:x1] += 1
    assert cover.min() >= 1
    assert cover.max() <= 4, "a four-way grid: at most two tiles per axis over any pixel"


@pytest.mark.parametrize("length", [3000, 5000, 1500, 4489])
def test_neighbours_overlap_at_least_the_asked_overlap(length):
    plan = plan_tiles(length, 5000, 512, 128)
    for xs in (plan.xs, plan.ys):
        gaps = np.diff(xs)
        assert (512 - gaps >= 128).all()
    assert plan.xs[-1] + plan.tile_w == 5000 and plan.ys[-1] + plan.tile_h == length


def test_image_no_larger_than_a_tile_takes_one_pass():
    plan = plan_tiles(600, 1000, 1024)
    assert len(plan.tiles) == 1 and plan.tiles[0].box == (0, 0, 1000, 600)


@pytest.mark.parametrize("tile,overlap", [(8, None), (256, 200), (256, -1)])
def test_nonsense_tiles_are_refused(tile, overlap):
    with pytest.raises(OptionError):
        plan_tiles(1000, 1000, tile, overlap)


@pytest.mark.parametrize(
    "hw,tile,overlap", [((700, 1900), 256, 64), ((1300, 517), 300, 150), ((90, 90), 40, 20)]
)
def test_blend_weights_sum_to_one_and_fade_to_tile_edges(hw, tile, overlap):
    plan = plan_tiles(*hw, tile, overlap)
    blender = BandBlender(plan)
    total = np.zeros(hw)
    for t in plan.tiles:
        weight = blender.tile_weight(t.row, t.col)
        assert (weight > 0).all(), "every tile pixel counts a little, so no pixel is orphaned"
        total[t.y : t.y + t.h, t.x : t.x + t.w] += weight
        if t.x > 0:  # an interior edge: weight there is tiny, so seams cannot show
            # smoothstep half a pixel into a ramp of `overlap` pixels: 3 (0.5 / overlap)^2,
            # with room for the normalisation against the neighbour's weight.
            assert weight[:, 0].max() < 3 * (1 / overlap) ** 2
    np.testing.assert_allclose(total, 1.0, atol=1e-6)  # float32 weights: eps 6e-8 per tile


def test_band_blender_reassembles_a_constant_map_row_by_row():
    plan = plan_tiles(1000, 700, 256, 64)
    blender = BandBlender(plan)
    rows = []
    for r in range(len(plan.ys)):
        for t in plan.row_tiles(r):
            blender.add(t.row, t.col, np.full((t.h, t.w), 3.0))
        y0, done = blender.finish_row(r)
        assert y0 == sum(len(x) for x in rows), "finished rows come in order, without gaps"
        rows.append(done)
    out = np.concatenate(rows)
    assert out.shape == (1000, 700)
    np.testing.assert_allclose(out, 3.0, rtol=1e-6)


def test_robust_fit_recovers_scale_shift_despite_outliers():
    rng = np.random.default_rng(0)
    pred = rng.uniform(0, 1, 2000)
    target = 2.5 * pred + 0.3
    target[:300] += rng.uniform(-5, 5, 300)  # 15 % edge pixels where the coarse map is wrong
    s, t = fit_robust_scale_shift(pred, target)
    assert s == pytest.approx(2.5, rel=1e-3) and t == pytest.approx(0.3, abs=1e-3)


def test_flat_tile_takes_the_coarse_median():
    s, t = fit_robust_scale_shift(np.full(100, 0.5), np.linspace(1, 2, 100))
    assert s == 0.0 and t == pytest.approx(1.5)


def test_crop_coarse_samples_the_right_place():
    # A coarse map that is a linear ramp in x: any crop must reproduce the ramp's values.
    coarse = np.tile(np.arange(40, dtype=np.float32), (30, 1))  # (30, 40) for a 300x400 image
    crop = crop_coarse(coarse, (300, 400), (100, 50, 300, 250), (20, 20))
    centres_x = 100 + (np.arange(20) + 0.5) * 10  # image x of each output column centre
    np.testing.assert_allclose(crop[5], centres_x / 10 - 0.5, atol=1e-4)
