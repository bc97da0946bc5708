"""A depth map as the height field a parallax video moves: levels 0 (farthest) .. 1 (nearest),
with the soft edges a model draws made steps, so the foreground's rim goes with it.

The 2-D form of stereo's `warp.snap_edges` (same thresholds, in pixels of shift): a ramp
across an object's edge is split between its two sides, so the opening behind the object is a
clean wall in the height field, not a slope whose colours the motion would stretch.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from prodepth_cli.stereo.warp import EDGE_JUMP_PX, NEAR_SHARE, RAMP_SLOPE


def map_levels(disparity: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """`(H, W)` disparity (larger = nearer, any units) of a map spanning [lo, hi] as levels
    `(H, W)` float32 in [0, 1], 1 the nearest; a flat map (hi = lo) is all 0."""
    if not hi > lo:
        return np.zeros(disparity.shape, np.float32)
    level = np.subtract(disparity, np.float32(lo), dtype=np.float32)
    level *= np.float32(1.0 / (hi - lo))
    return np.clip(level, 0.0, 1.0, out=level)


def snap_edges(level: np.ndarray, px_per_level: float, max_ramp: int) -> np.ndarray:
    """`(H, W)` levels whose soft depth edges are made steps.

    A pixel is on a ramp where the level changes faster than RAMP_SLOPE pixels of shift per
    pixel (`px_per_level`: the largest shift between levels 0 and 1 in the video); a ramp at
    most `max_ramp` px thick whose two sides, within `max_ramp` + 1 px, differ by more than
    EDGE_JUMP_PX of shift is split between them: a pixel in the ramp's farthest NEAR_SHARE
    takes the far side's level, the others the near side's (the near side gains most of the
    ramp, as iw3's edge dilation does: a map's edge lies inside the object's, and a rim left
    on the background would be a ghost outline). Thicker ramps are slanted surfaces and stay.
    """
    if max_ramp < 1 or px_per_level <= 0:
        return level
    gy, gx = np.gradient(level)
    slope = np.maximum(np.abs(gx), np.abs(gy)) * np.float32(px_per_level)
    steep = (slope > RAMP_SLOPE).astype(np.uint8)
    if not steep.any():
        return level
    r = max_ramp + 1
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    lo, hi = cv2.erode(level, disc), cv2.dilate(level, disc)
    # half the thickness of the steep zone around each pixel: a ramp w px thick is w / 2
    half = cv2.dilate(cv2.distanceTransform(steep, cv2.DIST_L2, 3), disc)
    snap = (
        steep.astype(bool)
        & ((hi - lo) * np.float32(px_per_level) > EDGE_JUMP_PX)
        & (half <= math.ceil(max_ramp / 2) + 0.5)
    )
    split = level - lo >= np.float32(NEAR_SHARE) * (hi - lo)
    return np.where(snap, np.where(split, hi, lo), level).astype(np.float32)
