"""Camera intrinsics for a clip: from `fx,fy,cx,cy`, a KITTI-style calibration file, or a
documented default, always rescaled to the size the network sees."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from prodepth_cli.camera import Intrinsics
from prodepth_cli.errors import InputError, OptionError

# monodepth2's KITTI intrinsics (fx = 0.58 W): a wide (~81 degree horizontal) view. With no
# calibration this is a guess; the fit only needs it roughly right (depth comes out relative).
DEFAULT_FX_PER_WIDTH = 0.58

# Labels of a 3x4 projection matrix, preferred in this order (KITTI odometry uses P0 for the
# left grey camera, KITTI raw P_rect_00/02).
_CALIB_KEYS = ("P0", "P_rect_00", "P2", "P_rect_02")


def default_intrinsics(width: int, height: int) -> Intrinsics:
    """fx = fy = 0.58 * width, principal point at the centre."""
    f = DEFAULT_FX_PER_WIDTH * width
    return Intrinsics(f, f, width / 2, height / 2, width, height)


def parse_intrinsics(text: str, width: int, height: int) -> Intrinsics:
    """`"fx,fy,cx,cy"` in pixels of the original `width` x `height` frames."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4 or not all(np.isfinite(values)):
        raise OptionError(f"--intrinsics {text!r}: expected four numbers fx,fy,cx,cy in pixels")
    fx, fy, cx, cy = values
    if fx <= 0 or fy <= 0:
        raise OptionError(f"--intrinsics {text!r}: focal lengths must be positive")
    return Intrinsics(fx, fy, cx, cy, width, height)


def read_calib(path: str | Path, width: int, height: int) -> Intrinsics:
    """Intrinsics from a KITTI-style calibration file: lines of 12 numbers (a 3x4 projection
    matrix, row-major), optionally labelled `P0:` / `P2:` / `P_rect_02:`. A labelled P0 (then
    P_rect_00, P2, P_rect_02) wins; unlabelled, the first matrix is taken."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{p}: cannot read calibration file ({exc})") from None
    matrices: dict[str, np.ndarray] = {}
    for i, line in enumerate(lines):
        label, _, rest = line.rpartition(":") if ":" in line else ("", "", line)
        numbers = re.split(r"[\s,]+", rest.strip())
        if numbers == [""]:
            continue
        try:
            values = np.array([float(v) for v in numbers])
        except ValueError:
            continue
        if values.size == 12:
            matrices.setdefault(label.strip() or f"#{i}", values.reshape(3, 4))
    if not matrices:
        raise InputError(f"{p}: no 3x4 projection matrix (12 numbers on a line) found")
    key = next((k for k in _CALIB_KEYS if k in matrices), next(iter(matrices)))
    m = matrices[key]
    if m[0, 0] <= 0 or m[1, 1] <= 0:
        raise InputError(f"{p}: projection matrix {key} has a non-positive focal length")
    return Intrinsics(float(m[0, 0]), float(m[1, 1]), float(m[0, 2]), float(m[1, 2]), width, height)
