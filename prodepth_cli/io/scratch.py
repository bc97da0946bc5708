"""Disk-backed pixel arrays, so that working memory does not grow with the image, and the
band of rows in memory that stands in for them while it is small.

A gigapixel image's band of tile rows is hundreds of megabytes, and its depth map gigabytes;
both live here, in an unlinked temporary file read and written with positioned I/O (the page
cache holds them, not the process). Pixels are stored in column blocks of `BLOCK` pixels,
each block's rows contiguous, so a tile-sized window is a handful of contiguous reads
whatever the image width. With `ring_rows` the file keeps only that many rows, row y in slot
y % ring_rows: a band that slides down the image.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import numpy as np

from prodepth_cli.errors import DISK_FULL, OutputError, write_error

BLOCK = 256  # columns per block
STRIP_BYTES = 4 << 20  # full-width rows moved per call: a few MB, whatever the width
BAND_BYTES = 64 << 20  # a band of rows up to this size is kept in memory (`RowBand`)


def rows_per_strip(row_bytes: int) -> int:
    """Rows of `row_bytes` that make about `STRIP_BYTES`: the step for streaming rows."""
    return max(1, STRIP_BYTES // row_bytes)


class ScratchArray:
    """A `(height, width, *channels)` array on disk; windows come back as numpy arrays.
    `block` columns are stored together (at `width`, rows are stored whole: for an array
    only ever written and read in full rows, each a single call)."""

    def __init__(
        self,
        height: int,
        width: int,
        channels: tuple[int, ...] = (),
        dtype: np.dtype | type = np.float32,
        ring_rows: int | None = None,
        block: int = BLOCK,
    ):
        self.height, self.width, self.channels = height, width, channels
        self.dtype = np.dtype(dtype)
        self.block = min(block, width)
        self.rows = ring_rows or height  # slots per block
        self._pixel = self.dtype.itemsize * int(np.prod(channels, dtype=int))
        self._blocks = -(-width // self.block)
        self._block_bytes = self.rows * self.block * self._pixel
        try:
            self._fd, self._path = tempfile.mkstemp(prefix="prodepth-", suffix=".scratch")
        except OSError as exc:
            raise _scratch_error(f"{tempfile.gettempdir()}/prodepth-*.scratch", exc) from None
        os.unlink(self._path)  # anonymous: its space goes back when it is closed, crash or not
        try:
            os.ftruncate(self._fd, self._blocks * self._block_bytes)  # sparse zeros
        except OSError as exc:
            os.close(self._fd)
            raise _scratch_error(self._path, exc) from None

    def close(self) -> None:
        os.close(self._fd)

    @property
    def strip_rows(self) -> int:
        """Rows of about `STRIP_BYTES` at full width: the step for streaming rows in or out."""
        return rows_per_strip(self.width * self._pixel)

    def read(self, y0: int, y1: int, x0: int = 0, x1: int | None = None) -> np.ndarray:
        """Rows `[y0, y1)`, columns `[x0, x1)` (default: to the right edge)."""
        x1 = self.width if x1 is None else x1
        out = np.empty((y1 - y0, x1 - x0, *self.channels), self.dtype)
        if self._whole_rows(x0, x1):
            self._io(os.preadv, 0, y0, out)
            return out
        for b, lo, hi, blocks in self._block_rows(y0, y1, x0, x1):
            out[:, lo - x0 : hi - x0] = blocks[:, lo - b : hi - b]
        return out

    def write(self, y0: int, x0: int, values: np.ndarray) -> None:
        """Put `values` `(h, w, *channels)` at row `y0`, column `x0`."""
        if self._whole_rows(x0, x0 + values.shape[1]):
            self._io(os.pwritev, 0, y0, np.ascontiguousarray(values, self.dtype))
            return
        self._update(y0, x0, values, add=False)

    def _whole_rows(self, x0: int, x1: int) -> bool:
        """Columns `[x0, x1)` are whole rows stored whole: they move in one call."""
        return self._blocks == 1 and x0 == 0 and x1 == self.width

    def add(self, y0: int, x0: int, values: np.ndarray) -> None:
        """Add `values` `(h, w, *channels)` into the window at row `y0`, column `x0`."""
        self._update(y0, x0, values, add=True)

    def _update(self, y0: int, x0: int, values: np.ndarray, add: bool) -> None:
        h, w = values.shape[:2]
        for b, lo, hi, blocks in self._block_rows(y0, y0 + h, x0, x0 + w, whole_is_new=not add):
            part = values[:, lo - x0 : hi - x0]
            if add:
                blocks[:, lo - b : hi - b] += part
            else:
                blocks[:, lo - b : hi - b] = part
            self._io(os.pwritev, b, y0, blocks)

    def _block_rows(
        self, y0: int, y1: int, x0: int, x1: int, whole_is_new: bool = False
    ) -> Iterator[tuple]:
        """For each block under columns `[x0, x1)`: (its first column, the covered column
        range, its rows `[y0, y1)` as a `(n, block, *channels)` array read from disk; not
        read when `whole_is_new` and the range covers the block's every column)."""
        if y1 <= y0:
            return
        for k in range(x0 // self.block, -(-x1 // self.block)):
            b = k * self.block
            lo, hi = max(x0, b), min(x1, b + self.block)
            blocks = np.empty((y1 - y0, self.block, *self.channels), self.dtype)
            if not (whole_is_new and hi - lo == min(self.block, self.width - b)):
                self._io(os.preadv, b, y0, blocks)
            yield b, lo, hi, blocks

    def _io(self, call, b: int, y0: int, blocks: np.ndarray) -> None:
        """Read or write `blocks` (rows from `y0` of the block at column `b`), splitting
        where the ring wraps."""
        base = (b // self.block) * self._block_bytes
        row_bytes = self.block * self._pixel
        flat = blocks.reshape(len(blocks), -1).view(np.uint8)
        done = 0
        while done < len(blocks):
            slot = (y0 + done) % self.rows
            n = min(len(blocks) - done, self.rows - slot)
            self._transfer(call, flat[done : done + n].reshape(-1), base + slot * row_bytes)
            done += n

    def _transfer(self, call, data: np.ndarray, offset: int) -> None:
        """Read or write all the bytes `data` at `offset`. A short write is carried on, so
        that a disk that fills up says so (ENOSPC) rather than a byte count."""
        moved = 0
        try:
            while moved < len(data):
                size = call(self._fd, [data[moved:]], offset + moved)
                if size <= 0:
                    raise OSError(f"{moved} of {len(data)} bytes transferred")
                moved += size
        except OSError as exc:
            raise _scratch_error(self._path, exc) from None


def _scratch_error(path: str, exc: OSError) -> OutputError:
    """A scratch file's failure: in TMPDIR, not where the outputs go, so the line says so."""
    hint = "a working file of the image being made"
    if exc.errno in DISK_FULL:
        hint += "; set TMPDIR to a folder on a larger disk"
    return write_error(path, exc, hint)


class RowBand:
    """Rows `[top, top + rows)` of a `(height, width, *channels)` image, in memory, sliding
    down the image. While a band of tile rows is small (`fits`), keeping it here costs less
    than a scratch file's copies in and out, and windows of it are views, not copies."""

    def __init__(self, rows: int, width: int, channels: tuple[int, ...] = (), dtype=np.float32):
        self.rows = rows
        self.array = np.zeros((rows, width, *channels), dtype)
        self.top = 0

    @staticmethod
    def fits(rows: int, width: int, channels: tuple[int, ...] = (), dtype=np.float32) -> bool:
        pixel = np.dtype(dtype).itemsize * int(np.prod(channels, dtype=int))
        return rows * width * pixel <= BAND_BYTES

    @property
    def bottom(self) -> int:
        return self.top + self.rows

    def slide_to(self, top: int, zeros: bool = True) -> None:
        """Start the band at row `top`: rows above it are dropped, the rows it keeps move
        up, and the rows it gains are zeros (left as they were without `zeros`: for a band
        that is written before it is read)."""
        kept = max(0, self.bottom - top)
        if kept:
            self.array[:kept] = self.array[top - self.top :]
        if zeros:
            self.array[kept:] = 0
        self.top = top

    def read(self, y0: int, y1: int, x0: int = 0, x1: int | None = None) -> np.ndarray:
        """A view of rows `[y0, y1)`, columns `[x0, x1)`: valid until the band slides."""
        if not self.top <= y0 <= y1 <= self.bottom:
            raise ValueError(f"rows {y0}-{y1} are outside the band {self.top}-{self.bottom}")
        return self.array[y0 - self.top : y1 - self.top, x0:x1]

    def write(self, y0: int, x0: int, values: np.ndarray) -> None:
        self.read(y0, y0 + len(values), x0, x0 + values.shape[1])[...] = values

    def add(self, y0: int, x0: int, values: np.ndarray) -> None:
        self.read(y0, y0 + len(values), x0, x0 + values.shape[1])[...] += values
