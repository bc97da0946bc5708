"""Coloured points as a binary little-endian PLY, written a band of rows at a time.

The layout every point-cloud tool reads (MeshLab, CloudCompare, Blender, Open3D, plyfile):
one `vertex` element of x, y, z float32 and red, green, blue uchar, 15 bytes a point, no
faces. The count goes in the header, so it is known before the first band: every point of
the grid is written. plyfile would want the whole array in memory; a header and numpy
structured rows written band by band keep memory flat in the photograph's size.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

VERTEX = np.dtype(
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")]
)
_PLY_TYPE = {"<f4": "float", "|u1": "uchar"}


def ply_header(count: int, comments: list[str]) -> bytes:
    """The header of a binary little-endian PLY of `count` VERTEX points, with `comments`
    (one line each; line breaks become spaces)."""
    lines = ["ply", "format binary_little_endian 1.0"]
    lines += [f"comment {' '.join(c.split())}" for c in comments]
    lines += [f"element vertex {count}"]
    lines += [f"property {_PLY_TYPE[VERTEX[name].str]} {name}" for name in VERTEX.names]
    lines += ["end_header"]
    return ("\n".join(lines) + "\n").encode("ascii", errors="replace")


def write_points(f: BinaryIO, xyz: np.ndarray, rgb8: np.ndarray) -> int:
    """Append points `xyz` `(..., 3)` float32 and their colours `rgb8` `(..., 3)` uint8 to
    the PLY body in `f`; returns how many."""
    xyz = xyz.reshape(-1, 3)
    rows = np.empty(len(xyz), VERTEX)
    rows["x"], rows["y"], rows["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    rgb8 = rgb8.reshape(-1, 3)
    rows["red"], rows["green"], rows["blue"] = rgb8[:, 0], rgb8[:, 1], rgb8[:, 2]
    f.write(rows.tobytes())
    return len(rows)
