"""Per-frame depth made steady: each frame's map scaled and shifted onto the previous output
(brought onto it along the optical flow), then blended with it where they agree.

Maps are disparity (larger = nearer) in the shot's frame of reference: its first frame's
values. Everything here works at the flow size, on `(h, w)` float32 maps.

Why the fits are not simply chained: a camera moving forward brings near points nearer, so
their disparity grows from one frame to the next far more than that of distant ones; a map
fitted onto the frame before takes that for a change of scale and shrinks. Chained, the
shrinking compounds: on KITTI (10 Hz, 12 m/s) the maps lost 99 % of their contrast in 50
frames, and on the DAVIS roller coaster they gained 80 %. `Alignment` keeps the quick part of
the fits (exact from one frame to the next) and pulls them towards an estimate that cannot
drift: the affine that gives the map the shot's first map's median and spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

MIN_FIT_FRACTION = 0.02  # fewer trusted pixels than this: no fit (the anchor alone)
TRIM_SIGMAS = 2.5  # residuals beyond this many robust sigmas (1.4826 MAD) are left out
FIT_ROUNDS = 4  # fit, trim, refit: the trimmed set settles within a few rounds
MAX_SCALE_STEP = 2.0  # one frame's scale is within this factor of the previous frame's
# The weight of the fit onto the previous output in each frame's transform (`Alignment`); the
# rest is the statistics' anchor. Measured (jitter, with the maps' smallest 5th-95th
# percentile width over the clip against the first's): KITTI 0.0131 (0.95) at 0, 0.0091
# (0.75) at 0.5, 0.0040 (0.35) at 0.8; DAVIS 0.0090, 0.0082, 0.0082.
FOLLOW = 0.5
# Temporal filter: a trusted pixel keeps KEEP of the previous output where the two maps
# agree (an exponential window of about 1 / (1 - KEEP) frames); where they differ by far
# more than EDGE of the shot's range (`shots.shot_range`, twice its 1st-99th percentile
# width), something moved or an edge slid, and the current frame's value stands. Measured
# on KITTI with the shipped model (benchmarks/bench_video_consistency.py: jitter, TAE, rho):
# 0.75 / 0.08 gave 0.0203 / 0.086 / 0.671, 0.85 / 0.08 0.0186 / 0.086 / 0.671, 0.85 / 0.15
# 0.0123 / 0.087 / 0.670 (frame by frame: 0.0591 / 0.107 / 0.667).
KEEP = 0.85
EDGE = 0.15
# The previous output is carried forward with its trend (its change a frame, followed along
# the flow like the output, learnt at TREND a frame from what the prediction missed): a
# point the camera comes towards grows in disparity every frame, and the plain exponential
# window lagged behind it until the gap passed EDGE and the current frame stood, which left
# blotches where some pixels lagged and their neighbours did not (KITTI's near road, the
# DAVIS coaster's girders). The weight is softened over SOFTEN pixels (a Gaussian, at the
# flow size) so that where the filter lets go does not draw an edge. Measured with the
# shipped model (jitter / TAE / rho): KITTI 0.0123 / 0.087 / 0.670 without either,
# 0.0120 / 0.086 / 0.669 with both; DAVIS jitter 0.0072 and 0.0068; TREND 0.02: KITTI
# 0.0125, DAVIS 0.0073 (blotches fainter but there); 0.2: 0.0129, 0.0071.
TREND = 0.1
SOFTEN = 2.0


@dataclass(frozen=True)
class Affine:
    """`scale * disparity + shift`: a frame's map in the shot's frame of reference."""

    scale: float = 1.0
    shift: float = 0.0

    def __call__(self, disparity: np.ndarray) -> np.ndarray:
        return disparity * np.float32(self.scale) + np.float32(self.shift)


@dataclass(frozen=True)
class MapStatistics:
    """Where a map's values sit, robustly: its median and its 10th-90th percentile width."""

    centre: float
    spread: float

    @classmethod
    def of(cls, disparity: np.ndarray) -> MapStatistics:
        """The statistics of an `(h, w)` map."""
        p10, p50, p90 = (float(v) for v in np.percentile(disparity, (10, 50, 90)))
        return cls(p50, max(p90 - p10, 1e-12))

    def anchor(self, current: MapStatistics, with_shift: bool = True) -> Affine:
        """The affine that gives a map with `current` statistics these ones (without
        `with_shift`: the scale that matches the medians)."""
        if not with_shift:
            return Affine(self.centre / current.centre if current.centre else 1.0, 0.0)
        scale = self.spread / current.spread
        return Affine(scale, self.centre - scale * current.centre)


class Alignment:
    """The affine that takes each frame of a shot into the shot's frame of reference (its
    first map's values): a complementary filter of two estimates.

    The fit onto the previous output (`fit_affine`) is exact from one frame to the next but
    drifts when chained (see the module's note). The anchor (`MapStatistics.anchor`: the
    affine that gives the map the shot's first map's median and spread) drifts with nothing
    but jumps as content comes and goes. The transform is their weighted mean in log-scale
    and shift, `FOLLOW` of it the fit: what the chain would compound is pulled back towards
    the anchor every frame, so a steady trend (a camera going forward, r a frame) settles at
    r * FOLLOW / (1 - FOLLOW) rather than compounding, and a flicker, which both estimates
    undo, is gone.
    """

    def __init__(self, reference: MapStatistics, with_shift: bool = True) -> None:
        self.reference = reference
        self.with_shift = with_shift
        self.transform = Affine()  # of the frame last updated

    def update(self, fit: Affine | None, current: MapStatistics) -> Affine:
        """This frame's transform, given `fit` (this frame's map onto the previous output;
        None when the flow lost too much: the anchor alone) and the statistics of this
        frame's map."""
        anchor = self.reference.anchor(current, self.with_shift)
        if fit is None:
            self.transform = anchor
            return anchor
        scale = FOLLOW * math.log(fit.scale) + (1 - FOLLOW) * math.log(anchor.scale)
        shift = FOLLOW * fit.shift + (1 - FOLLOW) * anchor.shift
        self.transform = Affine(math.exp(scale), shift)
        return self.transform


