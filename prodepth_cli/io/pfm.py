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
    path = Path(path)
    try:
        with path.open("rb") as f:
            kind = f.readline().strip()
            dims = f.readline().split()
            scale = float(f.readline().strip())
            raw = f.read()
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read PFM file {path}: {exc}") from exc
    if kind not in (b"Pf", b"PF") or len(dims) != 2:
        raise InputError(f"{path} is not a PFM file (header {kind!r} {dims!r})")
    width, height = int(dims[0]), int(dims[1])
    channels = 3 if kind == b"PF" else 1
    dtype = np.dtype("<f4" if scale < 0 else ">f4")
    count = width * height * channels
    if len(raw) < count * 4:
        raise InputError(f"{path} is truncated: {len(raw)} bytes of {count * 4}")
    data = np.frombuffer(raw, dtype=dtype, count=count).reshape(height, width, channels)
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
