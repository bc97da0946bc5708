"""`prodepth bokeh` as users run it: files, batches, depth maps of every kind, bad inputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvips
import tifffile
import typer
from typer.testing import CliRunner

from prodepth_cli.batch import Job, depth_maps_for
from prodepth_cli.commands.bokeh import bokeh
from prodepth_cli.io.depth_map import DepthMapFile, fill_invalid, read_depth_map
from prodepth_cli.io.pfm import write_pfm
from tests.conftest import scene_image
from tests.photo_files import (
    depth_metres_misuse,
    metres_to_disparity,
    near_left_ramp,
    near_square_metres,
    write_depth_folder,
    write_png16,
    write_scene,
)

runner = CliRunner()

# The command on its own app, so these tests do not depend on cli.py's registration.
app = typer.Typer(pretty_exceptions_enable=False)
app.callback()(lambda: None)
app.command("bokeh")(bokeh)


def _bokeh(*args: str):
    return runner.invoke(app, ["bokeh", *args])


def _image(path: Path, h: int = 90, w: int = 120, seed: int = 0) -> Path:
    return write_scene(path, h, w, seed)


def _disparity(h: int = 90, w: int = 120) -> np.ndarray:
    return near_left_ramp(h, w)


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got: {result.stderr!r}"
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_single_file_keeps_format_size_and_writes_beside_it(tmp_path):
    src = _image(tmp_path / "photo.jpg")
    depth = write_png16(tmp_path / "photo_depth.png", _disparity())
    result = _bokeh(str(src), "--depth", str(depth), "--focus", "10,45")
    assert result.exit_code == 0, result.stderr
    out = cv2.imread(str(tmp_path / "photo_bokeh.jpg"))
    assert out.shape == (90, 120, 3)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_input_stays_16_bit_with_its_profile(tmp_path, suffix):
    rgb16 = (scene_image(60, 80).astype(np.uint16) * 257)[:, :, ::-1]
    src = tmp_path / f"deep{suffix}"
    image = pyvips.Image.new_from_array(np.ascontiguousarray(rgb16[:, :, ::-1]))
    image = image.copy(interpretation="rgb16")
    profile = pyvips.Image.black(1, 1).icc_export(output_profile="srgb").get("icc-profile-data")
    image.set_type(pyvips.GValue.blob_type, "icc-profile-data", profile)
    image.write_to_file(str(src))
    depth = tmp_path / "d.npy"
    np.save(depth, _disparity(60, 80))
    result = _bokeh(str(src), "--depth", str(depth))
    assert result.exit_code == 0, result.stderr
    out = pyvips.Image.new_from_file(str(tmp_path / f"deep_bokeh{suffix}"))
    assert (out.width, out.height, out.format) == (80, 60, "ushort")
    assert bytes(out.get("icc-profile-data")) == bytes(profile)


@pytest.mark.parametrize("fmt", ["png16", "tiff", "pfm", "npy"])
def test_every_depth_format_prodepth_writes_is_read_the_same_way(tmp_path, fmt):
    """Same image, same depth written four ways -> the same render (PNG quantises to 16 bits,
    so the focal plane moves by at most 1/65535 of the range: renders agree to 1e-3)."""
    src = _image(tmp_path / "p.png")
    d = _disparity()
    paths = {
        "png16": lambda p: write_png16(p.with_suffix(".png"), d),
        "tiff": lambda p: tifffile.imwrite(p.with_suffix(".tif"), d) or p.with_suffix(".tif"),
        "pfm": lambda p: write_pfm(p.with_suffix(".pfm"), d) or p.with_suffix(".pfm"),
        "npy": lambda p: np.save(p.with_suffix(".npy"), d) or p.with_suffix(".npy"),
    }
    depth = paths[fmt](tmp_path / "depth")
    out = tmp_path / f"out_{fmt}.png"
    result = _bokeh(str(src), "--depth", str(depth), "-o", str(out), "--focus", "30,40")
    assert result.exit_code == 0, result.stderr
    reference = tmp_path / "ref.png"
    if not reference.exists():
        np.save(tmp_path / "ref.npy", d)
        _bokeh(
            str(src), "--depth", str(tmp_path / "ref.npy"), "-o", str(reference), "--focus", "30,40"
        )
    a = cv2.imread(str(out)).astype(np.float32)
    b = cv2.imread(str(reference)).astype(np.float32)
    assert np.abs(a - b).max() <= 1.0


def test_depth_map_of_another_size_is_resized_with_a_warning(tmp_path):
    src = _image(tmp_path / "p.png")
    depth = write_png16(tmp_path / "small.png", _disparity(45, 60))
    result = _bokeh(str(src), "--depth", str(depth), "--json")
    assert result.exit_code == 0, result.stderr
    assert "warning" in result.stderr and "60x45" in result.stderr and "resized" in result.stderr
    record = json.loads(result.stdout)
    assert record["depth_resized_from"] == [45, 60] and record["status"] == "ok"
    assert cv2.imread(str(tmp_path / "p_bokeh.png")).shape == (90, 120, 3)


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda p: _image(p.with_suffix(".png")), "colour image, not a depth map"),
        (lambda p: _image(p.with_suffix(".jpg")), "not a depth map type"),
        (lambda p: np.save(p.with_suffix(".npy"), np.zeros((90, 120, 3))), "not a depth map"),
        (lambda p: p.with_suffix(".npy").write_text("junk"), "not a readable NumPy"),
        (lambda p: p.with_suffix(".pfm").write_bytes(b"P6\n1 1\n255\nabc"), "not a PFM"),
        (lambda p: np.save(p.with_suffix(".npy"), np.full((9, 9), np.inf)), "no valid value"),
        (lambda p: None, "no such depth map"),
    ],
    ids=["rgb-png", "jpeg", "rgb-npy", "junk-npy", "not-pfm", "all-invalid", "missing"],
)
def test_depth_map_of_the_wrong_type_gets_one_line(tmp_path, make, needle):
    src = _image(tmp_path / "p.png")
    make(tmp_path / "depth")
    given = next((p for p in tmp_path.glob("depth.*")), tmp_path / "depth.png")
    result = _bokeh(str(src), "--depth", str(given))
    _assert_one_line_error(result, needle)
    assert not (tmp_path / "p_bokeh.png").exists()


def test_a_metric_map_with_depth_metres_renders_as_its_disparity(tmp_path):
    """A metric model's map (metres, larger = farther; no depth: 0, negative, NaN) with
    --depth-metres is read as 1/metres: the render of that disparity map, to the bit (the same
    float32 values, filled alike). Without the flag its wall would be the near side."""
    src = _image(tmp_path / "p.png")
    metres = near_square_metres(90, 120)
    tifffile.imwrite(tmp_path / "m.tif", metres)
    np.save(tmp_path / "d.npy", metres_to_disparity(metres))
    runs = {
        "metres": ["--depth", str(tmp_path / "m.tif"), "--depth-metres"],
        "disparity": ["--depth", str(tmp_path / "d.npy")],
        "unflagged": ["--depth", str(tmp_path / "m.tif")],
    }
    renders, focus = {}, {}
    for name, args in runs.items():
        out = tmp_path / f"{name}.png"
        result = _bokeh(str(src), *args, "-o", str(out), "--json")
        assert result.exit_code == 0, result.stderr
        renders[name], focus[name] = cv2.imread(str(out)), json.loads(result.stdout)["focus"]
    np.testing.assert_array_equal(renders["metres"], renders["disparity"])
    assert focus["metres"] == focus["disparity"]
    assert not np.array_equal(renders["metres"], renders["unflagged"])


def test_depth_metres_takes_a_folders_metric_map_over_its_png(tmp_path):
    """`prodepth depth` run twice into one folder leaves `p_depth.png` and `p_depth.tif`:
    with --depth-metres the .tif is the map (a PNG holds no metres)."""
    src = _image(tmp_path / "in" / "p.png")
    maps = write_depth_folder(tmp_path / "maps", ("p",), _disparity())
    tifffile.imwrite(maps / "p_depth.tif", near_square_metres(90, 120))
    args = ["--depth", str(maps), "--depth-metres", "-o", str(tmp_path / "out.png"), "--json"]
    result = _bokeh(str(src), *args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["depth"] == str(maps / "p_depth.tif")


def test_depth_maps_for_gives_each_input_its_map_and_what_it_holds(tmp_path):
    """Without --depth no input has a key; with a folder every input has one, None where the
    folder holds no map for it (the renders tell that from no --depth by the key)."""
    jobs = [Job(str(tmp_path / f"{stem}.png"), "-") for stem in ("a", "b")]
    maps = write_depth_folder(tmp_path / "maps", ("a",), _disparity())
    assert depth_maps_for(jobs, None) == {}
    assert depth_maps_for(jobs, maps, metres=True) == {
        jobs[0].input: DepthMapFile(maps / "a_depth.png", metres=True),
        jobs[1].input: None,
    }
    assert depth_maps_for(jobs[:1], maps / "a_depth.png") == {
        jobs[0].input: DepthMapFile(maps / "a_depth.png")
    }


def test_a_depth_folder_without_a_photographs_map_fails_that_photograph_only(tmp_path):
    _image(tmp_path / "in" / "a.png", seed=1)
    _image(tmp_path / "in" / "b.png", seed=2)
    maps = write_depth_folder(tmp_path / "depth", ("a",), _disparity())
    args = [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--depth", str(maps), "--json"]
    result = _bokeh(*args)
    assert result.exit_code == 1
    records = {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert records["a.png"]["status"] == "ok"
    assert records["a.png"]["depth"] == str(maps / "a_depth.png")
    assert records["b.png"]["status"] == "error"
    assert "no depth map for it in the --depth folder" in records["b.png"]["error"]
    assert not (tmp_path / "out" / "b_bokeh.png").exists()


@depth_metres_misuse
def test_depth_metres_with_a_png_or_without_a_map_gets_one_line(tmp_path, args, needles):
    src = _image(tmp_path / "p.png")
    depth = write_png16(tmp_path / "d.png", _disparity())
    result = _bokeh(str(src), *[a.replace("MAP", str(depth)) for a in args])
    assert result.exit_code == 1
    _assert_one_line_error(result, *needles)
    assert not (tmp_path / "p_bokeh.png").exists()


def _jpeg_bytes() -> bytes:
    ok, data = cv2.imencode(".jpg", scene_image(300, 400))
    return data.tobytes()


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("hello, I am text"), "not a readable image"),
        (lambda p: p.write_bytes(_jpeg_bytes()[:2000]), "truncated"),
    ],
    ids=["missing", "empty", "not-an-image", "truncated"],
)
def test_bad_input_gets_one_line_and_no_output(tmp_path, make, needle):
    src = tmp_path / "photo.jpg"
    make(src)
    depth = write_png16(tmp_path / "d.png", _disparity(300, 400))
    result = _bokeh(str(src), "--depth", str(depth))
    _assert_one_line_error(result, "photo.jpg", needle)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name not in ("photo.jpg", "d.png")) == []


def test_batch_with_a_depth_folder_goes_on_past_a_bad_file_and_resumes(tmp_path):
    _image(tmp_path / "in" / "a.png", seed=1)
    _image(tmp_path / "in" / "b.jpg", seed=2)
    (tmp_path / "in" / "bad.png").write_bytes(b"this is not a png")
    maps = write_depth_folder(tmp_path / "depth", ("a", "b", "bad"), _disparity())
    args = [str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--depth", str(maps), "--json"]
    result = _bokeh(*args)
    assert result.exit_code == 1
    records = {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    assert records["a.png"]["status"] == "ok" and records["b.jpg"]["status"] == "ok"
    assert records["bad.png"]["status"] == "error"
    assert (tmp_path / "out" / "a_bokeh.png").is_file()
    assert (tmp_path / "out" / "b_bokeh.jpg").is_file()
    assert "1 of 3 inputs failed" in result.stderr and "Traceback" not in result.stderr
    again = [json.loads(ln)["status"] for ln in _bokeh(*args).stdout.splitlines()]
    assert sorted(again) == ["error", "skipped", "skipped"]


@pytest.mark.parametrize(
    "options,needle",
    [
        (["--f-number", "0"], "--f-number"),
        (["--f-number", "-2"], "--f-number"),
        (["--focus", "here"], "--focus"),
        (["--focus", "500,10"], "outside the image"),
        (["--focus", "3,4", "--focus-depth", "0.5"], "--focus-depth"),
        (["--engine", "magic"], "--engine"),
        (["--model", "x.tflite"], "--engine tflite"),
    ],
)
def test_nonsense_options_are_refused(tmp_path, options, needle):
    src = _image(tmp_path / "p.png")
    depth = write_png16(tmp_path / "d.png", _disparity())
    result = _bokeh(str(src), "--depth", str(depth), *options)
    _assert_one_line_error(result, needle)
    assert not (tmp_path / "p_bokeh.png").exists()


@pytest.mark.parametrize(
    ("name", "reader"),
    [("out.jpg", "jpegload"), ("out.png", "pngload"), ("out.tif", "tiffload")],
)
def test_an_output_suffix_chooses_the_photo_format(tmp_path, name, reader):
    src = _image(tmp_path / "p.png")
    depth = write_png16(tmp_path / "d.png", _disparity())
    result = _bokeh(str(src), "--depth", str(depth), "-o", str(tmp_path / name))
    assert result.exit_code == 0, result.stderr
    assert pyvips.Image.new_from_file(str(tmp_path / name)).get("vips-loader") == reader


def test_an_unwritable_output_suffix_is_refused_before_any_work(tmp_path):
    src = _image(tmp_path / "p.png")
    depth = write_png16(tmp_path / "d.png", _disparity())
    result = _bokeh(str(src), "--depth", str(depth), "-o", str(tmp_path / "out.npy"))
    _assert_one_line_error(result, "out.npy", "cannot write .npy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "p.png"]


def test_one_depth_map_for_several_images_is_refused(tmp_path):
    a, b = _image(tmp_path / "a.png"), _image(tmp_path / "b.png")
    depth = write_png16(tmp_path / "d.png", _disparity())
    _assert_one_line_error(_bokeh(str(a), str(b), "--depth", str(depth)), "folder")


def test_stdin_to_stdout_in_a_pipeline(tmp_path):
    data = _image(tmp_path / "p.png").read_bytes()
    depth = write_png16(tmp_path / "d.png", _disparity())
    env = {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    code = (
        "import sys, typer; from prodepth_cli.commands.bokeh import bokeh; "
        "app = typer.Typer(); app.callback()(lambda: None); app.command('bokeh')(bokeh); "
        "app(sys.argv[1:])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "bokeh", "-", "-o", "-", "--depth", str(depth)],
        input=data,
        capture_output=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    out = cv2.imdecode(np.frombuffer(done.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
    assert out.shape == (90, 120, 3)
    assert done.stderr == b"", "nothing on stderr when it is not a terminal"


def test_invalid_depth_is_filled_with_the_farther_neighbour():
    d = np.array([[5.0, np.inf, np.nan, 2.0, 3.0], [np.inf] * 5], np.float32)
    filled = fill_invalid(d, ~np.isfinite(d))
    assert filled[0].tolist() == [5.0, 2.0, 2.0, 2.0, 3.0]
    assert filled[1].tolist() == [2.0] * 5  # an empty row takes the map's farthest value


def test_read_depth_map_reports_fill_and_resize(tmp_path):
    d = np.ones((10, 20), np.float32)
    d[0, 0] = np.inf
    np.save(tmp_path / "d.npy", d)
    m = read_depth_map(tmp_path / "d.npy", (20, 40))
    assert m.disparity.shape == (20, 40) and m.resized and m.filled == pytest.approx(0.005)
