"""Tile plans, blend weights and coarse alignment."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from prodepth_cli.errors import OptionError
from prodepth_cli.io.scratch import RowBand, ScratchArray
from prodepth_cli.tiling.align import crop_coarse, fit_robust_scale_shift
from prodepth_cli.tiling.blend import ArrayCanvas, TileWeights
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
    weights = TileWeights(plan)
    total = np.zeros(hw)
    for t in plan.tiles:
        weight = weights.of(t)
        assert (weight > 0).all(), "every tile pixel counts a little, so no pixel is orphaned"
        total[t.y : t.y + t.h, t.x : t.x + t.w] += weight
        if t.x > 0:  # an interior edge: weight there is tiny, so seams cannot show
            # smoothstep half a pixel into a ramp of `overlap` pixels: 3 (0.5 / overlap)^2,
            # with room for the normalisation against the neighbour's weight.
            assert weight[:, 0].max() < 3 * (1 / overlap) ** 2
    np.testing.assert_allclose(total, 1.0, atol=1e-6)  # float32 weights: eps 6e-8 per tile


@pytest.mark.parametrize("channels", [(), (3,)])
def test_weighted_tiles_reassemble_a_map_in_any_order(channels):
    plan = plan_tiles(1000, 700, 256, 64)
    weights = TileWeights(plan)
    ramp = np.linspace(0, 5, 1000 * 700, dtype=np.float32).reshape(1000, 700)
    image = ramp.reshape(1000, 700, *(1,) * len(channels)) * np.ones(channels, np.float32)
    canvas = ArrayCanvas(image.shape)
    for t in reversed(plan.tiles):
        canvas.add(t.y, t.x, weights.apply(t, image[t.y : t.y + t.h, t.x : t.x + t.w]))
    np.testing.assert_allclose(canvas.array, image, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "shape,channels,dtype", [((300, 700), (), np.float32), ((90, 1000), (3,), np.uint16)]
)
def test_scratch_array_reads_back_what_was_written_and_added(shape, channels, dtype):
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 1000, (*shape, *channels)).astype(dtype)
    scratch = ScratchArray(*shape, channels, dtype)
    # Unaligned windows (blocks are 256 columns), written then added in overlapping pieces.
    for y0, x0 in itertools.product((0, 150), (0, 333, 666)):
        scratch.write(y0, x0, truth[y0 : y0 + 150, x0 : x0 + 400])
    scratch.add(17, 250, truth[17:80, 250:611])
    expected = truth.copy()
    expected[17:80, 250:611] *= 2
    np.testing.assert_array_equal(scratch.read(0, shape[0]), expected)
    np.testing.assert_array_equal(scratch.read(40, 71, 255, 513), expected[40:71, 255:513])
    scratch.close()


def test_scratch_ring_keeps_the_last_rows_as_the_band_slides_down():
    image = np.arange(1000 * 300, dtype=np.float32).reshape(1000, 300)
    ring = ScratchArray(1000, 300, ring_rows=96)
    for y in range(0, 1000, 40):  # strips that do not divide the ring: windows wrap around
        ring.write(y, 0, image[y : y + 40])
        lo = max(0, min(y + 40, 1000) - 96)
        np.testing.assert_array_equal(
            ring.read(lo, min(y + 40, 1000), 7, 290), image[lo : y + 40, 7:290]
        )
    ring.close()


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


def test_metric_tiles_are_fitted_in_scale_only():
    """A metric tile off by a factor (its own field of view) gets the factor back and no
    shift, even where a shift would fit the outliers better: zero disparity stays at
    infinity, and a tile's scale is all a metric model can be wrong about here."""
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.1, 2.0, 4000)  # 1 / metres
    pred = truth / 1.7
    target = truth.copy()
    target[:400] += 0.5  # depth edges where the blurred coarse map disagrees
    s, t = fit_robust_scale_shift(pred, target, shift=False)
    assert t == 0.0
    assert abs(s - 1.7) < 0.02  # robust: the 10 % of outliers do not drag it
    assert fit_robust_scale_shift(np.zeros(10), np.ones(10), shift=False) == (0.0, 0.0)


def test_bad_pixels_from_a_model_add_nothing_to_the_depth_scratch():
    from prodepth_cli.io.write import DepthScratch

    tile = np.full((4, 6), 2.0, np.float32)
    tile[1, 2], tile[2, 3], tile[3, 4] = np.nan, np.inf, -np.inf
    with DepthScratch(6, 4) as scratch:
        scratch.add(0, 0, tile)
        scratch.add(0, 0, np.ones((4, 6), np.float64))  # any float type is taken
        (strip,) = scratch.strips()
    expected = np.full((4, 6), 3.0, np.float32)
    expected[1, 2] = expected[2, 3] = expected[3, 4] = 1.0
    np.testing.assert_array_equal(strip, expected)
    assert np.isnan(tile[1, 2])  # the caller's tile is left as it was


def test_row_band_slides_down_keeping_the_rows_it_still_holds():
    band = RowBand(4, 3)
    band.write(0, 0, np.arange(12, dtype=np.float32).reshape(4, 3))
    band.slide_to(2)  # rows 2-3 move up, rows 4-5 come in as zeros
    np.testing.assert_array_equal(band.read(2, 6), [[6, 7, 8], [9, 10, 11], [0, 0, 0], [0, 0, 0]])
    band.add(3, 1, np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(band.read(3, 5, 1, 3), [[11, 12], [1, 1]])
    with pytest.raises(ValueError, match="outside the band"):
        band.read(1, 3)


def _blend_into_scratch(scratch, tiles):
    for y0, x0, values in tiles:
        scratch.add(y0, x0, values)
    return np.concatenate(list(scratch.strips())), scratch.range


def test_depth_scratch_band_in_memory_gives_what_the_disk_gives(monkeypatch):
    """Tiles coming down the image add up in a band in memory and reach the disk row by row
    once final: the same map and range as adding every tile on disk, NaN included."""
    import prodepth_cli.io.scratch as scratch_module
    from prodepth_cli.io.write import DepthScratch

    rng = np.random.default_rng(3)
    tiles = []
    for y0 in (0, 30, 60, 70):  # overlapping tile rows, the last one shifted to the edge
        for x0 in (0, 45, 90):
            values = rng.uniform(0.5, 2.0, (40, 60)).astype(np.float32)
            values[5, 7] = np.nan
            tiles.append((y0, x0, values))
    with DepthScratch(150, 110, band_rows=40) as banded:
        assert banded._band is not None
        in_memory = _blend_into_scratch(banded, tiles)
    monkeypatch.setattr(scratch_module, "BAND_BYTES", 0)  # too wide for a band: all on disk
    with DepthScratch(150, 110, band_rows=40) as on_disk:
        assert on_disk._band is None
        expected = _blend_into_scratch(on_disk, tiles)
    np.testing.assert_array_equal(in_memory[0], expected[0])
    assert in_memory[1] == expected[1]
