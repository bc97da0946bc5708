"""`prodepth depth -o x.ply / x.glb`: points where the focal length puts them, the focal length
from EXIF, the model or --fov, depth in metres or in a stated range, colours and texture from
the photograph, meshes cut at depth steps, one-line errors that leave nothing behind."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
from onnx import TensorProto, helper, numpy_helper
from PIL import Image
from plyfile import PlyData
from typer.testing import CliRunner

from prodepth_cli.camera import FILM_DIAGONAL_MM
from prodepth_cli.cli import app
from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import DepthOptions
from prodepth_cli.scene3d import SceneOptions, scene_file
from prodepth_cli.scene3d.intrinsics import centred, focal_from_exif
from prodepth_cli.scene3d.mesh import grid_faces
from prodepth_cli.scene3d.points import backproject, grid_positions
from prodepth_cli.scene3d.scale import default_depth_range
from prodepth_cli.tiling.plan import plan_tiles
from tests.conftest import SHARED_DATA, require, scene_image
from tests.fake_disk import FakeDisk
from tests.onnx_models import _save, pointwise_model

runner = CliRunner()
# float32 arithmetic: X = Z * ray, each a float32 rounding (2^-24 relative) of exact values,
# so X / Z and the ray agree to a few units in the last place; 1e-6 relative leaves room.
RAY_TOLERANCE = 1e-6


def _run(*args: str):
    return runner.invoke(app, ["depth", *args])


def _record(result) -> dict:
    (line,) = [ln for ln in result.stdout.splitlines() if ln.strip()]
    return json.loads(line)


def _jpeg(path: Path, rgb: np.ndarray, exif: Image.Exif | None = None) -> Path:
    image = Image.fromarray(rgb)
    image.save(path, quality=95, exif=exif if exif is not None else Image.Exif())
    return path


def _exif_35mm(f35: int, orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(0x8769)[0xA405] = f35  # FocalLengthIn35mmFilm
    return exif


def _png(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path


def _points(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    ply = PlyData.read(str(path))
    v = ply["vertex"]
    xyz = np.stack([v["x"], v["y"], v["z"]], axis=1)
    rgb = np.stack([v["red"], v["green"], v["blue"]], axis=1)
    return xyz, rgb, ply.comments


def _mesh(path: Path) -> trimesh.Trimesh:
    (mesh,) = trimesh.load(str(path)).geometry.values()
    return mesh


def _pointwise_disparity(rgb8: np.ndarray) -> np.ndarray:
    """What `pointwise_model` answers for these pixels (tests/onnx_models.py)."""
    x = rgb8.astype(np.float64) / 255.0
    z = 1.5 * x[..., 0] - 2.0 * x[..., 1] + 0.7 * x[..., 2] + 0.1
    return 1.0 / (1.0 + np.exp(-z))


@pytest.fixture(scope="module")
def metric_pointwise(tmp_path_factory) -> Path:
    """The pointwise model read as metric depth: Z (metres) = its output, pixel by pixel."""
    folder = tmp_path_factory.mktemp("metric")
    spec = {"align": "none", "multiple": 1, "kind": "depth", "units": "m"}
    return pointwise_model(folder / "metric_pointwise.onnx", spec)


@pytest.fixture(scope="module")
def focal_model(tmp_path_factory) -> Path:
    """A pointwise model that also predicts a focal length of 500 px at its input, listed in
    its spec as Depth Pro's catalog entry lists it; its coarse pass sees a 64-pixel short side."""
    w = numpy_helper.from_array(np.array([[[[1.5]], [[-2.0]], [[0.7]]]], np.float32), "w")
    focal = numpy_helper.from_array(np.array([500.0], np.float32), "focal")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["disparity"]),
            helper.make_node("Identity", ["focal"], ["focallength_px"]),
        ],
        "focal",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [
            helper.make_tensor_value_info("disparity", TensorProto.FLOAT, ["N", 1, "H", "W"]),
            helper.make_tensor_value_info("focallength_px", TensorProto.FLOAT, [1]),
        ],
        initializer=[w, focal],
    )
    spec = {
        "output": "disparity",
        "align": "none",
        "multiple": 1,
        "working_size": 64,
        "extra": {"outputs": {"disparity": "disparity", "focallength_px": "focal length"}},
    }
    return _save(graph, tmp_path_factory.mktemp("focal") / "focal.onnx", spec)


