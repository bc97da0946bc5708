"""`prodepth video --fast`: a flickering model made steady without losing the truth, scene
cuts, frames streamed with a window held, bad input (a truncated JPEG, a video cut short)
stopping with one line and resuming, outputs matching the input, JSON records, no torch."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tracemalloc
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.errors import OptionError
from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import depth_array
from prodepth_cli.video.consistency import clip_jitter, jitter
from prodepth_cli.video.fast import FastOptions, fast_video_depth
from prodepth_cli.video.outputs import FrameMapWriter, PreviewWriter
from prodepth_cli.video.shots import SHOTS_NAME, shot_range, write_fit_shots
from prodepth_cli.video.stabilise import (
    KEEP,
    Affine,
    Alignment,
    MapStatistics,
    fit_affine,
    temporal_filter,
)
from prodepth_cli.video.stream import FrameError, open_frames
from tests.onnx_models import flickering_brightness_model

runner = CliRunner()
FRAME_WH = (160, 120)
PAN = 3  # pixels a frame


@pytest.fixture(scope="module")
def flicker_model(tmp_path_factory) -> Path:
    return flickering_brightness_model(tmp_path_factory.mktemp("flicker") / "flicker.onnx")


def texture(seed: int, tint: tuple[float, float, float], w: int = 900) -> np.ndarray:
    """`(180, w, 3)` uint8 RGB scenery: blobs at two scales (texture the flow can follow),
    tinted (two tints are two scenes to a colour histogram)."""
    rng = np.random.default_rng(seed)
    coarse = cv2.GaussianBlur(rng.random((180, w)).astype(np.float32), (0, 0), 9)
    fine = cv2.GaussianBlur(rng.random((180, w)).astype(np.float32), (0, 0), 2)
    grey = cv2.normalize(2 * coarse + fine, None, 0.1, 0.9, cv2.NORM_MINMAX)
    return (np.clip(grey[..., None] * np.array(tint), 0, 1) * 255).astype(np.uint8)


def panning(scene: np.ndarray, n: int) -> list[np.ndarray]:
    """`n` frames of FRAME_WH panning across `scene` by PAN pixels a frame."""
    w, h = FRAME_WH
    return [np.ascontiguousarray(scene[30 : 30 + h, PAN * i : PAN * i + w]) for i in range(n)]


def write_folder(folder: Path, frames: list[np.ndarray], suffix: str = ".png") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / f"f{i:04d}{suffix}" for i in range(len(frames))]
    for f, rgb in zip(files, frames, strict=True):
        cv2.imwrite(str(f), rgb[:, :, ::-1])
    return files


def write_mp4(path: Path, frames: list[np.ndarray], fps: int = 24) -> Path:
    """H.264 with its index (`moov`) first, as a file meant to play while it downloads: cut
    short, the frames before the cut still decode."""
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *FRAME_WH, "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def brightness(rgb: np.ndarray) -> np.ndarray:
    """What the flicker model sees, before its gain and shift: the truth."""
    return rgb.astype(np.float32).mean(axis=2) / 255 + 0.2


def levels(folder: Path, names: list[str]) -> list[np.ndarray]:
    """16-bit maps as written, in [0, 1]."""
    return [
        cv2.imread(str(folder / f"{n}.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) / 65535
        for n in names
    ]


def fast_cli(*args: str):
    return runner.invoke(app, ["video", *args, "--fast", "--device", "cpu"])


# --- the algorithm's parts ------------------------------------------------------------------


def test_jitter_of_a_one_frame_flash_is_twice_its_size():
    still = np.zeros((8, 8, 2), np.float32)
    flat, flash = np.full((8, 8), 0.5, np.float32), np.full((8, 8), 0.6, np.float32)
    valid = np.ones((8, 8), bool)
    assert jitter(flat, flat, flat, still, still, valid) == 0.0
    assert jitter(flat, flash, flat, still, still, valid) == pytest.approx(0.2, abs=1e-6)
    # a steady change costs nothing: the second difference of a ramp is zero
    ramp = [np.full((8, 8), v, np.float32) for v in (0.2, 0.3, 0.4)]
    assert jitter(*ramp, still, still, valid) == pytest.approx(0.0, abs=1e-6)


def test_fit_affine_recovers_the_map_despite_a_fifth_of_outliers():
    rng = np.random.default_rng(0)
    current = rng.random((60, 80)).astype(np.float32)
    reference = 1.7 * current + 0.3 + rng.normal(0, 0.005, current.shape).astype(np.float32)
    moved = rng.random(current.shape) < 0.2  # a fifth of the pixels: something moved there
    reference[moved] = rng.random(int(moved.sum()))
    fit = fit_affine(current, reference, np.ones(current.shape, bool))
    # the noise (0.005 against a spread of 0.5) leaves the fit within a per cent
    assert fit.scale == pytest.approx(1.7, rel=0.01)
    assert fit.shift == pytest.approx(0.3, abs=0.01)


def test_alignment_removes_flicker_and_does_not_compound_a_steady_trend():
    """Fits as the frames give them: frame t's map is g_t * D_t (a random gain per frame,
    D's statistics steady, as a relative-depth model normalises each frame), the previous
    output is T_(t-1)(g_(t-1) * D_(t-1)), and a camera going forward makes D_t look 1 / 0.9
    of D_(t-1) to a fit. Chained, the fits would shrink the maps 0.9 a frame (0.9^100 =
    3e-5); the alignment must hold the first frame's gain and cancel g_t."""
    rng = np.random.default_rng(1)
    gains = rng.uniform(0.5, 1.5, 101)
    statistics = [MapStatistics(g * 1.0, g * 0.5) for g in gains]
    alignment, outputs = Alignment(statistics[0]), []
    for t in range(1, 101):
        relative = 0.9 * gains[t - 1] / gains[t]  # frame t onto frame t-1's values
        fit = Affine(alignment.transform.scale * relative, 0.0)
        outputs.append(alignment.update(fit, statistics[t]).scale * gains[t])  # output's gain
    relative = np.array(outputs) / gains[0]
    # the trend costs a bounded offset, 0.9^(FOLLOW / (1 - FOLLOW)) = 0.9 at FOLLOW 0.5
    assert np.all((relative > 0.89) & (relative <= 1.0)), relative
    # and the model's gain (std of log 0.29 from frame to frame) is gone
    assert np.std(np.diff(np.log(relative))) < 0.01


