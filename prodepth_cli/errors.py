"""Project exceptions: each carries a message a photographer can act on."""


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


class ModelError(ProdepthError):
    """A model cannot be loaded or cannot be a depth model."""


class OptionError(ProdepthError):
    """Options that contradict each other or make no sense."""
