"""From a depth map to each eye's horizontal shift in pixels: `--divergence`, `--convergence`
and `--synthetic-view`.

The map is normalised over its own range, n = (d - lo) / (hi - lo) (0 farthest, 1 nearest).
Between the two eyes a pixel of level n is displaced by

    x_left - x_right = S * (n - c),   S = divergence / 100 * width   (pixels)

so the map's nearest and farthest levels differ by S (the divergence, a percentage of the
width) and the level c (the convergence) is where both eyes agree: the screen plane. Nearer
levels have positive disparity (in front of the screen), farther ones negative. As a real
right camera sees them, a synthesised right eye moves nearer points further left:
x_right = x_left - disparity. `both` splits the shift, each eye half of it; `right` keeps the
photograph as the left eye and moves the right eye by all of it; `left` the opposite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prodepth_cli.errors import OptionError
from prodepth_cli.stereo.layouts import LAYOUTS

SYNTHETIC_VIEWS = ("both", "right", "left")
MAX_DIVERGENCE = 20.0  # % of the width: far past what eyes fuse (2-3 % is comfortable)


def check_convergence(level: float) -> None:
    """OptionError unless `level` (--convergence: the map level that stays in place) is in
    [0, 1]."""
    if not 0.0 <= level <= 1.0:
        raise OptionError(
            f"--convergence {level:g}: a map level from 0 (the farthest stays in place) to 1 "
            "(the nearest)"
        )


@dataclass(frozen=True)
class StereoOptions:
    """How a stereo pair is made. `divergence`: % of the width between the eyes' shifts of
    the map's farthest and nearest levels; `convergence`: the map level (0 farthest .. 1
    nearest) that stays in place; `synthetic_view`: which eyes are synthesised; `layout`:
    how the two eyes are packed into one image (`layouts.LAYOUTS`)."""

    layout: str = "sbs"
    divergence: float = 2.0
    convergence: float = 0.5
    synthetic_view: str = "both"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise OptionError(f"--layout {self.layout}: choose one of {', '.join(LAYOUTS)}")
        if not 0.0 <= self.divergence <= MAX_DIVERGENCE:
            raise OptionError(
                f"--divergence {self.divergence:g}: a percentage of the width from 0 to "
                f"{MAX_DIVERGENCE:g} (2 is comfortable)"
            )
        check_convergence(self.convergence)
        if self.synthetic_view not in SYNTHETIC_VIEWS:
            raise OptionError(
                f"--synthetic-view {self.synthetic_view}: choose one of "
                f"{', '.join(SYNTHETIC_VIEWS)}"
            )


def divergence_px(width: int, options: StereoOptions) -> float:
    """S: the difference in pixels, between the eyes, of the shifts of the map's nearest and
    farthest levels."""
    return options.divergence / 100.0 * width


def shift_range_px(width: int, options: StereoOptions) -> tuple[float, float]:
    """(farthest, nearest) disparity between the eyes, x_left - x_right, in pixels: negative
    behind the screen, positive in front of it."""
    s = divergence_px(width, options)
    return -s * options.convergence, s * (1.0 - options.convergence)


def stereo_disparity(
    disparity: np.ndarray, lo: float, hi: float, width: int, options: StereoOptions
) -> np.ndarray:
    """x_left - x_right in pixels, `(h, w)` float32, for `disparity` `(h, w)` (larger =
    nearer, any units) whose whole map spans [lo, hi]; a flat map (hi = lo) does not move."""
    s = divergence_px(width, options)
    if not hi > lo:
        return np.zeros(disparity.shape, np.float32)
    gain = np.float32(s / (hi - lo))
    out = np.subtract(disparity, np.float32(lo), dtype=np.float32)
    out *= gain
    out -= np.float32(s * options.convergence)
    return out


def eye_shares(options: StereoOptions) -> tuple[float, float]:
    """The fractions of the stereo disparity by which the left eye moves right and the right
    eye moves left (0: that eye is the photograph)."""
    return {"both": (0.5, 0.5), "right": (0.0, 1.0), "left": (1.0, 0.0)}[options.synthetic_view]