def test_temporal_filter_follows_a_point_coming_nearer_without_lag_and_steadies_noise():
    """A still frame (flow: none) whose true disparity grows by `rate` a frame, as a point the
    camera comes towards does, seen through per-frame noise. The filter must steady the noise
    and, carrying the trend forward, follow the growth: a plain exponential window keeping
    KEEP of the past lags KEEP / (1 - KEEP) frames' growth behind it (5.7 at 0.85)."""
    rng = np.random.default_rng(0)
    rate, noise, shape = 0.002, 0.01, (32, 32)
    trusted = np.ones(shape, bool)
    output, trend, errors, raw_errors = None, None, [], []
    for t in range(80):
        truth = np.float32(0.3 + rate * t)
        current = (truth + noise * rng.standard_normal(shape)).astype(np.float32)
        if output is None:
            output = current
        else:
            correction, trend = temporal_filter(current, output, trend, trusted, 1.0)
            output = current + correction
        if t >= 40:  # settled
            errors.append(output - truth)
            raw_errors.append(current - truth)
    lag = -float(np.mean(errors))
    assert abs(lag) < 0.1 * rate * KEEP / (1 - KEEP), lag
    assert np.std(errors) < 0.6 * np.std(raw_errors)


# --- the fast path on synthetic clips -------------------------------------------------------


