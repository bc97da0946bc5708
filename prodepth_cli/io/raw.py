"""Camera RAW files decoded through LibRaw (rawpy): demosaiced, white-balanced, upright sRGB.

LibRaw has no streaming interface: it holds the sensor data (2 bytes a pixel), its working
image (8) and the output (3 or 6) while it develops, then everything but the output is freed
before the tiles start. The result is handed on as an in-memory libvips image, so the rest
of the pipeline reads it like any other photograph.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path

import numpy as np
import pyvips

from prodepth_cli.errors import InputError, first_line
from prodepth_cli.io.metadata import exif_blob, tiff_camera_tags

RAW_SUFFIXES = {
    ".dng", ".cr2", ".cr3", ".crw", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf",
    ".rw2", ".rwl", ".pef", ".srw", ".x3f", ".3fr", ".fff", ".iiq", ".erf", ".kdc", ".mrw",
    ".mos", ".raw",
}  # fmt: skip


def is_raw(path: str | Path) -> bool:
    return Path(path).suffix.lower() in RAW_SUFFIXES


def decode_raw(name: str, data: bytes | None = None, bits: int = 8) -> pyvips.Image:
    """The RAW file `name` (or its bytes `data`) developed as LibRaw's defaults and the
    camera's white balance give it: sRGB, `bits` 8 or 16, turned upright by the RAW's own
    flip; EXIF Make/Model/DateTime attached as `exif-data` (orientation 1: pixels upright)."""
    rawpy = _rawpy()
    with _LibRawMessages() as messages:
        try:
            with rawpy.imread(name if data is None else io.BytesIO(data)) as raw:
                rgb = raw.postprocess(use_camera_wb=True, output_bps=bits)
                taken = raw.other.timestamp
            failure = None
        except (rawpy.LibRawError, OSError, ValueError) as exc:
            failure = exc
    if failure is not None:
        said = messages.first_line.removeprefix(f"{name}: ")
        raise InputError(f"{name}: not a readable RAW file ({said or _reason(failure)})")
    image = pyvips.Image.new_from_array(np.ascontiguousarray(rgb))
    image = image.copy(interpretation="rgb16" if bits == 16 else "srgb")
    tags = tiff_camera_tags(name, data)
    if "DateTime" not in tags and isinstance(taken, datetime) and taken.year > 1970:
        tags["DateTime"] = taken.strftime("%Y:%m:%d %H:%M:%S")
    image.set_type(pyvips.GValue.blob_type, "exif-data", exif_blob(tags))
    return image


def _reason(exc: BaseException) -> str:
    """LibRaw's errors carry their message as bytes."""
    arg = exc.args[0] if exc.args else b""
    text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else first_line(exc)
    return text or "LibRaw cannot decode it"


class _LibRawMessages(contextlib.AbstractContextManager):
    """Catch what LibRaw prints on the process's stderr (C code, fd 2) while it decodes:
    a failure is then reported in one line, with LibRaw's own words in it."""

    def __enter__(self) -> _LibRawMessages:
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        lines = self._file.read().decode("utf-8", "replace").splitlines()
        self._file.close()
        self.first_line = lines[0].strip() if lines else ""  # what LibRaw said, if anything


def _rawpy():
    try:
        import rawpy
    except ImportError:
        raise InputError(
            "camera RAW files need LibRaw's binding, a dependency of prodepth: pip install rawpy"
        ) from None
    return rawpy
