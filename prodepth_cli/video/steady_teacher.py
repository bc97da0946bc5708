"""The teacher's maps on one scale for each shot of the clip, as `--fast` puts the model's maps.

Each map in the teacher's cache is normalised on its own (median 0, mean absolute deviation
1), so from frame to frame its scale and shift jump with what the frame shows. The fit took
those jumps for depth: its start, the first motions' step lengths and the level each frame
is held to all flickered with them, and so did its output. Here each map gets the affine
that `--fast` would give it (`stabilise.Alignment`: fitted onto the frame before along DIS
optical flow, pulled towards its shot's first map's statistics), so that one affine for the
whole shot then brings every map to the depth net's values. Each shot (`cuts.Shots`) starts
afresh from its own first map, as `--fast` starts each shot: nothing is chained across a
cut. Only `(N, 2)` numbers are kept: the maps stay in their memory-mapped cache.
"""

from __future__ import annotations

import numpy as np

from prodepth_cli.video.cuts import Shots
from prodepth_cli.video.flow import FlowEstimator, grey, warp
from prodepth_cli.video.stabilise import Affine, Alignment, MapStatistics, fit_affine

# Frames whose maps give a shot's statistics (median, spread): evenly spaced, at most this
# many, so that a long shot is not read whole.
STATISTICS_FRAMES = 64


def steady_affines(rgb: np.ndarray, maps: np.ndarray, shots: Shots | None = None) -> np.ndarray:
    """`(N, 2)` float64 `(scale, shift)` that put each of `maps` `(N, h, w)` (any per-frame
    affine of disparity, memory-mapped is fine) on the scale of its shot's first map, given
    the clip's frames `rgb` `(N, h, w, 3)` uint8 at the same size. shots: the clip's shots
    (None: one); each starts afresh (its first map's affine is the identity), so a shot's
    affines do not depend on any other shot's maps."""
    flows = FlowEstimator()
    affines: list[Affine] = []
    for frames in (shots or Shots(len(maps))).ranges:
        affines += _shot_affines(rgb, maps, frames, flows)
    return np.array([(a.scale, a.shift) for a in affines], np.float64)


def _shot_affines(
    rgb: np.ndarray, maps: np.ndarray, frames: range, flows: FlowEstimator
) -> list[Affine]:
    """The affines of one shot's `frames` (see `steady_affines`)."""
    first = np.asarray(maps[frames.start], np.float32)
    alignment = Alignment(MapStatistics.of(first))
    affines = [Affine()]
    previous, previous_grey = first, grey(np.asarray(rgb[frames.start]))
    for i in frames[1:]:
        current_grey = grey(np.asarray(rgb[i]))
        pair = flows.pair(previous_grey, current_grey)
        raw = np.asarray(maps[i], np.float32)
        reference = warp(previous, pair.ba)  # the frame before, steadied, onto this one
        fit = fit_affine(raw, reference, pair.ok_b, True, alignment.transform)
        affines.append(alignment.update(fit, MapStatistics.of(raw)))
        previous, previous_grey = affines[-1](raw), current_grey
    return affines


def clip_statistics(
    maps: np.ndarray, affines: np.ndarray, frames: range | None = None
) -> tuple[float, float]:
    """`(median, mean absolute deviation)` of the steadied maps over `frames` (None: the
    whole clip; a shot's frames for the shot's), on up to `STATISTICS_FRAMES` of them."""
    frames = frames if frames is not None else range(len(maps))
    count = min(len(frames), STATISTICS_FRAMES)
    picks = np.unique(np.linspace(frames.start, frames.stop - 1, count).round())
    values = np.concatenate(
        [
            np.asarray(maps[i], np.float32).ravel() * affines[i, 0] + affines[i, 1]
            for i in picks.astype(int)
        ]
    )
    median = float(np.median(values))
    return median, max(float(np.mean(np.abs(values - median))), 1e-12)
