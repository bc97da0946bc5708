"""Depth along the camera's axis (Z) from a map's disparity, and what that had to assume.

A metric model's map is 1/metres: Z = 1 / disparity, in metres. A relative map (disparity,
larger = nearer, known only up to a scale and a shift) has no distance in it: its range is
stretched so that the nearest value lands at NEAR and the farthest at FAR, linearly in
disparity (1/Z), and Z = 1 / that. The shape in between is the model's; the distances, and so
how deep the scene looks, are the assumption (`--depth-range NEAR,FAR`). Its default follows
the lens (`default_depth_range`): the scene is taken to be DEPTH_PER_WIDTH times as deep as
the view is wide at its nearest point, so a telephoto shot (a narrow slice of a scene far
away) is shallow and a wide angle deep.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prodepth_cli.errors import OptionError

# far - near = DEPTH_PER_WIDTH x the view's width at NEAR: FAR/NEAR 1.5 at 12 degrees across
# (a 165 mm show-jumping shot: right there, streaks with 1,10), 2.8 at 40 (a 50 mm lens), 3.9
# at 60 (the bartender looks right at 1,4), 6 at 90.
DEPTH_PER_WIDTH = 2.5


def default_depth_range(fov_deg: float) -> tuple[float, float]:
    """(NEAR, FAR) of a relative map seen across `fov_deg` degrees (the long side's field of
    view): NEAR 1, FAR 1 + DEPTH_PER_WIDTH * 2 tan(fov / 2), the width of the view at 1."""
    return 1.0, 1.0 + DEPTH_PER_WIDTH * 2.0 * math.tan(math.radians(fov_deg) / 2.0)


@dataclass(frozen=True)
class DepthScale:
    """How a map's disparity (larger = nearer) becomes Z: `metric` (1/metres), or relative,
    the whole map's disparity range [`lo`, `hi`] stretched to Z in [`near`, `far`]."""

    metric: bool
    lo: float
    hi: float
    near: float
    far: float

    @property
    def units(self) -> str:
        return "m" if self.metric else "relative"

    @property
    def assumption(self) -> str:
        """What Z means, in a sentence (the PLY header's comment, the `--json` report)."""
        if self.metric:
            return "metric: Z in metres (depth = 1/disparity of its map)"
        return (
            f"relative map: no scale or shift known; disparity stretched so that the nearest "
            f"point is at Z = {self.near:.4g} and the farthest at Z = {self.far:.4g} "
            f"(--depth-range; by default from the field of view), Z = 1/disparity; units "
            f"arbitrary"
        )

    def depth(self, disparity: np.ndarray) -> np.ndarray:
        """Z for `disparity` `(...)` float32 of this map -> `(...)` float32, positive."""
        d = np.asarray(disparity, np.float32)
        if self.metric:  # a map without depth somewhere (0) puts it 1000 km away
            return 1.0 / np.maximum(d, np.float32(1e-6))
        if self.hi > self.lo:
            t = (d - np.float32(self.lo)) * np.float32(1.0 / (self.hi - self.lo))
        else:  # a flat map: all of it halfway, in disparity
            t = np.full_like(d, 0.5)
        inv_far, inv_near = 1.0 / self.far, 1.0 / self.near
        inverse = np.float32(inv_far) + np.clip(t, 0.0, 1.0) * np.float32(inv_near - inv_far)
        return (1.0 / inverse).astype(np.float32)


def parse_depth_range(text: str | None) -> tuple[float, float] | None:
    """`NEAR,FAR` (0 < NEAR < FAR) -> (near, far); None -> None (the default: from the field
    of view, `default_depth_range`). OptionError for anything else."""
    if text is None:
        return None
    try:
        near, far = (float(part) for part in text.split(","))
    except ValueError:
        raise OptionError(f"--depth-range {text!r}: two numbers NEAR,FAR, e.g. 1,10") from None
    if not (0 < near < far < float("inf")):
        raise OptionError(f"--depth-range {text!r}: needs 0 < NEAR < FAR")
    return near, far
