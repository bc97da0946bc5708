"""Temporal fusion of the fitted depth: each frame's depth averaged with what its neighbours,
moved by the fitted camera motion, say about the same points, where they agree.

A depth network run frame by frame jitters where the photometric loss says little (sky,
foliage, texture-less walls). The neighbours' opinion, carried through the rigid geometry the
fit found, steadies those regions; where they disagree by more than a factor of
`AGREEMENT` either way (moving objects, occlusions) a frame keeps its own depth.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from prodepth_cli.video.cuts import Shots
from prodepth_cli.video.geometry import lands_inside, project, sample_view

# The factor, nearer or farther, beyond which a neighbour's depth is ignored. Symmetric in
# log: a band of +-50 % (0.5 to 1.5) rejected 1.7 % of KITTI's neighbours, nearly all of
# them later frames that still put the far end of the road as far as the frame did, though
# the camera had driven 10 m towards it (a depth net saturates there): the far region then
# took only the earlier frames' opinion, and flickered as they changed. 0.5 to 2: the fit's
# jitter 0.0091 -> 0.0084, TAE and rank correlation the same (docs/video.md).
AGREEMENT = 2.0


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
    i.e. averaged in disparity, where the photometric fit is made). shots: the clip's
    shots (None: one); a frame's neighbours are those of its own shot only (no motion is
    known across a cut).
    """
    n = len(depth)
    shots = shots or Shots(n)
    kk = torch.from_numpy(k).float()[None]
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
            agree = lands_inside(grid) & (ratio > 1 / AGREEMENT) & (ratio < AGREEMENT)
            total = total + torch.where(agree, 1 / (own * ratio), torch.zeros_like(own))
            count = count + agree.float()
        yield (count / total)[0, 0].numpy()


def _motion(motions: np.ndarray, t: int, s: int) -> np.ndarray:
    """`T_t_to_s` from the chain of consecutive motions `T_i_to_i+1`."""
    m = np.eye(4)
    for i in range(min(t, s), max(t, s)):
        m = motions[i] @ m
    return m if s > t else np.linalg.inv(m)
