"""The PRO refiner: sharpens one full-resolution tile, anchored to the coarse disparity."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from prodepth_cli.nets.blocks import Encoder, UpFuse, conv_bn_act


@dataclass(frozen=True)
class RefinerArch:
    """Widths of the five encoder stages (strides 2..32), decoder widths and stem width."""

    widths: list[int] = field(default_factory=lambda: [16, 32, 48, 64, 96])
    blocks: int = 1
    stem: int = 8
    convex: bool = False  # output a learned convex combination of shifted coarse values
    cells: tuple[int, ...] = (8, 32)  # convex: pooling cells whose 3x3 neighbours are offered


def shifted_neighbours(low: torch.Tensor) -> torch.Tensor:
    """`(B, 1, h, w)` -> `(B, 9, h, w)`: the map and its eight 1-cell shifts (edge-replicated).

    Slices use only offsets from the ends, so the ONNX graph keeps dynamic height and width.
    """
    p = F.pad(low, (1, 1, 1, 1), mode="replicate")
    return torch.cat(
        [
            p[:, :, dy : (dy - 2) or None, dx : (dx - 2) or None]
            for dy in range(3)
            for dx in range(3)
        ],
        1,
    )


def convex_candidates(coarse: torch.Tensor, cells: tuple[int, ...]) -> torch.Tensor:
    """`(B, 1 + 9 * len(cells), H, W)`: the coarse map itself, then for each cell size c the
    3x3 neighbourhood of its c x c average-pooled version, each cell's values spread over its
    pixels. Picking among them lets the refiner snap a blurred ramp to the value on the
    correct side of an image edge, up to c pixels away."""
    out = [coarse]
    for c in cells:
        low = F.avg_pool2d(coarse, c)
        out.append(F.interpolate(shifted_neighbours(low), scale_factor=float(c), mode="nearest"))
    return torch.cat(out, 1)


class RefinerNet(nn.Module):
    """Inputs: `image` (B, 3, H, W) ImageNet-normalised and `coarse` (B, 1, H, W), the coarse
    disparity crop upsampled to the tile, in the global frame where the whole image's coarse
    disparity spans [0, 1]. Output: refined disparity (B, 1, H, W) in that same frame:
    `coarse + residual`, so tiles need no per-tile fitting. H, W multiples of 32.

    With `arch.convex`, the output is a per-pixel softmax-weighted choice among shifted,
    pooled copies of `coarse` (see `convex_candidates`) plus a small residual: sharp depth
    edges come from choosing, not from regressing a large step.
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
        n_cand = 1 + 9 * len(a.cells) if a.convex else 0
        self.head = nn.Conv2d(a.stem, 1 + n_cand, 3, 1, 1)
        nn.init.zeros_(self.head.weight)  # start as the identity: refined == coarse
        nn.init.zeros_(self.head.bias)
        if a.convex:
            with torch.no_grad():
                self.head.bias[1] = 8.0  # softmax weight ~0.99 on the coarse map itself

    def forward(self, image: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        # the coarse frame is [0, 1]; centre it so the convolutions see a zero-mean signal
        x = self.stem(torch.cat([image, coarse * 2 - 1], 1))
        feats = self.encoder(x)
        y = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1]), strict=True):
            y = up(y, skip)
        y = self.head(self.up_full(y, x))
        if not self.arch.convex:
            return coarse + y
        weights = torch.softmax(y[:, 1:], 1)
        picked = (weights * convex_candidates(coarse, self.arch.cells)).sum(1, keepdim=True)
        return picked + y[:, :1]