# --- where the points go ---------------------------------------------------------------------


def test_points_lie_on_the_rays_of_the_exif_focal_length(tmp_path, pointwise_exact):
    h, w, f35 = 90, 120, 28
    photo = _jpeg(tmp_path / "p.jpg", scene_image(h, w), _exif_35mm(f35))
    out = tmp_path / "p.ply"
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    record = _record(result)
    focal = f35 * math.hypot(w, h) / FILM_DIAGONAL_MM
    assert record["focal_source"] == "exif:FocalLengthIn35mmFilm"
    assert record["focal_px"] == pytest.approx(focal, abs=0.01)
    assert record["points"] == h * w
    assert "note:" not in result.stderr
    xyz, _, comments = _points(out)
    assert len(xyz) == h * w
    ys, xs = np.mgrid[0:h, 0:w]
    ray_x = ((xs.ravel() + 0.5 - w / 2) / focal).astype(np.float32)
    ray_y = ((ys.ravel() + 0.5 - h / 2) / focal).astype(np.float32)
    assert np.all(xyz[:, 2] > 0)
    np.testing.assert_allclose(xyz[:, 0] / xyz[:, 2], ray_x, rtol=RAY_TOLERANCE, atol=1e-7)
    np.testing.assert_allclose(xyz[:, 1] / xyz[:, 2], ray_y, rtol=RAY_TOLERANCE, atol=1e-7)
    header = " ".join(comments)
    assert "+X right, +Y down, +Z forward" in header
    assert "exif:FocalLengthIn35mmFilm" in header


def test_focal_length_from_the_sensor_pitch_follows_a_resize():
    """57 mm over 8428 px/inch (a 6.17 mm wide 1/2.3" sensor at 2048 px), the file shrunk
    to 1024 px wide: half the focal length in pixels."""
    tags = {
        "FocalLength": 57.0,
        "FocalPlaneXResolution": 8428.0,
        "FocalPlaneResolutionUnit": 2,
        "PixelXDimension": 2048,
        "PixelYDimension": 1536,
    }
    focal, source = focal_from_exif(tags, 768, 1024)  # upright (Orientation 6)
    assert source == "exif:FocalLength+FocalPlaneXResolution"
    assert focal == pytest.approx(57.0 * 8428.0 / 25.4 / 2, rel=1e-9)
    assert focal_from_exif({"FocalLength": 57.0}, 768, 1024) is None  # no sensor size
    assert focal_from_exif({"FocalLengthIn35mmFilm": 1e6}, 768, 1024) is None  # no such lens


def test_without_exif_a_60_degree_view_is_assumed_and_said(tmp_path, pointwise_exact):
    photo = _jpeg(tmp_path / "p.jpg", scene_image(60, 80))
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(tmp_path / "p.ply"))
    assert result.exit_code == 0, result.output
    notes = [ln for ln in result.stderr.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "assumed a 60 degree horizontal field of view" in notes[0]
    xyz, _, _ = _points(tmp_path / "p.ply")
    # the leftmost column's centre is 39.5 px left of the centre: tan(30 deg) * 39.5 / 40
    left = xyz[0, 0] / xyz[0, 2]
    assert left == pytest.approx(-math.tan(math.radians(30)) * 39.5 / 40, rel=RAY_TOLERANCE)


def test_fov_option_sets_the_focal_length_without_a_note(tmp_path, pointwise_exact):
    photo = _jpeg(tmp_path / "p.jpg", scene_image(60, 80))
    out = tmp_path / "p.ply"
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(out), "--fov", "90", "--json")
    assert result.exit_code == 0, result.output
    record = _record(result)
    assert record["focal_source"] == "--fov"
    assert record["focal_px"] == pytest.approx(40.0, abs=0.01)  # W / 2 at 90 degrees
    assert "note:" not in result.stderr


