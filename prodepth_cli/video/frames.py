"""Frames of a clip for the fit: read through `stream.FrameStream` (the reader `--fast` uses),
brought to the fitting size as RGB uint8 and kept in a memory-mapped cache in the output
folder, so a rerun does not decode again and a run stopped at a bad frame resumes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.errors import InputError, OptionError
from prodepth_cli.video.cache import FrameArrayWriter, open_cached
from prodepth_cli.video.stream import Frame, FrameError, FrameStream, stopped

# Frames are fitted at about this many pixels on the long side (see `fitting_size`).
DEFAULT_LONG_SIDE = 416
_MULTIPLE = 32  # the depth network's encoder halves the size five times
FRAMES_CACHE = "frames.u8"  # `(N, h, w, 3)` uint8 RGB at the fitting size, header beside it

FullFrameCallback = Callable[[Frame, tuple[int, int]], None]  # a full-size frame, fitting (w, h)


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


def clip_key(path: str | Path, size: tuple[int, int] | None = None) -> dict:
    """What a cache of the clip at `path` brought to `size` is made for (see `read_clip`)."""
    return {**FrameStream(path).fingerprint, "size": list(size) if size else None}


def cached_clip(path: str | Path, size: tuple[int, int] | None, cache: str | Path) -> Clip | None:
    """The clip from the frame cache in folder `cache` when it holds this clip at this size
    (memory-mapped, nothing decoded), else None."""
    cached = open_cached(Path(cache) / FRAMES_CACHE, clip_key(path, size))
    if cached is None:
        return None
    rgb, meta = cached
    return Clip(str(path), rgb, meta["names"], meta["width"], meta["height"], meta["fps"])


def clip_cache_writer(
    stream: FrameStream, path: Path, dtype: np.dtype | str, made_for: dict
) -> FrameArrayWriter:
    """A writer of per-frame arrays of the clip `stream` reads, made for `made_for` (the
    fitting size, the model...), that continues what an earlier run for the same left,
    frame by frame while the frames' data is unchanged (`cache.FrameArrayWriter.needs`)."""
    return FrameArrayWriter(path, dtype, {"source": str(stream.path.resolve()), **made_for})


def read_clip(
    path: str | Path,
    size: tuple[int, int] | None = None,
    on_frame: Callable[[], None] | None = None,
    cache: str | Path | None = None,
    on_full: FullFrameCallback | None = None,
) -> Clip:
    """Read a video file or a folder of frames, resized to `size` (`(w, h)`; default
    `fitting_size`), one frame at a time. Raises InputError naming the path when it is not a
    usable clip, or the frame that cannot be decoded.

    cache: a folder for the frames at the fitting size (`frames.u8`, memory-mapped, and its
    JSON header); when it already holds this clip at this size the clip comes from there and
    nothing is decoded (`cached_clip`). A run stopped at a frame that cannot be decoded (or
    killed) leaves the frames before it there, and the next run decodes but does not store
    them again (those whose data is unchanged: `stream.Frame.key`). on_full: called with
    each frame at full size (`stream.Frame`) and the fitting size as it streams (not when
    the cache answers).
    """
    if cache is not None:
        clip = cached_clip(path, size, cache)
        if clip is not None:
            return clip
    stream = FrameStream(path)
    writer = None
    if cache is not None:
        writer = clip_cache_writer(stream, Path(cache) / FRAMES_CACHE, np.uint8, {"size": size})
    held: list[np.ndarray] = []

    def keep(frame: Frame, fit: tuple[int, int]) -> None:
        if writer is not None and not writer.needs(frame.index, frame.key):
            return  # a run before this one cached it
        small = cv2.resize(frame.rgb, fit, interpolation=cv2.INTER_AREA)
        if writer is None:
            held.append(small)
        else:
            writer.append(small, frame.key)

    try:
        width, height, count = _stream(stream, size, keep, on_frame, on_full)
    except BaseException as exc:
        if writer is not None:
            writer.close()
        if isinstance(exc, FrameError):
            raise (stopped(exc, "cached") if writer is not None else InputError(str(exc))) from None
        raise
    names = [stream.name(i) for i in range(count)]
    if writer is None:
        return Clip(str(path), np.stack(held), names, width, height, stream.fps)
    extra = {"names": names, "width": width, "height": height, "fps": stream.fps}
    rgb = writer.finish(clip_key(path, size), extra)
    return Clip(str(path), rgb, names, width, height, stream.fps)


def _stream(
    stream: FrameStream,
    size: tuple[int, int] | None,
    keep: Callable[[Frame, tuple[int, int]], None],
    on_frame: Callable[[], None] | None,
    on_full: FullFrameCallback | None,
) -> tuple[int, int, int]:
    """Every frame of `stream` and the fitting size into `keep`; `(width, height, count)`
    of the clip."""
    width = height = count = 0
    fit: tuple[int, int] = size or (0, 0)
    for frame in stream:
        if count == 0:
            height, width = frame.rgb.shape[:2]
            fit = size or fitting_size(width, height)
        keep(frame, fit)
        if on_full:
            on_full(frame, fit)
        if on_frame:
            on_frame()
        count += 1
    if count < 3:
        raise InputError(f"{stream.path}: {count} frame(s); a clip needs at least 3")
    return width, height, count
