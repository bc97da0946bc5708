"""Frames of a clip: a video file (OpenCV decoding, one frame at a time) or a folder of
images, brought to the fitting size as RGB uint8 (grey frames get three equal channels) and
kept in a memory-mapped cache in the output folder, so a rerun does not decode again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.errors import InputError, OptionError
from prodepth_cli.video.cache import FrameArrayWriter, open_cached

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm"}
# Frames are fitted at about this many pixels on the long side (see `fitting_size`).
DEFAULT_LONG_SIDE = 416
_MULTIPLE = 32  # the depth network's encoder halves the size five times
FRAMES_CACHE = "frames.u8"  # `(N, h, w, 3)` uint8 RGB at the fitting size, header beside it

FullFrameCallback = Callable[[np.ndarray, tuple[int, int]], None]  # full RGB, fitting (w, h)


@dataclass
class Clip:
    """The frames of one clip at the fitting size.

    rgb: `(N, h, w, 3)` uint8 RGB at the fitting size (in memory, or memory-mapped from the
    output folder's frame cache). names: one output stem per frame (the file stem for
    folders, the zero-padded index for videos). `width`/`height`: the original frame size,
    which outputs are written at. `fps`: frames per second (videos; else 10).
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


@dataclass(frozen=True)
class ClipSource:
    """A video file or a folder of frames, not yet decoded: `frames()` streams them."""

    path: Path
    files: tuple[Path, ...] | None  # a folder's image files, sorted; None for a video

    @property
    def fingerprint(self) -> dict:
        """What identifies the frames for a cache: path, and size and time of every file."""
        files = self.files if self.files is not None else (self.path,)
        stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        return {"source": str(self.path.resolve()), "files": stats}

    def frames(self) -> Iterator[np.ndarray]:
        """Each frame at full size, `(H, W, 3)` uint8 RGB, one at a time."""
        if self.files is not None:
            yield from _read_folder(self.path, self.files)
        else:
            yield from _read_video(self.path)

    @property
    def fps(self) -> float:
        if self.files is not None:
            return 10.0
        cap = cv2.VideoCapture(str(self.path))
        fps = cap.get(cv2.CAP_PROP_FPS) or 0.0
        cap.release()
        return fps if 0 < fps < 1000 else 25.0


def open_source(path: str | Path) -> ClipSource:
    """The clip at `path`; InputError naming it when it is missing or an empty folder."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if p.is_dir():
        files = _frame_files(p)
        if not files:
            raise InputError(f"{p}: no image files in this folder")
        return ClipSource(p, tuple(files))
    return ClipSource(p, None)


def clip_key(path: str | Path, size: tuple[int, int] | None = None) -> dict:
    """What a cache of the clip at `path` brought to `size` is made for (see `read_clip`)."""
    return {**open_source(path).fingerprint, "size": list(size) if size else None}


def cached_clip(path: str | Path, size: tuple[int, int] | None, cache: str | Path) -> Clip | None:
    """The clip from the frame cache in folder `cache` when it holds this clip at this size
    (memory-mapped, nothing decoded), else None."""
    cached = open_cached(Path(cache) / FRAMES_CACHE, clip_key(path, size))
    if cached is None:
        return None
    rgb, meta = cached
    return Clip(str(path), rgb, meta["names"], meta["width"], meta["height"], meta["fps"])


def read_clip(
    path: str | Path,
    size: tuple[int, int] | None = None,
    on_frame: Callable[[], None] | None = None,
    cache: str | Path | None = None,
    on_full: FullFrameCallback | None = None,
) -> Clip:
    """Read a video file or a folder of frames, resized to `size` (`(w, h)`; default
    `fitting_size`), one frame at a time. Raises InputError naming the path when it is not a
    usable clip.

    cache: a folder for the frames at the fitting size (`frames.u8`, memory-mapped, and its
    JSON header); when it already holds this clip at this size the clip comes from there and
    nothing is decoded (`cached_clip`). on_full: called with each frame at full size
    (`(H, W, 3)` uint8 RGB) and the fitting size as it streams (not when the cache answers).
    """
    if cache is not None:
        clip = cached_clip(path, size, cache)
        if clip is not None:
            return clip
    source = open_source(path)
    sink: FrameArrayWriter | list[np.ndarray]
    sink = FrameArrayWriter(Path(cache) / FRAMES_CACHE, np.uint8) if cache is not None else []
    try:
        width, height, count = _stream(source, size, sink, on_frame, on_full)
    except BaseException:
        if isinstance(sink, FrameArrayWriter):
            sink.abort()
        raise
    if source.files is not None:
        names = [f.stem for f in source.files]
    else:
        digits = max(6, len(str(count - 1)))
        names = [f"{i:0{digits}d}" for i in range(count)]
    fps = source.fps
    if isinstance(sink, list):
        return Clip(str(path), np.stack(sink), names, width, height, fps)
    extra = {"names": names, "width": width, "height": height, "fps": fps}
    rgb = sink.finish(clip_key(path, size), extra)
    return Clip(str(path), rgb, names, width, height, fps)


def _stream(
    source: ClipSource,
    size: tuple[int, int] | None,
    sink: FrameArrayWriter | list[np.ndarray],
    on_frame: Callable[[], None] | None,
    on_full: FullFrameCallback | None,
) -> tuple[int, int, int]:
    """Every frame of `source` resized into `sink`; `(width, height, count)` of the clip."""
    width = height = count = 0
    fit: tuple[int, int] = size or (0, 0)
    for frame in source.frames():
        if count == 0:
            height, width = frame.shape[:2]
            fit = size or fitting_size(width, height)
        elif frame.shape[:2] != (height, width):
            name = source.files[count].stem if source.files is not None else str(count)
            raise InputError(
                f"{source.path}: frame {name} is {frame.shape[1]}x{frame.shape[0]}, "
                f"the first is {width}x{height}"
            )
        small = cv2.resize(frame, fit, interpolation=cv2.INTER_AREA)
        sink.append(small)
        if on_full:
            on_full(frame, fit)
        if on_frame:
            on_frame()
        count += 1
    if count < 3:
        raise InputError(f"{source.path}: {count} frame(s); a clip needs at least 3")
    return width, height, count


def _frame_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)


def _read_folder(folder: Path, files: tuple[Path, ...]) -> Iterator[np.ndarray]:
    for f in files:
        img = cv2.imread(str(f), cv2.IMREAD_COLOR)  # grey files come back as 3 equal channels
        if img is None:
            raise InputError(f"{f}: not a readable image")
        yield cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def rgb_frames(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    """The frames `cap` decodes from where it stands to the first it cannot, each `(H, W, 3)`
    uint8 RGB (grey frames get three equal channels)."""
    while True:
        ok, bgr = cap.read()
        if not ok:
            return
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _read_video(path: Path) -> Iterator[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise InputError(f"{path}: not a video OpenCV can decode")
        count = 0
        for frame in rgb_frames(cap):
            count += 1
            yield frame
    finally:
        cap.release()
    if not count:
        raise InputError(f"{path}: not a video OpenCV can decode (no frames)")