def test_a_model_that_predicts_the_focal_length_is_used_without_exif(tmp_path, focal_model):
    """500 px at a 96-pixel-wide input (short side 64) is 1000 px at 192 pixels."""
    photo = _png(tmp_path / "p.png", scene_image(128, 192))
    result = _run(str(photo), "-m", str(focal_model), "-o", str(tmp_path / "p.ply"), "--json")
    assert result.exit_code == 0, result.output
    record = _record(result)
    assert record["focal_source"] == "model"
    assert record["focal_px"] == pytest.approx(1000.0, abs=0.01)


def test_a_photograph_turned_by_its_exif_is_used_upright(tmp_path, pointwise_exact):
    photo = _jpeg(tmp_path / "p.jpg", scene_image(60, 80), _exif_35mm(28, orientation=6))
    out = tmp_path / "p.ply"
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(out), "--json")
    record = _record(result)
    assert (record["width"], record["height"]) == (60, 80)
    assert record["focal_px"] == pytest.approx(28 * 100 / FILM_DIAGONAL_MM, abs=0.01)


# --- depth -----------------------------------------------------------------------------------


def test_a_metric_model_gives_metres(tmp_path, metric_pointwise):
    rgb = scene_image(40, 56)
    photo = _png(tmp_path / "p.png", rgb)
    out = tmp_path / "p.ply"
    result = _run(str(photo), "-m", str(metric_pointwise), "-o", str(out), "--json", "-q")
    assert result.exit_code == 0, result.output
    assert _record(result)["units"] == "m"
    xyz, _, comments = _points(out)
    # Z = 1 / (1 / depth) in float32: a few ulps
    np.testing.assert_allclose(xyz[:, 2], _pointwise_disparity(rgb).ravel(), rtol=1e-5)
    assert any("Z in metres" in c for c in comments)


def test_a_relative_map_spans_the_depth_range_linearly_in_inverse_depth(tmp_path, pointwise_exact):
    rgb = scene_image(40, 56)
    photo = _png(tmp_path / "p.png", rgb)
    out = tmp_path / "p.ply"
    args = ["-m", str(pointwise_exact), "-o", str(out), "--depth-range", "2,8", "--json", "-q"]
    result = _run(str(photo), *args)
    assert result.exit_code == 0, result.output
    record = _record(result)
    assert record["units"] == "relative"
    assert "nearest point is at Z = 2 and the farthest at Z = 8" in record["assumed"]
    xyz, _, comments = _points(out)
    d = _pointwise_disparity(rgb).ravel()
    t = (d - d.min()) / (d.max() - d.min())
    expected = 1.0 / (1 / 8 + t * (1 / 2 - 1 / 8))
    np.testing.assert_allclose(xyz[:, 2], expected, rtol=1e-5)  # float32 pipeline vs float64
    assert any("relative map" in c and "--depth-range" in c for c in comments)


@pytest.mark.parametrize(("fov", "far"), [(12.0, 1.5255), (60.0, 3.8868), (90.0, 6.0)])
def test_the_default_depth_range_follows_the_field_of_view(fov, far):
    """FAR = 1 + 2.5 x 2 tan(fov / 2): a narrow view is a shallow scene (the 165 mm shot's
    12 degrees: 1,1.5), a wide one deep."""
    near, got = default_depth_range(fov)
    assert near == 1.0
    assert got == pytest.approx(far, abs=1e-4)


def test_a_relative_map_by_default_spans_the_depth_its_view_gives(tmp_path, pointwise_exact):
    """--fov 90 on a landscape image (the long side horizontal): Z from 1 to 6."""
    photo = _png(tmp_path / "p.png", scene_image(40, 56))
    out = tmp_path / "p.ply"
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(out), "--fov", "90", "--json")
    assert result.exit_code == 0, result.output
    record = _record(result)
    assert record["z_range"] == pytest.approx([1.0, 6.0], abs=1e-4)  # rounded to 4 places
    assert "farthest at Z = 6 " in record["assumed"]


