"""Scene cuts between consecutive frames: the colour changes and the optical flow no longer
follows the pixels back. Each shot is then aligned on its own."""

from __future__ import annotations

import cv2
import numpy as np

HISTOGRAM_BINS = 8  # per RGB channel
# Bhattacharyya distance of the colour histograms (0 = same, 1 = disjoint). Consecutive
# frames of KITTI and DAVIS clips stay under 0.09; unrelated scenes reach 0.9.
CUT_HISTOGRAM = 0.4
# Fraction of pixels that the flow follows back (forward-backward consistent): consecutive
# KITTI (10 Hz, 12 m/s) and DAVIS frames keep 0.62 at least, unrelated scenes under 0.05.
CUT_CONSISTENT = 0.2
# ...which alone also says "cut" for a whip pan or a blurred frame: then the colours must
# have changed at least this much too (KITTI's first and last frames, 50 apart: 0.06).
MIN_HISTOGRAM_CHANGE = 0.05


def colour_histogram(rgb: np.ndarray) -> np.ndarray:
    """`(h, w, 3)` uint8 RGB -> its normalised 3-D colour histogram, float32."""
    bins = [HISTOGRAM_BINS] * 3
    hist = cv2.calcHist([np.ascontiguousarray(rgb)], [0, 1, 2], None, bins, [0, 256] * 3)
    return cv2.normalize(hist, hist).ravel()


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya distance of two `colour_histogram`s, 0 (same) to 1 (disjoint)."""
    return float(cv2.compareHist(a, b, cv2.HISTCMP_BHATTACHARYYA))


def is_cut(histogram_change: float, consistent_fraction: float) -> bool:
    """A new shot starts: the colours changed completely, or the flow lost the pixels and
    the colours changed too."""
    if histogram_change > CUT_HISTOGRAM:
        return True
    return consistent_fraction < CUT_CONSISTENT and histogram_change > MIN_HISTOGRAM_CHANGE
