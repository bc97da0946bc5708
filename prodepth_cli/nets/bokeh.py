"""The phone bokeh network: a small fully-convolutional encoder-decoder (MAI 2022 style).

Input `(B, 4, H, W)`: sRGB in [0, 1] and the signed circle of confusion in network pixels
divided by `COC_SCALE`; output `(B, 3, H, W)` sRGB. H and W must be multiples of 16. The
decoder picks, per pixel, a softmax mix of an average-pooled image pyramid (levels 1 to
1/16, the blur the CoC asks for; the CoC alone gives the prior choice, the network corrects
it) plus a small residual for what a pyramid cannot do (disc edges, occlusion). Ops: conv,
ReLU, average pooling, bilinear resize, softmax, abs, log, maximum, add/sub/mul, concat —
all run by the TFLite GPU delegate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

COC_SCALE = 32.0  # CoC (network px) / COC_SCALE is the fourth input channel
PRIOR_SHARPNESS = 4.0  # how firmly the CoC alone picks a pyramid level (logit per level^2)
FRAME_HW = (1024, 1536)  # the fixed size the TFLite model is exported at (landscape)


@dataclass(frozen=True)
class BokehArch:
    """Channel widths of the four encoder stages (strides 2, 4, 8, 16)."""

    widths: tuple[int, ...] = (12, 24, 32, 48)
    head: int = 8


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.ReLU(inplace=True))


class BokehNet(nn.Module):
    """`(B, 4, H, W)` image + CoC -> `(B, 3, H, W)` shallow-depth-of-field image."""

    def __init__(self, arch: BokehArch = BokehArch()) -> None:
        super().__init__()
        self.arch = arch
        w = arch.widths
        self.levels = len(w) + 1  # the image and its pools at strides 2 .. 16
        chans = [4, *w]
        # one conv at stride 2 (the costly full-size end), two at the coarser strides
        self.down = nn.ModuleList(
            nn.Sequential(_conv(chans[i], chans[i + 1], 2), _conv(chans[i + 1], chans[i + 1]))
            if i
            else _conv(chans[i], chans[i + 1], 2)
            for i in range(len(w))
        )
        self.bottom = _conv(w[-1], w[-1])
        self.up = nn.ModuleList(_conv(w[i + 1] + w[i], w[i]) for i in reversed(range(len(w) - 1)))
        self.head = nn.Sequential(
            _conv(w[0] + 4, arch.head), nn.Conv2d(arch.head, self.levels + 3, 1)
        )
        nn.init.zeros_(self.head[-1].weight)  # start as the CoC prior's pyramid renderer
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = x[:, :3]
        feats, f = [], x
        for stage in self.down:
            f = stage(f)
            feats.append(f)
        f = self.bottom(f)
        for conv, skip in zip(self.up, reversed(feats[:-1]), strict=True):
            f = conv(torch.cat([_resize_like(f, skip), skip], dim=1))
        out = self.head(torch.cat([_resize_like(f, x), x], dim=1))
        weights = torch.softmax(out[:, : self.levels] + self._level_prior(x[:, 3:4]), dim=1)
        blurred = weights[:, :1] * rgb
        pooled = rgb
        for k in range(1, self.levels):
            pooled = F.avg_pool2d(pooled, 2)
            blurred = blurred + weights[:, k : k + 1] * _resize_like(pooled, x)
        return blurred + out[:, self.levels :]

    def _level_prior(self, coc: torch.Tensor) -> torch.Tensor:
        """Logits that pick the pyramid level whose blur matches the CoC: pooling by 2^k
        then bilinear upsampling has about the spread of a disc of radius 2^k / 1.2, so
        the level is log2(1.2 r), 0 for r under 0.83 px (in focus: the image itself). The
        learned logits only correct this (occlusion, disc shape), so the network starts as
        a sensible renderer and keeps in-focus pixels sharp."""
        radius = torch.abs(coc) * COC_SCALE
        level = torch.log(torch.clamp(radius * 1.2, min=1.0)) * (1.0 / math.log(2.0))
        ks = torch.arange(self.levels, dtype=coc.dtype, device=coc.device).view(1, -1, 1, 1)
        off = ks - level
        return off * off * -PRIOR_SHARPNESS  # mul, not pow: plain GPU-delegate ops


def _resize_like(t: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return F.interpolate(t, size=ref.shape[-2:], mode="bilinear", align_corners=False)


def nhwc_predictor(net: BokehNet):
    """`net` as a frame predictor like the TFLite model's: `(1, H, W, 4)` float32 NHWC ->
    `(1, H, W, 3)` (for `bokeh.tflite.NetRenderer`)."""

    def predict(x):
        with torch.no_grad():
            y = net(torch.from_numpy(x).permute(0, 3, 1, 2))
        return y.permute(0, 2, 3, 1).numpy()

    return predict
