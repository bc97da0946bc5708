"""The lens model: circle of confusion from disparity, and the f-number -> blur scale K.

A thin lens focused at disparity d_f (d ∝ 1/z) blurs a point at disparity d into a disc of
radius r = K·|d - d_f| on the sensor, K growing with focal length and with 1/N (BOKEH.md).
prodepth's depth maps are relative, so d is first normalised to [0, 1] over the image (robust
1st..99th percentiles: 0 = farthest, 1 = nearest) and K is expressed in output pixels per unit
of normalised disparity.

Calibration of K: `K = REFERENCE_BLUR · long_side · (REFERENCE_F_NUMBER / N)`. At f/2 a point
at the far end of the depth range, with the focus on the nearest subject, becomes a disc of
radius 2 % of the image's long side: what a ~70 mm (full-frame equivalent) portrait lens at
f/2 does to a distant background behind a subject 2 m away (disc diameter f²/(N·(s - f)) ≈
1.3 mm on a 36 mm frame). Halving N doubles the blur, as on a real lens.
"""

from __future__ import annotations

import numpy as np

from prodepth_cli.errors import OptionError

REFERENCE_F_NUMBER = 2.0
REFERENCE_BLUR = 0.02  # disc radius / long side, at f/2, for a full unit of disparity
DEFAULT_F_NUMBER = 2.0


def blur_scale(f_number: float, height: int, width: int) -> float:
    """K: circle-of-confusion radius in pixels per unit of normalised disparity."""
    if not np.isfinite(f_number) or f_number <= 0:
        raise OptionError(f"--f-number {f_number}: expected a positive number, e.g. 2.8")
    return REFERENCE_BLUR * max(height, width) * REFERENCE_F_NUMBER / f_number


def disparity_range(disparity: np.ndarray) -> tuple[float, float]:
    """(lo, hi): the 1st and 99th percentiles of the finite values of `(H, W)` disparity,
    the span mapped to [0, 1] (robust to a few outliers)."""
    finite = disparity[np.isfinite(disparity)]
    step = max(1, finite.size // 1_000_000)  # a subsample is exact enough for percentiles
    lo, hi = np.percentile(finite[::step], [1.0, 99.0]) if finite.size else (0.0, 1.0)
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        hi = lo + 1.0  # a flat map: everything at one depth, nothing blurs
    return float(lo), float(hi)


def normalise_disparity(disparity: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """`(H, W)` disparity in its own units -> float32 with lo -> 0 (far), hi -> 1 (near),
    clipped to [0, 1]: the 1 % beyond either percentile (often a model's wild values near
    the sky or the lens) take the blur of the range's ends."""
    d01 = (disparity.astype(np.float32) - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(d01, 0.0, 1.0, out=d01)


def signed_coc(disparity01: np.ndarray, focus01: float, k: float) -> np.ndarray:
    """Signed circle-of-confusion radius in pixels, `(H, W)` float32: K·(d - d_f).

    Positive in front of the focal plane (foreground), negative behind it; |value| is the
    disc radius.
    """
    return (np.float32(k) * (disparity01 - np.float32(focus01))).astype(np.float32)
