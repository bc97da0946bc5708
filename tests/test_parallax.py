"""`prodepth parallax`: camera paths, the ray-marched frames (motion, disocclusions, the still
level, loops), the torch renderer (run on the CPU here) against OpenCV's, the choice of
device, and the video files (MP4, GIF, WebP, their quality), on small synthetic scenes and
the example photograph; end to end on a real photograph when the reference data is present."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.errors import OptionError
from prodepth_cli.io.depth_map import read_depth_map
from prodepth_cli.parallax import render as parallax_render
from prodepth_cli.parallax.encode import mp4_crf
from prodepth_cli.parallax.levels import map_levels, snap_edges
from prodepth_cli.parallax.paths import CameraPose, camera_path, overscan
from prodepth_cli.parallax.raymarch import Ray, View, render_frame
from prodepth_cli.parallax.render import ParallaxOptions, make_clip, parallax_array
from prodepth_cli.parallax.samplers import frame_device, make_sampler
from tests.conftest import MOTORCYCLE, SHARED_DATA, require, scene_image
from tests.photo_files import depth_metres_misuse, metres_to_disparity, near_square_metres

runner = CliRunner()
H, W = 96, 128
SQUARE = (slice(32, 64), slice(48, 80))  # the near square's rows, columns
RED = (230, 20, 20)


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """A red near square (level 1) in front of a grey textured far plane (level 0): uint8
    RGB `(H, W, 3)` and its level map."""
    rng = np.random.default_rng(3)
    grey = cv2.GaussianBlur(rng.uniform(40, 200, (H, W)).astype(np.float32), (0, 0), 1.0)
    rgb = np.repeat(grey[:, :, None], 3, axis=2).astype(np.uint8)
    rgb[SQUARE] = RED
    level = np.zeros((H, W), np.float32)
    level[SQUARE] = 1.0
    return rgb, level


def _red(frame: np.ndarray) -> np.ndarray:
    r, g = frame[..., 0].astype(int), frame[..., 1].astype(int)
    return (r > 150) & (g < 80)


def _render(
    rgb: np.ndarray, level: np.ndarray, view: View, pose: CameraPose, torch_device=None
) -> np.ndarray:
    return render_frame(make_sampler(rgb, level, view, torch_device), pose)


def _frame(pose: CameraPose, convergence: float = 0.5, torch_device=None) -> np.ndarray:
    rgb, level = _scene()
    return _render(rgb, level, View((H, W), (H, W), 1.0, convergence), pose, torch_device)


def test_near_square_and_far_plane_move_by_their_share_of_the_amount():
    # lateral 0.1 widths per level = 12.8 px between the nearest and farthest levels
    frame = _frame(CameraPose(lateral=(0.1, 0.0)))
    cols = np.flatnonzero(_red(frame).any(axis=0))
    # level 1 moves (1 - 0.5) * 12.8 = +6.4 px: columns 48..79 -> 54.4..85.4
    assert abs(cols.min() - 54.4) <= 1 and abs(cols.max() - 85.4) <= 1, (cols.min(), cols.max())
    # level 0 moves -0.5 * 12.8 = -6.4 px: a far strip clear of the square
    rgb, _ = _scene()
    far, moved = np.float32(rgb[4:28, 20:108, 1]), np.float32(frame[4:28, 20:108, 1])
    (dx, dy), _ = cv2.phaseCorrelate(far, moved)
    assert abs(dx + 6.4) < 0.3 and abs(dy) < 0.3, (dx, dy)


def test_the_farthest_level_is_met_whatever_the_number_of_steps():
    """36.5 px of travel is 49 steps, where 1 - 49 * (1 / 49) > 0 in floating point: the last
    look must still be at level 0, or the far plane's rays meet nothing and it moves as the
    nearest level would (+18 px)."""
    rgb, _ = _scene()
    frame = _frame(CameraPose(lateral=(36.5 / W, 0.0)))
    far, moved = np.float32(rgb[4:28, 30:100, 1]), np.float32(frame[4:28, 30:100, 1])
    (dx, dy), _ = cv2.phaseCorrelate(far, moved)
    assert abs(dx + 0.5 * 36.5) < 0.3 and abs(dy) < 0.3, (dx, dy)


def test_the_uncovered_far_plane_takes_background_texture_not_the_squares_colour():
    frame = _frame(CameraPose(lateral=(0.1, 0.0)))
    # the square left columns 48..54 uncovered; the far plane there came from behind it
    hole = frame[SQUARE[0], 48:54]
    assert not _red(hole).any()
    spread = np.ptp(hole.astype(int), axis=2)
    assert spread.max() <= 3, "grey background, not a blend with the red square"
    assert hole[..., 0].std() > 5, "texture continued (mirrored), not one colour smeared"


def test_the_convergence_level_stays_still_on_every_path():
    rgb, level = _scene()
    level[:] = 0.3
    level[SQUARE] = 1.0
    view = View((H, W), (H, W), 1.0, 0.3)
    for pose in (CameraPose((0.08, -0.05)), CameraPose(radial=0.2)):
        frame = _render(rgb, level, view, pose)
        still = (slice(4, 24), slice(4, 44))  # at level 0.3, away from the square
        diff = np.abs(frame[still].astype(int) - rgb[still].astype(int))
        assert diff.max() <= 1, "a level at the convergence does not move (rounding only)"


def test_circle_and_swing_loop_the_last_frame_steps_into_the_first():
    for path in ("circle", "swing", "dolly"):
        poses = camera_path(path, 24, 3.0, 0.5)
        ahead = camera_path(path, 25, 3.0, 0.5)  # not a loop's frame: check pose 24 by hand

        def vec(p):
            return np.array([*p.lateral, p.radial, p.zoom])

        step = np.abs(vec(poses[1]) - vec(poses[0])).max()
        wrap = np.abs(vec(poses[-1]) - vec(poses[0])).max()
        assert wrap <= step + 1e-9, path
        assert len(ahead) == 25
    zoom = camera_path("zoom", 10, 3.0, 0.5)
    assert zoom[0] == CameraPose() and zoom[-1].radial == pytest.approx(0.06)


def test_a_looped_video_of_the_scene_wraps_smoothly():
    rgb, level = _scene()
    frames = parallax_array(rgb, level, ParallaxOptions("circle", seconds=1.0, fps=12.0))
    pairs = zip(frames, frames[1:], strict=False)
    steps = [np.abs(np.float32(a) - np.float32(b)).mean() for a, b in pairs]
    wrap = np.abs(np.float32(frames[-1]) - np.float32(frames[0])).mean()
    assert len(frames) == 12 and wrap <= max(steps) * 1.1


def test_overscan_keeps_every_ray_inside_the_photograph():
    for path in ("circle", "swing", "dolly", "zoom"):
        poses = camera_path(path, 16, 5.0, 0.2)
        zoom = overscan(poses, 0.2, W / H)
        view = View((H, W), (H, W), zoom, 0.2)
        u, v = view.grid()
        for pose in poses:
            for n in (0.0, 1.0):
                x, y = Ray(view, pose).lands(u, v, np.full((H, W), n, np.float32))
                assert x.min() >= -0.51 and x.max() <= W - 0.49, path
                assert y.min() >= -0.51 and y.max() <= H - 0.49, path


def test_a_soft_edge_becomes_a_step_but_a_gentle_slope_stays():
    ramp = np.zeros((40, 80), np.float32)
    ramp[:, 40:] = 1.0
    soft = cv2.blur(ramp, (5, 1))
    snapped = snap_edges(soft, px_per_level=20.0, max_ramp=8)
    assert set(np.unique(snapped)) <= {0.0, 1.0}
    # the ramp's 0.2, 0.4, 0.6, 0.8: the near side gains all but its farthest quarter
    assert (snapped[:, 39:] == 1.0).all() and (snapped[:, :39] == 0.0).all()
    slope = np.tile(np.linspace(0, 1, 80, dtype=np.float32), (40, 1))
    assert np.array_equal(snap_edges(slope, 20.0, 8), slope)
    assert map_levels(np.full((4, 4), 7.0), 7.0, 7.0).max() == 0.0


def test_nonsense_options_are_refused():
    for fields, needle in (
        ({"path": "spin"}, "--path"),
        ({"amount": 50.0}, "--amount"),
        ({"convergence": -0.1}, "--convergence"),
        ({"fps": 0.5}, "--fps"),
        ({"seconds": 0.0}, "--seconds"),
    ):
        with pytest.raises(OptionError, match=needle):
            ParallaxOptions(**fields)


def test_sizes_are_even_and_animations_small_by_default():
    options = ParallaxOptions()
    assert options.out_hw((3001, 4001), False) == (1440, 1920)
    assert options.out_hw((3001, 4001), True) == (360, 480)
    assert options.out_hw((101, 75), False) == (100, 76)
    assert ParallaxOptions(size=641).out_hw((480, 640), True) == (480, 640), "made even"
    assert options.frame_count(False) == 120 and options.frame_count(True) == 80


# --- torch (the GPU path, run on the CPU here) ---


def _assert_frames_agree(torch_frame: np.ndarray, cv_frame: np.ndarray) -> None:
    """Within interpolation: OpenCV's bilinear weights come in 1/32 px steps, grid_sample's
    in float32. Inside surfaces that is rounding (a level or so); a ray whose level lands
    within that of a coarse step's threshold meets a near edge one step sooner or later,
    and that edge pixel takes the other side's colour (any difference): rare. So: mean
    absolute difference under 1 level, and 99 % of pixels within 2 levels."""
    diff = np.abs(torch_frame.astype(int) - cv_frame.astype(int))
    assert torch_frame.shape == cv_frame.shape and torch_frame.dtype == np.uint8
    assert diff.mean() < 1.0, diff.mean()
    assert (diff.max(axis=-1) <= 2).mean() >= 0.99, (diff.max(axis=-1) <= 2).mean()


POSES = (
    CameraPose(lateral=(0.1, 0.0)),  # the near square uncovers the far plane on its left
    CameraPose(lateral=(-0.06, 0.08)),
    CameraPose(radial=0.2),  # forward: the square grows
    CameraPose(radial=0.12, zoom=0.06),
)


@pytest.mark.parametrize("pose", POSES, ids=["right", "diagonal", "forward", "zoom"])
def test_torch_frames_agree_with_opencv_on_the_scene(pose, one_torch_thread):
    pytest.importorskip("torch", reason="the GPU path needs the dev/train extra")
    _assert_frames_agree(_frame(pose, torch_device="cpu"), _frame(pose))


def test_torch_fills_the_uncovered_far_plane_with_background_too(one_torch_thread):
    pytest.importorskip("torch", reason="the GPU path needs the dev/train extra")
    hole = _frame(CameraPose(lateral=(0.1, 0.0)), torch_device="cpu")[SQUARE[0], 48:54]
    assert not _red(hole).any() and np.ptp(hole.astype(int), axis=2).max() <= 3


def test_torch_frames_agree_with_opencv_on_a_real_photograph(one_torch_thread):
    """Middlebury's Motorcycle with its ground-truth disparity: real edges, thin parts and
    large openings, at 256 px (torch on one CPU thread is slow)."""
    pytest.importorskip("torch", reason="the GPU path needs the dev/train extra")
    scene = require(MOTORCYCLE)
    rgb = cv2.imread(str(scene / "im0.png"))[:, :, ::-1]
    size = (256, round(256 * rgb.shape[0] / rgb.shape[1]))
    rgb = np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
    disparity = read_depth_map(scene / "disp0GT.pfm", rgb.shape[:2]).disparity
    options = ParallaxOptions("circle", amount=5.0)
    clip = make_clip(rgb, disparity, options, options.out_hw(rgb.shape[:2], False), 8)
    on_torch = dataclasses.replace(clip, torch_device="cpu")
    assert (clip.renderer, on_torch.renderer) == ("opencv", "torch:cpu")
    for i in (1, 5):  # two of the circle's directions
        _assert_frames_agree(on_torch.frame(i), clip.frame(i))


def test_auto_renders_through_torch_when_it_sees_a_gpu_and_with_opencv_otherwise(monkeypatch):
    torch = pytest.importorskip("torch", reason="the GPU path needs the dev/train extra")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert frame_device("auto") is None, "torch on the CPU is slower than OpenCV"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert frame_device("auto") == "cuda" and frame_device("CUDA") == "cuda"
    assert frame_device("cpu") is None
    with pytest.raises(OptionError, match="--device tensorrt"):
        frame_device("tensorrt")


def test_the_command_on_auto_renders_on_the_gpu_torch_sees(tmp_path, monkeypatch):
    """A faked CUDA: the command picks torch on "cuda"; the sampler is made on torch's CPU
    instead (no GPU here), and the video comes out of it."""
    torch = pytest.importorskip("torch", reason="the GPU path needs the dev/train extra")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    asked = []

    def on_torch_cpu(rgb, level, view, torch_device=None):
        asked.append(torch_device)
        return make_sampler(rgb, level, view, "cpu")

    monkeypatch.setattr(parallax_render, "make_sampler", on_torch_cpu)
    src, depth = _photo(tmp_path)
    out = tmp_path / "v.mp4"
    result = _run(str(src), "--depth", str(depth), "-o", str(out), "--seconds", "0.3",
                  "--fps", "10", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (record,) = _records(result)
    assert asked == ["cuda"] and record["renderer"] == "torch:cuda"
    assert _probe(out)["frames"] == 3


def test_without_torch_auto_renders_on_the_cpu_and_a_gpu_is_refused(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert frame_device("auto") is None
    src, depth = _photo(tmp_path)
    result = _run(str(src), "--depth", str(depth), "--seconds", "0.2", "--device", "cuda")
    assert result.exit_code == 1 and "torch, which is not installed" in result.stderr
    assert not (tmp_path / "photo_parallax.mp4").exists()
    result = _run(str(src), "--depth", str(depth), "--seconds", "0.2", "--json")
    assert result.exit_code == 0, result.stderr
    assert _records(result)[0]["renderer"] == "opencv"


# --- the command ---


def _photo(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "photo.png"
    rgb, level = _scene()
    cv2.imwrite(str(src), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    depth = tmp_path / "photo_depth.npy"
    np.save(depth, level)
    return src, depth


def _run(*args: str):
    return runner.invoke(app, ["parallax", *args])


def _records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def _probe(path: Path) -> dict:
    """codec, pix_fmt, frames, rate, size of an MP4: ffprobe's when present, else PyAV's."""
    if shutil.which("ffprobe"):
        out = subprocess.run(
            ["ffprobe", "-v", "error", "-count_frames", "-show_entries",
             "stream=codec_name,pix_fmt,nb_read_frames,r_frame_rate,width,height",
             "-of", "json", str(path)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        s = json.loads(out.stdout)["streams"][0]
        return {
            "codec": s["codec_name"],
            "pix_fmt": s["pix_fmt"],
            "frames": int(s["nb_read_frames"]),
            "rate": s["r_frame_rate"],
            "size": (s["width"], s["height"]),
        }
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return {
            "codec": stream.codec_context.name,
            "pix_fmt": stream.codec_context.pix_fmt,
            "frames": frames,
            "rate": f"{stream.average_rate.numerator}/{stream.average_rate.denominator}",
            "size": (stream.width, stream.height),
        }


def test_the_mp4_is_h264_yuv420p_with_seconds_times_fps_frames(tmp_path):
    src, depth = _photo(tmp_path)
    result = _run(str(src), "--depth", str(depth), "--seconds", "1.5", "--fps", "10", "--json")
    assert result.exit_code == 0, result.stderr
    (record,) = _records(result)
    out = tmp_path / "photo_parallax.mp4"
    assert record["output"] == str(out) and record["status"] == "ok"
    assert record["frames"] == 15 and record["fps"] == 10 and record["video_seconds"] == 1.5
    assert (record["out_width"], record["out_height"]) == (W, H)
    assert record["path"] == "circle" and record["depth"] == str(depth)
    assert _probe(out) == {
        "codec": "h264",
        "pix_fmt": "yuv420p",
        "frames": 15,
        "rate": "10/1",
        "size": (W, H),
    }


@pytest.mark.parametrize("suffix", [".gif", ".webp"])
def test_animations_have_their_frame_count_loop_and_a_small_default_size(tmp_path, suffix):
    src, depth = _photo(tmp_path)
    big = tmp_path / "big.png"  # 600 px wide: an animation is made 480 px wide
    rgb = cv2.resize(cv2.imread(str(src)), (600, 450), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(big), rgb)
    out = tmp_path / f"anim{suffix}"
    result = _run(str(big), "--depth", str(depth), "-o", str(out), "--seconds", "0.5", "-q")
    assert result.exit_code == 0, result.stderr
    with Image.open(out) as im:
        assert im.n_frames == 10, "0.5 s at 20 fps"
        assert im.size == (480, 360)
        assert im.info.get("loop") == 0
        if suffix == ".gif":  # Pillow reads no WebP frame durations back
            assert im.info["duration"] == 50, "1/20 s"


def test_a_folder_gives_one_video_per_photograph_and_resumes(tmp_path):
    folder = tmp_path / "shoot"
    folder.mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(folder / f"{name}.jpg"), scene_image(40, 60, seed=len(name)))
    np.save(tmp_path / "a_depth.npy", np.tile(np.linspace(0, 1, 60, dtype=np.float32), (40, 1)))
    np.save(tmp_path / "b_depth.npy", np.ones((40, 60), np.float32))
    args = [str(folder), "--depth", str(tmp_path), "-o", str(tmp_path / "out"), "--seconds",
            "0.2", "--format", "webp", "--json"]  # fmt: skip
    result = _run(*args)
    assert result.exit_code == 0, result.stderr
    records = _records(result)
    assert [Path(r["output"]).name for r in records] == ["a_parallax.webp", "b_parallax.webp"]
    assert all(Path(r["output"]).is_file() for r in records)
    again = _records(_run(*args))
    assert [r["status"] for r in again] == ["skipped", "skipped"]


def _gif_frames(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return np.stack(frames)


def test_a_metric_map_with_depth_metres_gives_the_video_of_its_disparity(tmp_path):
    """A metric model's map (metres, larger = farther; no depth: 0, negative, NaN) with
    --depth-metres is read as 1/metres: the frames of that disparity map, to the bit."""
    src, _ = _photo(tmp_path)
    metres = near_square_metres(H, W)
    np.save(tmp_path / "m.npy", metres)
    np.save(tmp_path / "d.npy", metres_to_disparity(metres))
    videos = []
    for name, args in (
        ("a.gif", ["--depth", str(tmp_path / "m.npy"), "--depth-metres"]),
        ("b.gif", ["--depth", str(tmp_path / "d.npy")]),
    ):
        out = tmp_path / name
        result = _run(str(src), *args, "-o", str(out), "--seconds", "0.2", "--device", "cpu",
                      "-q")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        videos.append(_gif_frames(out))
    assert len(videos[0]) == 4, "0.2 s at 20 fps"
    np.testing.assert_array_equal(videos[0], videos[1])


@depth_metres_misuse
def test_depth_metres_with_a_png_or_without_a_map_gets_one_line(tmp_path, args, needles):
    src, _ = _photo(tmp_path)
    depth = tmp_path / "d.png"
    cv2.imwrite(str(depth), np.full((H, W), 30000, np.uint16))
    result = _run(str(src), *[a.replace("MAP", str(depth)) for a in args], "--seconds", "0.2")
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and all(n in lines[0] for n in needles), lines
    assert not (tmp_path / "photo_parallax.mp4").exists()


def test_bad_inputs_get_one_line_and_leave_nothing(tmp_path):
    src, depth = _photo(tmp_path)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    for args, needle in (
        ([str(src), "--depth", str(depth), "--amount", "50"], "--amount"),
        ([str(src), "--depth", str(depth), "-o", str(tmp_path / "x.avi")], "cannot write .avi"),
        ([str(src), "--depth", str(depth), "-o", "-"], "stdout"),
        ([str(src), "--depth", str(depth), "--format", "mov"], "--format"),
        ([str(src), "--depth", str(depth), "--device", "tensorrt"], "--device"),
        ([str(src), "--depth", str(depth), "--quality", "0"], "--quality"),
        ([str(src), "--depth", str(tmp_path / "none.npy")], "no such depth map"),
        ([str(broken), "--depth", str(depth), "-o", str(tmp_path / "b.mp4")], "broken.jpg"),
    ):
        result = _run(*args, "--seconds", "0.2")
        assert result.exit_code == 1, args
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert any(needle in ln for ln in lines) and "Traceback" not in result.stderr, lines
        assert len(lines) <= 2, lines  # the error, and a batch's failure list
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["photo.png", "photo_depth.npy", "broken.jpg"]
    )


def test_a_render_that_fails_midway_leaves_no_file(tmp_path, monkeypatch):
    src, depth = _photo(tmp_path)
    calls = []

    def failing(self, i):
        calls.append(i)
        if i == 3:
            raise OSError(28, "No space left on device")
        return np.zeros((*self.view.out_hw, 3), np.uint8)

    monkeypatch.setattr(parallax_render.Clip, "frame", failing)
    out = tmp_path / "v.mp4"
    result = _run(str(src), "--depth", str(depth), "-o", str(out), "--seconds", "0.5")
    assert result.exit_code == 1 and "no space left on device" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".v.*"))


def test_a_real_photograph_end_to_end_with_the_depth_model(tmp_path, pointwise_exact):
    photos = require(SHARED_DATA / "photos")
    src = sorted(photos.glob("*.jpg"))[0]
    out = tmp_path / "real.mp4"
    result = _run(str(src), "-m", str(pointwise_exact), "-o", str(out), "--size", "160",
                  "--seconds", "0.5", "--fps", "8", "--path", "dolly", "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (record,) = _records(result)
    assert record["depth"].startswith("model:") and record["frames"] == 4
    probe = _probe(out)
    assert probe["codec"] == "h264" and probe["frames"] == 4
    assert max(probe["size"]) == 160 and all(s % 2 == 0 for s in probe["size"])


def test_quality_is_the_mp4s_crf(tmp_path):
    """x264 writes its settings into the stream (an SEI): the CRF can be read back."""
    assert (mp4_crf(None), mp4_crf(100), mp4_crf(50), mp4_crf(1)) == (18, 10, 30, 51)
    src, depth = _photo(tmp_path)
    for quality, crf in ((None, b"crf=18.0"), ("50", b"crf=30.0")):
        out = tmp_path / f"q{quality}.mp4"
        args = ["--quality", quality] if quality else []
        result = _run(str(src), "--depth", str(depth), "-o", str(out), "--seconds", "0.2", *args)
        assert result.exit_code == 0, result.stderr
        assert crf in out.read_bytes()


def test_a_3_second_webp_of_a_photograph_is_small_for_a_web_page(tmp_path):
    """The default WebP (480 px, 20 fps, WEBP_QUALITY) of examples/bartender.jpg, a floor-like
    depth ramp (the file's size is the photograph's detail, not the depth's): under 600 KB
    for 3 s, the issue's bar (quality 80 made 2.5 MB of 4 s); less quality, less."""
    src = Path(__file__).resolve().parents[1] / "examples" / "bartender.jpg"
    with Image.open(src) as im:
        w, h = im.size
    depth = tmp_path / "ramp.npy"
    np.save(depth, np.tile(np.linspace(0, 1, h, dtype=np.float32)[:, None], (1, w)))
    sizes = {}
    for quality in (None, "10"):
        out = tmp_path / f"q{quality}.webp"
        args = ["--quality", quality] if quality else []
        result = _run(str(src), "--depth", str(depth), "-o", str(out), "--seconds", "3",
                      "-q", *args)  # fmt: skip
        assert result.exit_code == 0, result.stderr
        sizes[quality] = out.stat().st_size
        with Image.open(out) as im:
            assert im.n_frames == 60 and max(im.size) == 480
    assert sizes[None] < 600_000 and sizes["10"] < sizes[None] * 0.8, sizes
