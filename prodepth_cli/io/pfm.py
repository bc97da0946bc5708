"""Portable Float Map (PFM) reading and writing: the float format of Middlebury and SceneFlow.

Rows are stored bottom-to-top on disk; these functions hand out and take top-to-bottom arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodepth_cli.errors import InputError


def read_pfm(path: str | Path) -> np.ndarray:
    """The first channel of a PFM file as float32 `(H, W)`, top row first.

    Handles grey (`Pf`) and colour (`PF`, first channel kept) files in either byte order
    (negative scale = little-endian). Values are returned as stored: the scale's magnitude is
    not applied, as Middlebury and SceneFlow use it only for the byte order. `inf` is kept.
    """
    offset, dtype, (height, width, channels) = pfm_header(path)
    count = width * height * channels
    try:
        data = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read PFM file {path}: {exc}") from exc
    data = data.reshape(height, width, channels)
    return np.ascontiguousarray(data[::-1, :, 0], dtype=np.float32)


def write_pfm(path: str | Path, array: np.ndarray) -> None:
    """Write float `(H, W)` (grey `Pf`) or `(H, W, 3)` (colour `PF`), top row first in `array`.

    Little-endian with scale -1.0, the layout Middlebury and SceneFlow use; `read_pfm` returns
    the first channel exactly.
    """
    a = np.asarray(array, dtype="<f4")
    if a.ndim == 2:
        kind = b"Pf"
    elif a.ndim == 3 and a.shape[2] == 3:
        kind = b"PF"
    else:
        raise ValueError(f"PFM holds (H, W) or (H, W, 3) arrays, not {a.shape}")
    height, width = a.shape[:2]
    header = kind + b"\n" + f"{width} {height}\n-1.0\n".encode("ascii")
    with Path(path).open("wb") as f:
        f.write(header)
        f.write(np.ascontiguousarray(a[::-1]).tobytes())


def pfm_header(path: str | Path) -> tuple[int, np.dtype, tuple[int, int, int]]:
    """(offset of the first stored row, dtype, (height, width, channels)) of a PFM file, for
    reading its rows where they lie (stored bottom to top). InputError when it is not one or
    is cut short."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            kind = f.readline().strip()
            dims = f.readline().split()
            scale = float(f.readline().strip())
            offset = f.tell()
        if kind not in (b"Pf", b"PF") or len(dims) != 2:
            raise InputError(f"{path} is not a PFM file (header {kind!r} {dims!r})")
        width, height = int(dims[0]), int(dims[1])
        size = path.stat().st_size - offset
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read PFM file {path}: {exc}") from exc
    channels = 3 if kind == b"PF" else 1
    needed = width * height * channels * 4
    if size < needed:
        raise InputError(f"{path} is truncated: {size} bytes of {needed}")
    return offset, np.dtype("<f4" if scale < 0 else ">f4"), (height, width, channels)
