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
