"""`prodepth stereo`: the row warp, the shift arithmetic, the layouts, the command as users run
it, and the synthesised eye against real stereo pairs (Middlebury)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvips
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.errors import OptionError
from prodepth_cli.io.depth_map import DepthMapFile
from prodepth_cli.io.pfm import write_pfm
from prodepth_cli.stereo.check import (
    check_pair,
    exact_options,
    middlebury2005_pair,
    middlebury2014_pair,
    psnr,
)
from prodepth_cli.stereo.layouts import (
    LAYOUTS,
    anaglyph_dubois,
    output_hw,
    pack_band,
    squeeze_height,
    stacked_band,
)
from prodepth_cli.stereo.render import stereo_array, stereo_file
from prodepth_cli.stereo.shift import (
    StereoOptions,
    eye_shares,
    shift_range_px,
    stereo_disparity,
)
from prodepth_cli.stereo.warp import snap_edges, synthesise_view, warp_view
from tests.conftest import MOTORCYCLE, SHARED_DATA, require, scene_image
from tests.fake_disk import FakeDisk
from tests.photo_files import (
    TAGS,
    depth_metres_misuse,
    metres_to_disparity,
    near_left_ramp,
    near_square_metres,
    write_depth_folder,
    write_jpeg,
    write_png16,
    write_scene,
)

runner = CliRunner()
BLUE = np.array([0.0, 0.0, 1.0], np.float32)


def _run(*args: str):
    return runner.invoke(app, ["stereo", *args])


def _records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _square_scene(h: int = 24, w: int = 64, near: float = 6.0):
    """A blue near square (columns 24..39, disparity `near` px) over a far background
    (disparity 0) textured in red and green only, no blue."""
    rng = np.random.default_rng(1)
    rgb = np.zeros((h, w, 3), np.float32)
    rgb[:, :, 0] = rng.uniform(0.2, 1.0, (h, w))
    rgb[:, :, 1] = np.linspace(0.1, 0.9, w)[None, :]
    disparity = np.zeros((h, w), np.float32)
    rgb[4:20, 24:40] = BLUE
    disparity[4:20, 24:40] = near
    return rgb, disparity


def _is_blue(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 2] > 0.5


# --- the warp --------------------------------------------------------------------------------


def test_near_square_moves_left_in_a_right_eye_by_its_disparity():
    rgb, disparity = _square_scene(near=6.0)
    right = synthesise_view(rgb, disparity, -1)
    cols = np.flatnonzero(_is_blue(right[10]))
    assert (cols.min(), cols.max()) == (18, 33), "24..39 moved 6 px left (x_r = x_l - d)"
    left = synthesise_view(rgb, disparity, +1)
    cols = np.flatnonzero(_is_blue(left[10]))
    assert (cols.min(), cols.max()) == (30, 45), "a left eye moves it right"
    # rows without the square: the far background stays exactly in place (disparity 0)
    np.testing.assert_array_equal(right[0], rgb[0])


def test_the_hole_opens_on_the_background_side_and_takes_background_colours_only():
    rgb, disparity = _square_scene(near=6.0)
    view = warp_view(rgb, disparity, -1)
    holes = np.flatnonzero(view.hole[10])
    np.testing.assert_array_equal(holes, np.arange(34, 40)), "right of the moved square"
    filled = synthesise_view(rgb, disparity, -1)
    assert not _is_blue(filled[4:20, 34:40]).any(), "never the foreground's colour"
    # mirrored from the background just right of the hole: its texture, not a smear
    np.testing.assert_array_equal(filled[10, 34:40], rgb[10, 40:46][::-1])


def test_near_wins_where_the_square_covers_the_background():
    rgb, disparity = _square_scene(near=6.0)
    right = synthesise_view(rgb, disparity, -1)
    # columns 18..23: background in the photograph, covered by the moved square
    assert _is_blue(right[4:20, 18:24]).all()


def test_sub_pixel_shifts_splat_to_the_two_neighbouring_columns():
    """A quarter-pixel shift of a linear ramp gives the ramp a quarter pixel on (bilinear
    splatting is exact on linear data)."""
    w = 32
    ramp = np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :, None], (2, 1, 3))
    view = warp_view(ramp, np.full((2, w), 0.25, np.float32), -1)
    step = 1.0 / (w - 1)
    np.testing.assert_allclose(view.rgb[:, 2:-2, 0], ramp[:, 2:-2, 0] + 0.25 * step, atol=1e-6)
    rounded = warp_view(ramp, np.full((2, w), 0.25, np.float32), -1, splat=False)
    np.testing.assert_array_equal(rounded.rgb[:, 2:-2], ramp[:, 2:-2]), "rounds to 0 px"


def test_a_soft_edge_becomes_a_step_but_a_slanted_surface_stays():
    ramp = np.concatenate([np.full(10, 10.0), np.linspace(10.0, 0.0, 7)[1:-1], np.zeros(10)])
    snapped = snap_edges(ramp[None].astype(np.float32), max_ramp=8)[0]
    assert set(np.round(snapped, 3)) == {0.0, 10.0}, "each ramp pixel goes to one side"
    # leaning to the near side: 4 of the 5 ramp pixels go with the near plateau
    assert (snapped[10:15] == 10.0).sum() == 4
    slant = np.linspace(40.0, 0.0, 60, dtype=np.float32)[None]  # 0.68 px/px for 60 px
    np.testing.assert_array_equal(snap_edges(slant, max_ramp=8), slant)
    step = np.concatenate([np.full(10, 10.0), np.zeros(10)]).astype(np.float32)[None]
    np.testing.assert_array_equal(snap_edges(step, max_ramp=8), step)


@pytest.mark.parametrize("near, ramp", [(12.0, 5), (6.0, 7)])
def test_a_soft_edge_leaves_a_clean_hole_not_a_smear(near, ramp):
    """A grey ramp of `ramp` pixels between the square and the background, as a model draws
    an edge. At 12 px over 5 (2 px of shift a pixel) each ramp pixel is torn from both
    neighbours and dropped; at 6 px over 7 (0.75 px a pixel) the ramp is made a step. Either
    way the grey is not stretched across the opening."""
    rgb, disparity = _square_scene(near=near)
    for i, x in enumerate(range(40, 40 + ramp)):
        disparity[4:20, x] = near * (1 - (i + 1) / (ramp + 1))
        rgb[4:20, x] = [0.5, 0.5, 0.5]
    grey = lambda row: np.all(np.abs(row - 0.5) < 0.02, axis=-1).sum()  # noqa: E731
    # the ramp's far end may be mirrored once into the hole, from the background's side
    assert grey(synthesise_view(rgb, disparity, -1)[10]) <= ramp + 1
    if ramp == 7:  # drawn as it is, the ramp would be stretched over the opening
        stretched = synthesise_view(rgb, disparity, -1, max_ramp=0)
        assert grey(stretched[10]) >= ramp + 4


# --- divergence, convergence, synthetic view ------------------------------------------------


def test_divergence_is_the_shift_between_the_maps_extremes_in_percent_of_the_width():
    disparity = np.array([[2.0, 4.0, 6.0]], np.float32)  # lo 2, mid 4, hi 6
    options = StereoOptions(divergence=2.0, convergence=0.5)
    shift = stereo_disparity(disparity, 2.0, 6.0, 1000, options)
    np.testing.assert_allclose(shift, [[-10.0, 0.0, 10.0]], atol=1e-5), "20 px = 2 % of 1000"
    assert shift_range_px(1000, options) == (-10.0, 10.0)
    far = StereoOptions(divergence=3.0, convergence=0.0)
    np.testing.assert_allclose(stereo_disparity(disparity, 2, 6, 1000, far), [[0, 15, 30]])
    near = StereoOptions(divergence=3.0, convergence=1.0)
    np.testing.assert_allclose(stereo_disparity(disparity, 2, 6, 1000, near), [[-30, -15, 0]])
    flat = stereo_disparity(np.ones((2, 3), np.float32), 1.0, 1.0, 1000, options)
    np.testing.assert_array_equal(flat, 0), "a flat map moves nothing"


def test_synthetic_view_splits_the_shift_or_keeps_the_photograph_as_one_eye():
    assert eye_shares(StereoOptions(synthetic_view="both")) == (0.5, 0.5)
    assert eye_shares(StereoOptions(synthetic_view="right")) == (0.0, 1.0)
    assert eye_shares(StereoOptions(synthetic_view="left")) == (1.0, 0.0)
    rgb, disparity = _square_scene()
    for view, photo_half in (("right", slice(0, 64)), ("left", slice(64, 128))):
        out = stereo_array(rgb, disparity, StereoOptions(synthetic_view=view))
        np.testing.assert_array_equal(out[:, photo_half], rgb), f"{view}: the photograph"
    both = stereo_array(rgb, disparity, StereoOptions(divergence=12.5, convergence=0.0))
    # 12.5 % of 64 = 8 px between the eyes, 4 each way: the square moves 4 px right, 4 left
    assert np.flatnonzero(_is_blue(both[10, :64]))[[0, -1]].tolist() == [28, 43]
    assert np.flatnonzero(_is_blue(both[10, 64:]))[[0, -1]].tolist() == [20, 35]


@pytest.mark.parametrize(
    "fields, needle",
    [
        ({"layout": "3d"}, "--layout"),
        ({"divergence": -1.0}, "--divergence"),
        ({"divergence": 50.0}, "--divergence"),
        ({"convergence": 1.5}, "--convergence"),
        ({"synthetic_view": "middle"}, "--synthetic-view"),
    ],
)
def test_nonsense_options_are_refused(fields, needle):
    with pytest.raises(OptionError, match=needle):
        StereoOptions(**fields)


# --- layouts ---------------------------------------------------------------------------------


def _eyes(h: int = 6, w: int = 10):
    left = np.zeros((h, w, 3), np.float32)
    right = np.zeros((h, w, 3), np.float32)
    left[..., 0], right[..., 1] = 1.0, 1.0  # left red, right green
    return left, right


@pytest.mark.parametrize("layout", [k for k in LAYOUTS if k != "anaglyph"])
def test_each_layout_has_its_size_and_puts_each_eye_in_its_place(layout):
    left, right = _eyes()
    if layout in ("tb", "half-tb"):
        out = np.concatenate([stacked_band(layout, left), stacked_band(layout, right)])
    else:
        out = pack_band(layout, left, right)
    assert out.shape[:2] == output_hw(layout, 6, 10)
    first, second = (out[:3], out[3:]) if layout == "half-tb" else (None, None)
    if layout in ("sbs", "half-sbs"):
        first, second = np.split(out, 2, axis=1)
    elif layout == "cross":
        second, first = np.split(out, 2, axis=1)  # right eye on the left
    elif layout == "tb":
        first, second = np.split(out, 2, axis=0)
    np.testing.assert_array_equal(first[..., 0], 1.0), "the left eye"
    np.testing.assert_array_equal(second[..., 1], 1.0), "the right eye"


def test_half_layouts_squeeze_each_eye_to_half_rounded_up():
    assert output_hw("half-sbs", 7, 11) == (7, 12)
    assert output_hw("half-tb", 7, 11) == (8, 11)
    rows = np.arange(5, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    np.testing.assert_array_equal(squeeze_height(rows)[:, 0, 0], [0.5, 2.5, 4.0])


def test_anaglyph_takes_red_from_the_left_eye_and_green_blue_from_the_right():
    white, black = np.ones((1, 1, 3), np.float32), np.zeros((1, 1, 3), np.float32)
    only_left = anaglyph_dubois(white, black)[0, 0]
    only_right = anaglyph_dubois(black, white)[0, 0]
    assert only_left[0] > 0.99 and only_left[1:].max() == 0.0
    assert only_right[0] == 0.0 and only_right[1] > 0.99 and only_right[2] > 0.99
    # Dubois' rows sum to 1: white in both eyes stays white (within the 3 decimals)
    np.testing.assert_allclose(anaglyph_dubois(white, white)[0, 0], 1.0, atol=2e-3)


# --- strips ----------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_bands_give_exactly_the_whole_images_rows(layout):
    """Rows are independent (and half-tb pairs them): any band height gives the same image,
    bit for bit, with a map of another size (resized) holding invalid values (filled)."""
    rgb = scene_image(37, 53, seed=4).astype(np.float32) / 255.0
    small = cv2.resize(np.linspace(0, 5, 53 * 37).reshape(37, 53), (20, 15)).astype(np.float32)
    small[3, 4:9] = np.inf
    options = StereoOptions(layout=layout, divergence=8.0)
    whole = stereo_array(rgb, small, options, band_rows=64)
    for band in (2, 7, 10):
        np.testing.assert_array_equal(stereo_array(rgb, small, options, band_rows=band), whole)


def test_a_file_in_strips_is_the_same_file(tmp_path):
    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), scene_image(41, 60, seed=2)[:, :, ::-1])
    depth = DepthMapFile(tmp_path / "d.npy")
    np.save(depth.path, np.tile(np.linspace(0, 1, 60, dtype=np.float32), (41, 1)))
    options = StereoOptions(layout="half-tb", divergence=6.0)
    stereo_file(src, tmp_path / "a.png", options, depth, band_rows=4)
    stereo_file(src, tmp_path / "b.png", options, depth, band_rows=1000)
    a, b = cv2.imread(str(tmp_path / "a.png")), cv2.imread(str(tmp_path / "b.png"))
    assert a.shape == (42, 60, 3)
    np.testing.assert_array_equal(a, b)


# --- the command -----------------------------------------------------------------------------


def _photo(path: Path, h: int = 48, w: int = 64, seed: int = 0) -> Path:
    return write_scene(path, h, w, seed)


def _disparity(h: int = 48, w: int = 64) -> np.ndarray:
    return near_left_ramp(h, w)


def test_the_command_writes_each_layout_with_its_players_name_and_a_json_record(tmp_path):
    src = _photo(tmp_path / "photo.jpg")
    depth = write_png16(tmp_path / "photo_depth.png", _disparity())
    for layout, tag in LAYOUTS.items():
        result = _run(str(src), "--depth", str(depth), "--layout", layout, "--json")
        assert result.exit_code == 0, result.stderr
        (record,) = _records(result)
        out = tmp_path / f"photo{tag}.jpg"
        assert record["output"] == str(out) and out.is_file()
        h, w = output_hw(layout, 48, 64)
        assert cv2.imread(str(out)).shape == (h, w, 3)
        assert record["layout"] == layout and record["status"] == "ok"
        assert (record["out_width"], record["out_height"]) == (w, h)
        assert record["divergence"] == 2.0 and record["convergence"] == 0.5
        assert record["shift_px"] == [-0.64, 0.64], "2 % of 64 px, half behind the screen"
        assert record["depth"] == str(depth) and record["seconds"] >= 0


def test_npy_and_png_maps_give_the_same_pair_and_outputs_keep_exif_and_profile(tmp_path):
    src = write_jpeg(tmp_path / "shot.jpg", scene_image(48, 64, seed=5))
    npy = tmp_path / "d.npy"
    np.save(npy, _disparity())
    outs = []
    for depth, name in ((npy, "a.png"), (write_png16(tmp_path / "d.png", _disparity()), "b.png")):
        result = _run(str(src), "--depth", str(depth), "-o", str(tmp_path / name), "-q")
        assert result.exit_code == 0, result.stderr
        outs.append(cv2.imread(str(tmp_path / name)).astype(int))
    assert np.abs(outs[0] - outs[1]).max() <= 1, "16-bit levels round to the same 8 bits"
    result = _run(str(src), "--depth", str(npy), "-o", str(tmp_path / "c.jpg"), "-q")
    assert result.exit_code == 0, result.stderr
    image = pyvips.Image.new_from_file(str(tmp_path / "c.jpg"))
    assert "icc-profile-data" in image.get_fields()
    assert TAGS["Model"].encode() in bytes(image.get("exif-data"))


def test_a_metric_map_with_depth_metres_gives_the_pair_of_its_disparity(tmp_path):
    """A metric model's map (metres, larger = farther; no depth: 0, negative, NaN) with
    --depth-metres is read as 1/metres: the pair of that disparity map, to the bit."""
    src = _photo(tmp_path / "photo.png")
    metres = near_square_metres(48, 64)
    write_pfm(tmp_path / "m.pfm", metres)
    np.save(tmp_path / "d.npy", metres_to_disparity(metres))
    outs = []
    for name, args in (
        ("a.png", ["--depth", str(tmp_path / "m.pfm"), "--depth-metres"]),
        ("b.png", ["--depth", str(tmp_path / "d.npy")]),
    ):
        result = _run(str(src), *args, "-o", str(tmp_path / name), "-q")
        assert result.exit_code == 0, result.stderr
        outs.append(cv2.imread(str(tmp_path / name)))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_a_metric_map_read_in_bands_gives_the_pair_of_its_disparity(tmp_path):
    """Metres turn into disparity as the map is read, a band of rows at a time: 4-row bands
    of the metric map give the pair of the disparity map read whole (its invalid pixels
    filled with the whole map's farthest value in every band)."""
    src = _photo(tmp_path / "photo.png", 41, 60)
    metres = near_square_metres(41, 60)
    np.save(tmp_path / "m.npy", metres)
    np.save(tmp_path / "d.npy", metres_to_disparity(metres))
    options = StereoOptions(layout="half-tb", divergence=6.0)
    metric = DepthMapFile(tmp_path / "m.npy", metres=True)
    stereo_file(src, tmp_path / "a.png", options, metric, band_rows=4)
    stereo_file(src, tmp_path / "b.png", options, DepthMapFile(tmp_path / "d.npy"), band_rows=1000)
    np.testing.assert_array_equal(
        cv2.imread(str(tmp_path / "a.png")), cv2.imread(str(tmp_path / "b.png"))
    )


@depth_metres_misuse
def test_depth_metres_with_a_png_or_without_a_map_gets_one_line(tmp_path, args, needles):
    src = _photo(tmp_path / "photo.png")
    depth = write_png16(tmp_path / "d.png", _disparity())
    result = _run(str(src), *[a.replace("MAP", str(depth)) for a in args])
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and all(n in lines[0] for n in needles), lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "photo.png"]