def test_fast_cuts_a_flickering_models_jitter_and_keeps_the_truth(tmp_path, flicker_model):
    frames = panning(texture(0, (0.9, 1.0, 0.8)), 30)
    files = write_folder(tmp_path / "clip", frames)
    model = load_model(flicker_model, "cpu")
    report = fast_video_depth(tmp_path / "clip", tmp_path / "out", model)
    assert len(report.shots) == 1
    written = levels(tmp_path / "out", [f.stem for f in files])
    # frame by frame: the model's maps over one fixed range (the shot's, as --fast uses)
    raw = [depth_array(rgb, model) for rgb in frames]
    lo, hi = shot_range(raw[0])
    by_frame = clip_jitter([(r - lo) / (hi - lo) for r in raw], frames)
    steady = clip_jitter(written, frames)
    # gains of 0.5-1.5 and shifts of 0-0.3 a frame: a factor of 20 at least (measured 380)
    assert steady * 20 < by_frame, (steady, by_frame)
    record = report.record  # the same comparison, made on the fly at the flow size
    assert record["jitter"] * 20 < record["jitter_frame_by_frame"], record
    for rgb, m in zip(frames, written, strict=True):
        # the truth up to an affine: Pearson's r stays near 1 on every frame
        assert np.corrcoef(m.ravel(), brightness(rgb).ravel())[0, 1] > 0.97
    spread = [np.percentile(m, 95) - np.percentile(m, 5) for m in written]
    assert 0.5 < spread[-1] / spread[0] < 2, "the maps' contrast drifted"


def test_scene_cut_starts_a_shot_with_its_own_range(tmp_path, pointwise_affine):
    first = panning(texture(1, (0.4, 0.6, 1.0)), 12)
    second = panning(texture(2, (1.0, 0.5, 0.3)), 12)
    files = write_folder(tmp_path / "clip", first + second)
    model = load_model(pointwise_affine, "cpu")
    shots = []
    report = fast_video_depth(
        tmp_path / "clip", tmp_path / "out", model, FastOptions("npy"), on_shot=shots.append
    )
    assert [(s.first, s.last) for s in shots] == [(0, 11), (12, 23)]
    assert report.shots == shots
    own = depth_array(second[0], model)
    # the second shot starts from its own first map, in its own range: nothing dragged over
    assert (shots[1].lo, shots[1].hi) == pytest.approx(shot_range(own))
    assert (shots[1].lo, shots[1].hi) != (shots[0].lo, shots[0].hi)
    np.testing.assert_allclose(np.load(tmp_path / "out" / f"{files[12].stem}.npy"), own, atol=1e-6)
    logged = json.loads((tmp_path / "out" / SHOTS_NAME).read_text())
    assert [s["first"] for s in logged["shots"]] == [0, 12]


def test_reader_decodes_each_frame_only_when_asked(tmp_path):
    files = write_folder(tmp_path / "clip", panning(texture(3, (1, 1, 1)), 4))
    stream = open_frames(tmp_path / "clip")
    assert (stream.count, stream.fps) == (4, 10.0)
    frames = iter(stream)
    assert next(frames).index == 0
    files[2].unlink()  # after the stream opened: only a lazy reader gets past frame 1
    assert next(frames).name == files[1].stem
    with pytest.raises(FrameError) as failed:
        next(frames)
    assert failed.value.index == 2


def test_fast_holds_a_window_not_the_clip(tmp_path, pointwise_affine):
    """Peak traced memory (numpy's and OpenCV's arrays) for 20 frames and for 200: flat to
    20 KB here; a path that kept every decoded frame (58 KB each) would grow by 10 MB. The
    bound, 2.5 MB, leaves room for what other threads of a full test run allocate meanwhile
    (tracemalloc traces them all)."""
    scene = texture(4, (1, 0.9, 0.8), w=160 + PAN * 200)
    model = load_model(pointwise_affine, "cpu")
    peaks = {}
    for n in (5, 20, 200):  # 5 first: one-time allocations (sessions, caches) out of the way
        write_folder(tmp_path / f"clip{n}", panning(scene, n))
        tracemalloc.start()
        fast_video_depth(tmp_path / f"clip{n}", tmp_path / f"out{n}", model)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peaks[200] - peaks[20] < 2_500_000, peaks


