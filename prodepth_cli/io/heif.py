"""HEIC photographs (HEVC-coded HEIF, the iPhone's default) decoded through libheif.

The libvips bundled with pyvips reads HEIF headers but has no HEVC decoder, so HEVC files go
to pillow-heif (libheif with libde265); AVIF (AV1) stays with libvips. The primary image is
the photograph: Apple's depth and matte images are auxiliary images beside it and are not
read. HEIF carries the rotation as transform properties that libheif applies, so the pixels
come upright and the EXIF orientation, informative only in HEIF, is not applied again.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyvips

from prodepth_cli.errors import InputError, first_line

# ISO BMFF brands of HEVC-coded HEIF still images and sequences.
_HEVC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"}
_GENERIC_BRANDS = {b"mif1", b"msf1"}
# libvips metadata fields, and where pillow-heif keeps each
_BLOBS = (("exif-data", "exif"), ("xmp-data", "xmp"), ("icc-profile-data", "icc_profile"))


def is_hevc_heif(head: bytes) -> bool:
    """Whether a file's first bytes (at least 64) open an HEVC-coded HEIF ('ftyp' box whose
    major brand, or for generic 'mif1' files a compatible brand, is an HEVC one)."""
    if len(head) < 12 or head[4:8] != b"ftyp":
        return False
    major = head[8:12]
    if major in _HEVC_BRANDS:
        return True
    size = int.from_bytes(head[:4], "big")
    compatible = {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
    return major in _GENERIC_BRANDS and bool(compatible & _HEVC_BRANDS)


def decode_heif(name: str, data: bytes | None = None) -> pyvips.Image:
    """The primary image of the HEIF `name` (or its bytes `data`), upright, 8-bit sRGB (10-bit
    HDR photographs brought to 8 bits by libheif), as an in-memory libvips image carrying its
    EXIF, XMP and ICC profile."""
    import pillow_heif

    try:
        heif = pillow_heif.open_heif(io.BytesIO(data) if data is not None else name)
        picture = heif[heif.primary_index]
        pixels = np.asarray(picture)
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise InputError(f"{name}: not a readable HEIC image ({first_line(exc)})") from None
    image = pyvips.Image.new_from_array(np.ascontiguousarray(pixels)).copy(interpretation="srgb")
    for field, key in _BLOBS:
        blob = picture.info.get(key)
        if blob:
            image.set_type(pyvips.GValue.blob_type, field, bytes(blob))
    return image


def sniff(path: str | Path, data: bytes | None) -> bytes:
    """A file's first 64 bytes (of `data` when given)."""
    if data is not None:
        return data[:64]
    with open(path, "rb") as f:
        return f.read(64)
