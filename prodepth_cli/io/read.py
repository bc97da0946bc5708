"""Image input: decode lazily and stream rows top to bottom, whatever the size.

libvips (pyvips) does the decoding: JPEG, PNG, TIFF/BigTIFF, WebP and more are read in
sequential strips, so a gigapixel photograph is never held whole in memory. Tiled TIFFs are
read tile by tile instead (io/tiff.py), which keeps less. Images whose EXIF orientation needs
a rotation are decoded whole (a rotation needs random access), and so are camera RAW files
(io/raw.py, LibRaw) and HEIC photographs (io/heif.py, libheif), which have no streaming decoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips

from prodepth_cli.errors import InputError
from prodepth_cli.io.heif import decode_heif, is_hevc_heif, sniff
from prodepth_cli.io.metadata import camera_tags
from prodepth_cli.io.raw import decode_raw, is_raw
from prodepth_cli.io.scratch import RowBand, ScratchArray, rows_per_strip
from prodepth_cli.io.tiff import TiledTiff

# Full-scale value of each integer pixel format, to map pixels to [0, 1].
_FULL_SCALE = {
    "uchar": 255.0,
    "char": 127.0,
    "ushort": 65535.0,
    "short": 32767.0,
    "uint": 4294967295.0,
    "int": 2147483647.0,
}
# The numpy dtype of each libvips band format, to view a fetched region as an array.
VIPS_NUMPY_FORMAT = {
    "uchar": "u1",
    "char": "i1",
    "ushort": "<u2",
    "short": "<i2",
    "uint": "<u4",
    "int": "<i4",
    "float": "<f4",
    "double": "<f8",
}


@dataclass
class ImageSource:
    """A decoded-on-demand RGB image. `name` is what error messages call it."""

    name: str
    image: pyvips.Image  # sRGB, 3 bands, any numeric format, orientation applied
    full_scale: float  # pixel value of white
    data: bytes | None = None  # the encoded image when it did not come from a file
    decoded: bool = False  # `image` is in memory (RAW, HEIC): thumbnails come from it

    def __post_init__(self) -> None:
        # One region over one pipeline: its reads share the sequential decoder's position.
        self._region = pyvips.Region.new(self.image)
        self.dtype = np.dtype(VIPS_NUMPY_FORMAT[self.image.format])
        # Rows fetched together: a few MB; libvips is very slow at fetches under 8 rows.
        self.strip_rows = max(8, rows_per_strip(self.width * 3 * self.dtype.itemsize))

    def close(self) -> None:
        """Nothing to release: libvips frees the image with the object."""

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows `[y0, y1)` as stored, `(y1 - y0, W, 3)` (uint8, uint16 or float; white at
        `full_scale`): kept compact until a tile needs them as floats.

        Calls must move down the image (sequential decoding); `WindowReader` keeps the
        overlap.
        """
        try:
            data = self._region.fetch(0, y0, self.width, y1 - y0)
        except pyvips.Error as exc:
            raise InputError(
                f"{self.name}: truncated or corrupt image (rows {y0}-{y1}: {vips_reason(exc)})"
            ) from None
        return np.frombuffer(data, self.dtype).reshape(y1 - y0, self.width, 3)

    def blocks(self, y0: int, y1: int) -> Iterator[tuple[int, np.ndarray]]:
        """Rows `[y0, y1)` as one full-width block `(0, pixels)` (the `TiledTiff` interface)."""
        yield 0, self.rows(y0, y1)

    def thumbnail(self, max_side: int) -> np.ndarray:
        if self.decoded:
            thumb = self.image.thumbnail_image(max_side, height=max_side, size="down")
            return to_unit_rgb(thumb.numpy(), self.full_scale)
        return read_thumbnail(self.name, self.data, max_side)

    def camera_tags(self) -> dict[str, str]:
        """The photograph's EXIF Make, Model, DateTime(Original), those it has."""
        return camera_tags(self.image)


def open_stream(path: str | Path, data: bytes | None = None) -> ImageSource | TiledTiff:
    """Open an image file (or encoded `data` named `path`) to stream its rows into a
    `WindowReader`: tiled TIFFs tile by tile, everything else through libvips."""
    _check_input(str(path), data)
    if is_raw(path):  # a RAW is a TIFF too, often: its first image is no photograph
        return open_image(path, data)
    return TiledTiff.open(path, data) or open_image(path, data)


def open_image(path: str | Path, data: bytes | None = None, raw_bits: int = 8) -> ImageSource:
    """Open an image file (or encoded `data`, e.g. from stdin, named `path`) for streaming;
    a camera RAW file is developed to `raw_bits` (8 or 16) per channel."""
    name = str(path)
    _check_input(name, data)
    if is_raw(name):
        return ImageSource(name, *_as_srgb(decode_raw(name, data, raw_bits), name), data, True)
    if is_hevc_heif(sniff(name, data)):
        return ImageSource(name, *_as_srgb(decode_heif(name, data), name), data, True)
    image = _load(name, data, access="sequential")
    if _orientation(image) > 1:
        image = _load(name, data, access="random").autorot()
    return ImageSource(name, *_as_srgb(image, name), data)


