"""Photographs in and out for bokeh: whole-image decode, and an encoder that keeps the
input's size, bit depth (8/16) and colour profile where the output format allows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips

from prodepth_cli.errors import OutputError
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
    `bits` 8 or 16 (the input's precision); `icc` its embedded colour profile, if any."""

    rgb: np.ndarray
    bits: int
    icc: bytes | None

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
    """Decode the whole image at `path` (or encoded `data` named `path`)."""
    source = open_image(path, data)
    pixels = source.rows(0, source.height)
    bits = 16 if source.full_scale > 255.0 else 8
    return Photo(to_unit_rgb(pixels, source.full_scale), bits, _rgb_profile(source.image))


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

    16-bit inputs stay 16-bit in PNG and TIFF; JPEG and WebP are 8-bit. The colour profile
    goes with the pixels when the input had one.
    """
    if str(dst) == "-":
        sys.stdout.buffer.write(_vips_image(photo, True).write_to_buffer(".png"))
        sys.stdout.buffer.flush()
        return
    suffix = check_output_suffix(dst)
    image = _vips_image(photo, WRITABLE[suffix])
    options = {"Q": _JPEG_QUALITY} if suffix in (".jpg", ".jpeg", ".webp") else {}
    with atomic_output(dst) as tmp:
        try:
            image.write_to_file(str(tmp), **options)
        except pyvips.Error as exc:
            raise OutputError(f"{dst}: cannot write ({str(exc).splitlines()[0]})") from None


def _vips_image(photo: Photo, allow_16: bool) -> pyvips.Image:
    if photo.bits == 16 and allow_16:
        pixels = (np.clip(photo.rgb, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
        image = pyvips.Image.new_from_array(pixels).copy(interpretation="rgb16")
    else:
        image = pyvips.Image.new_from_array(photo.as_uint8()).copy(interpretation="srgb")
    if photo.icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", photo.icc)
    return image


def _rgb_profile(image: pyvips.Image) -> bytes | None:
    """The embedded ICC profile when it describes RGB pixels (a CMYK profile does not fit
    the converted sRGB values, so it is dropped)."""
    if "icc-profile-data" not in image.get_fields():
        return None
    try:
        icc = bytes(image.get("icc-profile-data"))
    except pyvips.Error:
        return None
    return icc if len(icc) >= 20 and icc[16:20] == b"RGB " else None
