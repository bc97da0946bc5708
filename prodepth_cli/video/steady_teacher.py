"""The teacher's maps on one scale for the whole clip, as `--fast` puts the model's maps.

Each map in the teacher's cache is normalised on its own (median 0, mean absolute deviation
1), so from frame to frame its scale and shift jump with what the frame shows. The fit took
those jumps for depth: its start, the first motions' step lengths and the level each frame
is held to all flickered with them, and so did its output. Here each map gets the affine
that `--fast` would give it (`stabilise.Alignment`: fitted onto the frame before along DIS
optical flow, pulled towards the clip's first map's statistics), so that one affine for the
whole clip then brings every map to the depth net's values. Only `(N, 2)` numbers are kept:
the maps stay in their memory-mapped cache.
"""

from __future__ import annotations

import numpy as np

from prodepth_cli.video.flow import FlowEstimator, grey, warp
from prodepth_cli.video.stabilise import Affine, Alignment, MapStatistics, fit_affine

# Frames whose maps give the clip's statistics (median, spread): evenly spaced, at most this
# many, so that a long clip is not read whole.
STATISTICS_FRAMES = 64


def steady_affines(rgb: np.ndarray, maps: np.ndarray) -> np.ndarray:
    """`(N, 2)` float64 `(scale, shift)` that put each of `maps` `(N, h, w)` (any per-frame
    affine of disparity, memory-mapped is fine) on the first map's scale, given the clip's
    frames `rgb` `(N, h, w, 3)` uint8 at the same size. One scene: no cut is looked for (the
    fit takes one shot)."""
    flows = FlowEstimator()
    first = np.asarray(maps[0], np.float32)
    alignment = Alignment(MapStatistics.of(first))
    affines = [Affine()]
    previous, previous_grey = first, grey(np.asarray(rgb[0]))
    for i in range(1, len(maps)):
        current_grey = grey(np.asarray(rgb[i]))
        pair = flows.pair(previous_grey, current_grey)
        raw = np.asarray(maps[i], np.float32)
        reference = warp(previous, pair.ba)  # the frame before, steadied, onto this one
        fit = fit_affine(raw, reference, pair.ok_b, True, alignment.transform)
        affines.append(alignment.update(fit, MapStatistics.of(raw)))
        previous, previous_grey = affines[-1](raw), current_grey
    return np.array([(a.scale, a.shift) for a in affines], np.float64)


def clip_statistics(maps: np.ndarray, affines: np.ndarray) -> tuple[float, float]:
    """`(median, mean absolute deviation)` of the steadied maps over the clip (on up to
    `STATISTICS_FRAMES` frames)."""
    picks = np.unique(np.linspace(0, len(maps) - 1, min(len(maps), STATISTICS_FRAMES)).round())
    values = np.concatenate(
        [
            np.asarray(maps[i], np.float32).ravel() * affines[i, 0] + affines[i, 1]
            for i in picks.astype(int)
        ]
    )
    median = float(np.median(values))
    return median, max(float(np.mean(np.abs(values - median))), 1e-12)
