"""Dense optical flow between consecutive frames (OpenCV DIS) at a reduced size, both ways,
with the forward-backward consistency check that tells trusted pixels from occluded ones."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

FLOW_LONG_SIDE = 512  # frames are compared at about this long side (never enlarged)
# A pixel is consistent when the flow there and the reverse flow where it lands cancel:
# |f + b|^2 < CONSISTENCY_RELATIVE (|f|^2 + |b|^2) + CONSISTENCY_PIXELS^2 (UnFlow, Meister
# et al. 2018: the tolerance grows with the motion, in flow-size pixels).
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_PIXELS = 0.7


def flow_size(width: int, height: int, long_side: int = FLOW_LONG_SIDE) -> tuple[int, int]:
    """`(w, h)` at which a `width` x `height` clip's flow is computed: long side `long_side`
    (smaller frames keep their size), aspect kept."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def grey(rgb_small: np.ndarray) -> np.ndarray:
    """`(h, w, 3)` RGB uint8 -> `(h, w)` grey uint8, what DIS takes."""
    return cv2.cvtColor(rgb_small, cv2.COLOR_RGB2GRAY)


def warp(values: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """`values` `(h, w[, c])` of a frame B sampled at `x + flow(x)` for every pixel x of a
    frame A, `flow` `(h, w, 2)` from A to B in pixels: B's values brought onto A (bilinear;
    pixels landing outside B take the nearest border value: see `lands_inside`)."""
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    return cv2.remap(
        values, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR, cv2.BORDER_REPLICATE
    )


def lands_inside(flow: np.ndarray) -> np.ndarray:
    """`(h, w)` bool: where `x + flow(x)` falls inside the frame."""
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    mx, my = xs + flow[..., 0], ys + flow[..., 1]
    return (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)


def consistent(flow_ab: np.ndarray, flow_ba: np.ndarray) -> np.ndarray:
    """`(h, w)` bool on frame A: the pixels whose flow to B lands inside B and comes back
    (B's flow to A, taken where A's pixel lands, cancels it). Occluded pixels, those
    leaving the frame and those where the flow is wrong fail."""
    back = warp(flow_ba, flow_ab)
    gap = np.sum((flow_ab + back) ** 2, axis=2)
    motion = np.sum(flow_ab**2, axis=2) + np.sum(back**2, axis=2)
    tolerance = CONSISTENCY_RELATIVE * motion + CONSISTENCY_PIXELS**2
    return (gap < tolerance) & lands_inside(flow_ab)


@dataclass(frozen=True)
class FlowPair:
    """The flow between consecutive frames `a` and `b` (each `(h, w, 2)` float32 pixels at
    the flow size) and the consistent pixels of each (`(h, w)` bool): `ab` maps a pixel of
    a to b, `ba` a pixel of b to a."""

    ab: np.ndarray
    ba: np.ndarray
    ok_a: np.ndarray
    ok_b: np.ndarray

    @property
    def consistent_fraction(self) -> float:
        """The fraction of b's pixels that the flow follows back to a."""
        return float(self.ok_b.mean())


class FlowEstimator:
    """DIS optical flow (medium preset) on grey frames at the flow size."""

    def __init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def pair(self, grey_a: np.ndarray, grey_b: np.ndarray) -> FlowPair:
        """Flow both ways between `(h, w)` uint8 frames a and b, with their consistency."""
        ab = self._dis.calc(grey_a, grey_b, None)
        ba = self._dis.calc(grey_b, grey_a, None)
        return FlowPair(ab, ba, consistent(ab, ba), consistent(ba, ab))


@functools.lru_cache(maxsize=2)
def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates `(xs, ys)`, each `(h, w)` float32, read only (a clip has one size)."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    xs.flags.writeable = ys.flags.writeable = False
    return xs, ys
