"""Where to focus: the depth at a pixel (robust to edges), or the main subject by default.

All functions take disparity `(H, W)` (larger = nearer, any units) and return a disparity in
the same units.
"""

from __future__ import annotations

import cv2
import numpy as np

from prodepth_cli.errors import OptionError

_WINDOW = 0.02  # half-size of the window around a focus pixel, as a fraction of the long side
_SUBJECT_MIN_AREA = 0.03  # a "large region" covers at least this fraction of the frame
_STANDS_OUT = 0.08  # nearer than its rows' median by this fraction of the map's range
_CENTRE = 0.3  # the centre weighting's spread, as a fraction of the frame's sides
_WORK_SIDE = 256  # the default-subject search runs on a map this size


def parse_point(text: str) -> tuple[int, int]:
    """`"X,Y"` (pixels) -> (x, y)."""
    try:
        x, y = (int(round(float(v))) for v in text.split(","))
    except ValueError:
        raise OptionError(f"--focus {text}: expected X,Y in pixels, e.g. 640,480") from None
    return x, y


def focus_at_point(disparity: np.ndarray, x: int, y: int) -> float:
    """The disparity of the surface under pixel (x, y).

    Takes the dominant mode of the disparities in a window around the pixel, so a pixel on a
    depth edge (or on a hole in the map) focuses on the surface that fills most of the
    window, not on a value between the two sides.
    """
    h, w = disparity.shape
    if not (0 <= x < w and 0 <= y < h):
        raise OptionError(f"--focus {x},{y}: outside the image ({w}x{h})")
    r = max(3, round(_WINDOW * max(h, w)))
    window = disparity[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1]
    return _dominant_mode(window[np.isfinite(window)])


def default_focus(disparity: np.ndarray) -> float:
    """The main subject's disparity: what stands out from the scene's layout, near the centre.

    The nearest thing in most photographs is the ground at the bottom of the frame, and a
    photographer focuses on the subject standing on it. So the subject is sought as a region
    nearer than the typical depth of its own rows (the floor, the road, the back wall at that
    height) by `_STANDS_OUT` of the map's range, scored by how much and how widely it stands
    out and how near the centre it lies. Without one (a landscape), the nearest region
    covering >= 3 % of the frame, then the centre of the frame.
    """
    small = _working_map(disparity)
    for find in (_standing_out, _nearest_large):
        found = find(small)
        if found is not None:
            return found
    h, w = disparity.shape
    return focus_at_point(disparity, w // 2, h // 2)


def _working_map(disparity: np.ndarray) -> np.ndarray:
    """The map at `_WORK_SIDE`, finite, median-filtered (a lone pixel is never a subject)."""
    h, w = disparity.shape
    scale = min(1.0, _WORK_SIDE / max(h, w))
    small = cv2.resize(
        np.nan_to_num(disparity.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0),
        (max(1, round(w * scale)), max(1, round(h * scale))),
        interpolation=cv2.INTER_AREA,
    )
    return cv2.medianBlur(small, 5) if min(small.shape) >= 5 else small


def _standing_out(small: np.ndarray) -> float | None:
    """The median disparity of the region standing out most (see `default_focus`)."""
    lo, hi = np.percentile(small, [2, 98])
    residual = (small - np.median(small, axis=1, keepdims=True)) / max(float(hi - lo), 1e-12)
    mask = (residual > _STANDS_OUT).astype(np.uint8)
    n, labels, stats, centres = cv2.connectedComponentsWithStats(mask, connectivity=4)
    sh, sw = small.shape
    best, best_score = None, 0.0
    for i in range(1, n):
        if stats[i, cv2.CC_STAT_AREA] < _SUBJECT_MIN_AREA * small.size:
            continue
        dx, dy = centres[i][0] / sw - 0.5, centres[i][1] / sh - 0.5
        score = residual[labels == i].sum() * np.exp(-(dx * dx + dy * dy) / (2 * _CENTRE**2))
        if score > best_score:
            best, best_score = i, score
    return None if best is None else float(np.median(small[labels == best]))


def _nearest_large(small: np.ndarray) -> float | None:
    """Thresholds the map at ever lower disparities (nearest 5 %, 10 %, ... of the pixels)
    and takes the first threshold at which one connected region is large."""
    area = small.size * _SUBJECT_MIN_AREA
    for share in (5, 10, 15, 20, 30, 40):
        mask = (small >= np.percentile(small, 100 - share)).astype(np.uint8)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
        if n > 1:
            best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            if stats[best, cv2.CC_STAT_AREA] >= area:
                return float(np.median(small[labels == best]))
    return None


def _dominant_mode(values: np.ndarray) -> float:
    if values.size == 0:
        raise OptionError("--focus: no valid depth around that pixel")
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return lo
    counts, edges = np.histogram(values, bins=16, range=(lo, hi))
    k = int(np.argmax(counts))
    inside = values[(values >= edges[k]) & (values <= edges[k + 1])]
    return float(np.median(inside))
