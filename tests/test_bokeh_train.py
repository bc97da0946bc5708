"""The bokeh network's training and export: the CoC prior it starts from, a few steps with
resume through `prodepth train bokeh`, and `prodepth export` to TFLite (or its clean refusal
when the converter extra is absent)."""

from __future__ import annotations

import importlib.util
import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch", reason="training needs the dev/train extra")

from prodepth_cli.cli import app  # noqa: E402
from prodepth_cli.nets.bokeh import COC_SCALE, BokehNet, nhwc_predictor  # noqa: E402
from prodepth_cli.training.checkpoint import load_checkpoint  # noqa: E402

HAS_CONVERTER = importlib.util.find_spec("litert_torch") is not None


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((h, w, 3), dtype=np.float32), (0, 0), 1.0)


def _sharpness(img: np.ndarray) -> float:
    return float(np.abs(cv2.Laplacian(img, cv2.CV_32F)).mean())


def test_untrained_network_is_the_coc_prior_renderer():
    """Before any training the network keeps in-focus pixels and blurs by the CoC."""
    net = BokehNet().eval()
    x = np.zeros((1, 64, 96, 4), np.float32)
    x[0, :, :, :3] = _texture(64, 96, 0)
    sharp = nhwc_predictor(net)(x)[0]
    assert np.abs(sharp - x[0, :, :, :3]).max() < 0.01
    assert _sharpness(sharp) > 0.9 * _sharpness(x[0, :, :, :3])
    blurs = []
    for radius in (2.0, 8.0):
        x[..., 3] = radius / COC_SCALE
        blurs.append(_sharpness(nhwc_predictor(net)(x)[0]))
    assert _sharpness(x[0, :, :, :3]) > 2 * blurs[0] > 4 * blurs[1]


@pytest.fixture()
def windows(tmp_path):
    """A tiny window set in the format `bokeh_data` writes (uint8 RGB, CoC / COC_SCALE)."""
    n, s = 4, 200
    rgb = (_texture(s, s * n, 1).reshape(s, n, s, 3).transpose(1, 0, 2, 3) * 255).astype(np.uint8)
    coc = np.full((n, s, s), 0.1, np.float16)
    target = cv2.GaussianBlur(rgb.reshape(n * s, s, 3), (0, 0), 2).reshape(rgb.shape)
    (tmp_path / "data" / "train").mkdir(parents=True)
    np.savez(tmp_path / "data" / "train" / "0000.npz", x=rgb, coc=coc, y=target)
    return tmp_path / "data"


def test_train_bokeh_a_few_steps_and_resume(tmp_path, windows):
    run = tmp_path / "run"
    first = _run("train", "bokeh", "--out", str(run), "--data", str(windows), "--steps", "2")
    assert first.exit_code == 0, first.output
    assert load_checkpoint(run / "last.pt")["step"] == 2
    more = ["train", "bokeh", "--out", str(run), "--data", str(windows), "--steps", "3"]
    resumed = _run(*more, "--resume", "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout.splitlines()[-1])["steps"] == 3
    assert load_checkpoint(run / "last.pt")["config"]["kind"] == "bokeh"


def test_train_bokeh_refuses_depth_only_options(tmp_path, windows):
    result = _run("train", "bokeh", "--out", str(tmp_path), "--no-consistency")
    assert result.exit_code != 0 and "depth nets only" in result.output


def test_export_bokeh_to_tflite_or_refuse_without_the_converter(tmp_path, windows):
    run = tmp_path / "run"
    assert _run("train", "bokeh", "--out", str(run), "--data", str(windows), "--steps", "1")
    out = tmp_path / "net.tflite"
    result = _run("export", "bokeh", str(run / "last.pt"), "-o", str(out), "--json")
    if not HAS_CONVERTER:
        assert result.exit_code == 1
        assert "bokeh-train" in result.output and len(result.output.strip().splitlines()) == 1
        assert list(tmp_path.glob("net*")) == [], "nothing half-written"
        return
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["max_abs_diff"] < 1e-4 and report["int8_mean_abs_diff"] < 2 / 255
    assert out.is_file() and (tmp_path / "net-int8.tflite").is_file()
    assert (tmp_path / "net.pt").is_file()


def test_export_checks_the_kind_it_is_told(tmp_path, windows):
    run = tmp_path / "run"
    assert _run("train", "bokeh", "--out", str(run), "--data", str(windows), "--steps", "1")
    for args, says in [
        (["refiner", str(run / "last.pt")], "a bokeh checkpoint, not refiner"),
        (["lens", str(run / "last.pt")], "give [coarse|refiner|bokeh] CHECKPOINT"),
    ]:
        result = _run("export", *args, "-o", str(tmp_path / "x.onnx"))
        assert result.exit_code != 0 and says in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, "one line, no traceback"
    assert not list(tmp_path.glob("x*")), "nothing written"
