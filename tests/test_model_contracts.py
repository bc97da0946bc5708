"""Catalog specs proven on stand-ins with the real exports' contracts: what reaches each graph.

Each stand-in (tests/standins.py: the real Depth Anything V2 architecture, and graphs with the
MiDaS, Depth Pro and Metric3D exports' names, shapes, normalisation and external data) is run
through the pipeline with the shipped catalog's spec for that model, and the tensors fed to
onnxruntime are checked against the image: layout, size, value range and normalisation.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.models import catalog
from prodepth_cli.models.runtime import DepthModel, Network, load_network
from prodepth_cli.pipeline import DepthOptions, depth_array, resize_to
from tests.conftest import scene_image
from tests.standins import (
    catalog_entry,
    depth_anything_v2,
    depth_pro_like,
    metric3d_like,
    midas_v21_small_like,
)

pytest.importorskip("transformers")

# Feeds are compared with the image resized as the pipeline does it (8-bit pixels in 8 bits,
# then scaled to [0, 1]); what is left is float32 rounding of (x - mean) / std, a few 1e-7.
FEED_ATOL = 1e-5


class RecordingSession:
    """An onnxruntime session that keeps a copy of every feed it is given."""

    def __init__(self, session):
        self.session = session
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, outputs, feeds):
        self.feeds.append({k: np.array(v) for k, v in feeds.items()})
        return self.session.run(outputs, feeds)

    def __getattr__(self, name):
        return getattr(self.session, name)


def _load_recorded(path, name: str, **overrides) -> tuple[DepthModel, RecordingSession]:
    """`path` loaded with the shipped catalog's spec for `name`, its session recorded."""
    net = load_network(path, "cpu", overrides, catalog.lookup(name).spec)
    recorder = RecordingSession(net.session)
    net.session = recorder
    return DepthModel(name, net, net), recorder


def _resized01(rgb: np.ndarray, hw) -> np.ndarray:
    return resize_to(rgb, hw).astype(np.float32) / 255


def _unnormalised(feed: np.ndarray, net: Network) -> np.ndarray:
    """`(B, 3, h, w)` network input -> the `(B, h, w, 3)` image in [0, 1] it was made from."""
    s = net.spec
    mean = np.array(s.mean, np.float32)[:, None, None]
    std = np.array(s.std, np.float32)[:, None, None]
    return np.moveaxis((feed * std + mean) / s.pixel_scale, 1, -1)


@pytest.fixture(scope="module")
def standins(tmp_path_factory):
    folder = tmp_path_factory.mktemp("standins")
    for sub in ("da2", "pro", "m3d"):
        (folder / sub).mkdir()
    return {
        "depth-anything-v2-small": depth_anything_v2(folder / "da2" / "model.onnx"),
        "midas-v21-small": midas_v21_small_like(folder / "model-small.onnx"),
        "depth-pro": depth_pro_like(folder / "pro" / "model.onnx"),
        "metric3d-vit-small": metric3d_like(folder / "m3d" / "model.onnx"),
    }


def _image(h: int, w: int) -> np.ndarray:
    return scene_image(h, w, seed=3)


def test_depth_anything_is_fed_imagenet_normalised_rgb_at_its_native_518(standins):
    model, rec = _load_recorded(standins["depth-anything-v2-small"], "depth-anything-v2-small")
    rgb = _image(800, 1000)
    depth_array(rgb, model, DepthOptions(tile=1024))  # one pass: the image is smaller than a tile
    (feed,) = rec.feeds
    x = feed["pixel_values"]
    assert x.shape == (1, 3, 518, 644)  # short side at 518, both sides multiples of 14
    expected = _resized01(rgb, x.shape[2:])
    np.testing.assert_allclose(_unnormalised(x, model.tile_net)[0], expected, atol=FEED_ATOL)
    assert x.min() < -1.0  # normalised, not [0, 1]: ImageNet mean/std were applied


def test_dynamic_tiles_run_at_the_native_size_unless_asked_for_full(standins):
    path = standins["depth-anything-v2-small"]
    rgb = _image(900, 1300)
    model, native = _load_recorded(path, "depth-anything-v2-small")
    depth_array(rgb, model, DepthOptions(tile=700, overlap=175))
    model, full = _load_recorded(path, "depth-anything-v2-small")
    depth_array(rgb, model, DepthOptions(tile=700, overlap=175, tile_resolution="full"))
    native_sizes = {f["pixel_values"].shape[2:] for f in native.feeds}
    full_sizes = {f["pixel_values"].shape[2:] for f in full.feeds}
    # coarse pass (whole image, short side 518) and 700 px tiles seen at 518
    assert native_sizes == {(518, 742), (518, 518)}
    assert (700, 700) in full_sizes and (518, 518) not in full_sizes
    for feed in native.feeds + full.feeds:
        assert all(side % 14 == 0 for side in feed["pixel_values"].shape[2:])


