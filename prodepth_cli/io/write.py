"""Depth output: tiles blended into a scratch file on disk, then encoded by strips, atomically.

Per-image normalisation (16-bit PNG) needs the whole map's range first, and a gigapixel map
does not fit in memory, so tiles add into an uncompressed float32 scratch file (disk, not
memory) and the encoders read it back in strips (io/png.py for PNG, tifffile for TIFF): no output
format ever holds the map whole.

Conventions: the scratch holds disparity, larger = nearer. `png16` maps the image's own range
to 0..65535 (near = bright); `tiff` (float32, tiled, deflate, BigTIFF when large), `pfm` and
`npy` keep the values: relative inverse depth, or depth in metres for a metric model; `jpeg`
is the photograph itself with the map embedded for photo tools (io/embed.py). PNG and TIFF
maps carry the photograph's camera EXIF (when, with what; Orientation 1: already upright).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import cv2
import numpy as np
import tifffile

from prodepth_cli.errors import OutputError, write_error
from prodepth_cli.io.embed import write_embedded
from prodepth_cli.io.metadata import EXIF_HEADER, exif_blob, tiff_tags
from prodepth_cli.io.png import text_chunk, write_png
from prodepth_cli.io.scratch import BLOCK, RowBand, ScratchArray, rows_per_strip

FORMATS = {"png16": ".png", "tiff": ".tif", "pfm": ".pfm", "npy": ".npy", "jpeg": ".jpg"}
FORMAT_OF_SUFFIX = {
    ".png": "png16",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".pfm": "pfm",
    ".npy": "npy",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
}
_BIGTIFF_BYTES = 2**31
_TIFF_TILE = 256
_PNG_LEVEL = 1  # zlib level: smooth depth maps gain little from more effort
_NEARLY_FULL = 1 << 20  # bytes free after a failed write that say the disk filled up
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@dataclass(frozen=True)
class PhotoOrigin:
    """The photograph a depth map is of: its name, its bytes when not from a file, and its
    camera EXIF tags (`metadata.camera_tags`), which the map's file carries on."""

    name: str
    data: bytes | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def exif(self) -> bytes:
        """The map's EXIF block, with its `Exif\\0\\0` header."""
        return exif_blob(self.tags)


def format_for_output(dst: str | Path, fmt: str | None) -> str:
    """The format of an output file: its suffix decides; an explicit `fmt` must agree with
    it. OutputError for a suffix that is no depth format, or a contradiction."""
    suffix = Path(dst).suffix.lower()
    by_suffix = FORMAT_OF_SUFFIX.get(suffix)
    if by_suffix is None:
        known = ", ".join(FORMAT_OF_SUFFIX)
        raise OutputError(f"{dst}: {suffix or 'no suffix'} is not a depth map format ({known})")
    if fmt is not None and fmt != by_suffix:
        raise OutputError(f"{dst}: --format {fmt} contradicts the {suffix} suffix ({by_suffix})")
    return by_suffix


@contextlib.contextmanager
def atomic_output(dst: str | Path) -> Iterator[Path]:
    """A temporary path beside `dst` (same suffix) that is renamed to `dst` on success and
    removed on failure, so `dst` is either absent or complete. An OSError on the way (the
    writer's own, or the rename's) becomes an OutputError naming `dst` and the cause in one
    line: a DiskFullError when no space or quota is left."""
    dst = Path(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{dst.stem}.", suffix=f".part{dst.suffix}", dir=dst.parent
        )
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual mode
        os.close(fd)
    except OSError as exc:
        raise write_error(dst, exc) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dst)
    except OSError as exc:
        error = write_error(dst, _with_cause(exc, dst.parent))  # before the space comes back
        tmp_path.unlink(missing_ok=True)
        raise error from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _with_cause(exc: OSError, folder: Path) -> OSError:
    """`exc`, or ENOSPC when it has no errno and `folder`'s disk is all but full: writers
    that check their own byte counts (tifffile, numpy, a video encoder) lose the errno."""
    if exc.errno is not None:
        return exc
    try:
        full = shutil.disk_usage(folder).free < _NEARLY_FULL
    except OSError:
        full = False
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if full else exc


