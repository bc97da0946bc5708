"""The prepared GPU-lease script, dry-run on the CPU: both networks train and the files
the lease must bring back (checkpoints, logs, the speed figure) are written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_session.py"


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