def test_video_depth_takes_the_fast_path_when_asked(tmp_path, pointwise_affine):
    from prodepth_cli.video.pipeline import VideoOptions, video_depth

    files = write_folder(tmp_path / "clip", panning(texture(11, (1, 1, 1)), 4))
    model = load_model(pointwise_affine, "cpu")
    report = video_depth(
        tmp_path / "clip", tmp_path / "out", VideoOptions(fast=True, fmt="npy"), model=model
    )
    assert (report.record["mode"], report.frames) == ("fast", 4)
    assert sorted(p.stem for p in (tmp_path / "out").glob("*.npy")) == [f.stem for f in files]


# --- bad input, resume, outputs -------------------------------------------------------------


def test_corrupt_jpeg_stops_at_it_in_one_line_and_a_rerun_resumes(tmp_path, pointwise_affine):
    frames = panning(texture(5, (0.8, 0.9, 1.0)), 10)
    files = write_folder(tmp_path / "clip", frames, ".jpg")
    whole = files[5].read_bytes()
    files[5].write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    args = [str(tmp_path / "clip"), "-o", str(out), "--model", str(pointwise_affine)]
    result = fast_cli(*args)
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "frame 5" in lines[0] and files[5].name in lines[0] and "Traceback" not in lines[0]
    written = sorted(p.stem for p in out.glob("*.png"))
    assert written == [f.stem for f in files[:5]]
    writer = FrameMapWriter(out, "png16", FRAME_WH)
    (shot,) = json.loads((out / SHOTS_NAME).read_text())["shots"]
    # stopped inside its shot: no final range yet, the maps in the provisional one
    assert (shot["final"], shot["rewritten"]) == (None, False)
    assert {writer.written_range(n) for n in written} == {(shot["lo"], shot["hi"])}

    files[5].write_bytes(whole)
    result = fast_cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout.splitlines()[-1])
    assert (run["frames"], run["resumed"]) == (10, 5)  # the five maps were not run again
    assert sorted(p.stem for p in out.glob("*.png")) == [f.stem for f in files]
    (shot,) = json.loads((out / SHOTS_NAME).read_text())["shots"]
    assert shot["rewritten"] and shot["final"] == [shot["lo"], shot["hi"]]
    names = [f.stem for f in files]
    assert {writer.written_range(n) for n in names} == {(shot["lo"], shot["hi"])}
    # the rerun continued the shot from the map read back: it matches a run never cut short
    # (measured 5e-5 of the range: the last map comes back rounded to 16 bits)
    clean = tmp_path / "clean"
    assert fast_cli(*args[:1], "-o", str(clean), *args[3:]).exit_code == 0
    for resumed, uncut in zip(levels(out, names), levels(clean, names), strict=True):
        assert np.abs(resumed - uncut).mean() < 1e-3


def display_index(video: Path, pts: int) -> int:
    """Which frame (in display order) of `video` the packet with `pts` holds."""
    with av.open(str(video)) as container:
        return sorted(p.pts for p in container.demux(video=0) if p.size).index(pts)


def damage_packet(video: Path, damaged: Path, least_frame: int) -> int:
    """A copy of H.264 `video` at `damaged` with one byte in the middle of one packet changed:
    the first packet of 200 bytes or more (a P- or I-frame's slice: a B-frame's few bytes
    may be all header) of a frame from `least_frame` on. Its frame's display index."""
    with av.open(str(video)) as container:
        packets = [(p.pts, p.pos, p.size) for p in container.demux(video=0) if p.size]
    order = sorted(pts for pts, _, _ in packets)
    pts, pos, size = next(
        (pts, pos, size)
        for pts, pos, size in packets
        if order.index(pts) >= least_frame and size >= 200
    )
    data = bytearray(video.read_bytes())
    middle = pos + size // 2
    data[middle] ^= 0x5A
    damaged.write_bytes(data)
    return order.index(pts)