class DepthScratch:
    """The depth map being blended: float32 `(height, width)` disparity on disk (see
    `ScratchArray`); `metres` when it is 1/metres and float outputs should carry metres.

    Tiles add their weighted maps into it; once all are in, the encoders read it back in
    strips, so no output format ever holds the map whole. With `band_rows` (the tiles' height)
    tiles must come down the image, and while that band of rows is small (`RowBand.fits`)
    they add up in memory: the rows above a new tile's top are final, and go to disk once,
    their range noted on the way.
    """

    def __init__(self, width: int, height: int, metres: bool = False, band_rows: int = 0):
        self.width, self.height, self.metres = width, height, metres
        fits = band_rows > 0 and RowBand.fits(band_rows, width)
        self._band = RowBand(band_rows, width) if fits else None
        # Behind a band only whole rows come and go; tiles added on disk need column blocks.
        self.array = ScratchArray(height, width, block=width if fits else BLOCK)
        self._seen = (np.inf, -np.inf)  # the range of the rows the band has let go

    def __enter__(self) -> DepthScratch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.array.close()

    def add(self, y0: int, x0: int, values: np.ndarray) -> None:
        """Add a weighted tile; NaN and infinities (a model's bad pixels) count as 0."""
        values = _finite(values)
        if self._band is None:
            self.array.add(y0, x0, values)
            return
        if y0 + len(values) > self._band.bottom:
            self._let_go(y0)
            self._band.slide_to(y0)
        self._band.add(y0, x0, values)

    def _let_go(self, y1: int) -> None:
        """Rows from the band's top to `y1` are final: to disk, their range noted."""
        band = self._band
        rows = band.read(band.top, min(y1, band.bottom, self.height))
        if len(rows):
            self.array.write(band.top, 0, rows)
            lo, hi = cv2.minMaxLoc(rows)[:2]
            self._seen = (min(self._seen[0], lo), max(self._seen[1], hi))

    def _settle(self) -> None:
        """Every tile is in: the rows still in the band go to disk (once)."""
        if self._band is not None:
            self._let_go(self.height)
            self._band = None

    def values(self, y0: int, y1: int, x0: int = 0, x1: int | None = None) -> np.ndarray:
        """A window as float outputs store it: disparity, or metres for a metric map."""
        self._settle()
        window = self.array.read(y0, y1, x0, x1)
        return _metres(window) if self.metres else window

    def strips(self, reverse: bool = False, values: bool = False) -> Iterator[np.ndarray]:
        """The map as `(n, W)` float32 strips of a few MB, top to bottom (or bottom to top):
        disparity, or with `values` what float outputs store (see `values`)."""
        self._settle()
        rows = self.array.strip_rows
        starts = range(0, self.height, rows)
        read = self.values if values else self.array.read
        for y0 in reversed(starts) if reverse else starts:
            yield read(y0, min(y0 + rows, self.height))

    @functools.cached_property
    def range(self) -> tuple[float, float]:
        """(lo, hi) of the finished map: noted as the band let its rows go, else read once
        after every tile is in."""
        banded = self._band is not None
        self._settle()
        if banded:
            return self._seen
        lo, hi = np.inf, -np.inf
        for strip in self.strips():
            lo, hi = min(lo, float(strip.min())), max(hi, float(strip.max()))
        return lo, hi

    def levels(self, top: float, dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
        """A function mapping strips of this map to integer levels 0..`top` of its range
        (near = `top`), as a new array: encoders run it on their worker threads."""
        return level_mapper(self.range, top, dtype)


class DepthArray:
    """A depth map already in memory (a video frame, the Python API's result), read by the
    encoders as they read a `DepthScratch`: float32 `(height, width)` disparity, `metres` as
    there. `range`: the `(lo, hi)` disparity that `png16` maps to 0..65535, values outside it
    clipped; default the map's own (a clip passes one range for all its frames, so that they
    do not flicker)."""

    def __init__(
        self,
        disparity: np.ndarray,
        metres: bool = False,
        range: tuple[float, float] | None = None,
    ):
        self.array = _finite(disparity)
        self.height, self.width = self.array.shape
        self.metres = metres
        self.range = range or (float(self.array.min()), float(self.array.max()))

    def values(self, y0: int, y1: int, x0: int = 0, x1: int | None = None) -> np.ndarray:
        """A window as float outputs store it (see `DepthScratch.values`)."""
        window = self.array[y0:y1, x0:x1]
        return _metres(window) if self.metres else window

    def strips(self, reverse: bool = False, values: bool = False) -> Iterator[np.ndarray]:
        """The map as `(n, W)` float32 strips (see `DepthScratch.strips`)."""
        rows = rows_per_strip(self.width * self.array.itemsize)
        starts = range(0, self.height, rows)
        read = self.values if values else lambda y0, y1: self.array[y0:y1]
        for y0 in reversed(starts) if reverse else starts:
            yield read(y0, min(y0 + rows, self.height))

    def levels(self, top: float, dtype: np.dtype) -> Callable[[np.ndarray], np.ndarray]:
        """See `DepthScratch.levels`; values outside `range` are clipped."""
        return level_mapper(self.range, top, dtype)


def _finite(values: np.ndarray) -> np.ndarray:
    """`values` as float32, NaN and infinities (a model's bad pixels) made 0. The check is
    one read; the cleaning copy is made only when it finds some."""
    values = np.asarray(values, np.float32)
    if not np.isfinite(values).all():
        values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    return values


def level_mapper(
    lo_hi: tuple[float, float], top: float, dtype: np.dtype
) -> Callable[[np.ndarray], np.ndarray]:
    """A function mapping float strips to integer levels 0..`top` over `lo_hi` (near =
    `top`, clipped at both ends), as a new array: encoders run it on their worker threads."""
    lo, hi = lo_hi
    gain = np.float32(top / (hi - lo) if hi > lo else 0.0)

    def to_levels(strip: np.ndarray) -> np.ndarray:
        scaled = strip - np.float32(lo)  # first: lo * gain may be far larger than top
        scaled *= gain
        scaled += np.float32(0.5)
        np.clip(scaled, 0, top, out=scaled)  # a range given from outside (a clip's)
        return scaled.astype(dtype)

    return to_levels


def write_depth(
    raw: DepthScratch,
    dst: str | Path,
    fmt: str,
    origin: PhotoOrigin | None = None,
    text: dict[str, str] | None = None,
) -> None:
    """Encode `raw` as `fmt` at `dst` ("-" = PNG bytes on stdout), atomically, carrying what
    it takes from the photograph `origin` (`jpeg` needs it: the photograph is the file).
    `text`: tEXt entries (keyword: value, Latin-1) a png16 carries before its pixels (a
    video frame's range, `video.outputs.FrameMapWriter`); the other formats have no place
    for them and refuse them."""
    if fmt not in FORMATS:
        raise OutputError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if text and fmt != "png16":
        raise ValueError(f"{fmt}: text entries are for png16 only")
    origin = origin or PhotoOrigin(str(dst))
    if str(dst) == "-":
        if fmt != "png16":
            raise OutputError("-o -: standard output carries PNG only (--format png16)")
        _write_png16(raw, sys.stdout.buffer, origin, text)
        sys.stdout.buffer.flush()
        return
    with atomic_output(dst) as tmp:
        if fmt == "png16":
            _save_png16(raw, tmp, origin, text)
        else:
            _SAVERS[fmt](raw, tmp, origin)


def write_colormap(raw: DepthScratch, dst: str | Path, origin: PhotoOrigin | None = None) -> None:
    """An 8-bit colour preview of `raw` (turbo colour map, near = warm) as PNG, atomically."""
    lut = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_TURBO)
    lut = lut[:, 0, ::-1]  # (256, 3) RGB
    to_levels = raw.levels(255.0, np.uint8)

    def colours(strip: np.ndarray) -> np.ndarray:
        return lut[to_levels(strip)].reshape(len(strip), -1)

    with atomic_output(dst) as tmp, open(tmp, "wb") as f:
        write_png(
            f,
            raw.width,
            raw.height,
            raw.strips(),
            8,
            channels=3,
            level=_PNG_LEVEL,
            samples=colours,
            chunks=_png_exif(origin),
        )


