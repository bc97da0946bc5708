"""Project exceptions: each carries a message a photographer can act on."""

from __future__ import annotations

import errno
from pathlib import Path

# Errors writing a file that every later write to the same disk would meet too.
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
_WRITE_CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


class ProdepthError(Exception):
    """Base class; the CLI prints `str(exc)` on one line and exits non-zero."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 200 characters), or its class name:
    libraries' multi-line messages made to fit a one-line error."""
    text = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return text[0][:200] if text else exc.__class__.__name__


class InputError(ProdepthError):
    """An input image cannot be read (missing, empty, not an image, truncated)."""


class OutputError(ProdepthError):
    """An output cannot be written (location unwritable, exists without --overwrite)."""


class DiskFullError(OutputError):
    """No space or quota left where an output is written: the next output would fail too, so
    a batch stops at the first."""


def write_cause(exc: OSError) -> str:
    """Why writing failed, in a photographer's words ("no space left on device")."""
    return _WRITE_CAUSES.get(exc.errno, exc.strerror or first_line(exc))


def write_error(path: str | Path, exc: OSError, hint: str = "") -> OutputError:
    """`exc`, raised writing `path`, as one line naming the file and the cause (and `hint`,
    what to do): a DiskFullError when no space or quota is left."""
    path = Path(path)
    if exc.errno == errno.ENOENT and not path.parent.is_dir():  # removed while writing
        cause = f"its folder {path.parent} no longer exists"
    elif exc.errno in _WRITE_CAUSES:
        cause = write_cause(exc)
    else:
        cause = f"cannot write ({write_cause(exc)})"
    message = f"{path}: {cause}" + (f" ({hint})" if hint else "")
    return (DiskFullError if exc.errno in DISK_FULL else OutputError)(message)


class ModelError(ProdepthError):
    """A model cannot be loaded or cannot be a depth model."""


class OptionError(ProdepthError):
    """Options that contradict each other or make no sense."""