def test_video_cut_short_stops_at_the_cut_and_the_whole_video_resumes(tmp_path, flicker_model):
    frames = panning(texture(6, (1.0, 0.8, 0.7)), 40)
    whole_mp4 = write_mp4(tmp_path / "whole.mp4", frames)
    whole = whole_mp4.read_bytes()
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(whole[: int(len(whole) * 0.6)])
    with av.open(str(clip)) as container:
        cut = [p.pts for p in container.demux(video=0) if p.size and p.is_corrupt]
    assert cut, "the premise: the cut falls inside a packet, which the demuxer flags"
    bad = display_index(whole_mp4, cut[0])
    out = tmp_path / "out"
    preview = tmp_path / "preview.mp4"
    args = [str(clip), "-o", str(out), "--model", str(flicker_model), "--preview", str(preview)]
    result = fast_cli(*args)
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert f"frame {bad} " in lines[0] and "cut short" in lines[0]
    # B-frames: the decoder gives the frames that display just before the cut after it
    written = sorted(p.name for p in out.glob("*.png"))
    assert 0 < len(written) <= bad and written == [f"{i:06d}.png" for i in range(len(written))]
    assert not preview.exists()  # an unfinished preview is not left behind

    clip.write_bytes(whole)
    result = fast_cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1])["resumed"] == len(written)
    assert sorted(p.name for p in out.glob("*.png")) == [f"{i:06d}.png" for i in range(40)]
    capture = cv2.VideoCapture(str(preview))
    count = 0
    while capture.read()[0]:
        count += 1
    assert (count, capture.get(cv2.CAP_PROP_FPS)) == (40, 24.0)  # as many frames, same rate


def test_corrupt_packet_mid_video_stops_there_and_a_repaired_video_resumes(
    tmp_path, pointwise_affine
):
    """FFmpeg's H.264 decoder conceals a damaged frame from its neighbours and says nothing
    (OpenCV decodes this clip to the end); the reader has it report the damage instead."""
    whole = write_mp4(tmp_path / "whole.mp4", panning(texture(12, (0.9, 1.0, 0.8)), 30))
    clip = tmp_path / "clip.mp4"
    bad = damage_packet(whole, clip, 15)
    capture = cv2.VideoCapture(str(clip))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    assert decoded == 30, "the premise: FFmpeg's defaults hide the damage"
    out = tmp_path / "out"
    args = [str(clip), "-o", str(out), "--model", str(pointwise_affine)]
    result = fast_cli(*args)
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0], result.stderr
    assert f"frame {bad} " in lines[0] and "corrupt" in lines[0]
    written = sorted(p.name for p in out.glob("*.png"))
    assert 0 < len(written) <= bad and written == [f"{i:06d}.png" for i in range(len(written))]

    clip.write_bytes(whole.read_bytes())
    result = fast_cli(*args, "--json")
    assert result.exit_code == 0, result.stderr
    run = json.loads(result.stdout.splitlines()[-1])
    assert (run["frames"], run["resumed"]) == (30, len(written))


def test_json_records_one_per_shot_then_the_run(tmp_path, pointwise_affine):
    frames = panning(texture(7, (0.4, 0.6, 1.0)), 8) + panning(texture(8, (1.0, 0.5, 0.3)), 8)
    write_folder(tmp_path / "clip", frames)
    out = tmp_path / "out"
    result = fast_cli(
        str(tmp_path / "clip"), "-o", str(out), "--model", str(pointwise_affine), "--json"
    )
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["record"] for r in records] == ["shot", "shot", "run"]
    shots, run = records[:2], records[2]
    assert [(s["shot"], s["first"], s["last"], s["frames"]) for s in shots] == [
        (0, 0, 7, 8),
        (1, 8, 15, 8),
    ]
    for shot in shots:
        assert shot["seconds"] >= 0 and shot["jitter"] is not None and len(shot["range"]) == 2
    assert (run["status"], run["frames"], run["shots"], run["format"]) == ("ok", 16, 2, "png16")
    assert math.isfinite(run["jitter"]) and run["seconds_per_frame"] > 0
    assert len(list(out.glob("*.png"))) == 16


@pytest.mark.parametrize("flag", ["--masks", "--calib", "--intrinsics", "--size"])
def test_fit_options_are_refused_with_fast(tmp_path, flag):
    result = fast_cli(str(tmp_path), "-o", str(tmp_path / "out"), flag, "x")
    assert result.exit_code == 1
    assert f"{flag} is for the fit" in result.stderr