def _png_exif(origin: PhotoOrigin | None) -> list[tuple[bytes, bytes]]:
    """The eXIf chunk (the TIFF structure, without JPEG's `Exif\\0\\0`)."""
    return [] if origin is None else [(b"eXIf", origin.exif().removeprefix(EXIF_HEADER))]


def _write_png16(
    raw: DepthScratch, f: BinaryIO, origin: PhotoOrigin, text: dict[str, str] | None = None
) -> None:
    to_levels = raw.levels(65535.0, np.dtype(">u2"))
    notes = [text_chunk(k, v) for k, v in (text or {}).items()]
    write_png(
        f,
        raw.width,
        raw.height,
        raw.strips(),
        16,
        level=_PNG_LEVEL,
        samples=to_levels,
        chunks=_png_exif(origin) + notes,
    )


def _save_png16(
    raw: DepthScratch, path: Path, origin: PhotoOrigin, text: dict[str, str] | None = None
) -> None:
    with open(path, "wb") as f:
        _write_png16(raw, f, origin, text)


def _save_tiff(raw: DepthScratch, path: Path, origin: PhotoOrigin) -> None:
    big = raw.width * raw.height * 4 >= _BIGTIFF_BYTES
    tifffile.imwrite(
        path,
        data=_tiff_tiles(raw),
        shape=(raw.height, raw.width),
        dtype=np.float32,
        tile=(_TIFF_TILE, _TIFF_TILE),
        compression="zlib",
        bigtiff=big,
        # tiles deflated on threads; tifffile's default is half the cores, one thread here
        maxworkers=min(4, os.cpu_count() or 1),
        extratags=tiff_tags(origin.tags),
    )