def _check_input(name: str, data: bytes | None) -> None:
    if data is None:
        p = Path(name)
        if not p.exists():
            raise InputError(f"{name}: no such file")
        if p.is_dir():
            raise InputError(f"{name}: is a folder (pass --recursive or a file)")
        if p.stat().st_size == 0:
            raise InputError(f"{name}: empty file")
    elif not data:
        raise InputError(f"{name}: empty input")


def read_thumbnail(path: str | Path, data: bytes | None, max_side: int) -> np.ndarray:
    """The whole image shrunk so that its long side is `max_side`: float32 RGB `(h, w, 3)`.

    Uses the decoder's shrink-on-load (JPEG DCT scaling), so the coarse pass over a huge
    photograph costs a fraction of a full decode.
    """
    name = str(path)
    try:
        if data is None:
            thumb = pyvips.Image.thumbnail(str(path), max_side, height=max_side, size="down")
        else:
            thumb = pyvips.Image.thumbnail_buffer(data, max_side, height=max_side, size="down")
    except pyvips.Error as exc:
        raise InputError(f"{name}: not a readable image ({vips_reason(exc)})") from None
    image, full_scale = _as_srgb(thumb, name)
    try:
        return to_unit_rgb(image.numpy(), full_scale)
    except pyvips.Error as exc:
        raise InputError(f"{name}: truncated or corrupt image ({vips_reason(exc)})") from None


class WindowReader:
    """Tile windows of an image source, going down the image, with memory flat in its size.

    Rows are decoded once, a strip at a time (a few megabytes, or a row of TIFF tiles), into
    a band that keeps the last `keep_rows`: in memory while it is small (`RowBand`; windows
    are then views), else in a disk ring (`ScratchArray`, which also keeps the strip below):
    a band of tiles of a 32768-pixel-wide photograph is 100 MB or more, and it stays out of
    the process.
    """

    def __init__(self, source: ImageSource | TiledTiff, keep_rows: int):
        self.source = source
        self.width, self.height = source.width, source.height
        self.full_scale = source.full_scale
        rows, shape = keep_rows + source.strip_rows, (source.width, (3,), source.dtype)
        self._band = RowBand(rows, *shape) if RowBand.fits(rows, *shape) else None
        self._store = self._band or ScratchArray(source.height, *shape, ring_rows=rows)
        self._decoded = 0  # rows [0, _decoded) have been decoded

    def __enter__(self) -> WindowReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if isinstance(self._store, ScratchArray):
            self._store.close()

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Pixels `[y0, y1) x [x0, x1)` as stored (from the band in memory: a view, valid
        until a window lower down); `y0` must stay within `keep_rows` of the lowest row
        asked for so far."""
        while self._decoded < y1:
            end = min(self._decoded + self.source.strip_rows, self.height)
            if self._band is not None and end > self._band.bottom:
                self._band.slide_to(y0, zeros=False)  # decoded rows fill it
            for x, pixels in self.source.blocks(self._decoded, end):
                self._store.write(self._decoded, x, pixels)
            self._decoded = end
        if y0 < self._decoded - self._store.rows:
            raise ValueError(f"rows {y0}-{y1} are outside the kept band")
        return self._store.read(y0, y1, x0, x1)


def _load(name: str, data: bytes | None, access: str) -> pyvips.Image:
    try:
        if data is None:
            return pyvips.Image.new_from_file(name, access=access, fail_on="error")
        return pyvips.Image.new_from_buffer(data, "", access=access, fail_on="error")
    except pyvips.Error as exc:
        raise InputError(f"{name}: not a readable image ({vips_reason(exc)})") from None


def _orientation(image: pyvips.Image) -> int:
    try:
        return int(image.get("orientation")) if "orientation" in image.get_fields() else 1
    except pyvips.Error:
        return 1


def _as_srgb(image: pyvips.Image, name: str) -> tuple[pyvips.Image, float]:
    """Three sRGB bands (alpha dropped, grey replicated); returns the white value too."""
    try:
        if image.interpretation in ("cmyk", "lab", "labs", "lch", "xyz", "scrgb", "hsv"):
            image = image.colourspace("srgb")
        if image.hasalpha():
            image = image.extract_band(0, n=image.bands - 1)
        if image.bands == 1:
            image = image.bandjoin([image, image])
        elif image.bands != 3:
            image = image.extract_band(0, n=3)
    except pyvips.Error as exc:
        raise InputError(f"{name}: unsupported colour layout ({vips_reason(exc)})") from None
    fmt = image.format
    if fmt in ("float", "double"):
        return image, 1.0
    if image.interpretation in ("rgb16", "grey16") or fmt == "ushort":
        return image, 65535.0
    return image, _FULL_SCALE.get(fmt, 255.0)


def to_unit_rgb(pixels: np.ndarray, full_scale: float) -> np.ndarray:
    """Pixels `(h, w[, c])` with white at `full_scale` as float32 RGB `(h, w, 3)` in [0, 1]
    (grey replicated, alpha dropped)."""
    rgb = pixels.astype(np.float32, copy=False).reshape(pixels.shape[0], pixels.shape[1], -1)
    if rgb.shape[2] < 3:
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
    rgb = rgb[:, :, :3] * np.float32(1.0 / full_scale)
    return np.clip(rgb, 0.0, 1.0, out=rgb)


def vips_reason(exc: Exception) -> str:
    """The reason a libvips error gives, one line, for an error message."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # pyvips puts its own summary first and the loader's reason after it.
    return lines[-1] if lines else exc.__class__.__name__