def test_a_scene_shows_the_progress_of_every_tile(tmp_path, pointwise_exact):
    """scene_file reports the model's tiles as depth_file does: the plan's count first, then
    every tile once."""
    photo = _png(tmp_path / "p.png", scene_image(90, 120))
    options = DepthOptions(tile=32, overlap=8)
    expected = len(plan_tiles(90, 120, 32, 8).tiles)
    assert expected > 4  # enough tiles to count
    started, done = [], []
    model = load_model(str(pointwise_exact), "cpu")
    scene_file(
        photo,
        tmp_path / "p.ply",
        "ply",
        model,
        SceneOptions(),
        options,
        on_start=started.append,
        on_tiles=done.append,
    )
    assert started == [expected]
    assert sum(done) == expected


# --- a depth map given (--depth) -------------------------------------------------------------


def _map_of(tmp_path: Path, photo: Path, model: Path, suffix: str) -> Path:
    out = tmp_path / f"map{suffix}"
    result = _run(str(photo), "-m", str(model), "-o", str(out), "-q")
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_depth_map_gives_the_scene_the_model_gives(tmp_path, pointwise_exact, suffix):
    """The map `prodepth depth` wrote, relative (16-bit PNG, near = bright: its own range;
    TIFF: the disparity itself), gives the points the model run gives: stretched over the
    depth range, scale and shift do not matter. No model is loaded (no -m)."""
    photo = _jpeg(tmp_path / "p.jpg", scene_image(40, 56), _exif_35mm(35))
    depth_map = _map_of(tmp_path, photo, pointwise_exact, suffix)
    direct, given = tmp_path / "direct.ply", tmp_path / "given.ply"
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(direct), "-q")
    assert result.exit_code == 0, result.output
    result = _run(str(photo), "--depth", str(depth_map), "-o", str(given), "--json")
    assert result.exit_code == 0, result.output
    record = _record(result)
    assert record["depth"] == str(depth_map)
    assert record["focal_source"] == "exif:FocalLengthIn35mmFilm"
    assert record["units"] == "relative"
    (expected, colours, _), (got, got_colours, _) = _points(direct), _points(given)
    # 16 bits of the disparity's range: 1/Z off by half a level of (1 - 1/FAR), Z by
    # FAR / 131070 of itself at most (FAR 3.1 at 35 mm): 3e-5
    np.testing.assert_allclose(got, expected, rtol=5e-5 if suffix == ".png" else 1e-6)
    np.testing.assert_array_equal(got_colours, colours)


def test_a_metric_map_in_metres_gives_its_metres(tmp_path, metric_pointwise):
    rgb = scene_image(40, 56)
    photo = _png(tmp_path / "p.png", rgb)
    depth_map = _map_of(tmp_path, photo, metric_pointwise, ".tif")  # metres
    out = tmp_path / "p.ply"
    args = ["--depth", str(depth_map), "--depth-metres", "-o", str(out), "--json", "-q"]
    result = _run(str(photo), *args)
    assert result.exit_code == 0, result.output
    assert _record(result)["units"] == "m"
    xyz, _, _ = _points(out)
    # metres -> 1/metres -> metres in float32: a few ulps
    np.testing.assert_allclose(xyz[:, 2], _pointwise_disparity(rgb).ravel(), rtol=1e-5)


def test_a_depth_map_of_another_size_is_resized_with_a_warning(tmp_path, pointwise_exact):
    photo = _png(tmp_path / "p.png", scene_image(40, 56))
    small = tmp_path / "small.npy"
    np.save(small, np.linspace(0.2, 1.0, 20 * 28, dtype=np.float32).reshape(20, 28))
    out = tmp_path / "p.glb"
    result = _run(str(photo), "--depth", str(small), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    record = _record(result)
    assert record["depth_resized_from"] == [20, 28]
    assert record["vertices"] == 40 * 56
    assert "warning:" in result.stderr and "depth map resized" in result.stderr


def test_a_depth_folder_without_the_photographs_map_is_an_error(tmp_path, pointwise_exact):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        _png(folder / f"p{i}.png", scene_image(30, 40, seed=i))
    maps = tmp_path / "maps"
    maps.mkdir()
    _map_of(maps, folder / "p0.png", pointwise_exact, ".png").rename(maps / "p0_depth.png")
    out = tmp_path / "out"
    result = _run(str(folder), "--depth", str(maps), "-o", str(out), "-f", "ply", "--json")
    assert result.exit_code == 1
    records = {
        Path(r["input"]).name: r
        for r in (json.loads(ln) for ln in result.stdout.splitlines() if ln.strip())
    }
    assert records["p0.png"]["status"] == "ok"
    assert records["p1.png"]["status"] == "error"
    assert "no depth map for it" in records["p1.png"]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["p0_depth.ply"]


# --- colours, texture, the mesh --------------------------------------------------------------


def test_point_colours_are_the_photographs_pixels_on_the_strided_grid(tmp_path, pointwise_exact):
    rgb = scene_image(50, 70)
    photo = _png(tmp_path / "p.png", rgb)
    out = tmp_path / "p.ply"
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(out), "--stride", "3", "-q")
    assert result.exit_code == 0, result.output
    xyz, colours, _ = _points(out)
    ys, xs = grid_positions(50, 3), grid_positions(70, 3)
    assert (ys[-1], xs[-1]) == (49, 69)  # the grid reaches the far edges
    np.testing.assert_array_equal(colours, rgb[ys][:, xs].reshape(-1, 3))


