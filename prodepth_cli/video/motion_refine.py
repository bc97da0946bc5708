"""The fitted camera motions refined against the fitted depth, before the temporal fusion.

The pose net's motions were found together with a depth still moving; the fusion then
carries each neighbour's final depth along them, and a motion a little off lands a
neighbour's depth on the wrong pixels: the average keeps flicker it should have removed.
So, once the depth is fixed, each step `T_i_to_i+1` is fitted again to the two frames'
depths alone (direct alignment both ways: frame i+1 seen from frame i through i's depth and
back, the fit's photometric error with its auto-mask plus the two depths' consistency;
dynamic objects and what falls outside the other frame left out), six numbers a step.
Measured on KITTI (docs/video.md): the fit from the model's jitter 0.0100 -> 0.0091, TAE
0.032 -> 0.030, for a quarter more time; the cold start's motions already agree with its
depth (0.0071 either way).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from prodepth_cli.video.cuts import Shots
from prodepth_cli.video.geometry import (
    invert_rigid,
    lands_inside,
    pose_matrix,
    project,
    sample_view,
)
from prodepth_cli.video.losses import depth_consistency, identity_error, reprojection_loss

# Adam steps per motion (KITTI: jitter 0.0091 after 50, 0.0090 after 100; at half the size
# 100 steps give 0.0096 in a third of the time)
REFINE_STEPS = 50
_LR = 2e-3  # radians, and fractions of the steps' mean length
_CHUNK = 16  # motions refined at once (each has its own six numbers: chunks are independent)

ChunkCallback = Callable[[int, int, float], None]  # motions done, total, loss


def refined_motions(
    motions: np.ndarray,
    depth: Sequence[np.ndarray],
    rgb: Sequence[np.ndarray],
    k: np.ndarray,
    shots: Shots | None = None,
    masks: Sequence[np.ndarray] | None = None,
    steps: int = REFINE_STEPS,
    on_chunk: ChunkCallback | None = None,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """`(N-1, 4, 4)` motions `T_i_to_i+1` refined against each frame's fixed `(h, w)` depth
    (`depth[i]`, the fit's units) and `(h, w, 3)` uint8 frame (`rgb[i]`); both read a chunk
    of frames at a time. k: `(3, 3)` intrinsics at this size; masks: `(h, w)` dynamic-object
    masks (1 = moving), left out. A step across a cut of `shots` stays as it is (the
    identity: no motion joins two shots). Runs on torch's `device`."""
    refined = np.array(motions, dtype=np.float64)
    shots = shots or Shots(len(rgb))
    # chunks within a shot: a chunk shares its loss's normalisation and its steps' length
    chunks = [
        list(frames[i : i + _CHUNK])
        for frames in (range(r.start, r.stop - 1) for r in shots.ranges)
        for i in range(0, len(frames), _CHUNK)
    ]
    intrinsics = torch.from_numpy(np.asarray(k)).float()[None].to(device)
    done, total = 0, sum(map(len, chunks))
    for chunk in chunks:
        steps_there, loss = _refine_chunk(refined, chunk, depth, rgb, intrinsics, masks, steps)
        refined[chunk] = steps_there
        done += len(chunk)
        if on_chunk:
            on_chunk(done, total, loss)
    return refined


def _refine_chunk(
    motions: np.ndarray,
    chunk: list[int],
    depth: Sequence[np.ndarray],
    rgb: Sequence[np.ndarray],
    k: torch.Tensor,
    masks: Sequence[np.ndarray] | None,
    steps: int,
) -> tuple[np.ndarray, float]:
    """The motions of the pairs `(i, i+1)` for i in `chunk`, refined (on `k`'s device); the
    last loss."""
    device = k.device
    frames = sorted({*chunk, *(i + 1 for i in chunk)})
    row = {f: r for r, f in enumerate(frames)}
    images = _tensor(np.stack([rgb[f] for f in frames]).transpose(0, 3, 1, 2) / 255.0, device)
    fixed = _tensor(np.stack([depth[f] for f in frames])[:, None], device)
    moving = None
    if masks is not None:
        moving = _tensor(np.stack([masks[f] for f in frames])[:, None], device)
    a = torch.tensor([row[i] for i in chunk], device=device)
    b = torch.tensor([row[i + 1] for i in chunk], device=device)
    start = _tensor(motions[chunk], device)
    length = start[:, :3, 3].norm(dim=1).mean().clamp_min(1e-6)
    rotation = torch.zeros(len(chunk), 3, device=device, requires_grad=True)
    translation = torch.zeros(len(chunk), 3, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([rotation, translation], lr=_LR)
    kk = k.expand(len(chunk), 3, 3)
    # what the unwarped source explains (the auto-mask's reference) does not move: once
    directions = [(t, u, identity_error(images[t], [images[u]])) for t, u in ((a, b), (b, a))]
    loss = torch.zeros(())
    for _ in range(steps):
        forward = pose_matrix(rotation, translation * length) @ start
        loss = sum(
            _alignment_error(fixed, images, moving, kk, move, target, source, identity)
            for move, (target, source, identity) in zip(
                (forward, invert_rigid(forward)), directions, strict=True
            )
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        forward = pose_matrix(rotation, translation * length) @ start
    return forward.cpu().double().numpy(), float(loss.detach())


def _alignment_error(
    depth: torch.Tensor,
    images: torch.Tensor,
    moving: torch.Tensor | None,
    k: torch.Tensor,
    move: torch.Tensor,
    target: torch.Tensor,
    source: torch.Tensor,
    identity: torch.Tensor,
) -> torch.Tensor:
    """The fit's photometric error of the `source` frames seen from the `target` frames
    (rows of `images`/`depth`) through `move` (T_target_to_source), plus their depths'
    consistency: what the fit minimised, the depth now fixed. identity: `identity_error`
    of the targets and their sources unwarped."""
    grid, depth_there = project(depth[target], k, move)
    image = images[target]
    warped = sample_view(images[source], grid)
    exclude = (~lands_inside(grid)).float()  # the border repeated: no evidence
    if moving is not None:
        exclude = torch.maximum(exclude, (moving[target] > 0.5).float())
    error = reprojection_loss(image, [warped], identity, exclude).loss
    return error + depth_consistency(depth_there, grid, depth[source], exclude)


def _tensor(array: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, np.float32)).to(device)
