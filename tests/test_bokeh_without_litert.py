"""The tflite engine where LiteRT is missing (macOS x86_64 has no ai-edge-litert build): the
shipped network's ONNX export stands in, with a note; without one, a single line pointing
to --engine classic. LiteRT's absence is faked by making its import fail."""

from __future__ import annotations

import importlib.util
import platform
import shutil
import sys

import cv2
import numpy as np
import pytest

from prodepth_cli.bokeh.onnx_net import OnnxBokehNet
from prodepth_cli.bokeh.tflite import DEFAULT_TFLITE, MODELS, load_bokeh_net
from prodepth_cli.errors import ModelError
from tests.photo_files import write_png16
from tests.test_bokeh_cli import _assert_one_line_error, _bokeh, _disparity, _image

DEFAULT_ONNX = MODELS / "prodepth-bokeh.onnx"
HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None


@pytest.fixture
def no_litert(monkeypatch):
    """This machine as an Intel Mac: `import ai_edge_litert` raises ImportError."""
    import onnxruntime  # noqa: F401 (imported first: its import checks the macOS version)

    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")


@pytest.fixture
def photo_and_depth(tmp_path):
    return _image(tmp_path / "p.png"), write_png16(tmp_path / "d.png", _disparity())


def frame_input(hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    """`(1, H, W, 4)`: sRGB in [0, 1] and a CoC of +-64 frame px, as the parity tests use."""
    x = np.random.default_rng(seed).random((1, *hw, 4), dtype=np.float32)
    x[..., 3] = (x[..., 3] - 0.5) * 4
    return x


def test_without_litert_or_an_onnx_export_the_cli_says_so_in_one_line(
    no_litert, photo_and_depth, tmp_path
):
    src, depth = photo_and_depth
    lonely = shutil.copy(DEFAULT_TFLITE, tmp_path / "mine.tflite")  # no mine.onnx beside it
    out = tmp_path / "out.png"
    result = _bokeh(
        str(src),
        "--depth",
        str(depth),
        "--engine",
        "tflite",
        "--model",
        str(lonely),
        "-o",
        str(out),
    )
    assert result.exit_code == 1
    _assert_one_line_error(
        result,
        "LiteRT (ai-edge-litert) has no build for this platform (macOS x86_64); "
        "use --engine classic",
    )
    assert not out.exists() and not list(tmp_path.glob("p_bokeh*"))


def test_where_litert_has_a_build_but_is_not_installed_the_line_says_how_to_install(
    no_litert, monkeypatch, tmp_path
):
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    lonely = shutil.copy(DEFAULT_TFLITE, tmp_path / "mine.tflite")
    with pytest.raises(ModelError, match="is not installed; pip install ai-edge-litert, or use"):
        load_bokeh_net(lonely)


def test_without_litert_the_shipped_onnx_export_renders_with_a_note(no_litert, photo_and_depth):
    src, depth = photo_and_depth
    result = _bokeh(str(src), "--depth", str(depth), "--engine", "tflite")
    assert result.exit_code == 0, result.stderr
    assert "no build for this platform (macOS x86_64): running prodepth-bokeh.onnx" in (
        result.stderr
    )
    assert cv2.imread(str(src.with_name("p_bokeh.png"))).shape == (90, 120, 3)


def test_the_onnx_export_matches_the_torch_network():
    pytest.importorskip("torch", reason="the torch network needs the dev/train extra")
    from prodepth_cli.nets.bokeh import nhwc_predictor
    from prodepth_cli.training.bokeh_export import load_bokeh_weights

    net = OnnxBokehNet(DEFAULT_ONNX)
    x = frame_input(net.frame_hw)
    ref = nhwc_predictor(load_bokeh_weights(MODELS / "prodepth-bokeh.pt"))(x)
    # float32 with another summation order: 1e-4 is ~1/40 of an 8-bit level (as for TFLite)
    assert np.abs(net.predict(x) - ref).max() < 1e-4


@pytest.mark.skipif(not HAS_LITERT, reason="ai-edge-litert is not installed")
def test_the_onnx_export_matches_the_shipped_tflite_model_end_to_end():
    """What a user without LiteRT gets against what one with it gets, through the whole
    engine (fit to frame, run, back to full size) on a portrait image."""
    rng = np.random.default_rng(1)
    rgb = cv2.GaussianBlur(rng.random((700, 400, 3), dtype=np.float32), (0, 0), 2)
    d01 = np.tile(np.linspace(0, 1, 700, dtype=np.float32)[:, None], (1, 400))
    via_tflite = load_bokeh_net()(rgb, d01, 0.5, 12.0)
    via_onnx = load_bokeh_net(DEFAULT_ONNX)(rgb, d01, 0.5, 12.0)
    # both float32 runs of one network (measured max 2e-7): 1e-4 is ~1/40 of an 8-bit level
    assert np.abs(via_tflite - via_onnx).max() < 1e-4


def test_convert_onnx_keeps_the_nhwc_contract(tmp_path):
    pytest.importorskip("torch", reason="exporting needs torch (dev/train extra)")
    from prodepth_cli.nets.bokeh import BokehNet, nhwc_predictor
    from prodepth_cli.training.bokeh_export import convert_onnx

    net = BokehNet().eval()
    convert_onnx(net, tmp_path / "small.onnx", (64, 96))
    onnx = OnnxBokehNet(tmp_path / "small.onnx")
    x = frame_input((64, 96), seed=2)
    assert onnx.frame_hw == (64, 96)
    assert np.abs(onnx.predict(x) - nhwc_predictor(net)(x)).max() < 1e-4


def test_an_onnx_file_that_is_not_a_bokeh_network_is_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf")
    with pytest.raises(ModelError, match="junk.onnx: not a loadable ONNX model"):
        OnnxBokehNet(junk)
    depth_model = MODELS / "prodepth-refiner.onnx"
    if depth_model.is_file():
        with pytest.raises(ModelError, match="not a bokeh network"):
            OnnxBokehNet(depth_model)