def _step_photo(h: int = 40, w: int = 60) -> np.ndarray:
    """Left half grey-green, right half magenta: the pointwise model puts them at disparities
    0.35 and 0.87 (a depth step), each half flat."""
    rgb = np.empty((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (90, 160, 80)
    rgb[:, w // 2 :] = (200, 40, 180)
    return rgb


def test_mesh_faces_across_a_depth_step_are_cut_and_the_rest_kept(tmp_path, pointwise_exact):
    h, w = 40, 60
    photo = _png(tmp_path / "p.png", _step_photo(h, w))
    out = tmp_path / "p.glb"
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(out), "--json", "-q")
    assert result.exit_code == 0, result.output
    record = _record(result)
    mesh = _mesh(out)
    assert len(mesh.vertices) == record["vertices"] == h * w
    # every quad but the column of quads across the step: two triangles each
    assert len(mesh.faces) == record["faces"] == 2 * (h - 1) * (w - 2)
    column = np.arange(h * w).reshape(h, w) % w
    left = column[np.unravel_index(mesh.faces, (h, w))] < w // 2
    assert np.all(left.all(axis=1) | (~left).all(axis=1)), "a face spans the step"
    # glTF's frame: +Y up, -Z forward
    v = np.asarray(mesh.vertices)
    assert np.all(v[:, 2] < 0)
    ray_x = (column.ravel() + 0.5 - w / 2) / record["focal_px"]
    np.testing.assert_allclose(v[:, 0] / -v[:, 2], ray_x, rtol=1e-4, atol=1e-6)  # focal rounded
    top = v.reshape(h, w, 3)[0, :, 1]
    assert np.all(top > 0), "the photograph's top row is up"


def _grid_points(z: np.ndarray, focal: float) -> np.ndarray:
    """`(h, w, 3)` camera-frame points of depths `z` `(h, w)` on every pixel's ray."""
    h, w = z.shape
    camera = centred(focal, w, h, "test")
    return backproject(z.astype(np.float32), np.arange(w), np.arange(h), camera)


def test_grid_faces_keep_a_slanted_surface_and_cut_a_step():
    slanted = np.linspace(1.0, 2.0, 100, dtype=np.float32)[None, :].repeat(3, axis=0)
    # ~1 % a step, at 1000 px 79-84 degrees from face-on: a steep surface, but kept
    assert len(grid_faces(_grid_points(slanted, 1000.0), cut=0.05)) == 2 * 2 * 99
    step = np.ones((3, 4), np.float32)
    step[:, 2:] = 1.2
    faces = grid_faces(_grid_points(step, 1000.0), cut=0.05)
    assert len(faces) == 2 * 2 * 2  # the middle column of quads goes


def test_grazing_faces_of_a_smooth_ramp_are_cut_and_a_60_degree_floor_kept():
    """A near plane (Z 2), a far one (Z 4) and between them a ramp of 40 columns, each step
    under 2 % (under the 5 % cut): seen at 1000 px, the ramp is 87-89 degrees from face-on;
    it must go, the planes stay. Below them a floor whose normal is 60 degrees from the
    optical axis (within 3 degrees of 60 from every ray of this image) keeps all its faces."""
    h, focal = 40, 1000.0
    z = np.concatenate(
        [np.full(30, 2.0), np.geomspace(2.0, 4.0, 42)[1:-1], np.full(30, 4.0)]
    ).astype(np.float32)
    walls = np.repeat(z[None, :], h, axis=0)
    assert np.max(walls[:, 1:] / walls[:, :-1]) < 1.02  # every step under the cut
    xyz = _grid_points(walls, focal)
    faces = grid_faces(xyz, cut=0.05)  # the default 85 degrees
    column = faces % walls.shape[1]
    on_ramp = (column.min(axis=1) >= 30) & (column.max(axis=1) <= 70)
    assert not on_ramp.any(), "a face of the ramp survived"
    planes = 2 * (h - 1) * (29 + 29)  # every quad inside the near and the far plane
    assert len(faces) == planes
    assert len(grid_faces(xyz, cut=0.05, max_angle=90)) == 2 * (h - 1) * (len(z) - 1)
    # the floor Z cos 60 - Y sin 60 = 1 (normal (0, -sin 60, cos 60)): on ray (x, y, 1),
    # Z = 1 / (cos 60 - y sin 60)
    w = 80
    ys = (np.arange(h) + 0.5 - h / 2) / focal
    a = math.radians(60)
    floor_z = 1.0 / (math.cos(a) - ys * math.sin(a))
    floor = np.repeat(floor_z[:, None], w, axis=1)
    assert len(grid_faces(_grid_points(floor, focal), cut=0.05)) == 2 * (h - 1) * (w - 1)


def test_max_angle_option_reaches_the_mesh(tmp_path, pointwise_exact):
    """The pointwise model on a horizontal colour gradient makes a smooth ramp; --max-angle 90
    keeps every quad, a small angle cuts them all (the model's ramp is far from face-on)."""
    h, w = 20, 30
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, w).astype(np.uint8)[None, :]
    photo = _png(tmp_path / "p.png", rgb)
    counts = {}
    for angle in ("90", "1"):
        out = tmp_path / f"p{angle}.glb"
        args = ["-o", str(out), "--max-angle", angle, "--cut", "10", "--json", "-q"]
        result = _run(str(photo), "-m", str(pointwise_exact), *args)
        assert result.exit_code == 0, result.output
        counts[angle] = _record(result)["faces"]
    assert counts["90"] == 2 * (h - 1) * (w - 1)
    assert counts["1"] < counts["90"]


def test_mesh_texture_is_the_photograph(tmp_path, pointwise_exact):
    rgb = scene_image(48, 64)
    photo = _png(tmp_path / "p.png", rgb)
    out = tmp_path / "p.glb"
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(out), "--stride", "2", "-q")
    assert result.exit_code == 0, result.output
    mesh = _mesh(out)
    texture = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"))
    assert texture.shape == rgb.shape
    # JPEG at quality 90 on a smooth image: a level or two on average
    assert np.abs(texture.astype(int) - rgb).mean() < 2.5
    uv = np.asarray(mesh.visual.uv)
    ys, xs = grid_positions(48, 2), grid_positions(64, 2)
    gx, gy = np.meshgrid(xs, ys)
    np.testing.assert_allclose(uv[:, 0], (gx.ravel() + 0.5) / 64, atol=1e-6)
    np.testing.assert_allclose(uv[:, 1], 1 - (gy.ravel() + 0.5) / 48, atol=1e-6)


