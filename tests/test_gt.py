"""Ground-truth scenes decode to consistent images and disparities; PFM round-trips exactly."""

from __future__ import annotations

import numpy as np
import pytest

from prodepth_cli.errors import InputError
from prodepth_cli.gt import DEFAULT_GT_DIR, load_scenes
from prodepth_cli.io.pfm import read_pfm, write_pfm

needs_gt = pytest.mark.skipif(
    not DEFAULT_GT_DIR.is_dir(), reason=f"ground-truth data not found at {DEFAULT_GT_DIR}"
)

EXPECTED_SCENES = [
    "Motorcycle",
    "Art",
    "Books",
    "Dolls",
    "Laundry",
    "Moebius",
    "Reindeer",
    "KITTI 000046_10",
    "FlyingThings3D",
]


@pytest.fixture(scope="module")
def scenes():
    return {s.name: s for s in load_scenes()}


def test_write_then_read_pfm_gives_the_same_map(tmp_path):
    rng = np.random.default_rng(0)
    disp = rng.uniform(-5, 300, size=(7, 11)).astype(np.float32)
    disp[2, 3] = np.inf  # Middlebury's "invalid"
    write_pfm(tmp_path / "d.pfm", disp)
    back = read_pfm(tmp_path / "d.pfm")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, disp)  # bit-exact, top row first


def test_pfm_is_stored_bottom_row_first(tmp_path):
    disp = np.arange(6, dtype=np.float32).reshape(2, 3)
    write_pfm(tmp_path / "d.pfm", disp)
    raw = (tmp_path / "d.pfm").read_bytes()
    assert raw.startswith(b"Pf\n3 2\n-1.0\n")
    assert np.frombuffer(raw[-24:], "<f4").tolist() == [3, 4, 5, 0, 1, 2]


def test_read_pfm_handles_big_endian_and_colour(tmp_path):
    rgb = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    header = b"PF\n3 2\n1.0\n"  # positive scale: big-endian
    (tmp_path / "c.pfm").write_bytes(header + rgb[::-1].astype(">f4").tobytes())
    np.testing.assert_array_equal(read_pfm(tmp_path / "c.pfm"), rgb[:, :, 0])


def test_read_pfm_rejects_other_files(tmp_path):
    (tmp_path / "x.pfm").write_bytes(b"P6\n3 2\n255\n" + bytes(18))
    with pytest.raises(InputError, match="not a PFM"):
        read_pfm(tmp_path / "x.pfm")
    (tmp_path / "t.pfm").write_bytes(b"Pf\n3 2\n-1.0\n" + bytes(8))
    with pytest.raises(InputError, match="truncated"):
        read_pfm(tmp_path / "t.pfm")


def test_missing_data_dir_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match=str(tmp_path / "nowhere")):
        load_scenes(tmp_path / "nowhere")
    with pytest.raises(InputError, match="no ground-truth scenes"):
        load_scenes(tmp_path)


@needs_gt
def test_every_scene_loads(scenes):
    assert list(scenes) == EXPECTED_SCENES


@needs_gt
@pytest.mark.parametrize("name", EXPECTED_SCENES)
def test_scene_arrays_agree(scenes, name):
    s = scenes[name]
    h, w = s.disparity.shape
    assert s.rgb.shape == (h, w, 3) and s.rgb.dtype == np.uint8
    assert s.disparity.dtype == np.float32 and s.valid.dtype == bool
    assert s.valid.shape == (h, w)
    assert np.all(s.disparity[s.valid] > 0)
    assert np.all(s.disparity[~s.valid] == 0)
    # Every scene here has disparities between 1 and 200 px (README sizes, quarter/third res).
    assert s.disparity[s.valid].min() >= 1 and s.disparity.max() <= 200


@needs_gt
def test_scene_sizes_match_the_readme(scenes):
    assert scenes["Motorcycle"].valid.shape == (497, 741)
    assert scenes["KITTI 000046_10"].valid.shape == (375, 1242)
    assert scenes["FlyingThings3D"].valid.shape == (540, 960)
    assert scenes["Art"].valid.shape == (370, 463)


@needs_gt
def test_valid_fractions_are_plausible(scenes):
    # KITTI LiDAR covers ~12 % of the image (README); the stereo scenes are nearly dense.
    assert 0.10 <= scenes["KITTI 000046_10"].valid_fraction <= 0.15
    for name in EXPECTED_SCENES[:7]:
        assert scenes[name].valid_fraction > 0.95, name
    assert scenes["FlyingThings3D"].valid_fraction > 0.99


@needs_gt
def test_disparity_is_upright(scenes):
    # The PFM rows are flipped on read: the motorcycle's ground (bottom) is nearer than the
    # back wall (top), so the bottom rows hold the larger disparities.
    d = scenes["Motorcycle"].disparity
    v = scenes["Motorcycle"].valid
    top = np.median(d[:50][v[:50]])
    bottom = np.median(d[-50:][v[-50:]])
    assert bottom > top + 5