def fit_affine(
    current: np.ndarray,
    reference: np.ndarray,
    trusted: np.ndarray,
    with_shift: bool = True,
    previous: Affine | None = None,
) -> Affine | None:
    """The `Affine` that takes `current` onto `reference` over the `trusted` pixels (all
    `(h, w)`), robustly: fitted, residuals beyond `TRIM_SIGMAS` robust sigmas dropped,
    refitted. Without `with_shift` the scale only (metric maps).

    The scale is the ratio of the two maps' spreads (a symmetric fit), not least squares'
    slope: that shrinks by the share of `current`'s variance that is noise, and compounded
    frame after frame (each frame is fitted to the one before) the shot's contrast would
    fade. `previous` (the frame before's fit) bounds the scale to `MAX_SCALE_STEP` of it.
    None when too few pixels are trusted or the maps do not rise together.
    """
    if trusted.sum() < max(MIN_FIT_FRACTION * trusted.size, 16):
        return None
    x = current[trusted].astype(np.float64)
    y = reference[trusted].astype(np.float64)
    keep = np.ones(x.shape, bool)
    fit = None
    for _ in range(FIT_ROUNDS):
        xs, ys = x[keep], y[keep]
        fit = _moments_fit(xs, ys, with_shift)
        if fit is None:
            return None
        if previous is not None:
            fit = _bounded(fit, previous, xs, ys, with_shift)
        residual = np.abs(fit.scale * x + fit.shift - y)
        sigma = 1.4826 * float(np.median(residual[keep]))
        trimmed = residual <= TRIM_SIGMAS * max(sigma, 1e-12)
        if trimmed.sum() < 16 or np.array_equal(trimmed, keep):
            break
        keep = trimmed
    return fit


def _moments_fit(x: np.ndarray, y: np.ndarray, with_shift: bool) -> Affine | None:
    if not with_shift:
        sx, sy = float(np.mean(x * x)), float(np.mean(y * y))
        if sx <= 0 or np.mean(x * y) <= 0:
            return None
        return Affine(float(np.sqrt(sy / sx)), 0.0)
    mx, my = float(x.mean()), float(y.mean())
    dx, dy = x - mx, y - my
    vx, vy = float(np.mean(dx * dx)), float(np.mean(dy * dy))
    if vx <= 0 or np.mean(dx * dy) <= 0:
        return None
    scale = float(np.sqrt(vy / vx))
    return Affine(scale, my - scale * mx)


def _bounded(fit: Affine, previous: Affine, x: np.ndarray, y: np.ndarray, shift: bool) -> Affine:
    """`fit` with its scale held within `MAX_SCALE_STEP` of `previous`'s (the shift refitted
    for a clamped scale)."""
    lo, hi = previous.scale / MAX_SCALE_STEP, previous.scale * MAX_SCALE_STEP
    if lo <= fit.scale <= hi:
        return fit
    scale = min(max(fit.scale, lo), hi)
    return Affine(scale, float(np.median(y - scale * x)) if shift else 0.0)


def blend_weight(
    current: np.ndarray, previous: np.ndarray, trusted: np.ndarray, range_width: float
) -> np.ndarray:
    """`(h, w)` float32 weight of `current` in the output (the rest: `previous`, the last
    output brought onto this frame): `1 - KEEP` where the two agree on a trusted pixel,
    rising to 1 as they differ by more than `EDGE * range_width` (`range_width`: the shot's
    hi - lo), 1 on untrusted pixels (occluded, out of frame, flow lost); softened over
    `SOFTEN` pixels."""
    gap = (current - previous) / np.float32(max(EDGE * range_width, 1e-12))
    keep = np.float32(KEEP) * np.exp(-(gap**2))
    weight = np.where(trusted, 1 - keep, np.float32(1)).astype(np.float32)
    return cv2.GaussianBlur(weight, (0, 0), SOFTEN)


def temporal_filter(
    current: np.ndarray,
    previous: np.ndarray,
    trend: np.ndarray | None,
    trusted: np.ndarray,
    range_width: float,
) -> tuple[np.ndarray, np.ndarray]:
    """One frame of the temporal filter: `(correction, trend)`, the output being `current
    + correction` and `trend` what the next frame carries forward.

    current: this frame's aligned map; previous: the last output and trend: its trend,
    both brought onto this frame along the flow (None: no trend yet, at a shot's start or
    where a rerun resumed); trusted: the pixels the flow follows. The prediction (previous
    + trend) is blended with the current map (`blend_weight`); the trend learns `TREND` of
    what the prediction missed, and is dropped where the current frame stands (a new
    surface has no past)."""
    carried = np.where(trusted, trend, np.float32(0)) if trend is not None else 0 * previous
    predicted = previous + carried
    weight = blend_weight(current, predicted, trusted, range_width)
    followed = (1 - weight) / np.float32(KEEP)  # 1 where they agree, 0 where current stands
    missed = current - predicted
    return (1 - weight) * -missed, ((carried + np.float32(TREND) * missed) * followed)