def test_fast_path_never_imports_torch(tmp_path, pointwise_affine):
    write_folder(tmp_path / "clip", panning(texture(9, (1, 1, 1)), 5))
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from prodepth_cli.cli import app\n"
        f"args = ['video', {str(tmp_path / 'clip')!r}, '-o', {str(tmp_path / 'out')!r}, "
        f"'--fast', '--model', {str(pointwise_affine)!r}, '--device', 'cpu']\n"
        "result = CliRunner().invoke(app, args)\n"
        "assert result.exit_code == 0, result.output\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
    assert len(list((tmp_path / "out").glob("*.png"))) == 5


def test_a_folder_of_another_run_is_not_resumed(tmp_path, pointwise_affine):
    files = write_folder(tmp_path / "clip", panning(texture(10, (1, 1, 1)), 3))
    out = tmp_path / "out"
    out.mkdir()
    (out / f"{files[0].stem}.png").write_bytes(b"not ours")
    model = load_model(pointwise_affine, "cpu")
    with pytest.raises(OptionError, match=SHOTS_NAME):
        fast_video_depth(tmp_path / "clip", out, model)
    # a fit's folder (its shots.json has no --fast fields) is named for what it holds
    write_fit_shots(out, "png16", 3, (0,), [(0.1, 0.9)])
    with pytest.raises(OptionError, match="maps of a fit"):
        fast_video_depth(tmp_path / "clip", out, model)


# --- each shot's final range: maps rewritten over the range the shot used ------------------


def two_shot_clip(folder: Path) -> list[Path]:
    """Twelve frames of one scene panning, then twelve of another (two shots)."""
    first = panning(texture(13, (0.4, 0.6, 1.0)), 12)
    second = panning(texture(14, (1.0, 0.5, 0.3)), 12)
    return write_folder(folder, first + second)


def shot_levels(out: Path, names: list[str]) -> np.ndarray:
    """Every pixel of the 16-bit maps `names`, in [0, 1]."""
    return np.concatenate([m.ravel() for m in levels(out, names)])


def turbo_levels(rgb: np.ndarray) -> np.ndarray:
    """`(H, W, 3)` RGB of a preview frame -> the 8-bit level (0..255) of turbo's nearest
    colour at each pixel: what the preview shows, undone."""
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)
    lut = lut[:, 0, ::-1].astype(np.float32)  # (256, 3) RGB
    pixels = rgb.reshape(-1, 3).astype(np.float32)
    distance = (pixels**2).sum(1)[:, None] - 2 * pixels @ lut.T + (lut**2).sum(1)[None]
    return distance.argmin(1).reshape(rgb.shape[:2])


def preview_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_shot_maps_use_the_full_level_range(tmp_path, flicker_model):
    """The provisional range (the first map's 1st-99th percentiles widened by half their
    width each side) leaves the maps in its middle half; rewritten over the span of the
    maps' own 0.5th-99.5th percentiles, the shot's 1st and 99th percentiles land near 0 and
    1, and no map has more than its 0.5 % clipped at either end."""
    files = write_folder(tmp_path / "clip", panning(texture(15, (0.9, 1.0, 0.8)), 20))
    out = tmp_path / "out"
    report = fast_video_depth(tmp_path / "clip", out, load_model(flicker_model, "cpu"))
    names = [f.stem for f in files]
    (logged,) = json.loads((out / SHOTS_NAME).read_text())["shots"]
    (shot,) = report.shots
    written = shot_levels(out, names)
    p1, p99 = np.percentile(written, (1, 99))
    # the same levels as they stood in the provisional range, before the rewrite
    (lo, hi), (p_lo, p_hi) = logged["final"], logged["provisional"]
    old1, old99 = (np.array([p1, p99]) * (hi - lo) + lo - p_lo) / (p_hi - p_lo)
    # measured 0.062 and 0.941, where they stood at 0.252 and 0.747
    assert p1 < 0.1 and p99 > 0.9, (p1, p99)
    assert p99 - p1 > 1.6 * (old99 - old1), (p1, p99, old1, old99)
    for m in levels(out, names):
        # 0.5 %, and the pixels at the end level itself (a level is 1/65535 of the range)
        assert (m == 0).mean() < 0.006 and (m == 1).mean() < 0.006
    assert logged["rewritten"] and [logged["lo"], logged["hi"]] == logged["final"]
    assert list(shot.range) == logged["final"] == report.shots[0].record["range"]
    assert logged["provisional"] == [shot.lo, shot.hi]
    # the final range lies inside the provisional one: the PNGs held nothing beyond it
    assert shot.lo <= shot.range[0] < shot.range[1] <= shot.hi
    # and each map says which range it is in
    writer = FrameMapWriter(out, "png16", FRAME_WH)
    assert {writer.written_range(n) for n in names} == {tuple(logged["final"])}


