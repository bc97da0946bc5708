"""Tiled TIFFs read tile by tile (tifffile + imagecodecs), so memory stays flat in the width.

libvips reads a tiled TIFF a whole row of tiles at a time and caches a row or two of them:
at gigapixel widths that is 100 MB or more, and its thumbnail of a non-pyramidal TIFF peaks
higher still. Here each tile is decoded alone and handed on (to the disk ring of
`WindowReader`, or into the running sums of the thumbnail), so only one tile is ever in
memory. TIFFs this reader does not cover (strips, palettes, planar layouts, rotations,
floats) go to libvips.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

from prodepth_cli.errors import InputError
from prodepth_cli.io import INTEGER_WHITE
from prodepth_cli.io.metadata import page_camera_tags

_PHOTOMETRIC = {
    tifffile.PHOTOMETRIC.MINISBLACK,
    tifffile.PHOTOMETRIC.RGB,
    tifffile.PHOTOMETRIC.YCBCR,  # JPEG tiles only: the codec returns RGB
}
# Float TIFFs go to libvips, which reads float RGB as linear light (scRGB).


class TiledTiff:
    """The first image of a tiled TIFF as a source of RGB pixels, one tile at a time."""

    def __init__(self, name: str, tiff: tifffile.TiffFile):
        page = tiff.pages[0]
        self.name = name
        self._tiff, self._page = tiff, page
        self.height, self.width = page.imagelength, page.imagewidth
        self.dtype = page.dtype
        self.full_scale = INTEGER_WHITE[page.dtype]
        self.strip_rows = page.tilelength  # rows decoded together: one row of tiles
        self._tiles_across = -(-self.width // page.tilewidth)
        self._file = threading.Lock()  # the thumbnail may read while the tile rows are read

    @classmethod
    def open(cls, path: str | Path, data: bytes | None = None) -> TiledTiff | None:
        """The TIFF at `path` (or encoded `data`) if it is one this reader covers, else None."""
        try:
            tiff = tifffile.TiffFile(io.BytesIO(data) if data is not None else str(path))
        except (tifffile.TiffFileError, OSError, ValueError):
            return None  # not a TIFF: libvips reads it (or names the problem)
        page = tiff.pages[0]
        if _readable(page):
            return cls(str(path), tiff)
        tiff.close()
        return None

    def close(self) -> None:
        self._tiff.close()

    def camera_tags(self) -> dict[str, str]:
        """The photograph's Make, Model and DateTime tags, those it has."""
        return page_camera_tags(self._page)

    def blocks(self, y0: int, y1: int) -> Iterator[tuple[int, np.ndarray]]:
        """The tiles of rows `[y0, y1)` (`y0` on a tile row), left to right, as `(x0,
        pixels)`: RGB `(h, w, 3)` as stored, cropped to the image."""
        th, tw = self._page.tilelength, self._page.tilewidth
        for row in range(y0 // th, -(-y1 // th)):
            for col in range(self._tiles_across):
                yield col * tw, self._tile(row * self._tiles_across + col)[: y1 - row * th]

    def thumbnail(self, max_side: int) -> np.ndarray:
        """The whole image area-averaged so that its long side is `max_side` (float32 RGB in
        [0, 1]), from one pass over the tiles."""
        scale = min(1.0, max_side / max(self.height, self.width))
        th, tw = max(1, round(self.height * scale)), max(1, round(self.width * scale))
        row_bin = np.arange(self.height) * th // self.height
        col_bin = np.arange(self.width) * tw // self.width
        sums = np.zeros((th, tw, 3), np.float64)
        for y0, x0, pixels in self._all_tiles():
            rows, cols = row_bin[y0 : y0 + len(pixels)], col_bin[x0 : x0 + pixels.shape[1]]
            r, c = _starts(rows), _starts(cols)
            part = np.add.reduceat(pixels.astype(np.float32), r, axis=0)
            sums[rows[r][:, None], cols[c]] += np.add.reduceat(part, c, axis=1)
        counts = np.bincount(row_bin, minlength=th)[:, None] * np.bincount(col_bin, minlength=tw)
        mean = sums / (counts[..., None] * self.full_scale)
        return np.clip(mean, 0.0, 1.0).astype(np.float32)

    def _all_tiles(self) -> Iterator[tuple[int, int, np.ndarray]]:
        for y0 in range(0, self.height, self.strip_rows):
            for x0, pixels in self.blocks(y0, min(y0 + self.strip_rows, self.height)):
                yield y0, x0, pixels

    def _tile(self, index: int) -> np.ndarray:
        page = self._page
        h = min(page.tilelength, self.height - (index // self._tiles_across) * page.tilelength)
        w = min(page.tilewidth, self.width - (index % self._tiles_across) * page.tilewidth)
        offset, size = page.dataoffsets[index], page.databytecounts[index]
        if not size:
            return np.zeros((h, w, 3), self.dtype)  # a missing tile reads as black
        with self._file:
            self._tiff.filehandle.seek(offset)
            data = self._tiff.filehandle.read(size)
        try:
            if len(data) < size:
                raise EOFError("the file ends inside it")
            pixels = page.decode(data, index, jpegtables=page.jpegtables)[0]
        except Exception as exc:  # the codecs raise their own types
            raise InputError(
                f"{self.name}: truncated or corrupt image (tile {index}: {exc})"
            ) from None
        pixels = pixels.reshape(page.tilelength, page.tilewidth, -1)[:h, :w]
        if pixels.shape[2] < 3:
            return np.repeat(pixels[:, :, :1], 3, axis=2)
        return pixels[:, :, :3]


def _readable(page: tifffile.TiffPage) -> bool:
    """Whether `page` is a tiled, upright, interleaved grey or RGB(A) image we can decode."""
    orientation = page.tags.get("Orientation")
    return (
        page.is_tiled
        and page.imagedepth == 1
        and page.dtype in INTEGER_WHITE
        and page.photometric in _PHOTOMETRIC
        and (page.photometric != tifffile.PHOTOMETRIC.YCBCR or page.compression == 7)
        and page.planarconfig == tifffile.PLANARCONFIG.CONTIG
        and page.samplesperpixel in (1, 2, 3, 4)
        and (orientation is None or orientation.value == 1)
        and _has_codec(page.compression)
    )


def _has_codec(compression: int) -> bool:
    try:
        return tifffile.TIFF.DECOMPRESSORS[compression] is not None
    except (KeyError, ValueError):
        return False  # imagecodecs lacks it: libvips may still read the file


def _starts(bins: np.ndarray) -> np.ndarray:
    """Indices where a sorted array of bin numbers changes: the groups for `reduceat`."""
    return np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
