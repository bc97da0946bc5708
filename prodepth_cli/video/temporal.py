"""Temporal fusion of the fitted depth: each frame's depth averaged with what its neighbours,
moved by the fitted camera motion, say about the same points, where they agree.

A depth network run frame by frame jitters where the photometric loss says little (sky,
foliage, texture-less walls). The neighbours' opinion, carried through the rigid geometry the
fit found, steadies those regions; where they disagree by more than a factor of
`AGREEMENT` either way (moving objects, occlusions) a frame keeps its own depth. A
neighbour's word fades in from the edge of what it saw (`EDGE_FADE`): counted all or nothing,
the edges of the neighbours' views drew rings into every fused map, fixed in the frame while
the scene flowed through them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from prodepth_cli.video.cuts import Shots
from prodepth_cli.video.geometry import project, sample_view

# The factor, nearer or farther, beyond which a neighbour's depth is ignored. Symmetric in
# log: a band of +-50 % (0.5 to 1.5) rejected 1.7 % of KITTI's neighbours, nearly all of
# them later frames that still put the far end of the road as far as the frame did, though
# the camera had driven 10 m towards it (a depth net saturates there): the far region then
# took only the earlier frames' opinion, and flickered as they changed. 0.5 to 2: the fit's
# jitter 0.0091 -> 0.0084; with the edges faded and 16 neighbours, 2 still rejected the far
# end's later frames (a mottled patch round the vanishing point, where the ratio crossed 2
# from frame to frame): 4, jitter 0.0072 / 0.0077 -> 0.0068 / 0.0073 (seeds 0 / 1), TAE
# the same, rank correlation higher (docs/video.md).
AGREEMENT = 4.0
# A neighbour's weight rises from 0 at the edge of its frame to 1 this fraction of the
# long side inside it (smoothly: a smoothstep). All or nothing, each neighbour's frame edge
# was a step in the number of opinions averaged, so a ring in the fused map: 32 nested rings
# round the direction of travel on KITTI, which stay put in the frame while the scene flows
# through them. 0.08 (33 px at 416): jitter 0.0079 / 0.0085 -> 0.0072 / 0.0077 (KITTI, seeds
# 0 / 1), TAE the same, rank correlation 0.783 / 0.765 -> 0.789 / 0.775; 0.04: 0.0073 /
# 0.0079; 0.16: the jitter of 0.08 and a higher TAE (0.030 / 0.033 against 0.026 / 0.029).
EDGE_FADE = 0.08


def fuse_depth(
    depth: np.ndarray,
    motions: np.ndarray,
    k: np.ndarray,
    radius: int = 1,
    shots: Shots | None = None,
) -> np.ndarray:
    """`(N, h, w)` depth fused over `radius` frames each side, in memory (`fused_frames`
    yields the same one frame at a time)."""
    return np.stack(list(fused_frames(depth, motions, k, radius, shots))).astype(depth.dtype)


def fused_frames(
    depth: np.ndarray,
    motions: np.ndarray,
    k: np.ndarray,
    radius: int = 1,
    shots: Shots | None = None,
) -> Iterator[np.ndarray]:
    """Each frame's `(h, w)` float32 depth fused over `radius` frames each side, in order.

    depth: `(N, h, w)` float32, e.g. memory-mapped: only the 2 x `radius` + 1 frames around
    the one being fused are read and held at a time. motions: `(N-1, 4, 4)` `T_i_to_i+1`;
    k: `(3, 3)` intrinsics at this size. For a neighbour s of frame t, a pixel's point
    lands in s at depth z_s; s's own depth there, d_s, rescales t's depth by d_s / z_s. The
    fused depth is the mean of the agreeing ones (within a factor of `AGREEMENT`; harmonic,
    i.e. averaged in disparity, where the photometric fit is made), each weighted by how far
    inside s's frame it lands (`EDGE_FADE`); t's own counts 1. shots: the clip's
    shots (None: one); a frame's neighbours are those of its own shot only (no motion is
    known across a cut).
    """
    n = len(depth)
    shots = shots or Shots(n)
    kk = torch.from_numpy(k).float()[None]
    fade = EDGE_FADE * max(depth.shape[1:])
    window: dict[int, torch.Tensor] = {}  # frame index -> its (1, 1, h, w) depth
    for t in range(n):
        shot = shots.shot(t)
        first, last = max(shot.start, t - radius), min(shot.stop, t + radius + 1)
        for s in [s for s in window if s < first]:
            del window[s]
        for s in range(first, last):
            if s not in window:
                window[s] = torch.from_numpy(np.array(depth[s], np.float32))[None, None]
        own = window[t]
        total, count = 1 / own, torch.ones_like(own)
        for s in range(first, last):
            if s == t:
                continue
            move = torch.from_numpy(_motion(motions, t, s)).float()[None]
            grid, z_s = project(own, kk, move)
            d_s = sample_view(window[s], grid)
            ratio = d_s / z_s
            agree = (ratio > 1 / AGREEMENT) & (ratio < AGREEMENT)  # False where NaN
            weight = torch.where(agree, _inside_weight(grid, fade), torch.zeros_like(own))
            total = total + torch.where(agree, weight / (own * ratio), torch.zeros_like(own))
            count = count + weight
        yield (count / total)[0, 0].numpy()


def _inside_weight(grid: torch.Tensor, fade: float) -> torch.Tensor:
    """`(B, 1, H, W)` weight of each point of `grid` `(B, H, W, 2)` by how far inside the
    source frame it lands: 0 at or beyond its edge, rising smoothly to 1 at `fade` pixels in."""
    h, w = grid.shape[1:3]
    x, y = grid.unbind(-1)
    inside = torch.minimum((1 - x.abs()) * w / 2, (1 - y.abs()) * h / 2)
    ramp = (inside / fade).clamp(0, 1)
    return (ramp * ramp * (3 - 2 * ramp))[:, None]


def _motion(motions: np.ndarray, t: int, s: int) -> np.ndarray:
    """`T_t_to_s` from the chain of consecutive motions `T_i_to_i+1`."""
    m = np.eye(4)
    for i in range(min(t, s), max(t, s)):
        m = motions[i] @ m
    return m if s > t else np.linalg.inv(m)
