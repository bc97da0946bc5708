"""Photographs out a band of rows at a time, with the input's metadata: renders of any size
(stereo pairs) are encoded without ever being whole in memory.

JPEG, PNG and WebP are encoded by libvips from a scratch TIFF (uncompressed, in TMPDIR:
libvips reads it back a strip at a time); TIFF outputs are written by tifffile tile by tile,
as bokeh writes them (libvips writes no EXIF into TIFF). The output keeps the input's bit
depth (16 bits in PNG and TIFF), colour profile, EXIF (Orientation 1: the pixels are upright)
and XMP where its format allows.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyvips
import tifffile

from prodepth_cli.errors import OutputError, write_error
from prodepth_cli.io.metadata import blob_field, exif_camera_tags, tiff_tags, upright_exif
from prodepth_cli.io.read import ImageSource, vips_reason
from prodepth_cli.io.scratch import rows_per_strip
from prodepth_cli.io.write import atomic_output

# Output formats by suffix, and whether they hold 16 bits per channel.
WRITABLE = {
    ".png": True,
    ".tif": True,
    ".tiff": True,
    ".jpg": False,
    ".jpeg": False,
    ".webp": False,
}
JPEG_QUALITY = 95
_TIFF_TILE = 256


@dataclass(frozen=True)
class PhotoMeta:
    """What an output carries from its photograph: `bits` 8 or 16 (the input's precision),
    `icc` its colour profile (RGB ones only), `exif` its EXIF block (Orientation 1, as the
    decoded pixels are upright) and `xmp` its XMP packet, those it has."""

    bits: int = 8
    icc: bytes | None = None
    exif: bytes | None = None
    xmp: bytes | None = None


def photo_meta(source: ImageSource) -> PhotoMeta:
    """The metadata of an opened photograph (`io.read.open_image`)."""
    exif = blob_field(source.image, "exif-data")
    return PhotoMeta(
        16 if source.full_scale > 255.0 else 8,
        rgb_profile(source.image),
        upright_exif(exif) if exif else None,
        blob_field(source.image, "xmp-data"),
    )


def rgb_profile(image: pyvips.Image) -> bytes | None:
    """The embedded ICC profile when it describes RGB pixels (a CMYK profile does not fit
    the converted sRGB values, so it is dropped)."""
    icc = blob_field(image, "icc-profile-data")
    return icc if icc and len(icc) >= 20 and icc[16:20] == b"RGB " else None


def output_suffix(path: str) -> str:
    """The default output suffix for an input: its own where we can write it, else .png."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in WRITABLE else ".png"


def check_output_suffix(dst: str | Path, also: tuple[str, ...] = ()) -> str:
    """The output's suffix, which chooses its format; OutputError for one we cannot write
    (`also`: a command's own formats besides these, e.g. stereo's spatial .heic)."""
    suffix = Path(dst).suffix.lower()
    if suffix not in WRITABLE and suffix not in also:
        raise OutputError(
            f"{dst}: cannot write {suffix or 'files without a suffix'} "
            f"(choose {', '.join(sorted([*WRITABLE, *also]))})"
        )
    return suffix


def with_meta(image: pyvips.Image, meta: PhotoMeta) -> pyvips.Image:
    """`image` (upright) carrying `meta`'s profile, EXIF and XMP, orientation 1."""
    image = image.copy()
    for field, blob in (
        ("icc-profile-data", meta.icc),
        ("exif-data", meta.exif),
        ("xmp-data", meta.xmp),
    ):
        if blob:
            image.set_type(pyvips.GValue.blob_type, field, blob)
    image.set_type(pyvips.GValue.gint_type, "orientation", 1)
    return image


def write_rows(
    dst: str | Path, width: int, height: int, rows: Iterable[np.ndarray], meta: PhotoMeta
) -> None:
    """Encode an image from `rows`: float32 sRGB `(n, width, 3)` in [0, 1], top to bottom,
    `height` in all, at `dst` (format from its suffix; "-" = PNG on stdout), atomically:
    nothing appears at `dst` until it is complete. 16-bit when `meta.bits` is 16 and the
    format holds it."""
    if str(dst) == "-":
        sixteen = meta.bits == 16
        _encode_with_vips(sys.stdout.buffer, "-", ".png", (width, height), rows, meta, sixteen)
        sys.stdout.buffer.flush()
        return
    suffix = check_output_suffix(dst)
    sixteen = meta.bits == 16 and WRITABLE[suffix]
    with atomic_output(dst) as tmp:
        if suffix in (".tif", ".tiff"):
            write_tiff(tmp, width, height, _levels(rows, sixteen), meta)
            return
        with open(tmp, "wb") as f:
            _encode_with_vips(f, str(dst), suffix, (width, height), rows, meta, sixteen)


def write_tiff(
    path: Path, width: int, height: int, rows: Iterable[np.ndarray], meta: PhotoMeta
) -> None:
    """RGB rows `(n, width, 3)` uint8/uint16, top to bottom, as a deflated tiled TIFF with the
    photograph's ICC profile, XMP and camera tags (from its EXIF)."""
    extratags = tiff_tags(exif_camera_tags(meta.exif))
    if meta.xmp:
        extratags.append((700, "B", len(meta.xmp), meta.xmp, True))
    rows = iter(rows)
    first = next(rows)
    tifffile.imwrite(
        path,
        data=_tiles(first, rows, width),
        shape=(height, width, 3),
        dtype=first.dtype,
        photometric="rgb",
        tile=(_TIFF_TILE, _TIFF_TILE),
        compression="zlib",
        bigtiff=height * width * 3 * first.dtype.itemsize >= 2**31,
        iccprofile=meta.icc,
        extratags=extratags,
        maxworkers=min(4, os.cpu_count() or 1),
    )


def _tiles(first: np.ndarray, rest: Iterator[np.ndarray], width: int) -> Iterator[np.ndarray]:
    """Row-major 256x256 tiles of the image that `first`, then `rest`, make, zero-padded past
    the right and bottom edges; one row of tiles kept at a time."""
    t = _TIFF_TILE
    band = np.zeros((t, width, 3), first.dtype)
    filled = 0
    for rows in _chain(first, rest):
        while len(rows):
            n = min(t - filled, len(rows))
            band[filled : filled + n] = rows[:n]
            filled, rows = filled + n, rows[n:]
            if filled == t:
                yield from _band_tiles(band, t)
                filled = 0
    if filled:
        band[filled:] = 0
        yield from _band_tiles(band, t)


def _band_tiles(band: np.ndarray, t: int) -> Iterator[np.ndarray]:
    for x in range(0, band.shape[1], t):
        tile = np.zeros((t, t, 3), band.dtype)
        part = band[:, x : x + t]
        tile[:, : part.shape[1]] = part
        yield tile


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest


def _levels(rows: Iterable[np.ndarray], sixteen: bool) -> Iterator[np.ndarray]:
    """Float rows in [0, 1] as uint16 (0..65535) or uint8 (0..255), rounded."""
    top, dtype = (65535.0, np.uint16) if sixteen else (255.0, np.uint8)
    for r in rows:
        yield (np.clip(r, 0.0, 1.0) * np.float32(top) + np.float32(0.5)).astype(dtype)


def _encode_with_vips(
    f: BinaryIO,
    name: str,
    suffix: str,
    size: tuple[int, int],
    rows: Iterable[np.ndarray],
    meta: PhotoMeta,
    sixteen: bool,
) -> None:
    """Encode through libvips into the open file `f`: the rows go to a scratch TIFF first,
    which libvips reads back a strip at a time while it encodes. The bytes are written here,
    not by libvips: its JPEG and WebP savers report a full disk as success. `name`: the
    output, as errors call it; `size`: (width, height)."""
    width, height = size
    with tempfile.TemporaryDirectory(prefix="prodepth-") as scratch_dir:
        scratch = Path(scratch_dir) / "rows.tif"
        try:
            tifffile.imwrite(
                scratch,
                data=_levels(rows, sixteen),
                shape=(height, width, 3),
                dtype=np.uint16 if sixteen else np.uint8,
                photometric="rgb",
                rowsperstrip=rows_per_strip(width * 3 * (2 if sixteen else 1)),
                bigtiff=height * width * 3 * (2 if sixteen else 1) >= 2**31,
            )
        except OSError as exc:
            hint = "a working file of the image being made; set TMPDIR to a larger disk"
            raise write_error(scratch, exc, hint) from None
        image = pyvips.Image.new_from_file(str(scratch), access="sequential")
        image = with_meta(image.copy(interpretation="rgb16" if sixteen else "srgb"), meta)
        failure: list[OSError] = []

        def write(data: bytes) -> int:
            try:
                f.write(data)
            except OSError as exc:
                failure.append(exc)
                return -1
            return len(data)

        target = pyvips.TargetCustom()
        target.on_write(write)
        options = {"Q": JPEG_QUALITY} if suffix in (".jpg", ".jpeg", ".webp") else {}
        try:
            image.write_to_target(target, suffix, **options)
        except pyvips.Error as exc:
            if failure:
                raise failure[0] from None
            raise OutputError(f"{name}: cannot write ({vips_reason(exc)})") from None
        if failure:
            raise failure[0]
