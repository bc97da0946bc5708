"""Photo metadata carried from an input to its outputs: the camera's EXIF fields, XMP, ICC.

Inputs carry metadata as libvips fields (`exif-data`, `xmp-data`, `icc-profile-data`; the
RAW and HEIC decoders attach the same). Depth maps get a small EXIF of their own (when the
photograph was taken, with what) and Orientation 1, since their pixels are already upright;
bokeh renders keep the photograph's EXIF, XMP and ICC whole. Pillow parses and builds the
EXIF blocks.
"""

from __future__ import annotations

import io

import pyvips
import tifffile
from PIL import Image

EXIF_HEADER = b"Exif\x00\x00"  # before the TIFF structure in JPEG's APP1 and libvips' field
ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
# The EXIF tags a depth map takes from its photograph: IFD0's, and the Exif IFD's.
CAMERA_TAGS = {"Make": 0x010F, "Model": 0x0110, "DateTime": 0x0132}
_SHOT_TAGS = {"DateTimeOriginal": 0x9003}


def camera_tags(image: pyvips.Image) -> dict[str, str]:
    """Make, Model, DateTime and DateTimeOriginal from an image's EXIF, those it has."""
    return exif_camera_tags(blob_field(image, "exif-data"))


def exif_camera_tags(blob: bytes | None) -> dict[str, str]:
    """Make, Model, DateTime and DateTimeOriginal from an EXIF block, those it has."""
    exif = _parsed(blob)
    if exif is None:
        return {}
    tags = {name: exif.get(tag) for name, tag in CAMERA_TAGS.items()}
    shot = exif.get_ifd(_EXIF_IFD)
    tags |= {name: shot.get(tag) for name, tag in _SHOT_TAGS.items()}
    return {k: str(v).strip("\x00 ") for k, v in tags.items() if v not in (None, "")}


# The Exif IFD's tags that say how wide the lens saw (scene3d/intrinsics.py).
LENS_TAGS = {
    "FocalLength": 0x920A,  # mm, the real lens
    "FocalLengthIn35mmFilm": 0xA405,  # mm, on a 36 x 24 mm frame; 0 = unknown
    "FocalPlaneXResolution": 0xA20E,  # sensor pixels per FocalPlaneResolutionUnit
    "FocalPlaneResolutionUnit": 0xA210,  # 2 inch, 3 cm, 4 mm, 5 micrometre
    "PixelXDimension": 0xA002,  # the image the camera wrote, before any resize
    "PixelYDimension": 0xA003,
}


def lens_tags(image: pyvips.Image) -> dict[str, float]:
    """The LENS_TAGS an image's EXIF holds, as numbers (zero and broken values left out)."""
    return exif_lens_tags(blob_field(image, "exif-data"))


def exif_lens_tags(blob: bytes | None) -> dict[str, float]:
    """The LENS_TAGS an EXIF block holds (`lens_tags`); none from no block or a broken one."""
    exif = _parsed(blob)
    if exif is None:
        return {}
    shot = exif.get_ifd(_EXIF_IFD)
    found = {}
    for name, tag in LENS_TAGS.items():
        try:
            value = float(shot.get(tag) or 0)
        except (TypeError, ValueError, ZeroDivisionError):
            continue  # a rational with a zero denominator, a string where a number goes
        if value > 0 and value == value:  # NaN is not a focal length
            found[name] = value
    return found


def exif_blob(tags: dict[str, str], orientation: int = 1) -> bytes:
    """A minimal EXIF block (with its `Exif\\0\\0` header) holding `tags` (names from
    `camera_tags`) and `orientation`."""
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    for name, value in tags.items():
        if name in CAMERA_TAGS:
            exif[CAMERA_TAGS[name]] = value
    shot = {_SHOT_TAGS[n]: v for n, v in tags.items() if n in _SHOT_TAGS}
    if shot:
        exif.get_ifd(_EXIF_IFD).update(shot)
    blob = exif.tobytes()
    return blob if blob.startswith(EXIF_HEADER) else EXIF_HEADER + blob


def upright_exif(blob: bytes) -> bytes:
    """A photograph's whole EXIF block with Orientation set to 1 (its pixels now upright)."""
    exif = Image.Exif()
    exif.load(blob)
    if exif.get(ORIENTATION, 1) == 1:
        return blob
    exif[ORIENTATION] = 1
    out = exif.tobytes()
    return out if out.startswith(EXIF_HEADER) else EXIF_HEADER + out


def tiff_camera_tags(name: str, data: bytes | None = None) -> dict[str, str]:
    """Make, Model and DateTime from the first IFD of a TIFF-based file (DNG, CR2, NEF,
    ARW, PEF...); none for other layouts."""
    try:
        with tifffile.TiffFile(io.BytesIO(data) if data is not None else name) as tiff:
            return page_camera_tags(tiff.pages[0])
    except (tifffile.TiffFileError, OSError, ValueError, IndexError):
        return {}


def page_camera_tags(page: tifffile.TiffPage) -> dict[str, str]:
    """Make, Model and DateTime of a TIFF page, those it has."""
    found = {name: page.tags.get(tag) for name, tag in CAMERA_TAGS.items()}
    return {n: str(t.value).strip("\x00 ") for n, t in found.items() if t and t.value}


def blob_field(image: pyvips.Image, field: str) -> bytes | None:
    """A libvips blob field's bytes, or None."""
    if field not in image.get_fields():
        return None
    try:
        return bytes(image.get(field))
    except pyvips.Error:
        return None


def tiff_tags(tags: dict[str, str]) -> list[tuple]:
    """`tags` (names from `camera_tags`) as tifffile extratags: Make, Model, DateTime (when
    the shot was taken, if known) and Orientation 1 (the pixels are upright)."""
    when = tags.get("DateTimeOriginal") or tags.get("DateTime")
    text = [(271, tags.get("Make")), (272, tags.get("Model")), (306, when)]
    return [(code, "s", 0, value, True) for code, value in text if value] + [(274, "H", 1, 1, True)]


def _parsed(blob: bytes | None) -> Image.Exif | None:
    if not blob:
        return None
    exif = Image.Exif()
    try:
        exif.load(blob)
    except (SyntaxError, ValueError, OSError, KeyError):
        return None  # a broken EXIF block takes nothing with it
    return exif
