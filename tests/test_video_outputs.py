"""What `prodepth video` writes, frame by frame: depth maps in each format read back at the
right size and values, written atomically, and the colour preview decoded back with PyAV as
the H.264 MP4 that browsers and phones play."""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
import tifffile
from av.video.reformatter import ColorRange, Colorspace

from prodepth_cli.errors import DiskFullError, OptionError
from prodepth_cli.io.write import DepthArray, write_depth
from prodepth_cli.video import outputs
from prodepth_cli.video.outputs import (
    FrameMapWriter,
    PreviewWriter,
    clip_range,
    mp4_boxes,
    preview_rate,
    write_depth_frames,
    write_preview,
)
from tests.fake_disk import FakeDisk
from tests.test_full_disk import tmpfs  # noqa: F401 (a fixture, asked by name)


def _ramp(h: int = 24, w: int = 40, lo: float = -0.5, hi: float = 2.5) -> np.ndarray:
    """`(h, w)` float32 disparity rising left to right from `lo` to `hi`, a little along y."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (lo + (hi - lo) * xx / (w - 1) + 0.01 * yy).astype(np.float32)


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- per-frame maps -------------------------------------------------------------------------


def test_png16_levels_span_the_clips_range_clipped_outside_it(tmp_path):
    disparity, lo, hi = _ramp(), 0.0, 2.0  # the ramp runs past both ends of [lo, hi]
    path = FrameMapWriter(tmp_path, "png16", (40, 24)).write("f0", disparity, lo, hi)
    levels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert levels.dtype == np.uint16 and levels.shape == (24, 40)
    expected = np.clip(np.floor((disparity - lo) / (hi - lo) * 65535 + 0.5), 0, 65535)
    # float32 arithmetic against float64: a level apart at most where x.5 rounds either way
    assert np.abs(levels.astype(np.int64) - expected).max() <= 1
    assert levels[:, 0].max() == 0 and levels[:, -1].min() == 65535, "clipped, not wrapped"
    assert levels[0, 20] > levels[0, 10], "near (larger disparity) is brighter"


def test_png16_frame_carries_its_range_and_is_rewritten_into_another_once(tmp_path):
    disparity, step = _ramp(lo=0.2, hi=0.8), 1.1 / 65535  # 0.2..1.03
    writer = FrameMapWriter(tmp_path, "png16", (40, 24))
    writer.write("f0", disparity, -1.0, 2.0)
    assert writer.written_range("f0") == (-1.0, 2.0)
    # read in the range the file says, whatever the caller takes it to be (half a level)
    np.testing.assert_allclose(writer.read("f0", 5.0, 6.0), disparity, atol=1.5 * step + 1e-6)
    assert writer.rewrite("f0", 0.0, 1.1, (5.0, 6.0))
    once = writer.path("f0").read_bytes()
    assert writer.written_range("f0") == (0.0, 1.1)
    # rounded twice: half a level of each range
    np.testing.assert_allclose(writer.read("f0", 5.0, 6.0), disparity, atol=2 * step + 1e-6)
    assert not writer.rewrite("f0", 0.0, 1.1, (-1.0, 2.0)), "in that range already"
    assert writer.path("f0").read_bytes() == once


def test_png16_frame_without_its_range_is_read_in_the_one_given(tmp_path):
    """A map written before maps carried their range (its shot's provisional one)."""
    writer = FrameMapWriter(tmp_path, "png16", (40, 24))
    disparity = _ramp(lo=0.2, hi=0.8)  # 0.2..1.03
    write_depth(DepthArray(disparity, range=(0.0, 1.1)), writer.path("f0"), "png16")
    assert writer.written_range("f0") is None
    # half a level of [0, 1.1]
    np.testing.assert_allclose(writer.read("f0", 0.0, 1.1), disparity, atol=1e-5)
    assert writer.rewrite("f0", 0.2, 1.05, (0.0, 1.1))
    assert writer.written_range("f0") == (0.2, 1.05)
    np.testing.assert_allclose(writer.read("f0", 9.0, 9.5), disparity, atol=2e-5)


@pytest.mark.parametrize("fmt", ["tiff", "npy"])
def test_float_frames_are_never_rewritten(tmp_path, fmt):
    writer = FrameMapWriter(tmp_path, fmt, (40, 24))
    writer.write("f0", _ramp(), 0.0, 1.0)
    before = writer.path("f0").read_bytes()
    assert writer.written_range("f0") is None
    assert not writer.rewrite("f0", 0.5, 0.6, (0.0, 1.0))
    assert writer.path("f0").read_bytes() == before


@pytest.mark.parametrize("fmt, read", [("tiff", tifffile.imread), ("npy", np.load)])
def test_float_frames_keep_the_values_resized_to_the_requested_size(tmp_path, fmt, read):
    disparity = _ramp(h=30, w=50)
    size = (100, 61)  # (W, H): odd, and not a multiple of the TIFF's 256-pixel tiles
    path = FrameMapWriter(tmp_path, fmt, size).write("f0", disparity, 0.0, 1.0)
    values = read(path)
    assert values.dtype == np.float32 and values.shape == (61, 100)
    expected = cv2.resize(disparity, size, interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(values, expected), "the raw values, not levels of [lo, hi]"
    assert values.min() < 0 and values.max() > 1, "not clipped to [lo, hi]"
    if fmt == "tiff":
        assert tifffile.TiffFile(path).pages[0].is_tiled


@pytest.mark.parametrize("fmt, suffix", [("png16", ".png"), ("tiff", ".tif"), ("npy", ".npy")])
def test_frame_path_is_where_write_puts_the_map(tmp_path, fmt, suffix):
    writer = FrameMapWriter(tmp_path / "out", fmt, (40, 24))
    assert writer.path("000017") == tmp_path / "out" / f"000017{suffix}"
    assert not writer.path("000017").exists()
    assert writer.write("000017", _ramp(), 0.0, 2.0) == writer.path("000017")
    assert _files(tmp_path / "out") == [f"000017{suffix}"]


@pytest.mark.parametrize("fmt", ["pfm", "jpeg", "exr"])
def test_frame_formats_other_than_png16_tiff_npy_are_refused(tmp_path, fmt):
    with pytest.raises(OptionError, match=f"--format {fmt}"):
        FrameMapWriter(tmp_path, fmt, (40, 24))


@pytest.mark.parametrize("fmt", ["png16", "tiff", "npy"])
def test_a_frame_that_fails_midway_leaves_the_old_map_and_no_partial_file(
    tmp_path, monkeypatch, fmt
):
    writer = FrameMapWriter(tmp_path / "out", fmt, (40, 24))
    path = writer.write("f0", _ramp(), 0.0, 2.0)
    before = path.read_bytes()
    FakeDisk(tmp_path / "out").install(monkeypatch)  # every later write: ENOSPC
    with pytest.raises(DiskFullError) as caught:
        writer.write("f0", _ramp() * 2, 0.0, 2.0)
    assert str(caught.value) == f"{path}: no space left on device"
    assert path.read_bytes() == before, "the map from before is whole"
    assert _files(tmp_path / "out") == [path.name], "no temporary file left"


def test_write_depth_frames_uses_one_range_for_the_clip(tmp_path):
    clip = np.stack([_ramp(), _ramp() + 1.0])  # the second frame nearer everywhere
    paths = write_depth_frames(clip, ["a", "b"], tmp_path, (40, 24))
    a, b = (cv2.imread(str(p), cv2.IMREAD_UNCHANGED).astype(int) for p in paths)
    assert b.mean() > a.mean() + 10000, "one range: a nearer frame is brighter"
    tiffs = write_depth_frames(clip, ["a", "b"], tmp_path, (40, 24), "tiff")
    assert np.array_equal(tifffile.imread(tiffs[1]), clip[1])


def test_clip_range_of_a_long_clip_holds_a_bounded_sample(monkeypatch):
    # 1,000 frames whose levels drift: the percentiles are taken of RANGE_SAMPLES values
    # drawn from every frame (memory independent of the length), and land within 0.2 % of
    # the range of every value (a quarter of them here; 0.13 % on a fit's maps).
    n = 1000
    drift = np.sin(np.linspace(0, 3 * np.pi, n, dtype=np.float32))
    clip = (drift[:, None, None] + _ramp(12, 20)[None]).astype(np.float32)
    monkeypatch.setattr(outputs, "RANGE_SAMPLES", clip.size // 4)
    sizes: list[int] = []
    percentile = np.percentile

    def measured(values, q, **options):
        sizes.append(np.size(values))
        return percentile(values, q, **options)

    monkeypatch.setattr(np, "percentile", measured)
    lo, hi = clip_range(clip)
    assert sizes == [clip.size // 4], "a quarter of the values, never all of them"
    every = percentile(clip, (0.5, 99.5))
    assert np.allclose((lo, hi), every, rtol=0, atol=2e-3 * (every[1] - every[0]))
    short = clip[:10]  # under RANGE_SAMPLES: every value, the range as it always was
    assert clip_range(short) == tuple(percentile(short, (0.5, 99.5)))


# --- the preview ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fps, rate",
    [
        (29.97, Fraction(30000, 1001)),  # a header's rounded NTSC rate
        (30000 / 1001, Fraction(30000, 1001)),  # OpenCV's measured one
        (23.976, Fraction(24000, 1001)),
        (25.0, Fraction(25)),
        (10.0, Fraction(10)),
        (12.5, Fraction(25, 2)),
    ],
)
def test_preview_rate_is_the_exact_rational(fps, rate):
    assert preview_rate(fps) == rate


@pytest.mark.parametrize("fps", [0.0, -25.0, float("nan"), float("inf")])
def test_preview_rate_must_be_positive(fps):
    with pytest.raises(OptionError):
        preview_rate(fps)


@dataclass(frozen=True)
class _Stream:
    """What a video stream says of itself, read while its file is open (PyAV 18.1.1 refuses
    a closed container's stream attributes)."""

    codec: str
    tag: str
    pixels: str
    width: int
    height: int
    average_rate: Fraction
    frames: int


def _decoded(path: Path) -> tuple[_Stream, list[av.VideoFrame], int]:
    """The video stream of `path`, its frames decoded, and how many streams it has."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        said = _Stream(
            stream.codec_context.name,
            stream.codec_tag,
            stream.format.name,
            stream.width,
            stream.height,
            stream.average_rate,
            stream.frames,
        )
        return said, frames, len(container.streams)


@pytest.mark.parametrize(
    "fps, rate",
    [(29.97, Fraction(30000, 1001)), (25.0, Fraction(25)), (10.0, Fraction(10))],
)
def test_preview_is_h264_yuv420p_at_the_clips_rate_moov_first(tmp_path, fps, rate):
    path = tmp_path / "preview.mp4"
    clip = np.stack([_ramp() + 0.1 * i for i in range(7)])
    write_preview(path, clip, fps, (40, 24))
    stream, frames, streams = _decoded(path)
    assert streams == 1, "no audio"
    assert stream.codec == "h264" and stream.tag == "avc1"
    assert stream.pixels == "yuv420p"
    assert (stream.width, stream.height) == (40, 24)
    assert stream.average_rate == rate and stream.frames == 7
    assert len(frames) == 7
    assert [round(f.time * rate) for f in frames] == list(range(7)), "one frame per 1/rate"
    kinds = mp4_boxes(path)
    assert kinds.index(b"moov") < kinds.index(b"mdat"), "+faststart: playable while loading"
    assert _files(tmp_path) == ["preview.mp4"]


@pytest.mark.parametrize("size", [(41, 24), (40, 25), (41, 25), (1, 1)])
def test_preview_of_an_odd_size_gains_one_row_or_column(tmp_path, size):
    path = tmp_path / "preview.mp4"
    write_preview(path, np.stack([_ramp(), _ramp()]), 25.0, size)
    stream, frames, _ = _decoded(path)
    even = (size[0] + size[0] % 2, size[1] + size[1] % 2)
    assert (stream.width, stream.height) == even and len(frames) == 2


def test_preview_colours_are_turbos_for_the_values_written(tmp_path):
    path = tmp_path / "preview.mp4"
    values = np.linspace(0.0, 1.0, 8, dtype=np.float32)
    stripes = np.repeat(values, 16)[None, :].repeat(64, axis=0)  # (64, 128): 8 flat stripes
    with PreviewWriter(path, 10.0, (128, 64)) as preview:
        preview.add(stripes, 0.0, 1.0)
    _, frames, _ = _decoded(path)
    # tagged as converted, so that players (and PyAV's own conversion) read them back so
    assert (frames[0].colorspace, frames[0].color_range) == (Colorspace.ITU709, ColorRange.MPEG)
    rgb = frames[0].to_ndarray(format="rgb24").astype(int)
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)
    turbo = lut[:, 0, ::-1].astype(int)  # (256, 3) RGB
    for k, value in enumerate(values):
        # the middle of a stripe: clear of 4:2:0 chroma shared with the next stripe
        got = rgb[16:48, 16 * k + 4 : 16 * k + 12].reshape(-1, 3).mean(axis=0)
        want = turbo[int(value * 255 + 0.5)]
        # 8 of 255: BT.709 limited range keeps 220 luma levels (one lost in ~1.2) both
        # ways, and x264 at crf 18 moves a flat area by a level or two
        assert np.abs(got - want).max() <= 8, (k, got, want)


def test_preview_failing_midway_leaves_the_old_preview_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "preview.mp4"
    write_preview(path, np.stack([_ramp()] * 3), 25.0, (40, 24))
    before = path.read_bytes()

    def full(self, packets):  # the encoder's packets meet a full disk
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(PreviewWriter, "_mux", full)
    with pytest.raises(DiskFullError) as caught:
        write_preview(path, np.stack([_ramp()] * 30), 25.0, (40, 24))
    assert str(caught.value) == f"{path}: no space left on device"
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["preview.mp4"]


def test_preview_interrupted_by_the_caller_is_removed(tmp_path):
    path = tmp_path / "preview.mp4"
    with pytest.raises(KeyboardInterrupt), PreviewWriter(path, 25.0, (40, 24)) as preview:
        preview.add(_ramp(), 0.0, 2.0)
        raise KeyboardInterrupt
    assert _files(tmp_path) == []


def test_preview_on_a_real_full_disk_is_one_line_and_leaves_nothing(request):
    """FFmpeg writes the file itself (not through Python's `open`): a real disk that fills."""
    disk = request.getfixturevalue("tmpfs")  # 3 MB, or skipped where it cannot be mounted
    noise = np.random.default_rng(0).random((40, 180, 320), dtype=np.float32)  # ~4 MB
    with pytest.raises(DiskFullError) as caught:
        write_preview(disk / "preview.mp4", noise, 25.0, (640, 360))
    assert str(caught.value) == f"{disk / 'preview.mp4'}: no space left on device"
    assert _files(disk) == []


def test_mp4_boxes_walks_top_level_boxes_and_stops_at_a_cut(tmp_path):
    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(body), kind) + body

    large = struct.pack(">I4sQ", 1, b"mdat", 16 + 5) + b"12345"  # a 64-bit size
    data = box(b"ftyp", b"isom") + box(b"moov", b"") + large + box(b"free", b"xx")
    (tmp_path / "a.mp4").write_bytes(data)
    assert mp4_boxes(tmp_path / "a.mp4") == [b"ftyp", b"moov", b"mdat", b"free"]
    (tmp_path / "b.mp4").write_bytes(data[:-1])  # the last box cut short
    assert mp4_boxes(tmp_path / "b.mp4") == [b"ftyp", b"moov", b"mdat"]
