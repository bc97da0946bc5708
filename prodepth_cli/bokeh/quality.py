"""Measures of a bokeh render: sharpness kept or removed by region, PSNR and SSIM.

Shared by the tests, the benchmark and the network's validation so that every figure about
bokeh quality is computed one way.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


def laplacian_energy(rgb: np.ndarray, mask: np.ndarray) -> float:
    """Mean |Laplacian| of the luma of `(H, W, 3)` float [0, 1] over the `(H, W)` bool mask."""
    grey = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)
    return float(np.abs(cv2.Laplacian(grey, cv2.CV_32F, ksize=1))[mask].mean())


@dataclass(frozen=True)
class FocusRegions:
    """Where a render must stay sharp (`focus`) and where it must blur (`far`), `(H, W)`."""

    focus: np.ndarray
    far: np.ndarray


def focus_regions(
    disparity: np.ndarray, focus: float, band: float = 0.03, far_share: float = 0.25
) -> FocusRegions:
    """In-focus pixels (|d - focus| within `band` of the disparity range) and far pixels (the
    farthest `far_share` of the range), both eroded by 3 px so that no depth edge, where
    either side's blur legitimately reaches, enters the measure."""
    lo, hi = np.percentile(disparity, [1, 99])
    span = hi - lo
    kernel = np.ones((7, 7), np.uint8)
    near = (np.abs(disparity - focus) <= band * span).astype(np.uint8)
    far = (disparity <= lo + far_share * span).astype(np.uint8)
    return FocusRegions(cv2.erode(near, kernel) > 0, cv2.erode(far, kernel) > 0)


def sharpness_kept(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the mean |Laplacian| in `mask` that survives from `before` to `after`."""
    return laplacian_energy(after, mask) / max(laplacian_energy(before, mask), 1e-12)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR (dB) of two float images in [0, 1]."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * np.log10(1.0 / max(mse, 1e-12))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of the luma of two float RGB images in [0, 1] (Gaussian window, sigma 1.5)."""
    x = cv2.cvtColor(a.astype(np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(b.astype(np.float32), cv2.COLOR_RGB2GRAY).astype(np.float64)
    c1, c2 = 0.01**2, 0.03**2

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())
