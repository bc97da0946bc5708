"""How well a synthesised right eye matches a real stereo pair's right image (Middlebury).

The pair's left image and its ground-truth disparity (pixels, larger = nearer) go in as a
photograph and its depth map; with `--synthetic-view right` and the divergence the map's
range implies (S = dmax - dmin pixels), the right eye moves each pixel by S * (n - c) =
(d - dmin) - S * c. The convergence is chosen so that this is d - k for the integer
k = ceil(dmin): c = (k - dmin) / S, a small positive number. The synthesised eye at column
u + k then shows what the real right image shows at u, exactly, with no resampling of either
image. (With c = 0 the offset would be dmin itself, a fraction of a pixel that the real image
would have to be interpolated by.)

The score is PSNR (8-bit peak) over the real right image's pixels seen by both cameras
(Middlebury 2014's `mask1nocc`; for 2005, where no such mask is given, those where a pixel of
known disparity landed), against the baseline of the left image moved by the single
horizontal offset that matches best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodepth_cli.gt import read_png_u, read_rgb
from prodepth_cli.io.depth_map import fill_invalid
from prodepth_cli.io.pfm import read_pfm
from prodepth_cli.stereo.render import eye_views
from prodepth_cli.stereo.shift import StereoOptions, stereo_disparity
from prodepth_cli.stereo.warp import warp_view


@dataclass(frozen=True)
class StereoPair:
    """A rectified pair: `left`, `right` `(H, W, 3)` uint8 RGB; `disparity` `(H, W)` float32
    pixels of the left image (x_right = x_left - d), `valid` where known; `right_seen`
    `(H, W)` bool, the right image's pixels the left camera sees too (None: not given)."""

    name: str
    left: np.ndarray
    right: np.ndarray
    disparity: np.ndarray
    valid: np.ndarray
    right_seen: np.ndarray | None = None

    def filled_map(self) -> np.ndarray:
        """The disparity with unknown pixels filled from their row's farther neighbour, as
        `prodepth` fills a map's invalid values: what goes in as `--depth`."""
        return fill_invalid(self.disparity, ~self.valid)


def middlebury2014_pair(folder: Path) -> StereoPair:
    """`im0.png`, `im1.png`, `disp0GT.pfm` (inf = unknown), `mask1nocc.png` (255 = seen by
    both cameras)."""
    disparity = read_pfm(folder / "disp0GT.pfm")
    valid = np.isfinite(disparity)
    seen = read_png_u(folder / "mask1nocc.png") == 255
    return StereoPair(
        folder.name,
        read_rgb(folder / "im0.png"),
        read_rgb(folder / "im1.png"),
        np.where(valid, disparity, 0).astype(np.float32),
        valid,
        seen,
    )


def middlebury2005_pair(folder: Path) -> StereoPair:
    """`view1.png`, `view5.png`, `disp1.png` (disparity x 3, 0 = unknown)."""
    raw = read_png_u(folder / "disp1.png")
    return StereoPair(
        folder.name,
        read_rgb(folder / "view1.png"),
        read_rgb(folder / "view5.png"),
        raw.astype(np.float32) / np.float32(3.0),
        raw > 0,
    )


def exact_options(disparity: np.ndarray, width: int) -> tuple[StereoOptions, int]:
    """(options, k): `--synthetic-view right` with the divergence and convergence that move
    each pixel of `disparity` (the filled map) by d - k exactly, k = ceil(dmin)."""
    lo, hi = float(disparity.min()), float(disparity.max())
    k = math.ceil(lo)
    options = StereoOptions(
        divergence=(hi - lo) / width * 100.0,
        convergence=(k - lo) / (hi - lo),
        synthetic_view="right",
    )
    return options, k


@dataclass(frozen=True)
class CheckResult:
    """PSNR (dB) of the synthesised right eye and of the best-shifted left image against the
    real right image, over `pixels` pixels; `offset` the baseline's shift in pixels."""

    name: str
    psnr_synthesised: float
    psnr_shifted_left: float
    offset: int
    pixels: int


def check_pair(pair: StereoPair, right_eye: np.ndarray | None = None) -> CheckResult:
    """Score the right eye synthesised from `pair.left` and its filled map (`exact_options`),
    or `right_eye` `(H, W, 3)` uint8 made elsewhere with those options (the CLI's output)."""
    disparity = pair.filled_map()
    h, w = disparity.shape
    options, k = exact_options(disparity, w)
    lo, hi = float(disparity.min()), float(disparity.max())
    left = pair.left.astype(np.float32) / 255.0
    if right_eye is None:
        right_eye = eye_views(left, disparity, lo, hi, options, ("right",))["right"]
        right_eye = (right_eye * 255.0 + 0.5).astype(np.uint8)
    # Where a pixel of known disparity landed (a hole, or an unknown pixel's, is not scored).
    known = np.dstack([left, pair.valid.astype(np.float32)])
    warped = warp_view(known, stereo_disparity(disparity, lo, hi, w, options), -1)
    landed = ~warped.hole & (warped.rgb[:, :, 3] > 0.999)
    # In the real right image's columns v: the synthesised eye's column is v + k.
    margin = math.ceil(hi) + 1
    v = slice(0, w - margin)
    mask = landed[:, k : k + w - margin]
    if pair.right_seen is not None:
        mask = mask & pair.right_seen[:, v]
    real = pair.right[:, v]
    synthesised = psnr(right_eye[:, k : k + w - margin], real, mask)
    scores = [psnr(pair.left[:, o : o + w - margin], real, mask) for o in range(margin)]
    best = int(np.argmax(scores))
    return CheckResult(pair.name, synthesised, scores[best], best, int(mask.sum()))


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    """PSNR in dB (peak 255) of uint8 images `a`, `b` `(H, W, 3)` over `mask` `(H, W)`."""
    diff = a[mask].astype(np.float64) - b[mask].astype(np.float64)
    mse = float(np.mean(diff * diff))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)
