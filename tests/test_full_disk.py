"""A full disk (or quota, a read-only or vanished folder) while writing: one line naming the
file and the cause, exit code 1, no temporary file left, and a batch that stops at the first
full-disk error saying how far it got, so that a rerun resumes.

The disk is faked: files opened for writing under a folder fail with ENOSPC (or another
errno) once the disk is "full"; where this runs as root, one test also fills a real tmpfs.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

import prodepth_cli.io.write as write_module
from prodepth_cli.cli import app
from prodepth_cli.commands.common import guarded
from prodepth_cli.errors import DiskFullError
from prodepth_cli.io.scratch import ScratchArray
from prodepth_cli.models import hub
from prodepth_cli.training.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import scene_image
from tests.fake_disk import FakeDisk
from tests.photo_files import write_scene as _image

runner = CliRunner()


def _one_line(result) -> str:
    """The single line on stderr of a run that failed with exit code 1, no traceback."""
    assert result.exit_code == 1, (result.exit_code, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got: {result.stderr!r}"
    assert "Traceback" not in result.stderr
    return lines[0]


def _files(folder: Path) -> list[str]:
    """Every file under `folder` (temporary ones start with a dot), sorted by name."""
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _depth(*args: str):
    return runner.invoke(app, ["depth", *args, "--tile", "64", "-q"])


# --- depth maps -----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".png", ".npy", ".pfm", ".jpg"])
def test_depth_map_on_a_full_disk_is_one_line_and_leaves_nothing(
    tmp_path, monkeypatch, pointwise_exact, suffix
):
    src = _image(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out" / f"a_depth{suffix}"
    disk = FakeDisk(tmp_path / "out").install(monkeypatch)
    line = _one_line(_depth(str(src), "-o", str(out), "--model", str(pointwise_exact)))
    assert line == f"prodepth: error: {out}: no space left on device"
    assert disk.opened, "the writer went through the faked disk"
    assert _files(tmp_path / "out") == [], "no output and no temporary file"


def test_colour_preview_on_a_full_disk_names_the_preview_and_leaves_no_map(
    tmp_path, monkeypatch, pointwise_exact
):
    """The preview is written first: a map on disk means its input is done (a rerun skips
    it), so a failed preview must leave none."""
    src = _image(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out" / "a_depth.png"
    FakeDisk(tmp_path / "out", fit=0).install(monkeypatch)
    args = [str(src), "-o", str(out), "--colormap", "--model", str(pointwise_exact)]
    line = _one_line(_depth(*args))
    assert line == f"prodepth: error: {out.with_name('a_depth_color.png')}: no space left on device"
    assert _files(tmp_path / "out") == [], "no map and no temporary file"


def test_a_map_that_does_not_fit_after_its_preview_is_redone_by_a_rerun(
    tmp_path, monkeypatch, pointwise_exact
):
    src = _image(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out" / "a_depth.png"
    FakeDisk(tmp_path / "out", fit=1).install(monkeypatch)  # the preview fits, the map not
    args = [str(src), "-o", str(out), "--colormap", "--model", str(pointwise_exact)]
    assert _one_line(_depth(*args)) == f"prodepth: error: {out}: no space left on device"
    assert _files(tmp_path / "out") == ["a_depth_color.png"]
    monkeypatch.undo()  # space freed
    assert _depth(*args).exit_code == 0
    assert _files(tmp_path / "out") == ["a_depth.png", "a_depth_color.png"]


def test_batch_stops_at_the_first_full_disk_error_and_a_rerun_resumes(
    tmp_path, monkeypatch, pointwise_exact
):
    for i in range(4):
        _image(tmp_path / "in" / f"p{i}.jpg", seed=i)
    out = tmp_path / "out"
    disk = FakeDisk(out, fit=2).install(monkeypatch)
    args = [str(tmp_path / "in"), "-o", str(out), "--model", str(pointwise_exact)]
    line = _one_line(_depth(*args))
    assert line == (
        f"prodepth: error: {out / 'p2_depth.png'}: no space left on device; stopped after "
        "2 of 4 inputs, free space and rerun to resume"
    )
    assert len(disk.opened) == 3, "nothing is tried after the disk is found full"
    assert _files(out) == ["p0_depth.png", "p1_depth.png"], "no temporary file"

    disk.fit = 100  # space freed
    result = _depth(*args)
    assert result.exit_code == 0, result.stderr
    assert _files(out) == [f"p{i}_depth.png" for i in range(4)]
    assert len(disk.opened) == 5, "the two complete outputs were skipped"


def test_quota_exceeded_stops_a_batch_as_a_full_disk_does(tmp_path, monkeypatch, pointwise_exact):
    for i in range(3):
        _image(tmp_path / "in" / f"p{i}.jpg", seed=i)
    out = tmp_path / "out"
    FakeDisk(out, fit=0, errno_=errno.EDQUOT).install(monkeypatch)
    line = _one_line(_depth(str(tmp_path / "in"), "-o", str(out), "--model", str(pointwise_exact)))
    assert f"{out / 'p0_depth.png'}: disk quota exceeded; stopped after 0 of 3 inputs" in line
    assert _files(out) == []


def test_other_write_errors_do_not_stop_the_batch(tmp_path, monkeypatch, pointwise_exact):
    for i in range(3):
        _image(tmp_path / "in" / f"p{i}.jpg", seed=i)
    out = tmp_path / "out"
    disk = FakeDisk(out, fit=0, errno_=errno.EIO).install(monkeypatch)
    result = _depth(str(tmp_path / "in"), "-o", str(out), "--model", str(pointwise_exact))
    assert result.exit_code == 1
    assert len(disk.opened) == 3, "an I/O error on one file does not say the next will fail"
    assert "3 of 3 inputs failed" in result.stderr
    assert result.stderr.count("Input/output error") == 3 and "Traceback" not in result.stderr
    assert _files(out) == []


def test_json_batch_records_the_full_disk_error_then_stops(tmp_path, monkeypatch, pointwise_exact):
    for i in range(3):
        _image(tmp_path / "in" / f"p{i}.jpg", seed=i)
    out = tmp_path / "out"
    FakeDisk(out, fit=1).install(monkeypatch)
    args = [str(tmp_path / "in"), "-o", str(out), "--model", str(pointwise_exact), "--json"]
    result = _depth(*args)
    statuses = [line.split('"status": ')[1][:7] for line in result.stdout.splitlines()]
    assert statuses == ['"ok", "', '"error"'], result.stdout
    assert "stopped after 1 of 3 inputs" in _one_line(result)


def test_scratch_file_on_a_full_disk_names_it_and_tmpdir(tmp_path, monkeypatch, pointwise_exact):
    src = _image(tmp_path / "in" / "a.jpg")

    def full(fd, buffers, offset):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "pwritev", full)
    out = tmp_path / "out" / "a_depth.png"
    line = _one_line(_depth(str(src), "-o", str(out), "--model", str(pointwise_exact)))
    assert ".scratch: no space left on device" in line
    assert "set TMPDIR to a folder on a larger disk" in line
    assert _files(tmp_path / "out") == []


def test_a_short_scratch_write_carries_on_until_the_disk_says_full(monkeypatch):
    real = os.pwritev
    calls = []

    def half_then_full(fd, buffers, offset):
        calls.append(offset)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data = buffers[0]
        return real(fd, [data[: len(data) // 2]], offset)

    array = ScratchArray(8, 16, block=16)
    try:
        monkeypatch.setattr(os, "pwritev", half_then_full)
        with pytest.raises(DiskFullError, match="no space left on device"):
            array.write(0, 0, np.ones((8, 16), np.float32))
        assert calls == [0, 8 * 16 * 4 // 2], "the rest was written after the short write"
    finally:
        array.close()


# --- folders that vanish or cannot be written -------------------------------------------------


def test_an_output_folder_removed_while_writing_is_one_line(tmp_path, monkeypatch, pointwise_exact):
    src = _image(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out" / "a_depth.png"
    real = write_module.write_png

    def write_then_vanish(*args, **kwargs):
        real(*args, **kwargs)
        shutil.rmtree(tmp_path / "out")

    monkeypatch.setattr(write_module, "write_png", write_then_vanish)
    line = _one_line(_depth(str(src), "-o", str(out), "--model", str(pointwise_exact)))
    assert line == f"prodepth: error: {out}: its folder {out.parent} no longer exists"
    assert not (tmp_path / "out").exists()


def test_a_read_only_output_folder_is_one_line(tmp_path, monkeypatch, pointwise_exact):
    src = _image(tmp_path / "in" / "a.jpg")
    out = tmp_path / "out" / "a_depth.tif"
    real = write_module.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == out.parent:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(write_module.tempfile, "mkstemp", read_only)
    line = _one_line(_depth(str(src), "-o", str(out), "--model", str(pointwise_exact)))
    assert line == f"prodepth: error: {out}: read-only file system"


# --- bokeh renders ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".jpg", ".png"])
def test_bokeh_render_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, monkeypatch, suffix):
    src = _image(tmp_path / "in" / "a.jpg", 90, 120)
    depth = tmp_path / "in" / "a_depth.png"
    cv2.imwrite(str(depth), np.tile(np.linspace(65535, 0, 120), (90, 1)).astype(np.uint16))
    out = tmp_path / "out" / f"x{suffix}"
    FakeDisk(tmp_path / "out").install(monkeypatch)
    result = runner.invoke(app, ["bokeh", str(src), "--depth", str(depth), "-o", str(out)])
    assert _one_line(result) == f"prodepth: error: {out}: no space left on device"
    assert _files(tmp_path / "out") == []


# --- video checkpoints (torch.save) ---------------------------------------------------------------


def test_checkpoint_on_a_full_disk_is_an_output_error_not_torchs(tmp_path, monkeypatch):
    """torch.save's zip writer turns the failed write into `RuntimeError: [enforce fail at
    inline_container.cc]`; the save finds the OSError underneath."""
    path = tmp_path / "run" / "checkpoint.pt"
    FakeDisk(tmp_path / "run").install(monkeypatch)
    with pytest.raises(DiskFullError) as caught:
        save_checkpoint(path, {"model": {"w": torch.zeros(1000)}, "config": {}})
    assert str(caught.value) == f"{path}: no space left on device"
    assert _files(tmp_path / "run") == [], "no checkpoint.pt.tmp nor any temporary file"


def test_checkpoint_still_saves_and_loads(tmp_path):
    path = tmp_path / "run" / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.arange(5.0)}, "config": {"kind": "coarse"}})
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.arange(5.0))
    assert _files(tmp_path / "run") == ["last.pt"]


def test_video_on_a_full_disk_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """The first file the fit writes is its frame cache's header (frames.u8.part.json, the
    cache being made, which a rerun resumes), then the frames, then the checkpoint. The
    teacher's maps, begun beside the frames, are removed too: they hold no frame yet."""
    src = tmp_path / "clip.mp4"  # the smallest clip tests/test_video.py runs
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 12, (96, 64))
    wide = scene_image(64, 96 + 15, seed=7)
    for i in range(5):
        writer.write(np.ascontiguousarray(wide[:, 3 * i : 3 * i + 96, ::-1]))
    writer.release()
    out = tmp_path / "out"
    FakeDisk(out).install(monkeypatch)
    args = ["video", str(src), "-o", str(out), "--steps", "2", "--size", "96x64", "--device", "cpu"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine has 2 cores, shared with the rest of the suite
    try:
        line = _one_line(runner.invoke(app, args))
    finally:
        torch.set_num_threads(threads)
    assert line == f"prodepth: error: {out / 'frames.u8.part.json'}: no space left on device"
    assert _files(out) == []


# --- the rest: model pulls, the CLI's last resort -------------------------------------------------


def test_model_pull_over_quota_says_so():
    model = SimpleNamespace(ref="tiny@v1", bytes=5 << 20)
    file = SimpleNamespace(path="model.onnx")
    error = hub._os_error(model, file, OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)))
    assert str(error).startswith("tiny@v1: disk quota exceeded while downloading model.onnx")
    assert "nothing was kept" in str(error)


def test_a_stray_full_disk_oserror_is_still_one_line(capsys):
    @guarded
    def command() -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "out/poses.txt")

    with pytest.raises(typer.Exit) as caught:
        command()
    assert caught.value.exit_code == 1
    assert (
        capsys.readouterr().err.strip() == "prodepth: error: out/poses.txt: no space left on device"
    )


# --- a real full disk, where this runs as root ----------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path):
    """A 3 MB tmpfs at `tmp_path/disk` (skipped unless root and mount works)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_real_full_tmpfs_stops_a_tiff_batch(tmpfs, tmp_path, pointwise_exact):
    for i in range(4):  # 4.3 MB of float32 map each: the first alone fills 3 MB
        _image(tmp_path / "in" / f"p{i}.jpg", 900, 1200, seed=i)
    out = tmpfs / "out"
    args = [str(tmp_path / "in"), "-o", str(out), "-f", "npy", "--model", str(pointwise_exact)]
    line = _one_line(_depth(*args))
    assert f"{out / 'p0_depth.npy'}: no space left on device; stopped after 0 of 4" in line
    assert _files(out) == []


def test_a_real_full_tmpfs_fails_a_checkpoint_cleanly(tmpfs):
    path = tmpfs / "checkpoint.pt"
    with pytest.raises(DiskFullError, match="no space left on device"):
        save_checkpoint(path, {"model": {"w": torch.zeros(1 << 20)}, "config": {}})  # 4 MB
    assert _files(tmpfs) == []
