"""`prodepth depth --ray` on a local Ray (2 CPUs, loopback, started and stopped by each run):
the same outputs as a local run, resume, a bad image reported, a killed worker retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from tests.conftest import scene_image

pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

ROOT = Path(__file__).resolve().parents[1]
PRODEPTH = [sys.executable, "-m", "prodepth_cli"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _folder(path: Path, n: int, h: int, w: int) -> Path:
    path.mkdir()
    for i in range(n):
        cv2.imwrite(str(path / f"im{i:02d}.png"), scene_image(h, w, seed=i)[:, :, ::-1])
    return path


def _depth(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*PRODEPTH, "depth", *args, "--json"], env=_env(), capture_output=True, text=True
    )


def _records(result) -> dict[str, dict]:
    return {Path(r["input"]).name: r for r in map(json.loads, result.stdout.splitlines())}


def test_a_folder_through_ray_is_the_local_run_resumed_and_reported(tmp_path, pointwise_exact):
    photos = _folder(tmp_path / "in", 20, 90, 120)
    (photos / "broken.png").write_bytes(b"not an image at all")
    model = ["--model", str(pointwise_exact), "--tile", "64"]
    local = _depth(str(photos), "-o", str(tmp_path / "local"), *model)
    ray = _depth(str(photos), "-o", str(tmp_path / "ray"), *model, "--ray", "--workers", "2")
    assert local.returncode == ray.returncode == 1  # the broken image, reported at the end
    assert "broken.png" in ray.stderr and "Traceback" not in ray.stderr
    by_ray, by_local = _records(ray), _records(local)
    assert by_ray.keys() == by_local.keys() and len(by_ray) == 21
    assert by_ray["broken.png"]["status"] == "error"
    for name, record in by_local.items():
        assert by_ray[name]["status"] == record["status"]
        if record["status"] == "ok":
            out = Path(record["output"]).name
            assert (tmp_path / "ray" / out).read_bytes() == (tmp_path / "local" / out).read_bytes()
    again = _depth(str(photos), "-o", str(tmp_path / "ray"), *model, "--ray")
    statuses = {n: r["status"] for n, r in _records(again).items()}
    assert statuses.pop("broken.png") == "error"
    assert set(statuses.values()) == {"skipped"}  # complete outputs never reach the cluster


def test_a_killed_worker_is_retried_and_leaves_nothing_partial(tmp_path):
    photos = _folder(tmp_path / "in", 16, 700, 900)
    out = tmp_path / "out"
    run = subprocess.Popen(
        [*PRODEPTH, "depth", str(photos), "-o", str(out), "--ray", "--workers", "2", "--json"],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and time.monotonic() < deadline and run.poll() is None:
        done = len(list(out.glob("*_depth.png"))) if out.exists() else 0
        workers = [p for p in psutil.process_iter(["cmdline"]) if _is_busy_worker(p)]
        if done >= 2 and workers:
            killed = workers[0].pid
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.05)
    stdout, stderr = run.communicate(timeout=300)
    assert killed is not None, "the run ended before a worker could be killed"
    assert run.returncode == 0, stderr
    records = [json.loads(line) for line in stdout.splitlines()]
    assert sorted(r["status"] for r in records) == ["ok"] * 16
    assert len(list(out.glob("*_depth.png"))) == 16
    assert not [p for p in out.iterdir() if ".part" in p.name]  # nothing half-written


def _is_busy_worker(process) -> bool:
    """A Ray worker process running one of prodepth's jobs (Ray names it after the task)."""
    cmdline = " ".join(process.info.get("cmdline") or [])
    return "JobWorker.run" in cmdline


def test_bokeh_through_ray_writes_the_local_runs_files(tmp_path):
    photos = _folder(tmp_path / "in", 4, 90, 120)
    runs = {}
    for where, extra in (("local", []), ("ray", ["--ray"])):
        result = subprocess.run(
            [*PRODEPTH, "bokeh", str(photos), "-o", str(tmp_path / where), *extra],
            env=_env(),
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        runs[where] = {p.name: p.read_bytes() for p in (tmp_path / where).iterdir()}
    assert len(runs["ray"]) == 4 and runs["ray"] == runs["local"]


def test_without_ray_installed_the_option_says_how_to_get_it(tmp_path, pointwise_exact):
    blocker = tmp_path / "no_ray" / "ray"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no ray here')\n")
    photos = _folder(tmp_path / "in", 2, 60, 80)
    result = subprocess.run(
        [*PRODEPTH, "depth", str(photos), "-o", str(tmp_path / "out"), "--ray"],
        env={**_env(), "PYTHONPATH": f"{blocker.parent}{os.pathsep}{ROOT}"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "prodepth: error: --ray needs Ray: pip install 'prodepth[ray]' (the same on every node)"
    )
    assert not (tmp_path / "out").exists()


def test_standard_input_stays_local(tmp_path, pointwise_exact):
    result = subprocess.run(
        [*PRODEPTH, "depth", "-", "-o", str(tmp_path / "d.png"), "--ray"],
        env=_env(),
        input=b"\x89PNG not really",
        capture_output=True,
    )
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        "prodepth: error: --ray: standard input and output stay local (give files)"
    )
