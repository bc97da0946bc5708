"""Frames of a clip one at a time, never all held: a video file (OpenCV decoding) or a folder
of images (libvips, as `prodepth depth` reads them), each frame RGB uint8 at full size."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.errors import InputError
from prodepth_cli.io.read import open_image
from prodepth_cli.video.frames import IMAGE_SUFFIXES, rgb_frames

FOLDER_FPS = 10.0  # a folder of frames has no frame rate of its own
_FALLBACK_FPS = 25.0  # a video whose header gives no usable rate
_NAME_DIGITS = 6  # video frames are named by their zero-padded index
# OpenCV's FFmpeg prints a line for each damaged packet of a truncated video, on stderr
# beside the one line that names the frame; read once, when its first video is opened.
_FFMPEG_LOGLEVEL = ("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET, unless the user set one


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the clip (from 0), its output stem, `(H, W, 3)` RGB
    uint8 pixels (grey frames have three equal channels; 16-bit frames are scaled to 8)."""

    index: int
    name: str
    rgb: np.ndarray


class FrameError(InputError):
    """Frame `index` (named `name`) of a clip cannot be decoded; the frames before it were."""

    def __init__(self, message: str, index: int, name: str):
        super().__init__(message)
        self.index = index
        self.name = name


class FrameStream:
    """The frames of a video file or a folder of images, decoded as they are asked for.

    `fps`: frames per second (a video's header: OpenCV reports the average rate of a
    variable-rate video; a folder: `FOLDER_FPS`). `count`: the number of frames when known
    (a folder's files, a video's header), else None. Iterating decodes from the first frame
    and raises `FrameError` at a frame that cannot be decoded, or where a video ends before
    the count its header gives.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or folder")
        self._files: list[Path] | None = None
        if self.path.is_dir():
            self._files = _frame_files(self.path)
            self.fps, self.count = FOLDER_FPS, len(self._files)
        else:
            self.fps, self.count = _video_header(self.path)

    def name(self, index: int) -> str:
        """The output stem of frame `index`: a folder's file stem, a video's padded index."""
        if self._files is not None:
            return self._files[index].stem
        digits = max(_NAME_DIGITS, len(str((self.count or 1) - 1)))
        return f"{index:0{digits}d}"

    def __iter__(self) -> Iterator[Frame]:
        frames = self._folder_frames() if self._files is not None else self._video_frames()
        size = None
        for frame in frames:
            h, w = frame.rgb.shape[:2]
            if size is not None and (w, h) != size:
                raise FrameError(
                    f"{self.path}: frame {frame.index} ({frame.name}) is {w}x{h}, the first "
                    f"is {size[0]}x{size[1]}",
                    frame.index,
                    frame.name,
                )
            size = (w, h)
            yield frame

    def _folder_frames(self) -> Iterator[Frame]:
        for i, f in enumerate(self._files or []):
            try:
                image = open_image(f)
                pixels = image.rows(0, image.height)
            except InputError as exc:
                raise FrameError(f"frame {i}: {exc}", i, f.stem) from None
            yield Frame(i, f.stem, _as_uint8(pixels, image.full_scale))

    def _video_frames(self) -> Iterator[Frame]:
        cap = _open_video(self.path)
        try:
            index = 0
            for rgb in rgb_frames(cap):
                yield Frame(index, self.name(index), rgb)
                index += 1
        finally:
            cap.release()
        if self.count is not None and index < self.count:
            raise FrameError(
                f"{self.path}: frame {index} cannot be decoded: the video ends after {index} "
                f"of the {self.count} frames its header lists (truncated or corrupt)",
                index,
                self.name(index),
            )
        if index == 0:
            raise InputError(f"{self.path}: not a video OpenCV can decode (no frames)")


def open_frames(path: str | Path) -> FrameStream:
    """A `FrameStream` over the video file or folder of images at `path`; InputError when it
    is neither (nothing is decoded yet but a video's header)."""
    return FrameStream(path)


def _frame_files(folder: Path) -> list[Path]:
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no image files in this folder")
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:  # both would be written to one output
            raise InputError(f"{folder}: {seen[f.stem].name} and {f.name} are one frame name")
        seen[f.stem] = f
    return files


def _open_video(path: Path) -> cv2.VideoCapture:
    os.environ.setdefault(*_FFMPEG_LOGLEVEL)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise InputError(
            f"{path}: not a video OpenCV can decode (a file cut short before its index, "
            "or not a video)"
        )
    return cap


def _video_header(path: Path) -> tuple[float, int | None]:
    """`(fps, frame count or None)` from a video's header."""
    cap = _open_video(path)
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    return (fps if 0 < fps < 1000 else _FALLBACK_FPS), (count if count > 0 else None)


def _as_uint8(pixels: np.ndarray, full_scale: float) -> np.ndarray:
    """Stored pixels `(H, W, 3)` with white at `full_scale` as uint8 (a copy: the decoder's
    buffer is not ours to keep)."""
    if pixels.dtype == np.uint8:
        return pixels.copy()
    scaled = pixels.astype(np.float32) * np.float32(255.0 / full_scale) + np.float32(0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)
