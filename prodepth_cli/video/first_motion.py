"""A first guess of the camera motion between consecutive frames, for a fit that starts
from known depth: rotation and direction of travel from tracked corners (OpenCV's essential
matrix), the length of the step from the start depth.

Without it a fresh pose net starts at no motion, and the photometric loss first explains
the clip by pushing every depth to the far bound (nothing moves): the cold start passes
through that collapse and needs a thousand steps to climb out. With the depth known up to
the fit's scale, the step length in those units is the one that carries the tracked corners
where they go, and the pose net then only learns corrections.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from prodepth_cli.video.cuts import Shots

_CORNERS = 400
_MIN_TRACKS = 20  # fewer: no guess (identity), the pose net starts as in a cold start
_ROUND_TRIP_PX = 1.0  # a track kept only when tracking back lands this close to its start
_STEP_RANGE = (1e-4, 1.0)  # step length searched, as a fraction of the median depth


def first_motions(
    rgb: np.ndarray,
    depth_of: Callable[[int], np.ndarray],
    k: np.ndarray,
    shots: Shots | None = None,
) -> np.ndarray:
    """`(N-1, 4, 4)` motions `T_i_to_i+1` of a clip `(N, h, w, 3)` uint8 (memory-mapped is
    fine: read a pair at a time) whose depth is known: `depth_of(i)`, `(h, w)` in the fit's
    units; k: `(3, 3)` intrinsics at this size. A pair without enough texture to track, or
    too little parallax to say where it went, gets the identity; so does a pair across a cut
    of `shots` (None: one shot), unrelated frames, whose motion no triplet asks for."""
    motions = np.tile(np.eye(4), (len(rgb) - 1, 1, 1))
    shots = shots or Shots(len(rgb))
    grey = cv2.cvtColor(np.asarray(rgb[0]), cv2.COLOR_RGB2GRAY)
    for i in range(len(rgb) - 1):
        nxt = cv2.cvtColor(np.asarray(rgb[i + 1]), cv2.COLOR_RGB2GRAY)
        if not shots.cut_before(i + 1):
            found = _pair_motion(grey, nxt, np.asarray(depth_of(i), np.float64), k)
            if found is not None:
                motions[i] = found
        grey = nxt
    return motions


def steadied_steps(motions: np.ndarray, sigma: float, shots: Shots | None = None) -> np.ndarray:
    """`motions` `(N-1, 4, 4)` with each step's length smoothed over time within its shot (a
    Gaussian of `sigma` steps over the log lengths; 0: as they are). A pair with no guess
    (the identity) or across a cut keeps its own and counts for none."""
    if sigma <= 0:
        return motions
    steadied = motions.copy()
    lengths = np.linalg.norm(motions[:, :3, 3], axis=1)
    for frames in (shots or Shots(len(motions) + 1)).ranges:
        pairs = np.arange(frames.start, frames.stop - 1)
        moving = pairs[lengths[pairs] > 0]
        if len(moving) < 2:
            continue
        t = moving.astype(np.float64)
        weights = np.exp(-0.5 * ((t[:, None] - t[None]) / sigma) ** 2)
        smooth = np.exp(weights @ np.log(lengths[moving]) / weights.sum(1))
        steadied[moving, :3, 3] *= (smooth / lengths[moving])[:, None]
    return steadied


def _tracks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corners of grey `a` and where they are in `b` (`(M, 2)` each), round-trip checked."""
    corners = cv2.goodFeaturesToTrack(a, _CORNERS, 0.01, 5)
    if corners is None:
        return np.empty((0, 2)), np.empty((0, 2))
    there, ok, _ = cv2.calcOpticalFlowPyrLK(a, b, corners, None)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(b, a, there, None)
    round_trip = np.linalg.norm((back - corners).reshape(-1, 2), axis=1)
    keep = ok[:, 0].astype(bool) & ok_back[:, 0].astype(bool) & (round_trip < _ROUND_TRIP_PX)
    return corners.reshape(-1, 2)[keep].astype(np.float64), there.reshape(-1, 2)[keep]


def _pair_motion(a: np.ndarray, b: np.ndarray, depth: np.ndarray, k: np.ndarray):
    """`(4, 4)` `T_a_to_b` or None when the pair gives no reliable estimate."""
    p0, p1 = _tracks(a, b)
    if len(p0) < _MIN_TRACKS:
        return None
    e, inliers = cv2.findEssentialMat(p0, p1, k, cv2.RANSAC, 0.999, 1.0)
    if e is None or e.shape[0] < 3:
        return None
    _, r, direction, inliers = cv2.recoverPose(e[:3], p0, p1, k, mask=inliers)
    keep = inliers[:, 0] > 0
    if keep.sum() < _MIN_TRACKS:
        return None
    p0, p1 = p0[keep], p1[keep]
    h, w = depth.shape
    cols = np.clip(np.round(p0[:, 0]).astype(int), 0, w - 1)
    rows = np.clip(np.round(p0[:, 1]).astype(int), 0, h - 1)
    rays = np.linalg.inv(k) @ np.vstack([p0.T, np.ones(len(p0))])
    points = r @ (rays * depth[rows, cols])  # (3, M), rotated into b's orientation
    median = float(np.median(depth[rows, cols]))
    lengths = median * np.geomspace(*_STEP_RANGE, 161)
    best = lengths[int(np.argmin([_reprojection(points, s * direction, k, p1) for s in lengths]))]
    fine = best * np.geomspace(0.95, 1.05, 21)
    best = fine[int(np.argmin([_reprojection(points, s * direction, k, p1) for s in fine]))]
    motion = np.eye(4)
    motion[:3, :3], motion[:3, 3] = r, best * direction[:, 0]
    return motion


def _reprojection(points: np.ndarray, t: np.ndarray, k: np.ndarray, seen: np.ndarray) -> float:
    """Median pixel distance between `points` `(3, M)` moved by `t` and projected, and `seen`."""
    moved = points + t.reshape(3, 1)
    z = np.maximum(moved[2], 1e-6)
    uv = (k @ (moved / z))[:2].T
    return float(np.median(np.linalg.norm(uv - seen, axis=1)))