# --- batches and failures --------------------------------------------------------------------


def test_a_folder_gives_one_scene_per_photograph(tmp_path, pointwise_exact):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(2):
        _png(folder / f"p{i}.png", scene_image(30, 40, seed=i))
    out = tmp_path / "out"
    result = _run(str(folder), "-m", str(pointwise_exact), "-o", str(out), "-f", "glb", "--json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["p0_depth.glb", "p1_depth.glb"]
    records = [json.loads(ln) for ln in result.stdout.splitlines() if ln.strip()]
    assert [r["status"] for r in records] == ["ok", "ok"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--stride", "0"], "--stride 0"),
        (["--fov", "190"], "--fov 190"),
        (["--depth-range", "5,1"], "--depth-range"),
        (["--depth-range", "near"], "--depth-range"),
        (["--cut", "0"], "--cut 0"),
        (["-f", "ply", "-o", "OUT/x.png"], "--format ply writes .ply"),
        (["-f", "tiff", "-o", "OUT/x.ply"], "contradicts"),
        (["--colormap", "-o", "OUT/x.glb"], "--colormap"),
        (["--max-angle", "0"], "--max-angle 0"),
        (["--depth", "MAP", "-o", "OUT/x.png"], "--depth makes a point cloud or mesh"),
        (["--depth", "MAP", "--ray"], "--ray"),
        (["--depth-metres"], "pass --depth MAP"),
        (["--depth", "MAP", "--depth-metres"], "not metres"),
        (["--depth", "OUT/none.png"], "no such depth map"),
    ],
)
def test_bad_options_get_one_line_and_leave_nothing(tmp_path, pointwise_exact, args, needle):
    photo = _png(tmp_path / "p.png", scene_image(30, 40))
    out = tmp_path / "out"
    out.mkdir()
    depth_map = tmp_path / "p_depth.png"
    cv2.imwrite(str(depth_map), np.full((30, 40), 30000, np.uint16))
    args = [a.replace("OUT", str(out)).replace("MAP", str(depth_map)) for a in args]
    if "-o" not in args:
        args += ["-o", str(out / "x.ply")]
    result = _run(str(photo), "-m", str(pointwise_exact), *args)
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("prodepth: error:") and needle in lines[0]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("suffix", [".ply", ".glb"])
def test_a_bad_photograph_is_one_line_and_leaves_nothing(tmp_path, pointwise_exact, suffix):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    out = tmp_path / "out"
    out.mkdir()
    result = _run(str(bad), "-m", str(pointwise_exact), "-o", str(out / f"x{suffix}"))
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(bad) in lines[0]
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("suffix", [".ply", ".glb"])
def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, pointwise_exact, suffix):
    """Every file opened for writing under out/ fails at its first write, as on a full disk."""
    photo = _png(tmp_path / "p.png", scene_image(30, 40))
    out = tmp_path / "out" / f"x{suffix}"
    out.parent.mkdir()
    FakeDisk(out.parent).install(monkeypatch)
    result = _run(str(photo), "-m", str(pointwise_exact), "-o", str(out), "-q")
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines == [f"prodepth: error: {out}: no space left on device"]
    assert list(out.parent.iterdir()) == [], "no temporary file left"


