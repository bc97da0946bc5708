"""Per-frame arrays of a clip kept on disk: a raw file (`<name>`) memory-mapped on use and a
small JSON header (`<name>.json`) saying what it holds, so a rerun reuses them unread.

Written one frame at a time while the frames stream from the decoder, so nothing of the
clip is ever held whole in memory; the header is written last. A cache cut short (a frame
that cannot be decoded, a kill) stays as a part file with each frame's key beside it, and
the next run continues it, reusing each frame whose data has not changed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from prodepth_cli.errors import OutputError, write_error
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
    `finish`, which renames it and writes the header).

    Resumable: given `part_key` (what the arrays are made for: the clip's path, the fitting
    size, the model), the part keeps a header of its own (`<path>.part.json`) and each
    frame's key (`stream.Frame.key`, one a line in `<path>.part.keys`), and a part an
    earlier run left with the same `part_key` (stopped at a frame that cannot be decoded,
    or killed) is continued from its last whole frame. A caller asks `needs` for each frame
    in order and appends only those it says.
    """

    def __init__(self, path: Path, dtype: np.dtype | str, part_key: dict | None = None) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.count = 0
        self.frame_shape: tuple[int, ...] | None = None
        self.part_key = json.loads(json.dumps(part_key)) if part_key is not None else None
        self._keys: list[str] = []  # of the frames in the part
        path.parent.mkdir(parents=True, exist_ok=True)
        self._part = path.with_name(path.name + ".part")
        self._keys_path = path.with_name(path.name + ".part.keys")
        header_path(path).unlink(missing_ok=True)  # stale until `finish` says otherwise
        if self.part_key is not None and self._resume():
            return
        self._remove_part()
        self._file = open(self._part, "wb")  # noqa: SIM115 (closed in finish/close/abort)
        self._keys_file = open(self._keys_path, "w") if self.part_key is not None else None  # noqa: SIM115

    def _resume(self) -> bool:
        """Open the part an earlier run left for this `part_key`, if any (at its last frame
        that is whole and has its key)."""
        try:
            meta = json.loads(header_path(self._part).read_text())
            size = self._part.stat().st_size
            keys = self._keys_path.read_text().splitlines()
        except (OSError, ValueError):
            return False
        if meta.get("version") != _VERSION or meta.get("dtype") != self.dtype.str:
            return False
        if meta.get("key") != self.part_key:
            return False
        self.frame_shape = tuple(meta["frame_shape"])
        count = min(size // max(self._frame_bytes, 1), len(keys))
        if count == 0:
            return False
        self._file = open(self._part, "r+b")  # noqa: SIM115
        self._keys_file = open(self._keys_path, "r+")  # noqa: SIM115
        self._keys = keys
        self._truncate(count)
        return True

    @property
    def _frame_bytes(self) -> int:
        return int(np.prod(self.frame_shape or ())) * self.dtype.itemsize

    def needs(self, index: int, key: str) -> bool:
        """Whether frame `index`, decoded from data identified by `key`, is still to be
        appended: not when a run before this one appended it from the same data. A frame
        whose data changed is dropped with every frame after it. Ask for frames in order."""
        if index < self.count:
            if self._keys[index] == key:
                return False
            self._truncate(index)
        return True

    def _truncate(self, count: int) -> None:
        self.count, self._keys = count, self._keys[:count]
        self._file.truncate(count * self._frame_bytes)
        self._file.seek(0, os.SEEK_END)
        assert self._keys_file is not None
        self._keys_file.seek(0)
        self._keys_file.truncate()
        self._keys_file.write("".join(k + "\n" for k in self._keys))
        self._keys_file.flush()

    def append(self, frame: np.ndarray, key: str = "") -> None:
        """Append the next frame (`key`: what identifies its data, see `needs`)."""
        if self.frame_shape is None:
            self.frame_shape = frame.shape
        elif frame.shape != self.frame_shape:
            raise ValueError(f"frame of shape {frame.shape}, the first is {self.frame_shape}")
        try:
            if self.count == 0 and self._keys_file is not None:
                self._write_part_header()
            self._file.write(np.ascontiguousarray(frame, self.dtype).tobytes())
            if self._keys_file is not None:
                self._file.flush()  # the frame before its key: a key means a whole frame
                self._keys_file.write(key + "\n")
                self._keys_file.flush()
                self._keys.append(key)
        except OSError as exc:
            self.abort()
            raise write_error(self.path, exc) from None
        except OutputError:  # the part's header, named by atomic_output: nothing to resume
            self.abort()
            raise
        self.count += 1

    def _write_part_header(self) -> None:
        meta = {
            "version": _VERSION,
            "key": self.part_key,
            "frame_shape": list(self.frame_shape or ()),
            "dtype": self.dtype.str,
        }
        with atomic_output(header_path(self._part)) as tmp:
            tmp.write_text(json.dumps(meta, indent=1))

    def finish(self, key: dict, extra: dict | None = None) -> np.memmap:
        """Close, publish the file with its header; the array, memory-mapped read-only."""
        self._close_files()
        shape = (self.count, *(self.frame_shape or ()))
        os.replace(self._part, self.path)
        self._remove_part()
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

    def close(self) -> None:
        """Stop writing, keeping the part for a later run to resume (when it has a
        `part_key` and a frame; else it is removed, as by `abort`: e.g. the teacher's maps
        when the disk filled before the first frame was cached)."""
        if self._keys_file is None or self.count == 0:
            self.abort()
        else:
            self._close_files()

    def abort(self) -> None:
        """Stop writing and remove the part."""
        self._close_files()
        self._remove_part()

    def _close_files(self) -> None:
        self._file.close()
        if self._keys_file is not None:
            self._keys_file.close()

    def _remove_part(self) -> None:
        for part in (self._part, header_path(self._part), self._keys_path):
            part.unlink(missing_ok=True)


def write_frame_array(
    path: Path, frames: Iterable[np.ndarray], dtype: np.dtype | str, key: dict
) -> np.memmap:
    """Each `(h, w[, c])` array of `frames`, in order, into `path` (a `FrameArrayWriter`,
    header `key`), as they come: the `(N, h, w[, c])` array, memory-mapped read-only, without
    ever holding more than one frame of it. An error (or a kill) leaves no file behind."""
    writer = FrameArrayWriter(path, dtype)
    try:
        for frame in frames:
            writer.append(frame)
    except BaseException:
        writer.abort()
        raise
    return writer.finish(key)


def remove_frame_array(path: Path) -> None:
    """Remove the array at `path` and its header (a scratch array no longer needed; nothing
    may still map it)."""
    path.unlink(missing_ok=True)
    header_path(path).unlink(missing_ok=True)


class FrameReader:
    """The frames of a memory-mapped `(N, ...)` array read one at a time with plain file
    reads: unlike the map itself, where every page read stays counted in the process's
    resident memory until it is unmapped, a pass over the frames holds one frame."""

    def __init__(self, array: np.memmap) -> None:
        self.path, self.offset = Path(array.filename), array.offset
        self.dtype, self.shape = array.dtype, array.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: int) -> np.ndarray:
        """Frame `index` (an int: one frame, a copy)."""
        count = int(np.prod(self.shape[1:]))
        with open(self.path, "rb") as f:
            f.seek(self.offset + int(index) * count * self.dtype.itemsize)
            return np.fromfile(f, self.dtype, count).reshape(self.shape[1:])

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self[i] for i in range(len(self)))


def read_by_frame(array: np.ndarray) -> np.ndarray | FrameReader:
    """`array` read a frame at a time by plain reads (`FrameReader`) when it is memory-mapped,
    else as it is: a pass, or a fit's random batches, over a mapped cache would otherwise
    leave every page it touched counted in the process's resident memory."""
    return FrameReader(array) if isinstance(array, np.memmap) else array
