"""The video fit driven by a depth model (the teacher): its maps computed once per frame and
cached, the fit starting from them, the frame cache reused on a rerun, the teacher's loss."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import prodepth_cli.video.stream as stream_module
import prodepth_cli.video.teacher as teacher_module
from prodepth_cli.cli import app
from prodepth_cli.errors import InputError
from prodepth_cli.metrics import spearman
from prodepth_cli.models.runtime import load_model
from prodepth_cli.video.cache import FrameArrayWriter
from prodepth_cli.video.coarse_weights import default_coarse_onnx
from prodepth_cli.video.fit import FitConfig, fit_video
from prodepth_cli.video.frames import read_clip
from prodepth_cli.video.intrinsics import default_intrinsics
from prodepth_cli.video.losses import teacher_loss
from prodepth_cli.video.pipeline import VideoOptions, video_depth
from prodepth_cli.video.teacher import clip_and_teacher
from tests.conftest import scene_image
from tests.test_video_fast import damage_packet, panning, texture, write_mp4

N, H, W = 6, 64, 192


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _frames(folder: Path, n: int = N) -> Path:
    """A camera sliding sideways over a textured image: `f00.png` ... in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    wide = scene_image(H, W + 4 * n, seed=5)
    for i in range(n):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), wide[:, 4 * i : 4 * i + W, ::-1])
    return folder


def _video(path: Path, n: int = 5) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12, (96, 64))
    wide = scene_image(64, 96 + 3 * n, seed=7)
    for i in range(n):
        writer.write(np.ascontiguousarray(wide[:, 3 * i : 3 * i + 96, ::-1]))
    writer.release()
    return path


class _Counter:
    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


def test_teacher_maps_computed_once_per_frame_and_cached(tmp_path, monkeypatch):
    clip_dir, out = _frames(tmp_path / "clip"), tmp_path / "out"
    model = load_model("prodepth", "cpu", threads=1)
    runs = _Counter(teacher_module.depth_array)
    reads = _Counter(stream_module.open_image)
    monkeypatch.setattr(teacher_module, "depth_array", runs)
    monkeypatch.setattr(stream_module, "open_image", reads)
    clip, maps = clip_and_teacher(clip_dir, None, out, model)
    assert runs.calls == N and reads.calls == N, "one decode and one model run per frame"
    assert maps.shape == (N, *clip.rgb.shape[1:3]) and maps.dtype == np.float16
    assert (out / "teacher.f16").is_file() and (out / "frames.u8").is_file()
    # normalised per frame (median 0, mean absolute deviation 1): float16 holds any model
    assert np.allclose(np.median(maps.astype(np.float32), axis=(1, 2)), 0, atol=0.01)
    again, cached = clip_and_teacher(clip_dir, None, out, model)
    assert runs.calls == N and reads.calls == N, "the rerun reads neither clip nor model"
    assert isinstance(again.rgb, np.memmap) and isinstance(cached, np.memmap)
    assert np.array_equal(cached, maps) and np.array_equal(again.rgb, clip.rgb)
    assert again.names == [f"f{i:02d}" for i in range(N)]


def _count_decoded(monkeypatch) -> list[int]:
    """A one-item list counting the frames every `FrameStream` decodes from now on."""
    decoded = [0]
    real = stream_module.FrameStream.__iter__

    def counting(self):
        for frame in real(self):
            decoded[0] += 1
            yield frame

    monkeypatch.setattr(stream_module.FrameStream, "__iter__", counting)
    return decoded


def test_frame_cache_is_reused_without_asking_the_decoder(tmp_path, monkeypatch):
    src = _video(tmp_path / "clip.mp4")
    decoded = _count_decoded(monkeypatch)
    first = read_clip(src, (96, 64), cache=tmp_path / "out")
    assert decoded[0] == 5
    second = read_clip(src, (96, 64), cache=tmp_path / "out")
    assert decoded[0] == 5, "the cached frames answer the rerun"
    assert isinstance(second.rgb, np.memmap) and np.array_equal(second.rgb, first.rgb)
    assert (second.names, second.width, second.fps) == (first.names, first.width, first.fps)
    other = read_clip(src, (64, 32), cache=tmp_path / "out")  # another size: decoded again
    assert decoded[0] == 10 and other.size == (64, 32)


def _ramp_teacher(n: int, h: int, w: int) -> np.ndarray:
    """Disparity rising towards the bottom with a near blob that drifts, a different scale
    and shift each frame (a per-frame model's flicker)."""
    rows = np.linspace(0, 1, h)[:, None].repeat(w, 1)
    yy, xx = np.mgrid[0:h, 0:w]
    maps = []
    for i in range(n):
        blob = np.exp(-(((xx - 60 - 4 * i) / 15) ** 2 + ((yy - 30) / 10) ** 2))
        maps.append((1 + 0.1 * i) * (rows + blob) + 0.05 * i)
    return np.stack(maps).astype(np.float16)


def _fit(clip, out: Path, steps: int, teacher: np.ndarray | None, fade: float = 0.0):
    config = FitConfig(
        steps=steps,
        fine_fraction=0.5,
        checkpoint_every=2,
        temporal_radius=0,
        start_fade=fade,
        teacher_fade=0.0,  # the teacher's pull kept: what these tests look at
    )
    k = default_intrinsics(clip.width, clip.height).scaled_to(*clip.size)
    return fit_video(
        clip, k, out / "checkpoint.pt", default_coarse_onnx(), config, None, "cpu", None, teacher
    )