def test_levels_round_trip_through_shots_json_to_the_disparity(tmp_path, flicker_model):
    """The same run as float32 (npy: the disparity itself) and as 16-bit PNG: a level v is
    the disparity lo + v / 65535 * (hi - lo) with `shots.json`'s lo, hi, to the rounding of
    the two writes (half a level of the provisional range, then of the final one), and
    values beyond the final range come back clipped to its ends."""
    files = two_shot_clip(tmp_path / "clip")
    # a session each: the flicker's random draws start over, the two runs see the same maps
    npy = FastOptions("npy")
    fast_video_depth(tmp_path / "clip", tmp_path / "npy", load_model(flicker_model, "cpu"), npy)
    fast_video_depth(tmp_path / "clip", tmp_path / "png", load_model(flicker_model, "cpu"))
    logged = json.loads((tmp_path / "png" / SHOTS_NAME).read_text())["shots"]
    as_npy = json.loads((tmp_path / "npy" / SHOTS_NAME).read_text())["shots"]
    assert [s["first"] for s in logged] == [0, 12]
    # float maps are not rewritten, but their shots get the same final range (the preview's)
    assert [s["final"] for s in as_npy] == [s["final"] for s in logged]
    for shot, frames in zip(logged, (files[:12], files[12:]), strict=True):
        lo, hi = shot["lo"], shot["hi"]
        (p_lo, p_hi) = shot["provisional"]
        # plus float32's rounding (1e-7 relative) of the rewrite's arithmetic
        rounding = 0.5 * ((p_hi - p_lo) + (hi - lo)) / 65535 + 1e-6 * max(abs(hi), 1.0)
        for f in frames:
            level = cv2.imread(str(tmp_path / "png" / f"{f.stem}.png"), cv2.IMREAD_UNCHANGED)
            disparity = lo + level.astype(np.float64) / 65535 * (hi - lo)
            truth = np.clip(np.load(tmp_path / "npy" / f"{f.stem}.npy"), lo, hi)
            error = np.abs(disparity - truth).max()
            assert error <= rounding, (f.name, error / rounding)


class Stopped(Exception):
    """A stand-in for Ctrl-C or a full disk part way through a shot's rewrite."""


