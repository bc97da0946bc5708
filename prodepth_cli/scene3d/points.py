"""Back-projection of a strided grid of pixels to 3-D points in the camera's frame.

Camera frame (OpenCV's): +X right, +Y down, +Z forward (the viewing direction), origin at the
camera. A pixel (x, y) with centre u = x + 0.5, v = y + 0.5 at depth Z lies at
X = (u - cx) / fx * Z, Y = (v - cy) / fy * Z. glTF is +Y up, -Z forward: `to_gltf` flips Y and Z.
"""

from __future__ import annotations

import math

import numpy as np

from prodepth_cli.scene3d.intrinsics import Intrinsics


def grid_positions(n: int, stride: int) -> np.ndarray:
    """The pixel indices a stride keeps along a side of `n` pixels: 0, stride, 2 * stride...
    and the last pixel too, so that a mesh reaches the photograph's edges. `(m,)` int64."""
    kept = np.arange(0, n, stride, dtype=np.int64)
    return kept if kept[-1] == n - 1 else np.append(kept, n - 1)


def stride_for(width: int, height: int, max_points: int) -> int:
    """The smallest stride whose grid has at most `max_points` points (a side of n pixels
    keeps ceil(n / stride) + 1 at most)."""
    stride = max(1, math.ceil(math.sqrt(width * height / max_points)))
    while (width // stride + 2) * (height // stride + 2) > max_points:
        stride += 1
    return stride


def backproject(z: np.ndarray, xs: np.ndarray, ys: np.ndarray, camera: Intrinsics) -> np.ndarray:
    """Points for depths `z` `(n, m)` float32 at pixel columns `xs` `(m,)` and rows `ys`
    `(n,)` (indices; centres at +0.5) -> `(n, m, 3)` float32 X, Y, Z in the camera frame, in
    the units of `z`."""
    rays_x = ((xs + 0.5 - camera.cx) / camera.fx).astype(np.float32)
    rays_y = ((ys + 0.5 - camera.cy) / camera.fy).astype(np.float32)
    xyz = np.empty((*z.shape, 3), np.float32)
    np.multiply(z, rays_x[None, :], out=xyz[..., 0])
    np.multiply(z, rays_y[:, None], out=xyz[..., 1])
    xyz[..., 2] = z
    return xyz


def to_gltf(xyz: np.ndarray) -> np.ndarray:
    """Camera-frame points `(..., 3)` -> glTF's frame (+Y up, -Z forward): Y and Z negated."""
    out = np.array(xyz, np.float32, copy=True)
    out[..., 1:] *= -1.0
    return out
