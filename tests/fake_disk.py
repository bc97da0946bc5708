"""A full disk, faked: files opened for writing under a folder fail at their first write with
ENOSPC (or another errno), as they do when the disk fills; shared by the tests that check
that every output says so in one line and leaves nothing behind."""

from __future__ import annotations

import builtins
import errno
import io
import os
from pathlib import Path


class _FailingWrites:
    """A file whose writes fail with `errno`, as on a full disk; the rest is the real file."""

    def __init__(self, file, errno_: int):
        self._file, self._errno = file, errno_

    def write(self, data) -> int:
        raise OSError(self._errno, os.strerror(self._errno))

    def __getattr__(self, name: str):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._file.close()


class FakeDisk:
    """The disk under `folder`: the first `fit` files opened for writing there are written,
    every later one fails at its first write with `errno_` (ENOSPC: full)."""

    def __init__(self, folder: Path, fit: int = 0, errno_: int = errno.ENOSPC):
        self.folder, self.fit, self.errno = folder.resolve(), fit, errno_
        self.opened: list[Path] = []

    def install(self, monkeypatch) -> FakeDisk:
        real_open = builtins.open

        def fake_open(file, mode="r", *args, **kwargs):
            f = real_open(file, mode, *args, **kwargs)
            if isinstance(file, str | os.PathLike) and any(c in mode for c in "wax+"):
                path = Path(file).resolve()
                if path.is_relative_to(self.folder):
                    self.opened.append(path)
                    if len(self.opened) > self.fit:
                        return _FailingWrites(f, self.errno)
            return f

        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)  # Path.write_bytes opens through io.open
        return self
