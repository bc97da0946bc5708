"""Read a depth map as `prodepth depth` writes it, for the image it belongs to: whole (bokeh)
or a band of rows at a time, going down the image (stereo), in memory flat in its size.

Accepted: 16-bit (or 8-bit) grey PNG (near = bright), float TIFF, PFM, NPY — all relative
inverse depth, larger = nearer, in the map's own units; or, said by the caller (`metres`,
`--depth-metres`), a metric model's TIFF, PFM or NPY of depth in metres, read as 1/metres.
A map the user gives (`--depth`, `--depth-metres`) travels as one value, `DepthMapFile`.
Non-finite values (`inf` in Middlebury's ground truth) are invalid and filled; a map of
another size is resized. A JPEG may carry its own map (GDepth, as `prodepth depth --embed`
and Google's cameras write it). PNG and TIFF maps are decoded a strip at a time (libvips),
PFM and NPY memory-mapped; an embedded map is decoded whole (it is a small PNG inside the
JPEG's XMP).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import pyvips

from prodepth_cli.errors import InputError, OptionError
from prodepth_cli.io.gdepth import EmbeddedDepthError, read_embedded_depth
from prodepth_cli.io.jpeg_xmp import JPEG_START
from prodepth_cli.io.pfm import pfm_header
from prodepth_cli.io.read import VIPS_NUMPY_FORMAT, vips_reason

DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".pfm", ".npy")
EMBEDDED = "embedded"  # a render's depth name for the map a photograph carries


@dataclass(frozen=True)
class DepthMap:
    """Disparity `(H, W)` float32 (larger = nearer, the file's units), fitted to an image.

    `source_hw` is the size as stored (differs from `disparity.shape` when resized);
    `filled` the fraction of pixels that were invalid and filled.
    """

    disparity: np.ndarray
    source_hw: tuple[int, int]
    filled: float

    @property
    def resized(self) -> bool:
        return self.source_hw != self.disparity.shape


@dataclass(frozen=True)
class DepthMapFile:
    """A depth map given for the photograph (`--depth`): `path`, any map this module reads
    (disparity, larger = nearer; a relative map unless `metres`), or with `metres` depth in
    metres, larger = farther, as a metric model's .tif, .pfm and .npy hold it (0 or less:
    unknown, filled from the farther neighbour along the row; a PNG is refused when read:
    `open_map_file`)."""

    path: Path
    metres: bool = False


class MapRows(Protocol):
    """A stored map's rows, as stored (any numeric dtype, possibly non-finite): `rows(y0,
    y1)` is `(y1 - y0, width)`; calls move down the map (a call may start at or below the
    previous call's start)."""

    height: int
    width: int

    def rows(self, y0: int, y1: int) -> np.ndarray: ...

    def close(self) -> None: ...


def read_depth_map(
    path: str | Path, hw: tuple[int, int] | None = None, *, metres: bool = False
) -> DepthMap:
    """Read the depth map at `path`; with `hw` (H, W), resize it to that size (bilinear);
    with `metres`, it holds depth in metres, read as disparity (see `open_map_file`).

    Raises InputError (one line) for a missing file, an unknown type, a colour image, or a
    map without any valid value.
    """
    reader = open_map_file(path, metres=metres)
    try:
        disparity = reader.rows(0, reader.height).astype(np.float32)
    finally:
        reader.close()
    invalid = ~np.isfinite(disparity)
    if invalid.all():
        raise InputError(f"{path}: the depth map has no valid value")
    filled = float(invalid.mean())
    if filled:
        disparity = fill_invalid(disparity, invalid)
    source_hw = disparity.shape
    if hw is not None and tuple(hw) != source_hw:
        disparity = cv2.resize(disparity, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return DepthMap(disparity, source_hw, filled)


def open_map_file(path: str | Path, *, metres: bool = False) -> MapRows:
    """The depth map file at `path`, opened to read its rows going down (see `MapRows`).
    With `metres`, the file holds depth in metres, larger = farther (the file cannot say
    so): its rows come as disparity, 1/metres (`_MetresAsDisparity`), so that every reader
    of maps, whole or in bands, takes them as it takes any other.

    Raises InputError (one line) for a missing file, an unknown type, a colour image or
    values that are not numbers; OptionError for a PNG with `metres`.
    """
    path = Path(path)
    rows = _open_stored(path)
    if not metres:
        return rows
    if path.suffix.lower() == ".png":
        rows.close()
        raise OptionError(
            f"--depth {path}: a 16-bit PNG map is normalised (near = bright), not "
            "metres; a metric model's metres are in its .tif, .pfm or .npy"
        )
    return _MetresAsDisparity(rows)


def _open_stored(path: Path) -> MapRows:
    """The map file at `path` as stored (see `open_map_file`)."""
    if not path.is_file():
        raise InputError(f"{path}: no such depth map")
    suffix = path.suffix.lower()
    if suffix not in DEPTH_SUFFIXES:
        raise InputError(
            f"{path}: not a depth map type prodepth reads (expected "
            f"{', '.join(DEPTH_SUFFIXES)}, as `prodepth depth` writes)"
        )
    if suffix == ".npy":
        return _npy_rows(path)
    if suffix == ".pfm":
        offset, dtype, shape = pfm_header(path)
        return _FileRows(path, offset, dtype, shape, flipped=True)
    return _VipsRows(path)


def read_embedded_depth_map(
    path: str | Path, data: bytes | None, hw: tuple[int, int]
) -> DepthMap | None:
    """The depth map embedded in the JPEG at `path` (or its bytes `data`), upright and
    resized to `hw` (H, W); None when it carries none. InputError when it names one that
    cannot be read."""
    disparity = embedded_disparity(path, data)
    if disparity is None:
        return None
    source_hw = disparity.shape
    if tuple(hw) != source_hw:
        disparity = cv2.resize(disparity, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return DepthMap(disparity, source_hw, 0.0)


def embedded_disparity(path: str | Path, data: bytes | None) -> np.ndarray | None:
    """The disparity `(h, w)` float32 embedded in the JPEG at `path` (or its bytes `data`),
    upright, at its stored size; None when it carries none."""
    if data is None:
        with open(path, "rb") as f:
            if f.read(3) != JPEG_START:
                return None
            data = JPEG_START + f.read()
    elif not data.startswith(JPEG_START):
        return None
    try:
        embedded = read_embedded_depth(data)
    except EmbeddedDepthError as exc:
        raise InputError(f"{path}: embedded depth map unreadable: {exc}") from None
    return None if embedded is None else embedded.disparity


def fill_invalid(
    disparity: np.ndarray, invalid: np.ndarray, far: float | None = None
) -> np.ndarray:
    """Fill `invalid` pixels of `(H, W)` disparity along each row with the farther (smaller)
    of the nearest valid values left and right: holes in stereo and in depth maps are
    mostly occluded background. Rows with no valid value take `far` (default: the map's
    farthest value; a band of a map passes the whole map's). Each row on its own: a band
    fills as the whole map does."""
    h, w = disparity.shape
    idx = np.where(invalid, 0, np.arange(w)[None, :])
    left = np.maximum.accumulate(idx, axis=1)
    ridx = np.where(invalid, w - 1, np.arange(w)[None, :])
    right = np.minimum.accumulate(ridx[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    if far is None:
        far = float(disparity[~invalid].min())
    lv = np.where(invalid[rows, left], np.inf, disparity[rows, left])
    rv = np.where(invalid[rows, right], np.inf, disparity[rows, right])
    fill = np.minimum(lv, rv)
    fill = np.where(np.isfinite(fill), fill, far)
    return np.where(invalid, fill, disparity).astype(np.float32)


class DepthRows:
    """A depth map fitted to an `(height, width)` image, handed out a band of rows at a
    time, top to bottom: float32 disparity (larger = nearer), invalid values filled along
    their rows (`fill_invalid`), resized (bilinear, pixel centres aligned) when stored at
    another size. Only the rows a band needs are read, so memory stays flat.

    `open_rows` opens the stored map (`MapRows`); it is called again for each pass over
    the image (`restart`). `lo`, `hi`: the stored map's finite range; without them, a first
    pass finds them. `name` is what reports call the map ("embedded", a path...).
    """

    def __init__(
        self,
        open_rows: Callable[[], MapRows],
        hw: tuple[int, int],
        name: str,
        lo: float | None = None,
        hi: float | None = None,
    ):
        self._open = open_rows
        self.height, self.width = hw
        self.name = name
        self._reader = _Forward(open_rows())
        self.source_hw = (self._reader.height, self._reader.width)
        self.filled = 0.0
        if lo is None or hi is None:
            lo, hi, self.filled = _finite_range(self._reader, name)
            self.restart()
        self.lo, self.hi = float(lo), float(hi)
        self._plan_resampling()

    @property
    def resized(self) -> bool:
        return self.source_hw != (self.height, self.width)

    def restart(self) -> None:
        """Go back to the top (a new pass over the image)."""
        self._reader.close()
        self._reader = _Forward(self._open())

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> DepthRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows `[y0, y1)` of the fitted map, `(y1 - y0, width)` float32, finite."""
        if not self.resized:
            return self._filled(y0, y1)
        (i0, i1, a), (j0, j1, b) = self._rows_at, self._columns_at
        i0, i1, a = i0[y0:y1], i1[y0:y1], a[y0:y1, None]
        first = int(i0[0])
        band = self._filled(first, int(i1[-1]) + 1)
        if band.shape[1] != self.width:
            left, right = band[:, j0], band[:, j1]
            band = left + (right - left) * b
        top, bottom = band[i0 - first], band[i1 - first]
        return (top + (bottom - top) * a).astype(np.float32)

    def _filled(self, y0: int, y1: int) -> np.ndarray:
        band = np.asarray(self._reader.rows(y0, y1), np.float32)
        invalid = ~np.isfinite(band)
        return fill_invalid(band, invalid, self.lo) if invalid.any() else band

    def _plan_resampling(self) -> None:
        """For each image row (and column), the two stored ones it lies between and the
        weight of the second (cv2's bilinear convention: pixel centres at +0.5). Elementwise
        in numpy, not cv2.resize, whose arithmetic differs with the number of rows: a band
        must give the whole map's values bit for bit."""
        self._rows_at = _between(self.height, self.source_hw[0])
        self._columns_at = _between(self.width, self.source_hw[1])


def map_file_rows(depth_map: DepthMapFile, hw: tuple[int, int]) -> DepthRows:
    """The given map `depth_map` (`open_map_file`) as `DepthRows` fitted to `hw` (H, W),
    reopened for each pass, named by its path."""
    opener = functools.partial(open_map_file, depth_map.path, metres=depth_map.metres)
    return DepthRows(opener, hw, str(depth_map.path))


def _between(n: int, stored: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i0, i1, weight of i1) for each of `n` output positions resampling `stored` ones."""
    at = np.clip((np.arange(n) + 0.5) * (stored / n) - 0.5, 0, stored - 1)
    i0 = np.floor(at).astype(np.int64)
    return i0, np.minimum(i0 + 1, stored - 1), (at - i0).astype(np.float32)


class _MetresAsDisparity:
    """A map of metres (larger = farther) as `MapRows` of 1/metres, NaN (invalid: filled as
    any invalid value) where it holds no depth (0, negative, not finite)."""

    def __init__(self, rows: MapRows):
        self._rows = rows
        self.height, self.width = rows.height, rows.width

    def rows(self, y0: int, y1: int) -> np.ndarray:
        metres = np.asarray(self._rows.rows(y0, y1), np.float32)
        out = np.full(metres.shape, np.nan, np.float32)
        np.divide(1.0, metres, out=out, where=np.isfinite(metres) & (metres > 0))
        return out

    def close(self) -> None:
        self._rows.close()


class ArrayRows:
    """A map already in memory (or memory-mapped: NPY, PFM) as `MapRows`."""

    def __init__(self, array: np.ndarray):
        self.array = array
        self.height, self.width = array.shape

    def rows(self, y0: int, y1: int) -> np.ndarray:
        return np.asarray(self.array[y0:y1])

    def close(self) -> None:
        """Nothing to release (a memory map closes with the array)."""


class _FileRows:
    """Rows of an uncompressed array file (NPY, PFM) read with positioned reads, a band at a
    time: a memory map would keep every row it touched in the process's resident memory."""

    def __init__(self, path: Path, offset: int, dtype: np.dtype, shape: tuple, flipped: bool):
        """`shape` (H, W) or (H, W, C) as stored (C: the first channel is the map's), rows
        from `offset`, bottom to top when `flipped` (PFM)."""
        self._path, self._offset, self._dtype = path, offset, np.dtype(dtype)
        self.height, self.width = shape[:2]
        self._channels = shape[2] if len(shape) == 3 else 1
        self._row_bytes = self.width * self._channels * self._dtype.itemsize
        self._flipped = flipped
        self._fd = os.open(path, os.O_RDONLY)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        first = self.height - y1 if self._flipped else y0
        size = (y1 - y0) * self._row_bytes
        data = os.pread(self._fd, size, self._offset + first * self._row_bytes)
        if len(data) != size:
            raise InputError(f"{self._path}: truncated depth map (rows {y0}-{y1})")
        rows = np.frombuffer(data, self._dtype).reshape(y1 - y0, self.width, self._channels)
        return rows[::-1, :, 0] if self._flipped else rows[:, :, 0]

    def close(self) -> None:
        os.close(self._fd)


def _npy_rows(path: Path) -> MapRows:
    """An NPY map: its rows read from the file where they lie (C order), else (Fortran
    order) loaded whole."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read_header(f)
            offset = f.tell()
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable NumPy array ({exc})") from None
    squeezed = tuple(n for n in shape if n != 1)
    if dtype.hasobject or fortran or len(squeezed) != 2:
        return ArrayRows(_checked(path, _load_npy(path)))
    _check_dtype(path, dtype)
    needed = offset + int(np.prod(shape)) * dtype.itemsize
    if path.stat().st_size < needed:
        raise InputError(f"{path}: not a readable NumPy array (truncated)")
    return _FileRows(path, offset, dtype, squeezed, flipped=False)


class _Forward:
    """`MapRows` over one that reads each row once (a sequential decoder): keeps the rows
    of the last call, so that the next may start inside them."""

    def __init__(self, reader: MapRows):
        self._reader = reader
        self.height, self.width = reader.height, reader.width
        self._top, self._kept = 0, np.empty((0, reader.width))

    def rows(self, y0: int, y1: int) -> np.ndarray:
        if y0 < self._top:
            raise ValueError(f"rows {y0}-{y1}: above the kept rows (from {self._top})")
        bottom = self._top + len(self._kept)
        kept = self._kept[max(0, y0 - self._top) :]
        if y1 > bottom:
            start = max(bottom, y0)
            new = self._reader.rows(start, y1)
            kept = new if not len(kept) else np.concatenate([kept, new])
        self._top, self._kept = y0, kept
        return kept[: y1 - y0]

    def close(self) -> None:
        self._reader.close()


class _VipsRows:
    """A PNG or TIFF map decoded a strip at a time by libvips (sequential access)."""

    def __init__(self, path: Path):
        self._path = path
        kind = "PNG" if path.suffix.lower() == ".png" else "TIFF"
        try:
            image = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="error")
        except pyvips.Error as exc:
            raise InputError(f"{path}: not a readable {kind} ({vips_reason(exc)})") from None
        if image.bands != 1:
            raise InputError(
                f"{path}: a colour image, not a depth map (expected a grey 16-bit PNG, near = "
                "bright; a --colormap preview cannot be read back)"
            )
        if image.format not in VIPS_NUMPY_FORMAT:
            raise InputError(f"{path}: not a depth map (values of type {image.format})")
        self.height, self.width = image.height, image.width
        self._dtype = np.dtype(VIPS_NUMPY_FORMAT[image.format])
        self._region = pyvips.Region.new(image)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        try:
            data = self._region.fetch(0, y0, self.width, y1 - y0)
        except pyvips.Error as exc:
            raise InputError(
                f"{self._path}: truncated or corrupt depth map ({vips_reason(exc)})"
            ) from None
        return np.frombuffer(data, self._dtype).reshape(y1 - y0, self.width)

    def close(self) -> None:
        """Nothing to release: libvips frees the image with the object."""


def _finite_range(reader: MapRows, name: str) -> tuple[float, float, float]:
    """(lo, hi) of the finite values of the map `reader` reads, and the fraction of values
    that are not, in one pass a strip at a time. InputError when none is finite."""
    lo, hi, invalid = np.inf, -np.inf, 0
    step = max(1, (4 << 20) // (4 * max(1, reader.width)))
    for y0 in range(0, reader.height, step):
        band = np.asarray(reader.rows(y0, min(y0 + step, reader.height)), np.float32)
        finite = np.isfinite(band)
        if not finite.all():
            invalid += int(band.size - finite.sum())
            band = band[finite]
        if band.size:
            lo, hi = min(lo, float(band.min())), max(hi, float(band.max()))
    if not np.isfinite(lo):
        raise InputError(f"{name}: the depth map has no valid value")
    return lo, hi, invalid / (reader.height * reader.width)


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable NumPy array ({exc})") from None


def _checked(path: Path, raw: np.ndarray) -> np.ndarray:
    """`raw` as an `(H, W)` map of numbers, else InputError saying what it is."""
    raw = np.squeeze(raw)
    if raw.ndim != 2:
        raise InputError(
            f"{path}: not a depth map (shape {raw.shape}; expected one channel, H x W)"
        )
    _check_dtype(path, raw.dtype)
    return raw


def _check_dtype(path: Path, dtype: np.dtype) -> None:
    """InputError unless `dtype` holds real numbers."""
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise InputError(f"{path}: not a depth map (values of type {dtype})")
