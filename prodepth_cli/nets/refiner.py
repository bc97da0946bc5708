"""The PRO refiner: sharpens one full-resolution tile, anchored to the coarse disparity."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from prodepth_cli.nets.blocks import Encoder, UpFuse, conv_bn_act


@dataclass(frozen=True)
class RefinerArch:
    """Widths of the five encoder stages (strides 2..32), decoder widths and stem width."""

    widths: list[int] = field(default_factory=lambda: [16, 32, 48, 64, 96])
    blocks: int = 1
    stem: int = 8


class RefinerNet(nn.Module):
    """Inputs: `image` (B, 3, H, W) ImageNet-normalised and `coarse` (B, 1, H, W), the coarse
    disparity crop upsampled to the tile, in the global frame where the whole image's coarse
    disparity spans [0, 1]. Output: refined disparity (B, 1, H, W) in that same frame:
    `coarse + residual`, so tiles need no per-tile fitting. H, W multiples of 32.
    """

    def __init__(self, arch: RefinerArch | None = None) -> None:
        super().__init__()
        a = arch or RefinerArch()
        self.arch = a
        self.stem = conv_bn_act(4, a.stem)
        self.encoder = Encoder(a.stem, a.widths, a.blocks)
        ups, prev = [], a.widths[-1]
        for skip in reversed(a.widths[:-1]):
            ups.append(UpFuse(prev, skip, skip))
            prev = skip
        self.ups = nn.ModuleList(ups)
        self.up_full = UpFuse(prev, a.stem, a.stem, convs=1)
        self.head = nn.Conv2d(a.stem, 1, 3, 1, 1)
        nn.init.zeros_(self.head.weight)  # start as the identity: refined == coarse
        nn.init.zeros_(self.head.bias)

    def forward(self, image: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        # the coarse frame is [0, 1]; centre it so the convolutions see a zero-mean signal
        x = self.stem(torch.cat([image, coarse * 2 - 1], 1))
        feats = self.encoder(x)
        y = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1]), strict=True):
            y = up(y, skip)
        y = self.up_full(y, x)
        return coarse + self.head(y)
