"""`prodepth depth` and `prodepth models` as users run them: CliRunner and real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.io.gdepth import read_embedded_depth
from prodepth_cli.io.pfm import read_pfm
from tests.conftest import scene_image
from tests.photo_files import write_scene as _image

runner = CliRunner()
PRODEPTH = [sys.executable, "-m", "prodepth_cli"]


def _depth(*args: str):
    return runner.invoke(app, ["depth", *args])


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code != 0
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got: {result.stderr!r}"
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_single_file_writes_depth_beside_it(tmp_path, pointwise_exact):
    src = _image(tmp_path / "photo.jpg")
    result = _depth(str(src), "--model", str(pointwise_exact), "--tile", "64")
    assert result.exit_code == 0, result.stderr
    out = cv2.imread(str(tmp_path / "photo_depth.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (120, 160)
    umask = os.umask(0)
    os.umask(umask)
    mode = (tmp_path / "photo_depth.png").stat().st_mode & 0o777
    assert mode == 0o666 & ~umask, "outputs get the usual file mode, not mkstemp's 0600"


def test_json_lines_describe_each_result(tmp_path, pointwise_exact):
    src = _image(tmp_path / "a.png", 100, 300)
    result = _depth(
        str(src),
        "-o",
        str(tmp_path / "d.tif"),
        "--format",
        "tiff",
        "--model",
        str(pointwise_exact),
        "--tile",
        "128",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    for key in (
        "input",
        "output",
        "width",
        "height",
        "model",
        "provider",
        "tile",
        "overlap",
        "tiles",
        "seconds",
        "status",
        "error",
    ):
        assert key in record
    assert (record["width"], record["height"], record["status"]) == (300, 100, "ok")
    assert record["tiles"][0] == [0, 0, 128, 100] and record["tiles"][-1][2] == 300
    assert Path(record["output"]).is_file()


def test_folder_outputs_mirror_its_structure_and_resume(tmp_path, pointwise_exact):
    _image(tmp_path / "in" / "a.jpg")
    _image(tmp_path / "in" / "trip" / "b.png", seed=1)
    args = [
        str(tmp_path / "in"),
        "-r",
        "-o",
        str(tmp_path / "out"),
        "--model",
        str(pointwise_exact),
        "--json",
    ]
    first = _depth(*args)
    assert first.exit_code == 0, first.stderr
    assert (tmp_path / "out" / "a_depth.png").is_file()
    assert (tmp_path / "out" / "trip" / "b_depth.png").is_file()
    again = [json.loads(ln)["status"] for ln in _depth(*args).stdout.splitlines()]
    assert again == ["skipped", "skipped"], "complete outputs are not redone"
    redo = [json.loads(ln)["status"] for ln in _depth(*args, "--overwrite").stdout.splitlines()]
    assert redo == ["ok", "ok"]


def test_batch_goes_on_past_a_bad_file_and_reports_it(tmp_path, pointwise_exact):
    _image(tmp_path / "in" / "good.png")
    (tmp_path / "in" / "bad.png").write_bytes(b"this is not a png")
    result = _depth(
        str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(pointwise_exact)
    )
    assert result.exit_code == 1
    assert (tmp_path / "out" / "good_depth.png").is_file()
    assert not (tmp_path / "out" / "bad_depth.png").exists()
    assert "1 of 2 inputs failed" in result.stderr and "bad.png" in result.stderr
    assert "Traceback" not in result.stderr


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
def test_bad_input_gets_one_line_and_no_output(tmp_path, pointwise_exact, make, needle):
    src = tmp_path / "photo.jpg"
    make(src)
    result = _depth(str(src), "--model", str(pointwise_exact))
    _assert_one_line_error(result, "photo.jpg", needle)
    assert not (tmp_path / "photo_depth.png").exists()
    assert [p for p in tmp_path.iterdir() if p.name != "photo.jpg"] == []


def _jpeg_bytes() -> bytes:
    ok, data = cv2.imencode(".jpg", scene_image(300, 400))
    return data.tobytes()


def test_unwritable_output_location(tmp_path, pointwise_exact):
    src = _image(tmp_path / "p.png")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _depth(str(src), "-o", str(blocker / "sub" / "d.png"), "--model", str(pointwise_exact))
    _assert_one_line_error(result, "d.png", "cannot write")


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("d.png", lambda p: cv2.imread(str(p), cv2.IMREAD_UNCHANGED).dtype == np.uint16),
        ("d.tif", lambda p: tifffile.imread(p).dtype == np.float32),
        ("d.TIFF", lambda p: tifffile.imread(p).dtype == np.float32),
        ("d.npy", lambda p: np.load(p).dtype == np.float32),
        ("d.pfm", lambda p: read_pfm(p).dtype == np.float32),
        # the photograph (encoded as JPEG: the input is a PNG) with the map inside
        ("d.jpg", lambda p: read_embedded_depth(p.read_bytes()).disparity.shape == (120, 160)),
    ],
)
def test_an_output_file_suffix_chooses_its_format(tmp_path, pointwise_exact, name, check):
    src = _image(tmp_path / "p.png")
    result = _depth(str(src), "-o", str(tmp_path / name), "--model", str(pointwise_exact))
    assert result.exit_code == 0, result.stderr
    assert check(tmp_path / name)


@pytest.mark.parametrize(
    ("name", "options", "needle"),
    [
        ("d.gif", [], ".gif is not a depth map format"),
        ("d", [], "no suffix is not a depth map format"),
        ("d.tif", ["--format", "png16"], "--format png16 contradicts the .tif suffix"),
        ("d.png", ["--format", "npy"], "--format npy contradicts the .png suffix"),
    ],
)
def test_an_unknown_or_contradicted_suffix_is_refused_before_any_work(
    tmp_path, pointwise_exact, name, options, needle
):
    src = _image(tmp_path / "p.png")
    out = tmp_path / name
    result = _depth(str(src), "-o", str(out), "--model", str(pointwise_exact), *options)
    _assert_one_line_error(result, needle)
    assert list(tmp_path.iterdir()) == [src]  # nothing written, not even a temporary file


def test_model_that_cannot_be_a_depth_model(tmp_path, vector_model):
    src = _image(tmp_path / "p.png")
    result = _depth(str(src), "--model", str(vector_model))
    _assert_one_line_error(result, "vector.onnx", "no input is an image")
    not_onnx = tmp_path / "junk.onnx"
    not_onnx.write_text("junk")
    _assert_one_line_error(_depth(str(src), "--model", str(not_onnx)), "junk.onnx")
    assert not (tmp_path / "p_depth.png").exists()


@pytest.mark.parametrize(
    "options,needle",
    [
        (["--tile", "4"], "--tile"),
        (["--tile", "256", "--overlap", "200"], "--overlap"),
        (["--format", "gif"], "--format"),
        (["--kind", "height"], "--kind"),
        (["--size", "big"], "--size"),
        (["--device", "tpu"], "--device"),
    ],
)
def test_nonsense_options_are_refused(tmp_path, pointwise_exact, options, needle):
    src = _image(tmp_path / "p.png")
    result = _depth(str(src), "--model", str(pointwise_exact), *options)
    _assert_one_line_error(result, needle)
    assert not (tmp_path / "p_depth.png").exists()


def test_models_command_shows_inferred_spec(nhwc_depth):
    result = runner.invoke(app, ["models", "show", str(nhwc_depth), "--json"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["spec"]["layout"] == "NHWC" and record["spec"]["size"] == [64, 96]
    assert "CPUExecutionProvider" in record["providers"]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


def test_stdin_to_stdout_in_a_pipeline(tmp_path, pointwise_exact):
    data = _image(tmp_path / "p.png").read_bytes()
    done = subprocess.run(
        [*PRODEPTH, "depth", "-", "-o", "-", "--model", str(pointwise_exact)],
        input=data,
        capture_output=True,
        env=_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    depth = cv2.imdecode(np.frombuffer(done.stdout, np.uint8), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (120, 160)
    assert done.stderr == b"", "nothing on stderr when it is not a terminal"


def test_killed_run_leaves_nothing_at_the_output_name_and_resumes(tmp_path, pointwise_affine):
    src = tmp_path / "big.png"
    cv2.imwrite(str(src), cv2.resize(scene_image(300, 400), (4000, 3000)))
    out = tmp_path / "big_depth.png"
    cmd = [
        *PRODEPTH,
        "depth",
        str(src),
        "--model",
        str(pointwise_affine),
        "--tile",
        "64",
        "--batch",
        "1",
    ]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".big_depth.*.part.png")):  # kill it while it writes
        assert proc.poll() is None, "the run ended before its output was being written"
        assert time.monotonic() < deadline, "the run never started writing its output"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists(), "a killed run leaves no partial file at the output's name"
    done = subprocess.run(
        [*cmd, "--tile", "1024", "--json"], env=_env(), capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()
    assert json.loads(done.stdout)["status"] == "ok"
    assert cv2.imread(str(out), cv2.IMREAD_UNCHANGED).shape == (3000, 4000)


def test_depth_starts_without_importing_torch():
    code = "import sys, prodepth_cli.cli; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], env=_env(), timeout=60).returncode == 0


def test_a_truncated_image_fails_the_same_when_stages_run_side_by_side(
    tmp_path, pointwise_affine, monkeypatch
):
    """With the stages on threads (a GPU), the reader's error still comes out as the one
    line, through the coarse pass and the batches ahead, and nothing is left behind."""
    import prodepth_cli.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_network_leaves_cpu_idle", lambda net: True)
    src = tmp_path / "photo.jpg"
    src.write_bytes(_jpeg_bytes()[:6000])
    result = _depth(str(src), "--model", str(pointwise_affine), "--tile", "96")
    _assert_one_line_error(result, "photo.jpg", "truncated")
    assert [p.name for p in tmp_path.iterdir()] == ["photo.jpg"]
