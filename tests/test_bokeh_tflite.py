"""The TFLite bokeh engine: shipped model vs torch network, quality on Motorcycle, the CLI.

Parity and quality use the shipped `models/prodepth-bokeh*.tflite` with `ai-edge-litert`;
only the conversion test needs the converter (the `bokeh-train` extra) and skips without it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from prodepth_cli.bokeh import quality
from prodepth_cli.bokeh.engine import BokehOptions, bokeh_array
from prodepth_cli.bokeh.tflite import DEFAULT_TFLITE, MODELS, NetRenderer, load_bokeh_net
from prodepth_cli.io.depth_map import read_depth_map
from tests.conftest import MOTORCYCLE, SHARED_DATA, require

torch = pytest.importorskip("torch", reason="the torch network needs the dev/train extra")
if importlib.util.find_spec("ai_edge_litert") is None:
    pytest.skip("ai-edge-litert is not installed", allow_module_level=True)
if not DEFAULT_TFLITE.is_file():
    pytest.skip(f"no shipped model at {DEFAULT_TFLITE}", allow_module_level=True)

from prodepth_cli.bokeh.tflite import TFLiteBokehNet  # noqa: E402
from prodepth_cli.nets.bokeh import BokehNet, nhwc_predictor  # noqa: E402
from prodepth_cli.training.bokeh_export import load_bokeh_weights  # noqa: E402

INT8 = MODELS / "prodepth-bokeh-int8.tflite"


@pytest.fixture(scope="module")
def torch_net() -> BokehNet:
    return load_bokeh_weights(MODELS / "prodepth-bokeh.pt")


@pytest.fixture(scope="module")
def frame_input() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.random((1, 1024, 1536, 4), dtype=np.float32)
    x[..., 3] = (x[..., 3] - 0.5) * 4  # CoC of +-64 frame px
    return x


def test_tflite_fp32_matches_the_torch_network(torch_net, frame_input):
    ref = nhwc_predictor(torch_net)(frame_input)
    got = TFLiteBokehNet(DEFAULT_TFLITE).predict(frame_input)
    # float32 with a different summation order: 1e-4 is ~1/40 of an 8-bit level
    assert np.abs(ref - got).max() < 1e-4


def test_tflite_int8_stays_within_two_8_bit_levels_on_average(torch_net, frame_input):
    ref = nhwc_predictor(torch_net)(frame_input)
    got = TFLiteBokehNet(INT8).predict(frame_input)
    assert np.abs(ref - got).mean() < 2 / 255


def test_motorcycle_near_focus_with_the_tflite_engine():
    """Issue 4's check for the network engine (same regions and thresholds as classic)."""
    scene = require(MOTORCYCLE)
    rgb = cv2.imread(str(scene / "im0.png"))[:, :, ::-1].astype(np.float32) / 255.0
    disparity = read_depth_map(scene / "disp0GT.pfm").disparity
    result = bokeh_array(rgb, disparity, BokehOptions(focus_xy=(535, 150)), load_bokeh_net())
    regions = quality.focus_regions(disparity, result.focus)
    assert quality.sharpness_kept(rgb, result.rgb, regions.focus) >= 0.80
    assert quality.sharpness_kept(rgb, result.rgb, regions.far) <= 0.50


def test_engine_output_matches_between_tflite_and_torch_end_to_end(torch_net):
    """The whole engine (fit to frame, run, back to full size) on a portrait 12:7 image."""
    rng = np.random.default_rng(1)
    rgb = cv2.GaussianBlur(rng.random((700, 400, 3), dtype=np.float32), (0, 0), 2)
    d01 = np.tile(np.linspace(0, 1, 700, dtype=np.float32)[:, None], (1, 400))
    via_torch = NetRenderer(nhwc_predictor(torch_net), (1024, 1536))(rgb, d01, 0.5, 12.0)
    via_tflite = load_bokeh_net()(rgb, d01, 0.5, 12.0)
    assert via_tflite.shape == rgb.shape
    assert np.abs(via_torch - via_tflite).max() < 1e-4


def test_a_tflite_model_that_is_not_a_bokeh_network_is_refused(tmp_path):
    from prodepth_cli.errors import ModelError

    other = require(SHARED_DATA / "models" / "optimized_pydnet++.tflite")
    with pytest.raises(ModelError, match="not a bokeh network"):
        TFLiteBokehNet(other)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a flatbuffer")
    with pytest.raises(ModelError, match="junk.tflite"):
        TFLiteBokehNet(junk)


def test_conversion_matches_torch_when_the_converter_is_installed(tmp_path):
    if importlib.util.find_spec("litert_torch") is None:
        pytest.skip("litert-torch (the bokeh-train extra) is not installed")
    from prodepth_cli.training.bokeh_export import convert_tflite

    net = BokehNet().eval()
    path = tmp_path / "small.tflite"
    convert_tflite(net, path, (64, 96))
    x = np.random.default_rng(2).random((1, 64, 96, 4), dtype=np.float32)
    got = TFLiteBokehNet(path).predict(x)
    assert np.abs(nhwc_predictor(net)(x) - got).max() < 1e-4


def test_cli_tflite_engine_writes_the_render(tmp_path):
    from tests.photo_files import write_png16
    from tests.test_bokeh_cli import _bokeh, _disparity, _image

    src = _image(tmp_path / "p.png")
    depth = write_png16(tmp_path / "d.png", _disparity())
    result = _bokeh(str(src), "--depth", str(depth), "--engine", "tflite", "--json")
    assert result.exit_code == 0, result.stderr
    assert cv2.imread(str(tmp_path / "p_bokeh.png")).shape == (90, 120, 3)
    missing = _bokeh(
        str(src),
        "--depth",
        str(depth),
        "--engine",
        "tflite",
        "--model",
        str(tmp_path / "none.tflite"),
        "-o",
        str(tmp_path / "x.png"),
    )
    assert missing.exit_code == 1 and "no such TFLite model" in missing.stderr
    assert not Path(tmp_path / "x.png").exists()


def test_tflite_engine_keeps_the_runtimes_log_lines_off_stderr(tmp_path):
    """LiteRT's native INFO line must not leak: stderr holds our one result line only."""
    import subprocess
    import sys

    from tests.photo_files import write_png16
    from tests.test_bokeh_cli import _disparity, _image

    src = _image(tmp_path / "p.png")
    depth = write_png16(tmp_path / "d.png", _disparity())
    cmd = [sys.executable, "-m", "prodepth_cli", "bokeh", str(src), "--depth", str(depth)]
    done = subprocess.run([*cmd, "--engine", "tflite"], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{src} -> "), lines