# --- a real photograph -----------------------------------------------------------------------

LAMP = SHARED_DATA / "photos" / "architecture_street_lamp_orient6_2048x1536.jpg"


def test_a_real_photograph_gives_upright_points_and_a_mesh_with_its_lens(tmp_path):
    """A Canon compact's 2048x1536 JPEG turned by Orientation 6, FocalLength 57 mm and a
    sensor pitch of 8428 px/inch (no 35 mm equivalent): about a 4.7 degree view across the
    upright 1536 pixels. The shipped model (no -m)."""
    photo = require(LAMP)
    focal = 57.019002375296914 * 8427.983333333334 / 25.4
    ply, glb = tmp_path / "lamp.ply", tmp_path / "lamp.glb"
    result = _run(str(photo), "-o", str(ply), "--stride", "8", "--json")
    assert result.exit_code == 0, result.output
    record = _record(result)
    assert (record["width"], record["height"]) == (1536, 2048)
    assert record["focal_source"] == "exif:FocalLength+FocalPlaneXResolution"
    assert record["focal_px"] == pytest.approx(focal, abs=0.01)
    xyz, colours, _ = _points(ply)
    assert len(xyz) == len(grid_positions(1536, 8)) * len(grid_positions(2048, 8))
    assert colours.std() > 10, "a photograph, not a flat colour"
    result = _run(str(photo), "-o", str(glb), "--json")
    assert result.exit_code == 0, result.output
    record = _record(result)
    mesh = _mesh(glb)
    assert len(mesh.vertices) == record["vertices"] <= 2_000_000
    assert 0 < len(mesh.faces) <= 2 * record["vertices"]
    texture = mesh.visual.material.baseColorTexture
    assert texture.size == (1536, 2048)  # upright, whole: under 8192 px
