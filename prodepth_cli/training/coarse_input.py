"""The refiner's `coarse` input: a whole-image coarse disparity in the global [0, 1] frame.

At inference it is the coarse network's output, min-max normalised over the image. In
training it is either that (from a coarse checkpoint) or simulated from the ground truth:
downsampled, hole-filled, warped by smooth low-frequency errors, and blurred back up, which
is what a small coarse network gets wrong. The target is then the ground truth fitted onto
that frame by least squares, so the refiner learns to keep the frame and add detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from prodepth_cli.models.runtime import Network, load_model, pass_hw
from prodepth_cli.nets import INPUT_MULTIPLE
from prodepth_cli.training.checkpoint import load_checkpoint, net_from_checkpoint
from prodepth_cli.training.tensors import image_tensor


def minmax_frame(disp: np.ndarray) -> np.ndarray:
    """`disp` mapped linearly so that it spans [0, 1] (the frame the refiner works in)."""
    lo, hi = float(disp.min()), float(disp.max())
    return ((disp - lo) / max(hi - lo, 1e-9)).astype(np.float32)


def fill_holes_lowres(disp: np.ndarray, mask: np.ndarray, factor: int) -> np.ndarray:
    """Masked average at 1/`factor` resolution, holes filled by growing neighbours, returned at
    that low resolution `(H/factor, W/factor)`."""
    h, w = disp.shape
    size = (max(1, w // factor), max(1, h // factor))
    m = mask.astype(np.float32)
    num = cv2.resize(disp * m, size, interpolation=cv2.INTER_AREA)
    den = cv2.resize(m, size, interpolation=cv2.INTER_AREA)
    low = np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0).astype(np.float32)
    known = den > 1e-3
    if not known.any():
        return np.zeros(size[::-1], np.float32)
    for _ in range(64):
        if known.all():
            break
        s = cv2.blur(low * known, (3, 3))
        c = cv2.blur(known.astype(np.float32), (3, 3))
        grow = ~known & (c > 0)
        low[grow] = s[grow] / c[grow]
        known |= grow
    return np.where(known, low, low[known].mean())


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, cells: int) -> np.ndarray:
    """A smooth random field in [-1, 1] of `shape` from a `cells` x `cells` grid."""
    grid = rng.uniform(-1, 1, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, shape[::-1], interpolation=cv2.INTER_CUBIC)


def simulate_coarse(disp: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible coarse-network output for ground truth `disp` `(H, W)` (larger = nearer),
    `(H, W)` float32 in the [0, 1] frame."""
    h, w = disp.shape
    d = disp / max(float(np.percentile(disp[mask], 99)) if mask.any() else 1.0, 1e-9)
    factor = int(rng.choice([4, 8, 16]))
    low = fill_holes_lowres(d.astype(np.float32), mask, factor)
    low = np.clip(low, 0, None) ** rng.uniform(0.75, 1.3)  # monotone range distortion
    low = low * (1 + 0.15 * smooth_field(low.shape, rng, 3))
    low = low + 0.05 * float(np.ptp(low)) * smooth_field(low.shape, rng, 4)
    low = cv2.GaussianBlur(low, (0, 0), rng.uniform(0.5, 1.5))
    up = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
    return minmax_frame(up)


def target_in_frame(disp: np.ndarray, mask: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """Ground truth `disp` fitted by least squares (over the whole image's mask) onto the
    frame of `coarse`; `(H, W)` float32. Masked pixels keep the fitted value (ignored)."""
    g = disp[mask].astype(np.float64)
    c = coarse[mask].astype(np.float64)
    if g.size < 2:
        return coarse.copy()
    a = np.stack([g, np.ones_like(g)], 1)
    (s, t), *_ = np.linalg.lstsq(a, c, rcond=None)
    if s <= 0:  # the coarse map has the depth order backwards: no frame to keep, use GT's
        lo, hi = float(g.min()), float(g.max())
        s, t = 1.0 / max(hi - lo, 1e-9), -lo / max(hi - lo, 1e-9)
    return (s * disp + t).astype(np.float32)


@dataclass(frozen=True)
class CoarsePass:
    """The coarse network that gives the refiner its inputs (PRO's way), run as the
    pipeline's coarse pass runs it: the image's short side at the size it trained at."""

    net: nn.Module
    side: int

    @classmethod
    def load(cls, source: str | Path, device: str, threads: int = 1) -> CoarsePass | OnnxCoarsePass:
        """The coarse pass of a `.pt` checkpoint, else of an ONNX model: a file or a catalog
        name (`OnnxCoarsePass`)."""
        checkpoint = Path(source)
        if checkpoint.suffix.lower() != ".pt":
            return OnnxCoarsePass.load(source, threads)
        state = load_checkpoint(checkpoint)
        return cls(net_from_checkpoint(state).to(device), state["config"]["size"])

    @torch.no_grad()
    def disparity(self, rgb: np.ndarray, device: str) -> np.ndarray:
        """The refiner's `coarse` input for `rgb`: `(H, W)`, min-max normalised to [0, 1]."""
        h, w = rgb.shape[:2]
        sh, sw = pass_hw(h, w, self.side, INPUT_MULTIPLE)
        small = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_AREA)
        pred = self.net(image_tensor([small]).to(device))[0, 0].cpu().numpy()
        return minmax_frame(cv2.resize(pred, (w, h), interpolation=cv2.INTER_LINEAR))


@dataclass(frozen=True)
class OnnxCoarsePass:
    """An ONNX coarse model giving the refiner its inputs exactly as the pipeline's coarse
    pass does (`pipeline.coarse_disparity`, onnxruntime on the CPU): for a refiner meant to
    run on a model that has no checkpoint, such as the shipped ensemble or a public model."""

    net: Network

    @classmethod
    def load(cls, model: str | Path, threads: int) -> OnnxCoarsePass:
        """An ONNX file or catalog name, with its spec as `prodepth depth` would run it."""
        return cls(load_model(model, "cpu", threads=threads).tile_net)

    def disparity(self, rgb: np.ndarray, device: str) -> np.ndarray:
        """The refiner's `coarse` input for `rgb` `(H, W, 3)` in [0, 1]: `(H, W)` in [0, 1]."""
        from prodepth_cli.pipeline import coarse_disparity

        h, w = rgb.shape[:2]
        coarse = coarse_disparity(lambda side: rgb, (h, w), self.net)
        return minmax_frame(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR))
