"""The two networks fitted to a clip: a multi-scale depth net grown from our coarse network,
and a small pose net (two frames -> 6-DoF motion) trained from scratch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prodepth_cli.models.spec import IMAGENET_MEAN, IMAGENET_STD

# monodepth2's depth range: sigmoid s -> disparity 1/MAX_DEPTH + (1/MIN_DEPTH - 1/MAX_DEPTH) s
MIN_DEPTH, MAX_DEPTH = 0.1, 100.0
SCALES = 4  # decoder outputs used, at most; scale 0 is the finest
# Initial depth range the coarse net's relative disparity is mapped onto (arbitrary units:
# monocular fitting fixes depth only up to scale, the pose net's translations follow it).
_INIT_FAR, _INIT_NEAR = 40.0, 2.0


def sigmoid_to_depth(sigmoid: torch.Tensor) -> torch.Tensor:
    """Depth (same shape) of a sigmoid output, in [MIN_DEPTH, MAX_DEPTH]."""
    lo, hi = 1 / MAX_DEPTH, 1 / MIN_DEPTH
    return 1 / (lo + (hi - lo) * sigmoid)


def _depth_to_logit(depth: float) -> float:
    lo, hi = 1 / MAX_DEPTH, 1 / MIN_DEPTH
    s = (1 / depth - lo) / (hi - lo)
    return float(torch.logit(torch.tensor(s)))


class VideoDepthNet(nn.Module):
    """`image` `(B, 3, H, W)` RGB in [0, 1] -> up to SCALES sigmoid disparities `(B, 1, h, w)`
    at the decoder's levels, finest first (larger = nearer): strides 2, 4, 8, 16 for a
    `CoarseNet`, 1, 2, 4 for a `HEDCoarse` (the fit compares each at full resolution).

    The coarse network's encoder-decoder and head (its `stem`, `ups` and `head`: either
    network) are reused as they are; the head runs on
    every decoder level, so each scale starts from the pretrained prediction. A learnt
    scale and shift map the coarse net's affine-invariant output onto sigmoid logits.
    Batch norms keep the pretrained statistics: a batch of 2-4 frames of one clip would give
    noisy ones.
    """

    def __init__(self, coarse: nn.Module) -> None:
        super().__init__()
        self.coarse = coarse
        for m in coarse.modules():  # zero padding darkens the frame's edge: repeat it instead
            if isinstance(m, nn.Conv2d) and any(m.padding):
                m.padding_mode = "replicate"
        self.logit_scale = nn.Parameter(torch.tensor(1.0))
        self.logit_shift = nn.Parameter(torch.tensor(0.0))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True) -> VideoDepthNet:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def coarse_levels(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The coarse head's raw output on each decoder level, finest first."""
        x = (image - self.mean) / self.std
        net = self.coarse
        (y, skips), levels = net.stem(x), []
        for up, skip in zip(net.ups, reversed(skips), strict=True):
            y = up(y, skip)
            levels.append(net.head(y))
        return levels[::-1][:SCALES]

    def logits(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The sigmoid disparities' logits `(B, 1, h, w)`, finest first (see `forward`)."""
        return [level * self.logit_scale + self.logit_shift for level in self.coarse_levels(image)]

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        return [torch.sigmoid(logit) for logit in self.logits(image)]

    @torch.no_grad()
    def calibrate(self, images: torch.Tensor) -> None:
        """Set the logit scale and shift so that the coarse output's 2nd..98th percentiles
        over `images` span depths 40..2: a sensible start whatever the coarse range is."""
        raw = self.coarse_levels(images)[0].flatten()
        lo, hi = torch.quantile(raw, torch.tensor([0.02, 0.98])).tolist()
        far, near = _depth_to_logit(_INIT_FAR), _depth_to_logit(_INIT_NEAR)
        scale = (near - far) / max(hi - lo, 1e-6)
        self.logit_scale.fill_(scale)
        self.logit_shift.fill_(far - scale * lo)


class PoseNet(nn.Module):
    """Two frames `(B, 3, H, W)` each, RGB in [0, 1] -> axis-angle `(B, 3)` and translation
    `(B, 3)` of the motion from the first camera to the second (SfMLearner-style CNN).

    Outputs are scaled by 0.01 so the fit starts near zero motion (monodepth2)."""

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128, 256, 256)) -> None:
        super().__init__()
        layers, prev = [], 6
        for i, w in enumerate(widths):
            k = 7 if i == 0 else 5 if i == 1 else 3
            layers += [nn.Conv2d(prev, w, k, 2, k // 2), nn.ReLU(True)]
            prev = w
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(prev, 6, 1)

    def forward(self, first: torch.Tensor, second: torch.Tensor):
        x = torch.cat([first, second], 1) - 0.45
        motion = 0.01 * self.out(self.body(x)).mean((2, 3))
        return motion[:, :3], motion[:, 3:]


def upsample_to(disp: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """`(B, 1, h, w)` -> `(B, 1, H, W)` bilinear (every scale's loss runs at full size)."""
    return F.interpolate(disp, size=hw, mode="bilinear", align_corners=False)