def _tiff_tiles(raw: DepthScratch) -> Iterator[np.ndarray]:
    """Row-major 256x256 tiles, zero-padded past the right and bottom edges."""
    t = _TIFF_TILE
    for y in range(0, raw.height, t):
        rows = raw.values(y, min(y + t, raw.height))
        for x in range(0, raw.width, t):
            tile = np.zeros((t, t), np.float32)
            part = rows[:, x : x + t]
            tile[: part.shape[0], : part.shape[1]] = part
            yield tile


def _save_pfm(raw: DepthScratch, path: Path, origin: PhotoOrigin) -> None:
    # PFM: little-endian (negative scale), rows stored bottom to top.
    with open(path, "wb") as f:
        f.write(f"Pf\n{raw.width} {raw.height}\n-1.0\n".encode("ascii"))
        for strip in raw.strips(reverse=True, values=True):
            f.write(strip[::-1].astype("<f4").tobytes())


def _save_npy(raw: DepthScratch, path: Path, origin: PhotoOrigin) -> None:
    header = {"descr": "<f4", "fortran_order": False, "shape": (raw.height, raw.width)}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for strip in raw.strips(values=True):
            f.write(strip.tobytes())


def _metres(disparity: np.ndarray) -> np.ndarray:
    """1/metres -> metres; 0 where there is no depth (no tile covered it, or infinitely far)."""
    out = np.zeros_like(disparity)
    np.divide(1.0, disparity, out=out, where=disparity > 0)
    return out


_SAVERS = {
    "png16": _save_png16,
    "tiff": _save_tiff,
    "pfm": _save_pfm,
    "npy": _save_npy,
    "jpeg": write_embedded,
}