def test_rewrite_stopped_after_some_maps_then_rerun_gives_an_uninterrupted_runs_maps(
    tmp_path, pointwise_affine, monkeypatch
):
    files = two_shot_clip(tmp_path / "clip")
    names = [f.stem for f in files]
    model = load_model(pointwise_affine, "cpu")  # the same maps on every call
    clean, out = tmp_path / "clean", tmp_path / "out"
    fast_video_depth(
        tmp_path / "clip", clean, model, FastOptions(preview=str(tmp_path / "clean.mp4"))
    )

    rewrite, done = FrameMapWriter.rewrite, []

    def stopping(self, name, lo, hi, fallback):
        if len(done) == 5:  # five maps of the first shot rewritten, the sixth not
            raise Stopped
        done.append(name)
        return rewrite(self, name, lo, hi, fallback)

    monkeypatch.setattr(FrameMapWriter, "rewrite", stopping)
    preview = tmp_path / "out.mp4"
    with pytest.raises(Stopped):
        fast_video_depth(tmp_path / "clip", out, model, FastOptions(preview=str(preview)))
    assert not preview.exists()  # an unfinished preview is not left behind
    (shot,) = json.loads((out / SHOTS_NAME).read_text())["shots"]
    assert shot["final"] is not None and not shot["rewritten"], "logged before the rewrite"
    writer = FrameMapWriter(out, "png16", FRAME_WH)
    ranges = [writer.written_range(n) for n in names[:12]]
    final, provisional = tuple(shot["final"]), tuple(shot["provisional"])
    assert ranges == [final] * 5 + [provisional] * 7, "the premise: a shot half rewritten"

    monkeypatch.setattr(FrameMapWriter, "rewrite", rewrite)
    rewritten = []
    monkeypatch.setattr(FrameMapWriter, "write", spy(FrameMapWriter.write, rewritten))
    report = fast_video_depth(tmp_path / "clip", out, model, FastOptions(preview=str(preview)))
    # the rerun converted the seven maps left, none of the five twice, and ran the 2nd shot
    assert rewritten[:7] == names[5:12] and names[0] not in rewritten
    assert report.resumed == 12
    assert json.loads((out / SHOTS_NAME).read_text()) == json.loads(
        (clean / SHOTS_NAME).read_text()
    )
    for name in names:
        a = cv2.imread(str(out / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(clean / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert len(preview_frames(preview)) == len(files)


def spy(method, calls: list):
    """`method` that notes the frame name of every call in `calls`."""

    def noted(self, name, *args, **kwargs):
        calls.append(name)
        return method(self, name, *args, **kwargs)

    return noted


def test_preview_has_every_frame_over_the_final_range(tmp_path, flicker_model):
    """The preview of a shot is encoded at its end, over its final range: its colours span
    turbo's scale where the provisional range used its middle (the same maps over the
    provisional range, through the same writer, as the reference)."""
    files = write_folder(tmp_path / "clip", panning(texture(16, (0.8, 0.9, 1.0)), 16))
    out, preview = tmp_path / "out", tmp_path / "preview.mp4"
    model = load_model(flicker_model, "cpu")
    fast_video_depth(tmp_path / "clip", out, model, FastOptions(preview=str(preview)))
    frames = preview_frames(preview)
    assert len(frames) == len(files)
    (shot,) = json.loads((out / SHOTS_NAME).read_text())["shots"]
    writer = FrameMapWriter(out, "png16", FRAME_WH)
    before = tmp_path / "provisional.mp4"
    with PreviewWriter(before, 10.0, FRAME_WH) as old:
        for f in files:
            old.add(writer.read(f.stem, 0.0, 1.0), *shot["provisional"])

    def spread(video_frames: list[np.ndarray]) -> float:
        shown = np.concatenate([turbo_levels(rgb).ravel() for rgb in video_frames])
        return float(np.diff(np.percentile(shown, (1, 99)))[0]) / 255

    now, then = spread(frames), spread(preview_frames(before))
    # measured 0.88 against 0.49: the maps' own 1st-99th percentile span, as in
    # test_shot_maps_use_the_full_level_range, less a few levels of H.264's rounding
    assert now > 0.8 and now > 1.6 * then, (now, then)


def test_jitter_is_reported_in_the_final_maps_units(tmp_path, flicker_model):
    """Measured on the fly over the provisional range, reported over the final one: it
    agrees with the jitter of the written 16-bit maps measured afterwards."""
    frames = panning(texture(17, (1.0, 0.9, 0.8)), 20)
    files = write_folder(tmp_path / "clip", frames)
    out = tmp_path / "out"
    report = fast_video_depth(tmp_path / "clip", out, load_model(flicker_model, "cpu"))
    written = clip_jitter(levels(out, [f.stem for f in files]), frames)
    # measured 0.00169 against 0.00167: the pixels beyond the final range (under 1 %) count
    # unclipped on the fly, and the maps measured afterwards are rounded to 16 bits
    assert report.record["jitter"] == pytest.approx(written, rel=0.05)
    (shot,) = report.shots
    over_provisional = float(np.mean(shot.jitters))  # as measured while the shot streamed
    assert report.record["jitter"] > 1.5 * over_provisional, "the final range is narrower"
