"""Rigid-motion geometry for view synthesis: 6-DoF parameters -> 4x4 transforms, back-project
depth to points, project into another view, sample that view (monodepth2's conventions).

Camera coordinates: x right, y down, z forward. `T_a_to_b` maps points in camera a's
coordinates to camera b's: `P_b = T_a_to_b @ P_a`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """`(B, 3)` axis-angle (radians) -> `(B, 3, 3)` rotation (Rodrigues)."""
    angle = axis_angle.norm(dim=1, keepdim=True).clamp_min(1e-8)
    axis = axis_angle / angle
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    c, s = torch.cos(angle[:, 0]), torch.sin(angle[:, 0])
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], 1).view(-1, 3, 3)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + s[:, None, None] * k + (1 - c)[:, None, None] * (k @ k)


def pose_matrix(axis_angle: torch.Tensor, translation: torch.Tensor, invert: bool = False):
    """`(B, 3)` rotation and `(B, 3)` translation -> `(B, 4, 4)` transform `[R | t]`, or its
    inverse `[R^T | -R^T t]` with `invert` (the pose net sees (t-1, t) but the loss needs
    t -> t-1)."""
    r = axis_angle_to_matrix(axis_angle)
    t = translation[:, :, None]
    if invert:
        r = r.transpose(1, 2)
        t = -r @ t
    top = torch.cat([r, t], 2)
    bottom = torch.tensor([0, 0, 0, 1], dtype=r.dtype, device=r.device).expand(len(r), 1, 4)
    return torch.cat([top, bottom], 1)


def invert_rigid(t: torch.Tensor) -> torch.Tensor:
    """`(B, 4, 4)` rigid transforms -> their inverses `[R^T | -R^T t]`."""
    r = t[:, :3, :3].transpose(1, 2)
    top = torch.cat([r, -r @ t[:, :3, 3:]], 2)
    return torch.cat([top, t[:, 3:]], 1)


def project(depth: torch.Tensor, k: torch.Tensor, t_target_to_source: torch.Tensor):
    """Where each target pixel lands in the source view, and the depth it has there.

    depth: `(B, 1, H, W)` target depth; k: `(B, 3, 3)` intrinsics at this size;
    t_target_to_source: `(B, 4, 4)`. Returns a `grid_sample` grid `(B, H, W, 2)` in [-1, 1]
    (align_corners=False) and the source-camera depth `(B, 1, H, W)`.
    """
    b, _, h, w = depth.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=depth.dtype, device=depth.device),
        torch.arange(w, dtype=depth.dtype, device=depth.device),
        indexing="ij",
    )
    pix = torch.stack([xs, ys, torch.ones_like(xs)]).view(1, 3, -1)  # (1, 3, HW)
    rays = torch.linalg.inv(k) @ pix  # (B, 3, HW)
    points = rays * depth.view(b, 1, -1)
    r, t = t_target_to_source[:, :3, :3], t_target_to_source[:, :3, 3:]
    cam = k @ (r @ points + t)
    z = cam[:, 2:3].clamp_min(1e-3)
    uv = cam[:, :2] / z
    gx = (uv[:, 0] + 0.5) / w * 2 - 1
    gy = (uv[:, 1] + 0.5) / h * 2 - 1
    return torch.stack([gx, gy], -1).view(b, h, w, 2), z.view(b, 1, h, w)


def sample_view(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Source `image` `(B, C, H, W)` read at `grid` `(B, H, W, 2)`; border pixels repeat
    outside the frame (the auto-mask takes care of what becomes nonsense there)."""
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def lands_inside(grid: torch.Tensor) -> torch.Tensor:
    """`(B, 1, H, W)` bool: which points of `grid` `(B, H, W, 2)` fall inside the source frame
    (elsewhere `sample_view` only repeats its border)."""
    return (grid.abs() <= 1).all(-1)[:, None]


def chain_poses(steps: list[np.ndarray], starts: Sequence[int] = (0,)) -> np.ndarray:
    """Camera-to-world poses `(N, 4, 4)` from relative steps `T_i_to_i+1` `(4, 4)` each, frame
    0 at the origin (KITTI's poses.txt convention: `P_world = pose_i @ P_i`). The chain
    restarts at each frame of `starts` (the first frame of each shot: no motion joins two
    shots), which is at the origin of its shot's world."""
    restarts = set(starts)
    poses = [np.eye(4)]
    for i, step in enumerate(steps, 1):
        poses.append(np.eye(4) if i in restarts else poses[-1] @ np.linalg.inv(step))
    return np.stack(poses)


def ate_rmse(estimated: np.ndarray, reference: np.ndarray) -> float:
    """Absolute trajectory error: RMSE of camera positions after the similarity transform
    (rotation, translation, scale; Umeyama) that best aligns `estimated` to `reference`.
    Both are `(N, 4, 4)` or `(N, 3, 4)` camera-to-world poses; monocular scale is free."""
    x, y = estimated[:, :3, 3], reference[:, :3, 3]
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    u, d, vt = np.linalg.svd(yc.T @ xc / len(x))
    s = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[2, 2] = -1
    r = u @ s @ vt
    var_x = (xc**2).sum() / len(x)
    scale = np.trace(np.diag(d) @ s) / max(var_x, 1e-12)
    aligned = scale * (r @ xc.T).T + my
    return float(np.sqrt(((aligned - y) ** 2).sum(1).mean()))
