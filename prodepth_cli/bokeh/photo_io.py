"""Photographs in and out for bokeh: whole-image decode, and an encoder that keeps the
input's size, bit depth (8/16), colour profile, EXIF and XMP where the output format allows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyvips
import tifffile

from prodepth_cli.errors import OutputError
from prodepth_cli.io.metadata import blob_field, exif_camera_tags, tiff_tags, upright_exif
from prodepth_cli.io.read import open_image, to_unit_rgb
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
_JPEG_QUALITY = 95


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

    def with_pixels(self, rgb: np.ndarray) -> Photo:
        """The same photograph's metadata on new pixels (a render of it)."""
        return replace(self, rgb=rgb)

    @property
    def hw(self) -> tuple[int, int]:
        return self.rgb.shape[0], self.rgb.shape[1]

    def as_uint8(self) -> np.ndarray:
        return (self.rgb * 255.0 + 0.5).astype(np.uint8)


def output_suffix(path: str) -> str:
    """The default output suffix for an input: its own where we can write it, else .png."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in WRITABLE else ".png"


def read_photo(path: str | Path, data: bytes | None = None) -> Photo:
    """Decode the whole image at `path` (or encoded `data` named `path`); a RAW file is
    developed at 16 bits."""
    source = open_image(path, data, raw_bits=16)
    pixels = source.rows(0, source.height)
    bits = 16 if source.full_scale > 255.0 else 8
    exif = blob_field(source.image, "exif-data")
    return Photo(
        to_unit_rgb(pixels, source.full_scale),
        bits,
        _rgb_profile(source.image),
        upright_exif(exif) if exif else None,
        blob_field(source.image, "xmp-data"),
    )


def check_output_suffix(dst: str | Path) -> str:
    """The output's suffix, which chooses its format; OutputError for one we cannot write."""
    suffix = Path(dst).suffix.lower()
    if suffix not in WRITABLE:
        raise OutputError(
            f"{dst}: cannot write {suffix or 'files without a suffix'} "
            f"(choose {', '.join(sorted(WRITABLE))})"
        )
    return suffix


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
    options = {"Q": _JPEG_QUALITY} if suffix in (".jpg", ".jpeg", ".webp") else {}
    with atomic_output(dst) as tmp:
        if suffix in (".tif", ".tiff"):
            _write_tiff(image.numpy(), photo, tmp)
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
    for field, blob in (
        ("icc-profile-data", photo.icc),
        ("exif-data", photo.exif),
        ("xmp-data", photo.xmp),
    ):
        if blob:
            image.set_type(pyvips.GValue.blob_type, field, blob)
    image.set_type(pyvips.GValue.gint_type, "orientation", 1)
    return image


def _write_tiff(pixels: np.ndarray, photo: Photo, path: Path) -> None:
    """RGB `(H, W, 3)` uint8/uint16 as a deflated TIFF with the photograph's ICC profile,
    XMP and camera tags."""
    extratags = tiff_tags(exif_camera_tags(photo.exif))
    if photo.xmp:
        extratags.append((700, "B", len(photo.xmp), photo.xmp, True))
    tifffile.imwrite(
        path,
        pixels,
        photometric="rgb",
        compression="zlib",
        iccprofile=photo.icc,
        extratags=extratags,
    )


def _rgb_profile(image: pyvips.Image) -> bytes | None:
    """The embedded ICC profile when it describes RGB pixels (a CMYK profile does not fit
    the converted sRGB values, so it is dropped)."""
    icc = blob_field(image, "icc-profile-data")
    return icc if icc and len(icc) >= 20 and icc[16:20] == b"RGB " else None
