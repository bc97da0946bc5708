"""How steady a clip's depth maps are: the jitter along optical flow, the figure `prodepth
video --fast` reports per shot (lower = steadier; a constant map scores 0)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import cv2
import numpy as np

from prodepth_cli.video.flow import FlowEstimator, flow_size, grey, warp


def unit_levels(disparity: np.ndarray, lo: float, hi: float, clip: bool) -> np.ndarray:
    """`(h, w)` disparity as the fraction of the range `[lo, hi]` it stands at (clipped to
    [0, 1] with `clip`, as a 16-bit PNG stores it), float32."""
    levels = (disparity - np.float32(lo)) / np.float32(max(hi - lo, 1e-12))
    return np.clip(levels, 0, 1) if clip else levels.astype(np.float32, copy=False)


def jitter(
    prev: np.ndarray,
    cur: np.ndarray,
    nxt: np.ndarray,
    flow_fw: np.ndarray,
    flow_bw: np.ndarray,
    valid: np.ndarray,
) -> float | None:
    """Mean |m(t+1) - 2 m(t) + m(t-1)| over the `valid` pixels of frame t, the neighbours'
    maps brought onto frame t along the optical flow: the second difference in time, so a
    steady change (a car coming nearer) costs nothing and a flicker costs twice its size.

    prev, cur, nxt: `(h, w)` maps of frames t-1, t, t+1 in one unit (e.g. `unit_levels` of
    one range). flow_fw, flow_bw: `(h, w, 2)` flow in pixels from frame t to t+1 and to t-1.
    valid: `(h, w)` bool, the pixels of t both flows follow (forward-backward consistent).
    None when no pixel is valid.
    """
    if not valid.any():
        return None
    change = warp(nxt, flow_fw) - 2 * cur + warp(prev, flow_bw)
    return float(np.mean(np.abs(change[valid])))


def frame_jitters(
    maps: Iterable[np.ndarray], frames: Iterable[np.ndarray]
) -> Iterator[float | None]:
    """`jitter` of each frame that has both neighbours, in order: `maps` `(H, W)` in one unit
    (e.g. 16-bit PNG levels over 65535), `frames` `(H, W, 3)` RGB uint8, both streamed
    (three frames held at a time) and compared at the flow size (`flow.flow_size`)."""
    flows = FlowEstimator()
    window: list[tuple[np.ndarray, np.ndarray]] = []  # (map, grey) at the flow size
    before = None  # the flow pair of the two frames before the newest
    for disparity, rgb in zip(maps, frames, strict=True):
        h, w = rgb.shape[:2]
        size = flow_size(w, h)
        small = cv2.resize(np.asarray(disparity, np.float32), size, interpolation=cv2.INTER_AREA)
        window.append(
            (small, grey(cv2.resize(np.asarray(rgb), size, interpolation=cv2.INTER_AREA)))
        )
        if len(window) < 2:
            continue
        after = flows.pair(window[-2][1], window[-1][1])
        if len(window) == 3:
            (prev, _), (cur, _), (nxt, _) = window
            yield jitter(prev, cur, nxt, after.ab, before.ba, after.ok_a & before.ok_b)
            window.pop(0)
        before = after


def clip_jitter(maps: Sequence[np.ndarray], frames: Sequence[np.ndarray]) -> float:
    """`jitter` averaged over every frame that has both neighbours (`frame_jitters`); NaN
    when no pixel of any frame is followed both ways."""
    known = [v for v in frame_jitters(maps, frames) if v is not None]
    return float(np.mean(known)) if known else float("nan")
