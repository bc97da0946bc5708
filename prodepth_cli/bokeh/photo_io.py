"""Photographs in and out for bokeh: whole-image decode, and an encoder that keeps the
input's size, bit depth (8/16), colour profile, EXIF and XMP where the output format allows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyvips

from prodepth_cli.errors import OutputError
from prodepth_cli.io.photo_stream import (
    JPEG_QUALITY,
    WRITABLE,
    PhotoMeta,
    check_output_suffix,
    photo_meta,
    with_meta,
    write_tiff,
)
from prodepth_cli.io.read import open_image, to_unit_rgb
from prodepth_cli.io.write import atomic_output


@dataclass
class Photo:
    """A decoded photograph: `rgb` float32 `(H, W, 3)` sRGB in [0, 1], orientation applied;
    `bits` 8 or 16 (the input's precision); `icc` its embedded colour profile, `exif` its
    EXIF block (Orientation 1, as the pixels now are) and `xmp` its XMP packet, if any."""

    rgb: np.ndarray
    bits: int
    icc: bytes | None
    exif: bytes | None = None
    xmp: bytes | None = None

    @property
    def meta(self) -> PhotoMeta:
        return PhotoMeta(self.bits, self.icc, self.exif, self.xmp)

    def with_pixels(self, rgb: np.ndarray) -> Photo:
        """The same photograph's metadata on new pixels (a render of it)."""
        return replace(self, rgb=rgb)

    @property
    def hw(self) -> tuple[int, int]:
        return self.rgb.shape[0], self.rgb.shape[1]

    def as_uint8(self) -> np.ndarray:
        return (self.rgb * 255.0 + 0.5).astype(np.uint8)


def read_photo(path: str | Path, data: bytes | None = None) -> Photo:
    """Decode the whole image at `path` (or encoded `data` named `path`); a RAW file is
    developed at 16 bits."""
    source = open_image(path, data, raw_bits=16)
    pixels = source.rows(0, source.height)
    meta = photo_meta(source)
    return Photo(to_unit_rgb(pixels, source.full_scale), meta.bits, meta.icc, meta.exif, meta.xmp)


def write_photo(photo: Photo, dst: str | Path) -> None:
    """Encode `photo` at `dst` (format from its suffix; "-" = PNG on stdout), atomically.

    16-bit inputs stay 16-bit in PNG and TIFF; JPEG and WebP are 8-bit. The colour profile,
    EXIF and XMP go with the pixels when the input had them (a TIFF holds the EXIF's camera
    tags as its own: libvips writes no EXIF into TIFF, so tifffile writes those).
    """
    if str(dst) == "-":
        sys.stdout.buffer.write(_vips_image(photo, True).write_to_buffer(".png"))
        sys.stdout.buffer.flush()
        return
    suffix = check_output_suffix(dst)
    image = _vips_image(photo, WRITABLE[suffix])
    options = {"Q": JPEG_QUALITY} if suffix in (".jpg", ".jpeg", ".webp") else {}
    with atomic_output(dst) as tmp:
        if suffix in (".tif", ".tiff"):
            pixels = image.numpy()
            write_tiff(tmp, pixels.shape[1], pixels.shape[0], [pixels], photo.meta)
            return
        try:
            encoded = image.write_to_buffer(suffix, **options)
        except pyvips.Error as exc:
            raise OutputError(f"{dst}: cannot write ({str(exc).splitlines()[0]})") from None
        # written here, not by libvips: its JPEG and WebP savers report a full disk as success
        tmp.write_bytes(encoded)


def _vips_image(photo: Photo, allow_16: bool) -> pyvips.Image:
    if photo.bits == 16 and allow_16:
        pixels = (np.clip(photo.rgb, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
        image = pyvips.Image.new_from_array(pixels).copy(interpretation="rgb16")
    else:
        image = pyvips.Image.new_from_array(photo.as_uint8()).copy(interpretation="srgb")
    return with_meta(image, photo.meta)
