"""PyDNet++ rebuilt in torch from its quantised ONNX graph answers as onnxruntime does."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import PYDNET, require, scene_image

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


def test_torch_pydnet_matches_onnxruntime_and_trains():
    import onnxruntime as ort

    from prodepth_cli.nets.pydnet import load_pydnet

    path = require(PYDNET)
    net = load_pydnet(path)
    rgb = scene_image(448, 640, seed=3).astype(np.float32)[None] / 255.0
    finest = "PSD/resize_images/ResizeBilinear"
    (want,) = ort.InferenceSession(str(path)).run([finest], {"im0": rgb})
    with torch.no_grad():
        got = net.eval()(torch.from_numpy(rgb).permute(0, 3, 1, 2))
    # float weights from int8 ones, and float32 sums in another order: 1e-5 of the range
    np.testing.assert_allclose(got.permute(0, 2, 3, 1).numpy(), want, atol=1e-5 * np.ptp(want))
    # any size that is a multiple of 64, and gradients reach the first convolution
    net.train()(torch.rand(2, 3, 128, 192)).mean().backward()
    first = next(p for p in net.parameters() if p.ndim == 4)
    assert first.grad is not None and float(first.grad.abs().sum()) > 0


def test_pydnet_start_takes_the_coarse_networks_place():
    """`arch: {"start": "pydnet"}` builds PyDNet++ behind the coarse network's contract:
    ImageNet-normalised input of any multiple of 32, disparity out at the input's size, and
    larger where PyDNet++ says nearer."""
    from prodepth_cli.nets import build_net
    from prodepth_cli.nets.pydnet import PyDNetCoarse

    require(PYDNET)
    net = build_net("coarse", {"start": "pydnet"}).eval()
    assert isinstance(net, PyDNetCoarse)
    rgb = torch.from_numpy(scene_image(128, 160, seed=1).astype(np.float32) / 255.0)
    image = (rgb.permute(2, 0, 1)[None] - net.mean) / net.std
    with torch.no_grad():
        disparity = net(image)
        depth = net.pydnet(
            torch.nn.functional.pad(rgb.permute(2, 0, 1)[None], (0, 32, 0, 0), mode="replicate")
        )
    assert disparity.shape == (1, 1, 128, 160)
    near, far = depth[..., :128, :160].flatten().argsort()[[0, -1]]
    assert disparity.flatten()[near] > disparity.flatten()[far]


def test_coordinate_channels_start_at_zero_weight():
    """With `coordinates`, the first convolution also sees the two coordinate channels (the
    layout prior our own coarse network learns from), their weights zero: the same answer
    as PyDNet++'s until training moves them."""
    from prodepth_cli.nets import build_net

    require(PYDNET)
    plain = build_net("coarse", {"start": "pydnet"}).eval()
    with_coordinates = build_net("coarse", {"start": "pydnet", "coordinates": True}).eval()
    image = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        torch.testing.assert_close(with_coordinates(image), plain(image))
