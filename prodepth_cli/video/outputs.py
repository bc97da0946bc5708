"""What `prodepth video` writes: one 16-bit PNG per frame, the camera poses as KITTI text,
and an optional colour-mapped preview video; every file written atomically."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.errors import OutputError
from prodepth_cli.io.write import atomic_output

# One normalisation for the whole clip (not per frame, which would flicker): these
# percentiles of all frames' disparity map to 0 and 65535.
_RANGE_PERCENTILES = (0.5, 99.5)


def clip_range(disparity: np.ndarray) -> tuple[float, float]:
    """`(lo, hi)` disparity mapped to black and white for every frame of the clip."""
    lo, hi = np.percentile(disparity, _RANGE_PERCENTILES)
    return float(lo), float(max(hi, lo + 1e-12))


def to_levels(disparity: np.ndarray, lo: float, hi: float, top: int) -> np.ndarray:
    """`(h, w)` disparity -> integer levels 0..`top` (near = `top`), clipped to [lo, hi]."""
    return np.clip((disparity - lo) / (hi - lo) * top + 0.5, 0, top)


def write_depth_frames(
    disparity: np.ndarray, names: list[str], folder: Path, size: tuple[int, int]
) -> list[Path]:
    """`(N, h, w)` disparity -> `folder/<name>.png` 16-bit grey at `size` (`(W, H)`), near =
    bright, one range for the whole clip."""
    lo, hi = clip_range(disparity)
    paths = []
    for disp, name in zip(disparity, names, strict=True):
        full = cv2.resize(disp, size, interpolation=cv2.INTER_LINEAR)
        path = folder / f"{name}.png"
        with atomic_output(path) as tmp:
            if not cv2.imwrite(str(tmp), to_levels(full, lo, hi, 65535).astype(np.uint16)):
                raise OutputError(f"{path}: cannot write the depth map")
        paths.append(path)
    return paths


def write_poses(path: Path, poses: np.ndarray) -> None:
    """`(N, 4, 4)` camera-to-world poses as KITTI text: 12 numbers (3x4, row-major) a line."""
    with atomic_output(path) as tmp:
        np.savetxt(tmp, poses[:, :3, :].reshape(len(poses), 12), fmt="%.6e")


def write_preview(path: Path, disparity: np.ndarray, fps: float, size: tuple[int, int]) -> None:
    """A colour-mapped (turbo, near = warm) video of the clip's depth at `size` (`(W, H)`)."""
    lo, hi = clip_range(disparity)
    with atomic_output(path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():
            raise OutputError(f"{path}: OpenCV cannot write an mp4 video here")
        try:
            for disp in disparity:
                full = cv2.resize(disp, size, interpolation=cv2.INTER_LINEAR)
                levels = to_levels(full, lo, hi, 255).astype(np.uint8)
                writer.write(cv2.applyColorMap(levels, cv2.COLORMAP_TURBO))
        finally:
            writer.release()
