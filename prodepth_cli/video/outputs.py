"""What `prodepth video` writes: one depth map per frame (16-bit PNG, float TIFF or npy), the
camera poses as KITTI text, and an optional colour-mapped H.264 preview; every file atomic."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np
import tifffile
from av.video.reformatter import ColorRange, Colorspace

from prodepth_cli.errors import InputError, OptionError, OutputError
from prodepth_cli.io.png import read_text
from prodepth_cli.io.write import FORMATS, DepthArray, atomic_output, level_mapper, write_depth
from prodepth_cli.video.cuts import Shots

# One normalisation for each shot of the clip (not per frame, which would flicker; not for
# the clip, whose shots each have a scale of their own): these percentiles of all its
# frames' disparity map to 0 and 65535 (a `--fast` shot's range holds each of its maps'
# own, `shots.LevelSpan`).
CLIP_PERCENTILES = (0.5, 99.5)
# ...of at most this many values (64 MB), drawn from every frame of a longer clip: on a
# 600-frame fit (docs/video.md), a quarter, a sixteenth and a 64th of its values give its
# range to 0.13 %, 0.22 % and 2 % (of the range).
RANGE_SAMPLES = 1 << 24
FRAME_FORMATS = ("png16", "tiff", "npy")
# The tEXt keyword of the range a 16-bit frame map's levels span ("lo hi").
RANGE_KEYWORD = "prodepth disparity range"
# libx264's constant quality by default (18: hard to tell from the source), at a preset that
# keeps a 1080p preview cheap beside the depth model.
PREVIEW_CRF = 18
_X264_PRESET = "veryfast"
# A depth preview's colours, in BT.709 (HD) and tagged so: players that guess the matrix of
# an untagged stream guess BT.601 for SD and BT.709 for HD, and turbo's hues would shift.
_BT709 = 1  # the H.264 VUI code for BT.709 primaries, transfer and matrix
# How far (frames per second) a header's rate may be from a whole or NTSC rate and still be
# it: headers round (29.97) or measure (29.9700299...), never off by a thousandth.
_RATE_TOLERANCE = 1e-3


def clip_range(disparity: np.ndarray, frames: range | None = None) -> tuple[float, float]:
    """`(lo, hi)` disparity mapped to black and white for `frames` (None: every frame of the
    clip; a shot's frames for its range).

    disparity: `(N, h, w)`, e.g. memory-mapped: read a frame at a time. The percentiles are
    those of every value when the frames have at most `RANGE_SAMPLES` of them (up to 2,730
    frames at 96x64, 180 at 416x224), else of as many values drawn from each frame at
    random (seeded: the same range on every run), `RANGE_SAMPLES` in all: the same memory
    for any length."""
    frames = frames if frames is not None else range(len(disparity))
    n, first = len(frames), np.asarray(disparity[frames.start])
    size, rng = first.size, np.random.default_rng(0)
    count = size if n * size <= RANGE_SAMPLES else max(1, RANGE_SAMPLES // n)
    sample = np.empty(n * count, first.dtype)
    for t, i in enumerate(frames):
        values = np.ravel(disparity[i])
        if count < size:
            values = values[rng.choice(size, count, replace=False)]
        sample[t * count : (t + 1) * count] = values
    lo, hi = np.percentile(sample, CLIP_PERCENTILES, overwrite_input=True)
    return float(lo), float(max(hi, lo + 1e-12))


def shot_ranges(disparity: np.ndarray, shots: Shots | None = None) -> list[tuple[float, float]]:
    """Each shot's `(lo, hi)` (`clip_range` of its frames), in order; `disparity`
    `(N, h, w)` read a frame at a time; shots: None, the clip as one."""
    return [clip_range(disparity, frames) for frames in (shots or Shots(len(disparity))).ranges]


def frame_ranges(shots: Shots, ranges: list[tuple[float, float]]) -> Iterator[tuple[float, float]]:
    """Each frame's `(lo, hi)`, its shot's of `ranges`, in order."""
    for frames, span in zip(shots.ranges, ranges, strict=True):
        yield from (span for _ in frames)


def _resized(disparity: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`(h, w)` disparity at `size` (`(W, H)`), bilinear; as it is when already that size."""
    disparity = np.asarray(disparity, np.float32)
    if disparity.shape[::-1] == tuple(size):
        return disparity
    return cv2.resize(disparity, size, interpolation=cv2.INTER_LINEAR)


class FrameMapWriter:
    """Per-frame depth maps in `folder`, `fmt` png16 | tiff | npy, at `size` (`(W, H)`: maps
    are resized to it), each written atomically, by the encoders of single photographs
    (io/write.py). png16: levels of one range `[lo, hi]` for the clip, 0..65535, clipped
    (near = bright), the range in the file itself (tEXt `RANGE_KEYWORD`: "lo hi", exact
    decimal floats; disparity = lo + level / 65535 * (hi - lo)), so that a map says which
    range it is in whatever happened to its folder; tiff (tiled float32, deflate) and npy
    (float32): the disparity itself."""

    def __init__(self, folder: Path, fmt: str, size: tuple[int, int]):
        if fmt not in FRAME_FORMATS:
            raise OptionError(f"--format {fmt}: frames are written as {', '.join(FRAME_FORMATS)}")
        self.folder, self.fmt, self.size = Path(folder), fmt, (int(size[0]), int(size[1]))

    def path(self, name: str) -> Path:
        """Where the map of frame `name` goes (a resume checks it)."""
        return self.folder / f"{name}{FORMATS[self.fmt]}"

    def write(self, name: str, disparity: np.ndarray, lo: float, hi: float) -> Path:
        """`(h, w)` disparity of frame `name` -> its file at `size`; `[lo, hi]`: the clip's
        range (png16 only)."""
        path = self.path(name)
        text = {RANGE_KEYWORD: f"{float(lo)!r} {float(hi)!r}"} if self.fmt == "png16" else None
        raw = DepthArray(_resized(disparity, self.size), range=(lo, hi))
        write_depth(raw, path, self.fmt, text=text)
        return path

    def written_range(self, name: str) -> tuple[float, float] | None:
        """The `(lo, hi)` frame `name`'s 16-bit map says its levels span (its header only
        is read); None for float maps and for a PNG that does not say (written before maps
        carried their range). InputError when it is not a readable map."""
        if self.fmt != "png16":
            return None
        path = self.path(name)
        try:
            with open(path, "rb") as f:
                return _range_of(read_text(f))
        except (OSError, ValueError):
            raise InputError(f"{path}: not a readable depth map; remove it and rerun") from None

    def read(self, name: str, lo: float, hi: float) -> np.ndarray:
        """The map `write` wrote for frame `name`, back as `(H, W)` float32 disparity:
        16-bit PNG levels over the range the file carries (`[lo, hi]` when it carries none;
        values beyond it come back clipped), float formats as they are. InputError when it
        is not a readable map."""
        path = self.path(name)
        if self.fmt == "npy":
            values = np.load(path)
        elif self.fmt == "tiff":
            values = tifffile.imread(path)
        else:
            lo, hi = self.written_range(name) or (lo, hi)
            levels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if levels is None:
                raise InputError(f"{path}: not a readable depth map; remove it and rerun")
            values = lo + levels.astype(np.float32) * np.float32((hi - lo) / 65535)
        return np.asarray(values, np.float32).reshape(values.shape[:2])

    def rewrite(self, name: str, lo: float, hi: float, fallback: tuple[float, float]) -> bool:
        """Frame `name`'s 16-bit map put in the range `[lo, hi]`: read in the range it
        carries (`fallback` when it carries none), written again over `[lo, hi]`, atomically
        (`write`: the file is the old map or the new one, never a mix). A map that carries
        `[lo, hi]` already is left as it is, so a rewrite that was stopped can be run again
        over every map of its shot: none is converted twice. Float maps hold the values
        themselves: nothing to do. True when the map was rewritten."""
        if self.fmt != "png16" or self.written_range(name) == (lo, hi):
            return False
        self.write(name, self.read(name, *fallback), lo, hi)
        return True


def _range_of(text: dict[str, str]) -> tuple[float, float] | None:
    """`(lo, hi)` from a 16-bit map's `RANGE_KEYWORD` entry; None without one."""
    if RANGE_KEYWORD not in text:
        return None
    lo, hi = (float(v) for v in text[RANGE_KEYWORD].split())
    return lo, hi


def write_depth_frames(
    disparity: np.ndarray,
    names: list[str],
    folder: Path,
    size: tuple[int, int],
    fmt: str = "png16",
    shots: Shots | None = None,
    ranges: list[tuple[float, float]] | None = None,
) -> list[Path]:
    """`(N, h, w)` disparity (e.g. memory-mapped: read a frame at a time) ->
    `folder/<name>.<fmt's suffix>` at `size` (`(W, H)`), one range for each shot of `shots`
    (None: one for the whole clip): `ranges` when given, else `shot_ranges` (see
    `FrameMapWriter`, `clip_range`)."""
    shots = shots or Shots(len(disparity))
    spans = frame_ranges(shots, ranges or shot_ranges(disparity, shots))
    writer = FrameMapWriter(folder, fmt, size)
    return [writer.write(n, d, *span) for d, n, span in zip(disparity, names, spans, strict=True)]


def write_poses(path: Path, poses: np.ndarray) -> None:
    """`(N, 4, 4)` camera-to-world poses as KITTI text: 12 numbers (3x4, row-major) a line."""
    with atomic_output(path) as tmp:
        np.savetxt(tmp, poses[:, :3, :].reshape(len(poses), 12), fmt="%.6e")


def h264_encoder() -> str:
    """The H.264 encoder of PyAV's FFmpeg: libx264 (PyAV's wheels carry it on every platform
    we support), else whichever FFmpeg registers for H.264 (a build without x264)."""
    if "libx264" in av.codecs_available:
        return "libx264"
    try:
        return av.codec.Codec("h264", "w").name
    except ValueError:  # av.codec.codec.UnknownCodecError
        raise OutputError("--preview: this build of PyAV (av) has no H.264 encoder") from None


def preview_rate(fps: float) -> Fraction:
    """`fps` as the rational a video stream carries: whole rates as they are (25), NTSC's
    as their exact x1000/1001 (29.97 and 29.97003 -> 30000/1001, 23.976 -> 24000/1001; a
    plain `limit_denominator` would keep 2997/100), any other to the nearest ratio with a
    denominator up to 1001 (12.5 -> 25/2)."""
    if not 0 < fps < float("inf"):
        raise OptionError(f"{fps} frames per second: a preview needs a positive rate")
    if round(fps) > 0 and abs(fps - round(fps)) < _RATE_TOLERANCE:
        return Fraction(round(fps))
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)
    if ntsc > 0 and abs(float(ntsc) - fps) < _RATE_TOLERANCE * 5:  # 29.97 is 3e-5 from 30000/1001
        return ntsc
    return Fraction(fps).limit_denominator(1001) or Fraction(1, 1001)  # not 0 for 1e-4