def test_passes_see_the_short_side_at_the_working_size_as_in_training(standins):
    """Square training crops of whole images (and Depth Anything's own resizing) put a
    scene's short side at the working size; a panorama's long side stops at four of them."""
    model, _ = _load_recorded(standins["depth-anything-v2-small"], "depth-anything-v2-small")
    net = model.coarse_net
    assert net.coarse_hw(900, 1300) == (518, 742)
    assert net.coarse_hw(1300, 900) == (742, 518)
    assert net.coarse_hw(300, 3000) == (210, 2072)  # 10:1 -> 4 x 518 long
    assert net.tile_hw(400, 1000) == (406, 994)  # short side under 518: never upsampled


def test_midas_release_is_fed_rgb_over_255_only(standins):
    model, rec = _load_recorded(standins["midas-v21-small"], "midas-v21-small")
    rgb = _image(300, 420)
    disparity = depth_array(rgb, model, DepthOptions(tile=1024))
    (feed,) = rec.feeds
    x = feed["0"]
    assert x.shape == (1, 3, 256, 256)  # fixed input: resized, not padded
    expected = _resized01(rgb, (256, 256))
    np.testing.assert_allclose(np.moveaxis(x[0], 0, -1), expected, atol=FEED_ATOL)
    assert disparity.shape == (300, 420)


def test_depth_pro_gets_minus_one_to_one_and_writes_metres(standins, tmp_path):
    path = standins["depth-pro"]
    assert path.with_name("model.onnx_data").is_file()  # weights beside the graph
    model, rec = _load_recorded(path, "depth-pro")
    rgb = _image(240, 320)
    disparity = depth_array(rgb, model, DepthOptions(tile=1024))
    (feed,) = rec.feeds
    x = feed["pixel_values"]
    assert x.shape == (1, 3, 1536, 1536)
    assert x.min() >= -1.0 and x.max() <= 1.0
    expected = _resized01(rgb, (1536, 1536)) * 2 - 1
    np.testing.assert_allclose(np.moveaxis(x[0], 0, -1), expected, atol=2 * FEED_ATOL)
    # the pipeline's disparity is 1 / metres of the graph's own answer
    (metres,) = rec.session.run(["predicted_depth"], {"pixel_values": x})
    expected_disp = resize_to(1.0 / metres[0], (240, 320))
    np.testing.assert_allclose(disparity, expected_disp, rtol=1e-4)


def test_metric3d_is_fed_raw_0_255(standins):
    model, rec = _load_recorded(standins["metric3d-vit-small"], "metric3d-vit-small")
    rgb = _image(420, 560)
    depth_array(rgb, model, DepthOptions(tile=1024))
    (feed,) = rec.feeds
    x = feed["pixel_values"]
    assert x.shape[2:] == (420, 560)  # smaller than its native 1064: never upsampled
    assert x.max() > 100  # raw values, not [0, 1]
    np.testing.assert_allclose(np.moveaxis(x[0], 0, -1), rgb.astype(np.float32), atol=1e-3)


def _catalog_for_standin(tmp_path, monkeypatch, name: str, path) -> None:
    """An extra catalog saying the stand-in file is `name` with the shipped spec, so that
    loading it by path applies the catalog spec (files are recognised by content)."""
    files = [p for p in (path, path.with_name(path.name + "_data")) if p.is_file()]
    extra = tmp_path / "catalog.json"
    extra.write_text(json.dumps({f"{name}-standin": catalog_entry(files, name)}))
    monkeypatch.setenv(catalog.CATALOG_ENV, str(extra))


def test_metric_float_outputs_carry_metres_and_png_stays_normalised(
    standins, tmp_path, monkeypatch
):
    path = standins["depth-pro"]
    _catalog_for_standin(tmp_path, monkeypatch, "depth-pro", path)
    src = tmp_path / "photo.png"
    import cv2

    cv2.imwrite(str(src), _image(600, 800)[:, :, ::-1])
    runner = CliRunner()
    args = ["depth", str(src), "-m", str(path), "--tile", "512", "--json"]
    npy = runner.invoke(app, [*args, "-o", str(tmp_path / "d.npy")])
    png = runner.invoke(app, [*args, "-o", str(tmp_path / "d.png")])
    assert npy.exit_code == 0 and png.exit_code == 0, npy.stderr + png.stderr
    assert json.loads(npy.stdout)["units"] == "m"
    assert json.loads(png.stdout)["units"] == "relative"
    assert json.loads(npy.stdout)["model"] == "depth-pro-standin"
    metres = np.load(tmp_path / "d.npy")
    # the stand-in answers 0.5-20.5 m; tiles fitted in scale only stay in metres
    assert metres.min() >= 0.5 and metres.max() <= 20.5
    disparity_png = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED).astype(np.float64)
    # near = bright in the PNG: it is ordered like 1 / metres
    rank = np.corrcoef(disparity_png.ravel(), 1.0 / metres.ravel())[0, 1]
    assert rank > 0.99
