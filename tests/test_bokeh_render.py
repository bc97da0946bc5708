"""The classical bokeh engine: lens, focus, layered rendering, and the Motorcycle check."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from prodepth_cli.bokeh import quality
from prodepth_cli.bokeh.engine import BokehOptions, bokeh_array
from prodepth_cli.bokeh.focus import default_focus, focus_at_point
from prodepth_cli.bokeh.lens import blur_scale, signed_coc
from prodepth_cli.bokeh.render import render_bokeh
from prodepth_cli.bokeh.tiled import render_tiled
from prodepth_cli.io.depth_map import read_depth_map
from tests.conftest import MOTORCYCLE, require

RED = np.array([0.9, 0.1, 0.1], np.float32)


def _texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Grey high-frequency texture in [0.3, 0.7]: its Laplacian is a sharpness probe."""
    rng = np.random.default_rng(seed)
    grey = 0.5 + 0.2 * (rng.random((h, w), np.float32) - 0.5) * 2
    return np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32)


def _fg_bg_scene(h: int = 96, w: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """Left half: a flat red subject at disparity 1 (near); right half: textured grey
    background at disparity 0 (far)."""
    rgb = _texture(h, w)
    rgb[:, : w // 2] = RED
    disparity = np.zeros((h, w), np.float32)
    disparity[:, : w // 2] = 1.0
    return rgb, disparity


def test_coc_grows_with_distance_from_focus_and_with_wider_aperture():
    d = np.linspace(0, 1, 11, dtype=np.float32)[None]
    coc = np.abs(signed_coc(d, 0.3, blur_scale(2.0, 100, 100)))[0]
    assert np.all(np.diff(coc[3:]) > 0) and np.all(np.diff(coc[:4]) < 0)
    assert coc[3] == 0
    assert blur_scale(1.4, 100, 100) > blur_scale(2.0, 100, 100) > blur_scale(8.0, 100, 100)
    # K scales as 1/N exactly, as the aperture diameter f/N does
    assert blur_scale(1.0, 10, 10) == pytest.approx(2 * blur_scale(2.0, 10, 10))


def test_rendered_blur_grows_monotonically_with_coc():
    """Sharpness of a texture falls strictly as its CoC radius grows (0.5 .. 12 px)."""
    rgb = _texture(64, 64, seed=1)
    kept = []
    for radius in (0.0, 1.0, 2.0, 4.0, 8.0, 12.0):
        out = render_bokeh(rgb, np.full((64, 64), -radius, np.float32), None)
        inner = np.zeros((64, 64), bool)
        inner[16:48, 16:48] = True
        kept.append(quality.sharpness_kept(rgb, out, inner))
    assert kept[0] == pytest.approx(1.0, abs=0.02), "radius 0 leaves the image as it is"
    assert all(a > b for a, b in zip(kept, kept[1:], strict=False)), kept


def test_sharp_foreground_does_not_bleed_into_blurred_background():
    rgb, disparity = _fg_bg_scene()
    out = render_bokeh(rgb, signed_coc(disparity, 1.0, 16.0))  # bg discs of radius 16 px
    w = rgb.shape[1]
    bg = out[:, w // 2 + 1 :]
    redness = bg[:, :, 0] - 0.5 * (bg[:, :, 1] + bg[:, :, 2])
    # 1 px from the edge on: the texture is grey (R = G = B), so any red is bleeding;
    # 0.01 is a quarter of one 8-bit level of sRGB red on grey.
    assert float(np.abs(redness).max()) < 0.01
    # the subject keeps its own colour right up to the edge: nothing of the background in it
    assert np.abs(out[:, : w // 2] - RED).max() < 1e-3
    # and the background is blurred, not darkened next to the subject (no halo)
    assert abs(float(bg[:, :8].mean()) - float(rgb[:, w // 2 :].mean())) < 0.02


def test_blurred_foreground_spreads_over_the_sharp_background():
    rgb, disparity = _fg_bg_scene()
    out = render_bokeh(rgb, signed_coc(disparity, 0.0, 12.0))  # focus far, subject r = 12
    w = rgb.shape[1]
    redness = out[:, :, 0] - 0.5 * (out[:, :, 1] + out[:, :, 2])
    # just past the subject's edge its blurred disc covers the background partly...
    assert float(redness[:, w // 2 + 3].mean()) > 0.1
    # ...and beyond the disc's reach the in-focus background is exactly the input
    far = slice(w // 2 + 14, w)
    assert np.abs(out[:, far] - rgb[:, far]).max() < 2e-3


def test_flat_colour_stays_flat_across_depth_edges():
    """Any depth map on a flat colour gives the same flat colour: no halo, no dark seam."""
    rgb = np.full((80, 120, 3), [0.2, 0.5, 0.7], np.float32)
    yy, xx = np.mgrid[0:80, 0:120]
    disparity = ((xx > 60) * 0.8 + (yy > 40) * 0.2 + 0.1 * np.sin(xx / 5.0)).astype(np.float32)
    out = render_bokeh(rgb, signed_coc(disparity, 0.5, 20.0))
    assert np.abs(out - rgb).max() < 2e-3  # the sRGB table's interpolation error is ~1e-4


def test_out_of_focus_highlight_becomes_a_bright_disc():
    h = w = 81
    rgb = np.full((h, w, 3), 0.05, np.float32)
    rgb[39:42, 39:42] = 1.0  # a clipped 3x3 point light
    coc = np.full((h, w), -12.0, np.float32)
    out = render_bokeh(rgb, coc)
    plain = render_bokeh(rgb, coc, highlights=None)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(yy - 40, xx - 40)
    # beyond 12 px (disc) + 1.5 px (the light's own size) + 2 px (half-resolution filtering)
    inside, outside = out[r <= 8, 0], out[r >= 16, 0]
    assert inside.std() / inside.mean() < 0.1, "a flat disc, not a Gaussian bump"
    assert inside.mean() > 0.25, "bright in linear light, not a grey smudge"
    assert np.abs(outside - 0.05).max() < 0.01, "nothing beyond the disc's radius"
    assert inside.mean() > 1.3 * plain[r <= 8, 0].mean(), "the clipped highlight is boosted"


def test_focus_at_a_pixel_on_a_depth_edge_picks_the_dominant_surface():
    disparity = np.zeros((100, 100), np.float32)
    disparity[:, :52] = 5.0  # the window around x=50 is mostly this surface
    assert focus_at_point(disparity, 50, 50) == pytest.approx(5.0)
    assert focus_at_point(disparity, 90, 50) == pytest.approx(0.0)


def test_default_focus_is_the_nearest_large_region():
    disparity = np.full((120, 160), 1.0, np.float32)
    disparity[40:100, 50:110] = 4.0  # the subject: 19 % of the frame
    disparity[0:2, 0:2] = 9.0  # a tiny nearer speck is not a subject
    assert default_focus(disparity) == pytest.approx(4.0)


def test_motorcycle_near_focus_keeps_subject_sharp_and_blurs_far():
    """Issue 4's check: focus on a near region (the headlight, x=535 y=150) of Motorcycle
    with its ground-truth disparity; >= 80 % of the in-focus sharpness kept, >= 50 % of the
    far region's removed."""
    scene = require(MOTORCYCLE)
    rgb = cv2.imread(str(scene / "im0.png"))[:, :, ::-1].astype(np.float32) / 255.0
    disparity = read_depth_map(scene / "disp0GT.pfm").disparity
    result = bokeh_array(rgb, disparity, BokehOptions(focus_xy=(535, 150)))
    regions = quality.focus_regions(disparity, result.focus)
    assert regions.focus.sum() > 1000 and regions.far.sum() > 10000
    assert quality.sharpness_kept(rgb, result.rgb, regions.focus) >= 0.80
    assert quality.sharpness_kept(rgb, result.rgb, regions.far) <= 0.50


def test_large_images_render_in_tiles_as_they_would_whole():
    """Tiles with the discs' reach as context, blended like depth tiles: no seam, no loss."""
    rng = np.random.default_rng(0)
    h, w = 600, 800
    rgb = cv2.GaussianBlur(rng.random((h, w, 3), dtype=np.float32), (0, 0), 1.5)
    rgb[rng.random((h, w)) > 0.999] = 1.0  # highlights, some of them on tile borders
    yy, xx = np.mgrid[0:h, 0:w]
    subject = (xx - 400) ** 2 + (yy - 300) ** 2 < 150**2
    coc = np.where(subject, 0.0, yy / h * 12 - 4).astype(np.float32)
    whole = render_bokeh(rgb, coc)
    tiled = render_tiled(render_bokeh, rgb, coc, tile=256)
    diff = np.abs(tiled - whole)
    assert diff.mean() < 1e-4 and diff.max() < 5 / 255


def _ground(h: int = 120, w: int = 160) -> np.ndarray:
    """A ground plane's disparity: affine in the row, nearest at the bottom."""
    return np.repeat(np.linspace(0.5, 6.0, h, dtype=np.float32)[:, None], w, axis=1)


def test_default_focus_is_the_subject_standing_on_the_ground_not_the_ground():
    """The bottom rows of the ground are the nearest thing in the frame; the subject stands
    on the ground further back, nearer than the ground behind it (issue 14: the focus went
    to the floor)."""
    disparity = _ground()
    disparity[30:80, 60:100] = 3.5  # nearer than its rows (0.5 .. 3.7), farther than the bottom
    assert default_focus(disparity) == pytest.approx(3.5)


def test_default_focus_without_a_subject_is_the_nearest_large_region():
    """Nothing stands out from its rows on a bare ground plane: the nearest region wins."""
    assert default_focus(_ground()) > 5.5