class PreviewWriter:
    """A colour-mapped (turbo, near = warm) H.264 MP4 of a clip's depth at `size`
    (`(W, H)`), that browsers and phones play: yuv420p (BT.709, tagged), `moov` before
    `mdat` (+faststart: it plays while it downloads), no audio, `fps` as a rational. 4:2:0
    needs an even width and height: an odd one gains a copy of its last row or column.

    A context manager: frames `add`ed one at a time are encoded as they come; the file is
    written under a temporary name and renamed on a clean exit, removed on an error (one
    line naming `path`: a DiskFullError when the disk filled up). `crf`: libx264's constant
    rate factor (lower: better and bigger; another H.264 encoder takes none).
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int], crf: int = PREVIEW_CRF):
        self.path, self.rate, self.crf = Path(path), preview_rate(fps), crf
        self.size = (int(size[0]), int(size[1]))
        self.frames = 0
        self._pad = (self.size[0] % 2, self.size[1] % 2)  # columns, rows added
        self._exits = contextlib.ExitStack()
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._tmp = self.path

    def __enter__(self) -> PreviewWriter:
        # An error while opening unwinds what is open so far here; once all is open, the
        # closing moves to `__exit__` (`pop_all`).
        with self._exits as exits:
            self._tmp = tmp = exits.enter_context(atomic_output(self.path))
            # FFmpeg writes the file itself: +faststart reads it back to move `moov` first,
            # which PyAV's Python-file I/O cannot (it exhausts memory instead).
            container = av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"})
            exits.push(self._close)
            self._container, self._stream = container, self._video_stream(container)
            self._exits = exits.pop_all()
        return self

    def _video_stream(self, container: av.container.OutputContainer):
        encoder = h264_encoder()
        stream = container.add_stream(encoder, rate=self.rate)
        stream.width = self.size[0] + self._pad[0]
        stream.height = self.size[1] + self._pad[1]
        stream.pix_fmt = "yuv420p"
        if encoder == "libx264":
            stream.options = {"crf": str(self.crf), "preset": _X264_PRESET}
        context = stream.codec_context
        context.colorspace = context.color_primaries = context.color_trc = _BT709
        context.color_range = ColorRange.MPEG  # limited ("TV"): what players expect
        return stream

    def add(self, disparity: np.ndarray, lo: float, hi: float) -> None:
        """One frame: `(h, w)` disparity (resized to `size`), `[lo, hi]` the clip's range."""
        levels = level_mapper((lo, hi), 255, np.uint8)(_resized(disparity, self.size))
        if any(self._pad):
            levels = cv2.copyMakeBorder(
                levels, 0, self._pad[1], 0, self._pad[0], cv2.BORDER_REPLICATE
            )
        self.add_image(cv2.applyColorMap(levels, cv2.COLORMAP_TURBO), "bgr24")

    def add_image(self, pixels: np.ndarray, fmt: str = "rgb24") -> None:
        """One frame of any picture (a parallax video's): `(H, W, 3)` uint8 in `fmt` (rgb24
        or bgr24) at `size` plus the even-size padding."""
        frame = av.VideoFrame.from_ndarray(pixels, format=fmt).reformat(
            format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
        )
        frame.pts = self.frames
        self._mux(self._stream.encode(frame))
        self.frames += 1

    def _mux(self, packets: list) -> None:
        for packet in packets:
            self._container.mux(packet)

    def _close(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Flush the encoder and write `moov` (after a clean run), then close the file."""
        container = self._container
        if kind is not None:
            # The error on its way out (a full disk, most often) is the one to report; the
            # half-written file is removed by `atomic_output`, and closing it can only fail
            # the same way again.
            with contextlib.suppress(av.error.FFmpegError, OSError):
                container.close()
            return
        try:
            self._mux(self._stream.encode())
        finally:
            container.close()
        _check_complete(self._tmp)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exits.__exit__(kind, exc, tb)


def write_preview(
    path: Path,
    disparity: np.ndarray,
    fps: float,
    size: tuple[int, int],
    shots: Shots | None = None,
    ranges: list[tuple[float, float]] | None = None,
) -> None:
    """`(N, h, w)` disparity (e.g. memory-mapped: read a frame at a time) -> the clip's
    colour-mapped preview at `path` (see `PreviewWriter`), one range for each shot of
    `shots` (None: one for the whole clip), as `write_depth_frames` takes them."""
    shots = shots or Shots(len(disparity))
    spans = frame_ranges(shots, ranges or shot_ranges(disparity, shots))
    with PreviewWriter(path, fps, size) as preview:
        for disp, span in zip(disparity, spans, strict=True):
            preview.add(disp, *span)


def mp4_boxes(path: Path) -> list[bytes]:
    """The types of an MP4's top-level boxes, in file order (`ftyp`, `moov`, `mdat`...),
    as far as their sizes hold together (a file cut short ends the list early)."""
    size = path.stat().st_size
    offset, kinds = 0, []
    with open(path, "rb") as f:
        while offset + 8 <= size:
            f.seek(offset)
            head = f.read(16)
            length, kind = struct.unpack(">I4s", head[:8])
            if length == 1 and len(head) == 16:  # a 64-bit size follows the type
                length = struct.unpack(">Q", head[8:])[0]
            elif length == 0:  # the box runs to the end of the file
                length = size - offset
            if length < 8 or offset + length > size:
                break
            kinds.append(kind)
            offset += length
    return kinds


def _check_complete(path: Path) -> None:
    """OSError unless the MP4 at `path` is whole, `moov` first: FFmpeg reports a write
    that failed, and this is the check that its report was not lost on the way."""
    kinds = mp4_boxes(path)
    if b"moov" not in kinds or b"mdat" not in kinds or kinds.index(b"moov") > kinds.index(b"mdat"):
        raise OSError("the video file is incomplete")
