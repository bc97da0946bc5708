"""The coarse network: a small encoder-decoder for whole-image relative disparity."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from prodepth_cli.nets.blocks import Encoder, UpFuse, coordinate_channels


@dataclass(frozen=True)
class CoarseArch:
    """Widths of the five encoder stages (strides 2..32) and the decoder width."""

    widths: list[int] = field(default_factory=lambda: [24, 40, 64, 96, 128])
    blocks: int = 1
    decoder: int = 40


class CoarseNet(nn.Module):
    """`image` (B, 3, H, W), ImageNet-normalised, H and W multiples of 32 -> relative disparity
    (B, 1, H, W), larger = nearer, known up to scale and shift (affine-invariant).

    Coordinate channels let the network learn layout priors (the ground is nearer at the
    bottom) that a purely translation-invariant CNN cannot.
    """

    def __init__(self, arch: CoarseArch | None = None) -> None:
        super().__init__()
        a = arch or CoarseArch()
        self.arch = a
        self.encoder = Encoder(3 + 2, a.widths, a.blocks)
        ups, prev = [], a.widths[-1]
        for skip in reversed(a.widths[:-1]):
            ups.append(UpFuse(prev, skip, a.decoder))
            prev = a.decoder
        self.ups = nn.ModuleList(ups)
        self.head = nn.Conv2d(a.decoder, 1, 3, 1, 1)

    def stem(self, image: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The deepest features and the skips, finest first, that `ups` decode."""
        feats = self.encoder(torch.cat([image, coordinate_channels(image)], 1))
        return feats[-1], feats[:-1]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        y, skips = self.stem(image)
        for up, skip in zip(self.ups, reversed(skips), strict=True):
            y = up(y, skip)
        # predicted at stride 2: the coarse pass is upsampled to full resolution anyway
        y = self.head(y)
        return F.interpolate(y, size=image.shape[-2:], mode="bilinear", align_corners=False)
