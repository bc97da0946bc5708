"""The prepared GPU-lease script, dry-run on the CPU: both networks train, the video fit
runs on a bundled clip, and the files the lease must bring back (checkpoints, logs, the speed
figure, the fitted maps) are written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_session.py"
sys.path.insert(0, str(SCRIPT.parent))  # video_bundle, as the script finds it


def test_dry_run_leaves_checkpoints_logs_and_speed(tmp_path):
    args = ["--device", "cpu", "--tiny", "--coarse-steps", "2", "--refiner-steps", "2"]
    env = {**os.environ, "OUT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    coarse = torch.load(tmp_path / "coarse.pt", weights_only=False)
    refiner = torch.load(tmp_path / "refiner.pt", weights_only=False)
    assert coarse["config"]["kind"] == "coarse" and refiner["config"]["kind"] == "refiner"
    assert refiner["config"]["coarse_checkpoint"] == str(tmp_path / "coarse.pt")
    assert refiner["config"]["arch"] == {"convex": True}  # configs/refiner-gpu.json
    lines = (tmp_path / "refiner.log").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    assert "refiner 256x256" in (tmp_path / "speed.txt").read_text()


def test_dry_run_goes_on_with_the_accumulating_runs(tmp_path):
    """`--continue-runs`: the HED-trunk coarse run and the refiner resume from their run
    folders for the steps asked, the trunk from the given weights file, the refiner fed by
    the given coarse ONNX model; both last.pt come back."""
    from prodepth_cli.training.config import make_config
    from prodepth_cli.training.export import export_checkpoint
    from prodepth_cli.training.loop import run_training
    from tests.test_hed import _keras_weights

    weights = _keras_weights(tmp_path / "trunk.h5")
    runs = tmp_path / "checkpoints"
    hed = {"start": "hed", "weights": str(weights)}
    tiny = dict(steps=1, val_every=1, val_synthetic=1, threads=1)
    coarse = dict(size=64, batch=2, arch=hed, **tiny)
    run_training(make_config("coarse", coarse), runs / "coarse-hed")
    refiner = dict(batch=1, patch=64, overlap=16, image_side=128, **tiny)
    run_training(make_config("refiner", refiner), runs / "refiner")
    onnx_path = export_checkpoint(runs / "coarse-hed" / "last.pt", tmp_path / "c.onnx").onnx_path

    args = ["--continue-runs", "--device", "cpu", "--tiny", "--coarse-steps", "1"]
    args += ["--refiner-steps", "1", "--checkpoints", str(runs), "--hed-weights", str(weights)]
    args += ["--coarse-model", str(onnx_path)]
    env = {**os.environ, "OUT": str(tmp_path / "out")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    coarse_state = torch.load(tmp_path / "out" / "coarse-hed.pt", weights_only=False)
    refiner_state = torch.load(tmp_path / "out" / "refiner.pt", weights_only=False)
    assert coarse_state["step"] == 2 and refiner_state["step"] == 2  # resumed, one more each
    assert coarse_state["config"]["arch"] == hed
    assert refiner_state["config"]["coarse_checkpoint"] == str(onnx_path)
    assert (tmp_path / "out" / "refiner.log").read_text().strip()


def test_dry_run_trains_and_exports_a_refiner_on_an_onnx_coarse_model(tmp_path):
    """`--refiner-on`: a fresh refiner fed only by the given model's maps (here the Depth
    Anything V2 stand-in), exported with a spec that names that model."""
    from tests.standins import depth_anything_v2

    model = depth_anything_v2(tmp_path / "da2.onnx", "tiny")
    args = ["--refiner-on", str(model), "--device", "cpu", "--tiny", "--refiner-steps", "2"]
    env = {**os.environ, "OUT": str(tmp_path / "out")}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    state = torch.load(tmp_path / "out" / "refiner-on.pt", weights_only=False)
    assert state["config"]["coarse_checkpoint"] == str(model)
    assert state["config"]["coarse_from_net"] == 1.0
    spec = json.loads((tmp_path / "out" / "refiner-on.json").read_text())
    assert spec["coarse_model"] == "da2.onnx" and spec["coarse_input"] == "coarse"


def _moving_texture_clip(n: int = 6, wh: tuple[int, int] = (96, 64)) -> tuple:
    """`n` frames of a random texture sliding 2 px a frame to the left (a camera panning),
    and a deterministic teacher: disparity growing down the frame (a ground plane)."""
    from prodepth_cli.video.frames import Clip

    w, h = wh
    texture = np.random.default_rng(0).integers(0, 256, (h, w + 2 * n, 3), dtype=np.uint8)
    rgb = np.stack([texture[:, 2 * i : 2 * i + w] for i in range(n)])
    clip = Clip("synthetic", rgb, [f"{i:06d}" for i in range(n)], 2 * w, 2 * h, 10.0)
    teacher = np.broadcast_to(np.linspace(-1, 1, h, dtype=np.float16)[:, None], (n, h, w))
    return clip, teacher


def test_video_bundle_holds_the_clip_teacher_and_calibrated_intrinsics(tmp_path):
    """`bundle_clip` through the shipped model on a folder of frames: frames at the fitting
    size, one teacher map each, the calibration's camera scaled to that size; the .npz
    reads back the same."""
    import cv2
    from video_bundle import bundle_clip, load_bundle, save_bundle

    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        cv2.imwrite(str(frames / f"{i:06d}.png"), rng.integers(0, 256, (80, 160, 3), np.uint8))
    calib = tmp_path / "calib.txt"
    calib.write_text("P0: 100 0 80 0 0 100 40 0 0 0 1 0\n")
    bundled = bundle_clip(frames, calib, tmp_path / "cache")
    back = load_bundle(save_bundle(tmp_path / "video" / "c.npz", bundled))
    assert back.clip.rgb.shape == (4, 64, 160, 3)  # 80 rows snap to 64 (multiples of 32)
    assert back.teacher.shape == (4, 64, 160) and back.teacher.dtype == np.float16
    assert np.array_equal(back.clip.rgb, bundled.clip.rgb)
    assert back.clip.names == ["000000", "000001", "000002", "000003"]
    assert (back.clip.width, back.clip.height) == (160, 80)
    k = back.intrinsics
    assert (k.fx, k.cx, k.width, k.height) == (100, 80, 160, 64)
    assert np.isclose(k.fy, 100 * 64 / 80) and np.isclose(k.cy, 40 * 64 / 80)
    assert back.intrinsics_origin == "calib.txt"


def test_dry_run_fits_a_bundled_clip_with_its_teacher_and_cold(tmp_path):
    """`--video-fit` on a bundled synthetic clip, where PyAV and libvips cannot be imported
    (as on the GPU image): both fits run the steps asked and come back as disparity and
    camera motions, with their times in video.json; a clip not named is left alone."""
    from video_bundle import BundledClip, save_bundle

    from prodepth_cli.video.intrinsics import default_intrinsics

    clip, teacher = _moving_texture_clip()
    k = default_intrinsics(*clip.size)
    for name in ("synthetic", "other"):
        save_bundle(tmp_path / "data" / "video" / f"{name}.npz", BundledClip(clip, teacher, k, "-"))
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(BLOCK_PHOTO_IO)
    env = {
        **os.environ,
        "OUT": str(tmp_path / "out"),
        "PRODEPTH_DATA": str(tmp_path / "data"),
        "PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")]),
    }
    args = ["--device", "cpu", "--tiny", "--video-fit", "synthetic"]
    args += ["--video-steps", "3", "--video-cold-steps", "2"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "stood in for: av, pyvips, imagecodecs, isal" in done.stdout  # the blocker held
    summary = json.loads((tmp_path / "out" / "video.json").read_text())
    assert list(summary["clips"]) == ["synthetic"]
    record = summary["clips"]["synthetic"]
    assert record["frames"] == 6 and record["fit_size"] == [96, 64]
    for mode, steps in (("teacher", 3), ("cold", 2)):
        fit = np.load(tmp_path / "out" / f"video-synthetic-{mode}.npz")
        assert fit["disparity"].shape == (6, 64, 96) and fit["disparity"].dtype == np.float16
        assert np.all(np.isfinite(fit["disparity"])) and fit["disparity"].min() > 0
        assert fit["motions"].shape == (5, 4, 4)
        assert len(fit["losses"]) == steps and record[mode]["steps"] == steps
        assert record[mode]["seconds"] > 0 and record[mode]["seconds_per_step"] > 0
    assert not (tmp_path / "out" / "video-other-teacher.npz").exists()


# Imports of PyAV, libvips and the codec libraries fail, as on the GPU machine's image.
BLOCK_PHOTO_IO = """
import sys

class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("av", "pyvips", "imagecodecs", "isal"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, _Block())
"""
