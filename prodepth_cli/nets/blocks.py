"""Convolution blocks shared by the coarse network and the PRO refiner."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_act(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU6 (quantisation- and export-friendly)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU6(True)
    )


class ResBlock(nn.Module):
    """Two 3x3 convolutions with an identity shortcut; keeps (B, C, H, W)."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c, c, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c),
            nn.ReLU6(True),
            nn.Conv2d(c, c, 3, 1, 1, bias=False),
            nn.BatchNorm2d(c),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(x + self.body(x))


class Encoder(nn.Module):
    """Strided stages: `(B, C0, H, W)` -> features at strides 2, 4, ... 2**len(widths)."""

    def __init__(self, c_in: int, widths: list[int], blocks: int = 1) -> None:
        super().__init__()
        stages, prev = [], c_in
        for w in widths:
            stages.append(
                nn.Sequential(conv_bn_act(prev, w, 2), *[ResBlock(w) for _ in range(blocks)])
            )
            prev = w
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


class UpFuse(nn.Module):
    """Upsample x2 (bilinear), concatenate the skip, fuse with two 3x3 convolutions."""

    def __init__(self, c_low: int, c_skip: int, c_out: int, convs: int = 2) -> None:
        super().__init__()
        layers = [conv_bn_act(c_low + c_skip, c_out)]
        layers += [conv_bn_act(c_out, c_out) for _ in range(convs - 1)]
        self.fuse = nn.Sequential(*layers)

    def forward(self, low: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(low, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([up, skip], 1))


def coordinate_channels(x: torch.Tensor) -> torch.Tensor:
    """`(B, 2, H, W)` normalised column and row coordinates in [-1, 1] for `x` (B, C, H, W).

    Built from the input's own shape with arithmetic, so the ONNX graph stays dynamic.
    """
    b, _, h, w = x.shape
    ones = torch.ones_like(x[:, :1])
    xs = torch.cumsum(ones, dim=3) - 1
    ys = torch.cumsum(ones, dim=2) - 1
    xs = xs / (xs[:, :, :, -1:] + 1e-6) * 2 - 1
    ys = ys / (ys[:, :, -1:, :] + 1e-6) * 2 - 1
    return torch.cat([xs, ys], 1)
