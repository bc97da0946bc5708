"""The photograph itself as a depth output: a JPEG that carries its depth map (GDepth).

A JPEG input is kept byte for byte (pixels, EXIF, ICC) and only gains XMP segments; any other
input (RAW, HEIC, PNG, TIFF...) is first encoded as a JPEG (quality 95) with its EXIF and ICC
profile. The map is embedded at the photograph's size up to `MAX_SIDE` pixels on the long
side (area-averaged from the scratch strips, so a gigapixel map is never whole in memory).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pyvips

from prodepth_cli.errors import InputError, OutputError, first_line
from prodepth_cli.io.gdepth import (
    RELATIVE_RANGE,
    embed_depth,
    orientation_of,
    range_inverse_levels,
    to_stored_frame,
)
from prodepth_cli.io.jpeg_xmp import JPEG_START
from prodepth_cli.io.metadata import blob_field, upright_exif
from prodepth_cli.io.read import open_image

MAX_SIDE = 4096
_JPEG_QUALITY = 95


def write_embedded(raw, path: Path, origin) -> None:
    """Write the photograph `origin` (a `write.PhotoOrigin`) to `path` as a JPEG carrying
    `raw` (a `write.DepthScratch`) as its GDepth map."""
    jpeg = photo_jpeg(origin.name, origin.data)
    lo, hi = raw.range
    disparity = _shrunk(raw, MAX_SIDE)
    levels = to_stored_frame(range_inverse_levels(disparity, lo, hi), orientation_of(jpeg))
    if raw.metres and lo > 0:
        near, far, units = 1.0 / hi, 1.0 / lo, "m"
    else:
        (near, far), units = RELATIVE_RANGE, None
    path.write_bytes(embed_depth(jpeg, levels, near, far, units))


def photo_jpeg(name: str, data: bytes | None) -> bytes:
    """The photograph as JPEG bytes: its own when it is a JPEG, else encoded from it."""
    own = data
    if own is None:
        try:
            own = Path(name).read_bytes()
        except OSError as exc:
            raise InputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    if own.startswith(JPEG_START):
        return own
    image = open_image(name, data).image
    if image.format != "uchar":
        image = image.cast("uchar", shift=True) if image.format == "ushort" else image.cast("uchar")
    exif = blob_field(image, "exif-data")
    image = image.copy()
    if exif:
        image.set_type(pyvips.GValue.blob_type, "exif-data", upright_exif(exif))
    image.set_type(pyvips.GValue.gint_type, "orientation", 1)
    try:
        return image.jpegsave_buffer(Q=_JPEG_QUALITY)
    except pyvips.Error as exc:
        raise OutputError(f"{name}: cannot encode as JPEG ({first_line(exc)})") from None


def _shrunk(raw, max_side: int) -> np.ndarray:
    """The map `(h, w)` float32 at most `max_side` on its long side (area average)."""
    k = max(1, math.ceil(max(raw.width, raw.height) / max_side))
    if k == 1:
        return np.concatenate(list(raw.strips()))
    width = math.ceil(raw.width / k)
    out, pending = [], np.empty((0, raw.width), np.float32)
    for strip in raw.strips():
        pending = np.concatenate([pending, strip])
        whole = len(pending) // k * k
        if whole:
            out.append(
                cv2.resize(pending[:whole], (width, whole // k), interpolation=cv2.INTER_AREA)
            )
            pending = pending[whole:]
    if len(pending):
        out.append(cv2.resize(pending, (width, 1), interpolation=cv2.INTER_AREA))
    return np.concatenate(out)
