"""Scene cuts between consecutive frames: the colour changes and the optical flow no longer
follows the pixels back. Each shot is then aligned (`--fast`) or fitted on its own."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise

import cv2
import numpy as np

from prodepth_cli.video.flow import FlowEstimator, flow_size, grey

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


@dataclass(frozen=True)
class Shots:
    """A clip of `frames` frames cut into shots: each runs from a frame of `starts` (frame
    indices, increasing, 0 first) up to the next one. Nothing joins two shots: no motion,
    scale or neighbour is carried across a cut."""

    frames: int
    starts: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        s = self.starts
        if not s or s[0] != 0 or s[-1] >= self.frames or any(b <= a for a, b in pairwise(s)):
            raise ValueError(f"shot starts {list(s)} for a clip of {self.frames} frames")

    @property
    def ranges(self) -> list[range]:
        """Each shot's frames, in order."""
        return [range(a, b) for a, b in pairwise((*self.starts, self.frames))]

    def index(self, frame: int) -> int:
        """The number of the shot frame `frame` is in (0 first)."""
        return bisect.bisect_right(self.starts, frame) - 1

    def shot(self, frame: int) -> range:
        """The frames of the shot frame `frame` is in."""
        i = self.index(frame)
        return range(self.starts[i], (*self.starts, self.frames)[i + 1])

    def targets(self) -> np.ndarray:
        """`(T,)` int64: the frames t whose neighbours t-1 and t+1 are in t's shot, what a
        triplet (t-1, t, t+1) can be centred on; a shot under 3 frames has none."""
        return np.array([t for frames in self.ranges for t in frames[1:-1]], np.int64)

    def cut_before(self, frame: int) -> bool:
        """Whether a cut lies between frame `frame` - 1 and frame `frame`."""
        return frame > 0 and frame in self.starts


def frame_changes(rgb: np.ndarray) -> Iterator[tuple[float, float]]:
    """For each pair of consecutive frames of `rgb` `(N, h, w, 3)` uint8 (memory-mapped is
    fine: two frames are held at a time), the change of their colours (`histogram_distance`)
    and the fraction of the second's pixels the flow follows back to the first
    (`FlowPair.consistent_fraction`): what `is_cut` takes. Measured as `--fast` measures
    them, at `flow_size` (frames smaller than that at their own size)."""
    flows = FlowEstimator()
    h, w = rgb.shape[1:3]
    small = flow_size(w, h)

    def measured(i: int) -> tuple[np.ndarray, np.ndarray]:
        frame = np.asarray(rgb[i])
        if small != (w, h):
            frame = cv2.resize(frame, small, interpolation=cv2.INTER_AREA)
        return colour_histogram(frame), grey(frame)

    histogram, before = measured(0)
    for i in range(1, len(rgb)):
        next_histogram, after = measured(i)
        change = histogram_distance(histogram, next_histogram)
        yield change, flows.pair(before, after).consistent_fraction
        histogram, before = next_histogram, after


def find_shots(rgb: np.ndarray) -> Shots:
    """The shots of a clip's frames `rgb` `(N, h, w, 3)` uint8: a cut wherever `is_cut` says
    so for a pair of consecutive frames (`frame_changes`)."""
    cuts = [i for i, change in enumerate(frame_changes(rgb), 1) if is_cut(*change)]
    return Shots(len(rgb), (0, *cuts))
