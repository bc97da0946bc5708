"""What `prodepth video` writes: one 16-bit PNG per frame, the camera poses as KITTI text,
and an optional colour-mapped preview video; every file written atomically."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
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
        ok, png = cv2.imencode(".png", to_levels(full, lo, hi, 65535).astype(np.uint16))
        if not ok:
            raise OutputError(f"{path}: OpenCV cannot encode the depth map")
        with atomic_output(path) as tmp:
            tmp.write_bytes(png)  # not cv2.imwrite: it answers a full disk with a bare False
        paths.append(path)
    return paths


def write_poses(path: Path, poses: np.ndarray) -> None:
    """`(N, 4, 4)` camera-to-world poses as KITTI text: 12 numbers (3x4, row-major) a line."""
    with atomic_output(path) as tmp:
        np.savetxt(tmp, poses[:, :3, :].reshape(len(poses), 12), fmt="%.6e")


def write_preview(path: Path, disparity: np.ndarray, fps: float, size: tuple[int, int]) -> None:
    """A colour-mapped (turbo, near = warm) video of the clip's depth at `size` (`(W, H)`)."""
    lo, hi = clip_range(disparity)
    with atomic_output(path) as tmp, _frame_warnings_muted():
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
        if not writer.isOpened():  # OSError: a full disk is found out by `atomic_output`
            raise OSError("OpenCV cannot write an mp4 video here")
        try:
            for disp in disparity:
                full = cv2.resize(disp, size, interpolation=cv2.INTER_LINEAR)
                levels = to_levels(full, lo, hi, 255).astype(np.uint8)
                writer.write(cv2.applyColorMap(levels, cv2.COLORMAP_TURBO))
        finally:
            writer.release()
        _check_complete(tmp)


@contextlib.contextmanager
def _frame_warnings_muted() -> Iterator[None]:
    """OpenCV's video writer warns once for each frame it cannot write, hundreds of lines
    for a full disk; `_check_complete` reports the failure once instead."""
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


def _check_complete(path: Path) -> None:
    """OSError unless the MP4 at `path` is whole. OpenCV's writer only warns when it cannot
    write (a full disk among the causes), and a file cut short lacks the `moov` box that the
    muxer writes last; its top-level boxes are walked, not decoded (FFmpeg would print its
    own complaint)."""
    size = path.stat().st_size
    offset, kinds = 0, set()
    with open(path, "rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            head = f.read(16)
            length, kind = struct.unpack(">I4s", head[:8])
            if length == 1 and len(head) == 16:  # a 64-bit size follows the type
                length = struct.unpack(">Q", head[8:])[0]
            elif length == 0:  # the box runs to the end of the file
                length = size - offset
            if length < 8:
                break
            kinds.add(kind)
            offset += length
    if offset != size or b"moov" not in kinds:
        raise OSError("the video file is incomplete")