def test_a_photograph_turned_by_its_exif_is_paired_upright(tmp_path):
    src = write_jpeg(tmp_path / "turned.jpg", scene_image(48, 64, seed=6), orientation=6)
    depth = tmp_path / "d.npy"
    np.save(depth, _disparity(64, 48))  # the map of the upright photograph, 48 wide
    result = _run(str(src), "--depth", str(depth), "--json")
    assert result.exit_code == 0, result.stderr
    (record,) = _records(result)
    assert (record["width"], record["height"], record["depth_resized_from"]) == (48, 64, None)
    assert cv2.imread(record["output"]).shape == (64, 96, 3)


def test_a_16_bit_photograph_gives_a_16_bit_tiff(tmp_path):
    rgb16 = (scene_image(30, 40).astype(np.uint16) * 257)[:, :, ::-1]
    src = tmp_path / "deep.png"
    cv2.imwrite(str(src), rgb16)
    depth = write_png16(tmp_path / "d.png", _disparity(30, 40))
    result = _run(str(src), "--depth", str(depth), "-o", str(tmp_path / "o.tif"), "-q")
    assert result.exit_code == 0, result.stderr
    import tifffile

    out = tifffile.imread(tmp_path / "o.tif")
    assert out.dtype == np.uint16 and out.shape == (30, 80, 3)


