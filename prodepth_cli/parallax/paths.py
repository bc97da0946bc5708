"""Camera paths of a parallax video: where the virtual camera is at each frame.

A pose moves a pixel at `p` (pixels from the image centre) whose map level is `n` (0 the
farthest, 1 the nearest; the map normalised over its own range, as stereo's) to

    p' = p * (1 + zoom + radial * (n - c)) + (n - c) * lateral * W

(W the image width in pixels, c the convergence: the level that stays in place). `lateral`
is a camera sliding in the image plane (x right, y down, in widths per level), `radial` a
camera moving forward (levels nearer than c grow, farther ones shrink), `zoom` a zoom of
the whole frame. It is the first-order motion of a pinhole camera over a height field, as
DepthFlow draws it. `--amount A` (% of the width) is the shift between the map's nearest and
farthest levels where the path reaches furthest: the lateral length, or for the paths
forward the radial gain at the frame's left and right edges (radial * W / 2 = A % of W).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PATHS = ("circle", "swing", "dolly", "zoom")
LOOPS = ("circle", "swing", "dolly")  # the last frame flows into the first


@dataclass(frozen=True)
class CameraPose:
    """One frame's camera: `lateral` (x, y) in widths per level, `radial` per level, `zoom`
    a scale of the whole frame (0: none). See the module's notes."""

    lateral: tuple[float, float] = (0.0, 0.0)
    radial: float = 0.0
    zoom: float = 0.0


def camera_path(path: str, frames: int, amount: float, convergence: float) -> list[CameraPose]:
    """The poses of `frames` frames of `path` at strength `amount` (% of the width), the
    map level `convergence` staying in place.

    circle: the camera goes once round a circle in the image plane; swing: left and right
    once; dolly: forward and back once with a zoom that keeps the convergence level's size
    (a "vertigo" shot); zoom: forward, easing in and out, with the farthest level keeping its
    size (everything nearer grows: the convergence does not apply). Loops sample a period at
    frames 0 .. frames - 1, so the last frame flows into the first.
    """
    if path not in PATHS:
        raise ValueError(f"unknown path {path!r}")
    a = amount / 100.0
    poses = []
    for i in range(frames):
        # a loop's frame `frames` would be its frame 0; a zoom ends where it stops
        t = i / frames if path in LOOPS else i / max(1, frames - 1)
        angle = 2.0 * math.pi * t
        if path == "circle":
            pose = CameraPose(lateral=(a * math.cos(angle), a * math.sin(angle)))
        elif path == "swing":
            pose = CameraPose(lateral=(a * math.sin(angle), 0.0))
        elif path == "dolly":
            pose = CameraPose(radial=2.0 * a * (1.0 - math.cos(angle)) / 2.0)
        else:
            ease = t * t * (3.0 - 2.0 * t)  # smoothstep: starts and stops gently
            # a zoom of radial * c: p' = p * (1 + radial * n), whatever the convergence
            pose = CameraPose(radial=2.0 * a * ease, zoom=2.0 * a * ease * convergence)
        poses.append(pose)
    return poses


def overscan(poses: list[CameraPose], convergence: float, aspect: float) -> float:
    """The zoom (>= 1) that keeps every frame of `poses` inside the photograph: no pixel of
    any frame looks past its edges, whatever its level. `aspect`: width / height.

    A frame's corner p' = (+-W/2, +-H/2) / s comes from p = (p' - a * lateral * W) / b at
    level n, a = n - c, b = 1 + zoom + radial * a; inside when |p| <= W/2 (and H/2), i.e.
    s >= 1 / (b - 2 |a lateral_x|) and s >= 1 / (b - 2 |a lateral_y| * aspect). Both are
    ratios of linear functions of n, so their largest value is at n = 0 or 1.
    """
    need = 1.0
    for pose in poses:
        for n in (0.0, 1.0):
            a = n - convergence
            b = 1.0 + pose.zoom + pose.radial * a
            for room in (
                b - 2.0 * abs(a * pose.lateral[0]),
                b - 2.0 * abs(a * pose.lateral[1]) * aspect,
            ):
                if room <= 0.05:
                    raise ValueError("the path moves the camera past the photograph")
                need = max(need, 1.0 / room)
    return need
