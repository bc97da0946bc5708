"""Frames of a clip: a video file (OpenCV decoding) or a folder of images, read once into
memory at the fitting size as RGB uint8 (grey frames get three equal channels)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.errors import InputError, OptionError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm"}
# Frames are fitted at about this many pixels on the long side (see `fitting_size`).
DEFAULT_LONG_SIDE = 416
_MULTIPLE = 32  # the depth network's encoder halves the size five times


@dataclass
class Clip:
    """The frames of one clip at the fitting size.

    rgb: `(N, h, w, 3)` uint8 RGB at the fitting size. names: one output stem per frame (the
    file stem for folders, the zero-padded index for videos). `width`/`height`: the original
    frame size, which outputs are written at. `fps`: frames per second (videos; else 10).
    """

    source: str
    rgb: np.ndarray
    names: list[str]
    width: int
    height: int
    fps: float

    @property
    def size(self) -> tuple[int, int]:
        """`(w, h)` of the fitting size."""
        return self.rgb.shape[2], self.rgb.shape[1]

    def __len__(self) -> int:
        return len(self.rgb)


def fitting_size(width: int, height: int, long_side: int = DEFAULT_LONG_SIDE) -> tuple[int, int]:
    """`(w, h)`: the long side at `long_side` (smaller frames keep their size), aspect kept,
    both rounded to multiples of 32."""
    scale = min(1.0, long_side / max(width, height))

    def snap(v: float) -> int:
        return max(_MULTIPLE, int(round(v * scale / _MULTIPLE)) * _MULTIPLE)

    return snap(width), snap(height)


def parse_size(text: str) -> tuple[int, int]:
    """`"WxH"` -> `(w, h)`; both must be positive multiples of 32."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise OptionError(f"--size {text!r}: expected WxH, e.g. 416x128") from None
    if w <= 0 or h <= 0 or w % _MULTIPLE or h % _MULTIPLE:
        raise OptionError(f"--size {text!r}: width and height must be positive multiples of 32")
    return w, h


def read_clip(
    path: str | Path,
    size: tuple[int, int] | None = None,
    on_frame: Callable[[], None] | None = None,
) -> Clip:
    """Read a video file or a folder of frames, resized to `size` (`(w, h)`; default
    `fitting_size`). Raises InputError naming the path when it is not a usable clip."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        files = _frame_files(p)
        frames, names, fps = _read_folder(p, files), [f.stem for f in files], 10.0
    else:
        frames, fps = _read_video(p)
        names = None
    if len(frames) < 3:
        raise InputError(f"{p}: {len(frames)} frame(s); a clip needs at least 3")
    height, width = frames[0].shape[:2]
    w, h = size or fitting_size(width, height)
    if names is None:
        digits = max(6, len(str(len(frames) - 1)))
        names = [f"{i:0{digits}d}" for i in range(len(frames))]
    rgb = np.empty((len(frames), h, w, 3), np.uint8)
    for i, frame in enumerate(frames):
        if frame.shape[:2] != (height, width):
            raise InputError(
                f"{p}: frame {names[i]} is {frame.shape[1]}x{frame.shape[0]}, "
                f"the first is {width}x{height}"
            )
        rgb[i] = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
        if on_frame:
            on_frame()
    return Clip(str(p), rgb, names, width, height, fps)


def _frame_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)


def _read_folder(folder: Path, files: list[Path]) -> list[np.ndarray]:
    if not files:
        raise InputError(f"{folder}: no image files in this folder")
    frames = []
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)  # grey files come back as 3 equal channels
        if img is None:
            raise InputError(f"{f}: not a readable image")
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return frames


def _read_video(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"{path}: not a video OpenCV can decode")
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frame.ndim == 2:
                frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if not frames:
        raise InputError(f"{path}: not a video OpenCV can decode (no frames)")
    return frames, fps if 0 < fps < 1000 else 25.0
