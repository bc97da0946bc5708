"""Frames of a clip one at a time, never all held: a video file (PyAV: FFmpeg's decoders, with
their error checks on) or a folder of images (libvips, as `prodepth depth` reads them), each
frame RGB uint8 at full size; and what identifies a clip's frames for a cache."""

from __future__ import annotations

import contextlib
import hashlib
import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from prodepth_cli.errors import InputError, first_line
from prodepth_cli.io.read import open_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".ppm", ".pgm"}
FOLDER_FPS = 10.0  # a folder of frames has no frame rate of its own
_FALLBACK_FPS = 25.0  # a video whose header gives no usable rate
_NAME_DIGITS = 6  # video frames are named by their zero-padded index
# FFmpeg's decoders hide damage: they conceal a corrupt frame from its neighbours and go on.
# "explode" makes them report it instead. One decoding thread: with several, a slice's
# error is dropped (slice threads) or reported packets later (frame threads), against the
# wrong frame; one thread decodes 1080p H.264 many times faster than any depth model runs.
_DECODER_OPTIONS = {"err_detect": "explode"}
# H.264 and HEVC reorder at most 16 frames: that many packets past a damaged one hold every
# frame that displays before it.
_MAX_REORDER = 16


@dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in the clip (from 0), its output stem, `(H, W, 3)` RGB
    uint8 pixels (grey frames have three equal channels; 16-bit frames are scaled to 8),
    and `key`, what identifies the data it was decoded from, for a cache that a run stopped
    short leaves (the next run checks each frame's key before it reuses what is cached):
    a folder's file name, size and time; a video's hash of every packet read until the
    frame came out (a truncated or damaged video and its repaired copy agree on the frames
    before the damage)."""

    index: int
    name: str
    rgb: np.ndarray
    key: str = ""


class FrameError(InputError):
    """A frame of a clip cannot be decoded. `index`: the first frame not delivered (frames
    `0..index-1` were), named `name`; `bad`: the frame whose data is damaged, which a
    decoder that reorders frames (H.264's B-frames) meets before some frames that display
    before it (then `bad > index`)."""

    def __init__(self, message: str, index: int, name: str, bad: int | None = None):
        super().__init__(message)
        self.index = index
        self.name = name
        self.bad = index if bad is None else bad


def stopped(exc: FrameError, kept: str) -> InputError:
    """`exc` as the one line a run that stops there prints: the frames before it are `kept`
    ("written", "cached") and a rerun resumes there."""
    n = exc.index
    if n == 0:
        return InputError(f"{exc}; no frame before it is {kept}")
    if exc.bad == n:
        return InputError(f"{exc}; the {n} frame(s) before it are {kept}, a rerun resumes there")
    later = f"{n}-{exc.bad - 1}" if exc.bad - 1 > n else str(n)
    return InputError(
        f"{exc}; frames 0-{n - 1} are {kept} ({later} come after it in the stream), "
        f"a rerun resumes at frame {n}"
    )


class FrameStream:
    """The frames of a video file or a folder of images, decoded as they are asked for.

    `fps`: frames per second (a video's header: the average rate of a variable-rate video;
    a folder: `FOLDER_FPS`). `count`: the number of frames when known (a folder's files, a
    video's header), else None. Iterating decodes from the first frame and raises
    `FrameError` at a frame that cannot be decoded (an unreadable image; a video packet
    the decoder finds damaged or that is cut short), or where a video ends before the count
    its header gives.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file or folder")
        self._files: list[Path] | None = None
        if self.path.is_dir():
            self._files = frame_files(self.path)
            self.fps, self.count = FOLDER_FPS, len(self._files)
        else:
            self.fps, self.count = _video_header(self.path)

    def name(self, index: int) -> str:
        """The output stem of frame `index`: a folder's file stem, a video's padded index."""
        if self._files is not None:
            return self._files[index].stem
        digits = max(_NAME_DIGITS, len(str((self.count or 1) - 1)))
        return f"{index:0{digits}d}"

    @property
    def fingerprint(self) -> dict:
        """What identifies the whole clip for a cache: its path, and the name, size and time
        of every file (a folder's images, or the video)."""
        files = self._files if self._files is not None else [self.path]
        stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        return {"source": str(self.path.resolve()), "files": stats}

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
            stat = f.stat()
            key = f"{f.name} {stat.st_size} {stat.st_mtime_ns}"
            yield Frame(i, f.stem, _as_uint8(pixels, image.full_scale), key)

    def _video_frames(self) -> Iterator[Frame]:
        with _open_video(self.path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            stream.codec_context.options = dict(_DECODER_OPTIONS)
            decoded = packets_read = 0
            first: int | None = None  # the first frame's pts
            read = hashlib.sha1(bytes(stream.codec_context.extradata or b""))
            waiting: list[int] = []  # pts of packets demuxed whose frames are not out yet
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets, None)
                except av.error.FFmpegError as exc:  # the file cannot be read on
                    raise FrameError(
                        f"{self.path}: frame {decoded} cannot be decoded: {first_line(exc)}",
                        decoded,
                        self.name(decoded),
                    ) from None
                if packet is None:
                    break
                if packet.size:
                    packets_read += 1
                    read.update(bytes(packet))
                    if packet.pts is not None:
                        heapq.heappush(waiting, packet.pts)
                elif self.count is not None and packets_read < self.count:
                    # The demuxer ended early. Not flushed: the frames the decoder holds
                    # may display after missing ones, and take their names.
                    break
                if packet.is_corrupt:  # the demuxer's flag: the file ends inside the packet
                    why = "the file ends inside it (cut short)"
                    raise self._damaged(packet, why, decoded, waiting, packets, stream, first)
                try:
                    out = packet.decode()
                except av.error.FFmpegError:
                    why = "its data is corrupt"
                    raise self._damaged(
                        packet, why, decoded, waiting, packets, stream, first
                    ) from None
                for frame in out:
                    if frame.is_corrupt:
                        raise self._corrupt_frame(decoded, frame)
                    first = frame.pts if first is None else first
                    while waiting and frame.pts is not None and waiting[0] <= frame.pts:
                        heapq.heappop(waiting)
                    rgb = _upright(frame.to_ndarray(format="rgb24"), frame.rotation)
                    yield Frame(decoded, self.name(decoded), rgb, read.hexdigest())
                    decoded += 1
                if not packet.size:
                    break  # the flush packet: the decoder has given every frame
        if self.count is not None and decoded < self.count:
            raise FrameError(
                f"{self.path}: frame {decoded} cannot be decoded: the video ends after "
                f"{decoded} of the {self.count} frames its header lists (truncated or corrupt)",
                decoded,
                self.name(decoded),
            )
        if decoded == 0:
            raise InputError(f"{self.path}: not a video FFmpeg can decode (no frames)")

    def _damaged(
        self,
        packet: av.Packet,
        why: str,
        decoded: int,
        waiting: list[int],
        packets: Iterator[av.Packet],
        stream: av.video.stream.VideoStream,
        first_pts: int | None,
    ) -> FrameError:
        """The error for a packet the decoder rejects (or cut short), `decoded` frames out,
        named by its frame's place in display order: the frames not out yet, and those of
        the next packets, that display before it. Where the file ends that soon, frames
        that display before it may have been cut off with the rest: then its time times the
        frame rate, if that says more (exact at a constant rate)."""
        pts = packet.pts
        if pts is None:
            return self._bad_frame(decoded, decoded, "", why)
        later: list[int | None] = []
        with contextlib.suppress(av.error.FFmpegError):  # unreadable further on: fewer
            later = [p.pts for p in itertools.islice(packets, _MAX_REORDER) if p.size]
        bad = decoded + sum(1 for p in [*waiting, *later] if p is not None and p < pts)
        seconds = float((pts - (first_pts or stream.start_time or 0)) * stream.time_base)
        if len(later) < _MAX_REORDER and seconds > 0:
            bad = max(bad, round(seconds * self.fps))
        return self._bad_frame(decoded, bad, f" (at {seconds:.2f} s)", why)

    def _bad_frame(self, decoded: int, bad: int, when: str, why: str) -> FrameError:
        return FrameError(
            f"{self.path}: frame {bad}{when} cannot be decoded: {why}",
            decoded,
            self.name(decoded),
            bad,
        )

    def _corrupt_frame(self, decoded: int, frame: av.VideoFrame) -> FrameError:
        when = f" (at {frame.time:.2f} s)" if frame.time is not None else ""
        return self._bad_frame(decoded, decoded, when, "the decoder marks it corrupt")


def open_frames(path: str | Path) -> FrameStream:
    """A `FrameStream` over the video file or folder of images at `path`; InputError when it
    is neither (nothing is decoded yet but a video's header)."""
    return FrameStream(path)


def frame_files(folder: Path) -> list[Path]:
    """A folder's image files, sorted by name: the frames of a clip (or its masks).
    InputError when there are none, or when two would give one output name."""
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{folder}: no image files in this folder")
    seen: dict[str, Path] = {}
    for f in files:
        if f.stem in seen:  # both would be written to one output
            raise InputError(f"{folder}: {seen[f.stem].name} and {f.name} are one frame name")
        seen[f.stem] = f
    return files


def _open_video(path: Path) -> av.container.InputContainer:
    """The container at `path`, which has a video stream; InputError otherwise."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError):
        raise InputError(
            f"{path}: not a video FFmpeg can decode (a file cut short before its index, "
            "or not a video)"
        ) from None
    if not container.streams.video:
        container.close()
        raise InputError(f"{path}: not a video (no video stream)")
    return container


def _video_header(path: Path) -> tuple[float, int | None]:
    """`(fps, frame count or None)` from a video's header (the average rate: a
    variable-rate video's too)."""
    with _open_video(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        count = stream.frames
    return (fps if 0 < fps < 1000 else _FALLBACK_FPS), (count if count > 0 else None)


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """A decoded frame `(H, W, 3)` turned as its display matrix says (`rotation`: degrees
    counterclockwise; a phone held upright records a rotated frame and this angle)."""
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _as_uint8(pixels: np.ndarray, full_scale: float) -> np.ndarray:
    """Stored pixels `(H, W, 3)` with white at `full_scale` as uint8 (a copy: the decoder's
    buffer is not ours to keep)."""
    if pixels.dtype == np.uint8:
        return pixels.copy()
    scaled = pixels.astype(np.float32) * np.float32(255.0 / full_scale) + np.float32(0.5)
    return np.clip(scaled, 0, 255).astype(np.uint8)