def test_the_map_a_jpeg_carries_is_used_and_said(tmp_path, pointwise_exact):
    photo = write_jpeg(tmp_path / "photo.jpg", scene_image(48, 64, seed=3))
    embed = runner.invoke(app, ["depth", str(photo), "-m", str(pointwise_exact), "--embed", "-q"])
    assert embed.exit_code == 0, embed.stderr
    carried = tmp_path / "photo_depth.jpg"
    result = _run(str(carried), "-m", str(pointwise_exact), "--json")
    assert result.exit_code == 0, result.stderr
    (record,) = _records(result)
    assert record["depth"] == "embedded"
    result = _run(str(carried), "-m", str(pointwise_exact), "-o", str(tmp_path / "x.jpg"))
    assert "embedded depth map" in result.stderr


def test_without_a_map_the_depth_model_runs_first(tmp_path, pointwise_exact):
    src = _photo(tmp_path / "photo.png")
    result = _run(str(src), "-m", str(pointwise_exact), "--layout", "anaglyph", "--json")
    assert result.exit_code == 0, result.stderr
    (record,) = _records(result)
    assert record["depth"].startswith("model:") and record["output"].endswith("_redcyan.png")
    assert cv2.imread(record["output"]).shape == (48, 64, 3)


def test_a_batch_goes_on_past_a_bad_file_lists_it_and_resumes(tmp_path):
    for stem in ("a", "c"):
        _photo(tmp_path / "in" / f"{stem}.jpg")
    (tmp_path / "in" / "b.jpg").write_bytes(b"not a jpeg at all")
    maps = write_depth_folder(tmp_path / "maps", ("a", "b", "c"), _disparity())
    args = [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--depth", str(maps), "--json"]
    result = _run(*args)
    assert result.exit_code == 1
    status = {Path(r["input"]).stem: r["status"] for r in _records(result)}
    assert status == {"a": "ok", "b": "error", "c": "ok"}
    assert "1 of 3 inputs failed" in result.stderr and "b.jpg" in result.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["a_LRF_Full_SBS.jpg", "c_LRF_Full_SBS.jpg"], "no partial file for b"
    again = _run(*args)
    status = {Path(r["input"]).stem: r["status"] for r in _records(again)}
    assert status == {"a": "skipped", "b": "error", "c": "skipped"}


def test_bad_options_get_one_line(tmp_path):
    src = _photo(tmp_path / "photo.jpg")
    depth = write_png16(tmp_path / "d.png", _disparity())
    for args, needle in (
        (["--layout", "3d"], "--layout"),
        (["--convergence", "2"], "--convergence"),
        (["-o", str(tmp_path / "x.npy")], "cannot write .npy"),
    ):
        result = _run(str(src), "--depth", str(depth), *args)
        assert result.exit_code == 1
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.stderr


def test_stdin_to_stdout_in_a_pipeline(tmp_path):
    import subprocess
    import sys

    data = _photo(tmp_path / "p.png").read_bytes()
    depth = write_png16(tmp_path / "d.png", _disparity())
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-m", "prodepth_cli", "stereo", "-", "-o", "-", "--depth", str(depth)],
        input=data,
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    out = cv2.imdecode(np.frombuffer(done.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.shape == (48, 128, 3)


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, suffix):
    """Every file opened for writing under out/ fails at its first write, as on a full disk
    (the scratch TIFF in TMPDIR is elsewhere)."""
    src = _photo(tmp_path / "photo.jpg")
    depth = write_png16(tmp_path / "d.png", _disparity())
    out = tmp_path / "out" / f"pair{suffix}"
    out.parent.mkdir()
    FakeDisk(out.parent).install(monkeypatch)
    result = _run(str(src), "--depth", str(depth), "-o", str(out))
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines == [f"prodepth: error: {out}: no space left on device"]
    assert list(out.parent.iterdir()) == [], "no temporary file left"


# --- real geometry ---------------------------------------------------------------------------


def test_motorcycle_right_eye_matches_the_real_right_image(tmp_path):
    """Middlebury 2014 Motorcycle: im0 + its ground-truth disparity (filled) through the
    command, the right eye synthesised with the shift the disparity implies (offset by the
    integer k = ceil(dmin): see stereo/check.py), against im1."""
    pair = middlebury2014_pair(require(MOTORCYCLE))
    disparity = pair.filled_map()
    np.save(tmp_path / "gt.npy", disparity)
    options, k = exact_options(disparity, disparity.shape[1])
    result = _run(
        str(MOTORCYCLE / "im0.png"),
        "--depth", str(tmp_path / "gt.npy"),
        "--synthetic-view", "right",
        "--divergence", repr(options.divergence),
        "--convergence", repr(options.convergence),
        "-o", str(tmp_path / "pair.png"),
        "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    right_eye = cv2.imread(str(tmp_path / "pair.png"))[:, disparity.shape[1] :, ::-1]
    score = check_pair(pair, right_eye)
    # measured 27.9 dB (GT errors, reflections, 0.2 px rectification error); the best single
    # offset of the left image 14.3 dB
    assert score.psnr_synthesised > 26.0
    assert score.psnr_synthesised > score.psnr_shifted_left + 10.0
    assert score.pixels > 0.7 * disparity.size


@pytest.mark.parametrize("scene", ["Art", "Moebius"])
def test_middlebury_2005_right_views_are_matched(scene):
    folder = require(SHARED_DATA / "gt" / "middlebury2005_third" / scene)
    score = check_pair(middlebury2005_pair(folder))
    # measured: Art 27.6 dB (left shifted: 16.5), Moebius 32.5 (18.6)
    assert score.psnr_synthesised > score.psnr_shifted_left + 9.0


def test_psnr_of_equal_images_is_infinite_and_falls_with_noise():
    a = np.full((4, 4, 3), 100, np.uint8)
    mask = np.ones((4, 4), bool)
    assert psnr(a, a, mask) == float("inf")
    assert psnr(a, a + 1, mask) == pytest.approx(48.13, abs=0.01)


def test_a_pfm_map_with_invalid_values_reads_as_middlebury_ships_it(tmp_path):
    rgb, disparity = _square_scene()
    disparity[0, :5] = np.inf
    write_pfm(tmp_path / "d.pfm", disparity)
    src = tmp_path / "p.png"
    cv2.imwrite(str(src), (rgb[:, :, ::-1] * 255).astype(np.uint8))
    report = stereo_file(src, tmp_path / "o.png", StereoOptions(), DepthMapFile(tmp_path / "d.pfm"))
    assert (report.out_width, report.out_height) == (128, 24)
