"""The device feed: raw pixels normalised by a graph on the network's device, handed over by
I/O binding, must give what the host path gives. On this machine the device is the CPU;
the calls are the same ones a GPU session gets, only with "cuda" memory."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from prodepth_cli.models.device_feed import DeviceFeed
from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import DepthOptions, depth_array, depth_file
from tests.conftest import scene_image
from tests.onnx_models import pointwise_model

SPEC = {"mean": (0.4, 0.5, 0.6), "std": (0.2, 0.25, 0.3), "color": "BGR", "pixel_scale": 2}


def _with_feed(model):
    """The same model, its networks fed raw pixels (as on a GPU)."""
    for net in {id(n): n for n in (model.tile_net, model.coarse_net)}.values():
        net.feed = DeviceFeed(net)
    return model


@pytest.mark.parametrize("which", ["NCHW", "NHWC", "float16 input"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_raw_pixels_through_the_device_give_the_host_paths_maps(request, tmp_path, which, dtype):
    if which == "float16 input":
        path = pointwise_model(tmp_path / "fp16.onnx", float16_input=True)
    else:
        path = request.getfixturevalue("pointwise_affine" if which == "NCHW" else "nhwc_depth")
    size = (64, 96) if which == "NHWC" else (48, 80)  # the NHWC stand-in has a fixed size
    host = load_model(path, "cpu", **SPEC).tile_net
    fed = _with_feed(load_model(path, "cpu", **SPEC)).tile_net
    top = np.iinfo(dtype).max
    rng = np.random.default_rng(3)
    images = [rng.integers(0, top + 1, (*size, 3)).astype(dtype) for _ in range(3)]
    batch = fed.prepare(images, float(top))
    assert batch.dtype == dtype and batch.shape == (3, *size, 3)  # what goes up: the pixels
    expected = host.run(host.prepare(images, float(top)))
    # float16 inputs: the host rounds to float16 twice (after the gain, after the bias),
    # the device once, so they differ by float16's steps
    atol = 5e-3 if which == "float16 input" else 2e-6
    np.testing.assert_allclose(fed.run(batch), expected, rtol=1e-5, atol=atol)


def test_float_pixels_and_odd_scales_stay_on_the_host_path(pointwise_affine):
    """Only 8- and 16-bit RGB with white at the type's top goes up raw; anything else is
    normalised on the host as before (a float TIFF, a 12-bit image in 16-bit words)."""
    net = _with_feed(load_model(pointwise_affine, "cpu")).tile_net
    floats = [np.random.default_rng(0).uniform(0, 1, (32, 32, 3)).astype(np.float32)]
    assert net.prepare(floats, 1.0).dtype == np.float32
    twelve_bit = [np.full((32, 32, 3), 4095, np.uint16)]
    assert net.prepare(twelve_bit, 4095.0).dtype == np.float32


def test_the_shipped_refiner_pair_fed_raw_pixels_gives_the_same_map(tmp_path, monkeypatch):
    """The refiner takes its coarse crops beside the bound pixels; the whole pipeline, in
    memory and from a file, its stages side by side as on a GPU, must give the host path's
    map."""
    import prodepth_cli.pipeline as pipeline

    rgb = scene_image(300, 420, seed=7)
    src = tmp_path / "p.png"
    cv2.imwrite(str(src), rgb[:, :, ::-1])
    host = load_model(None, "cpu")
    fed = _with_feed(load_model(None, "cpu"))
    expected = depth_array(rgb, host, DepthOptions(tile=160, overlap=40, batch=3))
    monkeypatch.setattr(pipeline, "_network_leaves_cpu_idle", lambda net: net.feed is not None)
    got = depth_array(rgb, fed, DepthOptions(tile=160, overlap=40, batch=3))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    options = DepthOptions(160, 40, 3)
    for name, model in (("host", host), ("fed", fed)):
        depth_file(src, tmp_path / f"{name}.npy", model, options, fmt="npy")
    expected, got = (np.load(tmp_path / f"{name}.npy") for name in ("host", "fed"))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
