"""Per-frame arrays of a clip kept on disk: a raw file (`<name>`) memory-mapped on use and a
small JSON header (`<name>.json`) saying what it holds, so a rerun reuses them unread.

Written one frame at a time while the frames stream from the decoder, so nothing of the
clip is ever held whole in memory; the header is written last, so a cache cut short by a
kill has none and is made again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from prodepth_cli.errors import write_error
from prodepth_cli.io.write import atomic_output

_VERSION = 1


def header_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def open_cached(path: Path, key: dict) -> tuple[np.memmap, dict] | None:
    """The array at `path`, read-only memory-mapped, and its header, when the header says it
    was made for `key` (every item equal); else None (missing, cut short, or another key)."""
    head = header_path(path)
    if not path.is_file() or not head.is_file():
        return None
    try:
        meta = json.loads(head.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("version") != _VERSION or meta.get("key") != json.loads(json.dumps(key)):
        return None
    shape, dtype = tuple(meta["shape"]), np.dtype(meta["dtype"])
    if path.stat().st_size != int(np.prod(shape)) * dtype.itemsize:
        return None
    return np.memmap(path, dtype, "r", shape=shape), meta


class FrameArrayWriter:
    """Appends `(h, w[, c])` arrays of one dtype to `path` (as `<path>.part` until
    `finish`, which renames it and writes the header)."""

    def __init__(self, path: Path, dtype: np.dtype | str) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.count = 0
        self.frame_shape: tuple[int, ...] | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        self._part = path.with_name(path.name + ".part")
        header_path(path).unlink(missing_ok=True)  # stale until `finish` says otherwise
        self._file = open(self._part, "wb")  # noqa: SIM115 (closed in finish/abort)

    def append(self, frame: np.ndarray) -> None:
        if self.frame_shape is None:
            self.frame_shape = frame.shape
        elif frame.shape != self.frame_shape:
            raise ValueError(f"frame of shape {frame.shape}, the first is {self.frame_shape}")
        try:
            self._file.write(np.ascontiguousarray(frame, self.dtype).tobytes())
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from None
        self.count += 1

    def finish(self, key: dict, extra: dict | None = None) -> np.memmap:
        """Close, publish the file with its header; the array, memory-mapped read-only."""
        self._file.close()
        shape = (self.count, *(self.frame_shape or ()))
        os.replace(self._part, self.path)
        meta = {
            "version": _VERSION,
            "key": key,
            "shape": list(shape),
            "dtype": self.dtype.str,
            **(extra or {}),
        }
        with atomic_output(header_path(self.path)) as tmp:
            tmp.write_text(json.dumps(meta, indent=1))
        return np.memmap(self.path, self.dtype, "r", shape=shape)

    def abort(self) -> None:
        self._file.close()
        self._part.unlink(missing_ok=True)