def test_fit_from_the_teacher_agrees_with_it_at_step_0_and_stays_close(tmp_path):
    clip = read_clip(_frames(tmp_path / "clip"))
    teacher = _ramp_teacher(N, *clip.rgb.shape[1:3])
    start = _fit(clip, tmp_path / "start", 0, teacher)
    rho = [spearman(start.disparity[i], teacher[i].astype(np.float32)) for i in range(N)]
    # step 0 is the teacher aligned per frame, up to float16 offsets: ranks all but equal
    assert min(rho) > 0.99
    # The clip is a textured plane sliding sideways: its photometric loss wants a flat map,
    # the teacher says ramp and blob. Eight steps on (start offsets held: `start_fade` 0)
    # the teacher's layout still stands on frames 2 to 5 (measured: 0.92 and more for
    # seeds 0 to 3; the coarse network alone, the cold start, correlates below 0.5 with it
    # at step 0). Frames 0 and 1 drift to 0.3 and 0.6 whatever the seed or the teacher's
    # weight (1.0 as well), and so do the same two frames played backwards, last there: it
    # is what they show, not where they stand (nor the first motions: the step 1 -> 2 set
    # to its neighbour's changes nothing). An earlier version of this test asked it of
    # every frame and passed on one lucky draw of batches.
    fitted = _fit(clip, tmp_path / "fitted", 8, teacher)
    assert np.isfinite(fitted.losses).all()
    rho = [spearman(fitted.disparity[i], teacher[i].astype(np.float32)) for i in range(N)]
    assert min(rho[2:]) > 0.85, rho


def test_teacher_loss_ignores_scale_and_shift():
    torch.manual_seed(0)
    teacher = torch.rand(2, 1, 16, 24)
    weight = torch.ones_like(teacher)
    copy = 3 * teacher + 0.5
    assert float(teacher_loss(copy, teacher, weight)) < 1e-5
    other = copy + 0.3 * torch.rand_like(copy)
    assert float(teacher_loss(other, teacher, weight)) > 0.05


def test_video_rerun_decodes_nothing_and_resumes(tmp_path, monkeypatch):
    clip_dir, out = _frames(tmp_path / "clip"), tmp_path / "out"
    config = FitConfig(steps=2, fine_fraction=0.5, checkpoint_every=2)
    report = video_depth(clip_dir, out, VideoOptions(device="cpu"), config)
    assert report.fit.steps_run == 2
    reads, runs = _Counter(stream_module.open_image), _Counter(teacher_module.depth_array)
    monkeypatch.setattr(stream_module, "open_image", reads)
    monkeypatch.setattr(teacher_module, "depth_array", runs)
    longer = FitConfig(steps=4, fine_fraction=0.5, checkpoint_every=2)
    again = video_depth(clip_dir, out, VideoOptions(device="cpu"), longer)
    assert reads.calls == 0 and runs.calls == 0, "frames and maps come from the cache"
    assert again.fit.resumed_from == 2 and again.fit.steps_run == 2


def test_corrupt_packet_stops_the_fit_there_and_a_repaired_clip_resumes(
    tmp_path, monkeypatch, pointwise_affine
):
    """The fit reads through `--fast`'s reader: a damaged H.264 packet mid-clip stops it in
    one line naming the frame, the frames and maps before it stay cached, and the rerun on
    the repaired clip runs the model only on the frames after them."""
    whole = write_mp4(tmp_path / "whole.mp4", panning(texture(12, (0.9, 1.0, 0.8)), 30))
    clip, out = tmp_path / "clip.mp4", tmp_path / "out"
    bad = damage_packet(whole, clip, 15)
    result = CliRunner().invoke(
        app, ["video", str(clip), "-o", str(out), "--steps", "1", "--size", "64x32"]
    )
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"frame {bad} " in lines[0] and "cached" in lines[0], lines

    model = load_model(pointwise_affine, "cpu")
    runs = _Counter(teacher_module.depth_array)
    monkeypatch.setattr(teacher_module, "depth_array", runs)
    with pytest.raises(InputError, match=f"frame {bad} .* cached"):
        clip_and_teacher(clip, (64, 32), out, model)
    kept = runs.calls
    assert 0 < kept <= bad
    clip.write_bytes(whole.read_bytes())
    frames, maps = clip_and_teacher(clip, (64, 32), out, model)
    assert runs.calls == 30, "the model ran once a frame over the two runs"
    clean, clean_maps = clip_and_teacher(whole, (64, 32), tmp_path / "clean", model)
    assert np.array_equal(frames.rgb, clean.rgb) and np.array_equal(maps, clean_maps)
    assert frames.names == [f"{i:06d}" for i in range(30)]


def test_a_cache_cut_short_keeps_the_frames_whose_data_is_unchanged(tmp_path):
    made_for = {"source": "clip", "size": [4, 2]}
    writer = FrameArrayWriter(tmp_path / "a.u8", np.uint8, made_for)
    for i in range(5):
        writer.append(np.full((2, 4), i, np.uint8), f"k{i}")
    writer.close()  # a run stopped short: the part stays
    again = FrameArrayWriter(tmp_path / "a.u8", np.uint8, made_for)
    assert again.count == 5
    assert not again.needs(0, "k0") and not again.needs(1, "k1")
    assert again.needs(2, "changed") and again.count == 2, "frame 2 on is dropped"
    for i in (2, 3):
        again.append(np.full((2, 4), 10 + i, np.uint8), f"n{i}")
    assert again.finish({"clip": 1})[:, 0, 0].tolist() == [0, 1, 12, 13]
    other = FrameArrayWriter(tmp_path / "b.u8", np.uint8, made_for)
    other.append(np.zeros((2, 4), np.uint8), "k0")
    other.close()
    assert FrameArrayWriter(tmp_path / "b.u8", np.uint8, {**made_for, "size": [8, 4]}).count == 0
