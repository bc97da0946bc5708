"""One parallax frame: the photograph's height field ray-marched from a moved camera. The
algorithm and the camera's maths are here, once; the array operations are a `Sampler`'s
(`samplers.py`: numpy and OpenCV on the CPU, or torch on a GPU).

Backward, as DepthFlow does: for each frame pixel the ray through it is searched, from the
nearest level down, for the first level n it meets (`paths`: at ray level v the pixel sees
the photograph at q(v) = (p' / s - (v - c) L) / (1 + zoom + radial (v - c)); it meets the
surface where level(q(v)) >= v). Every frame pixel finds one surface, so there are no holes;
the nearest is found first, so near covers far.

- Coarse steps: v goes from 1 to 0 in steps that move q at most STEP_PX pixels, each step one
  affine resampling of the level map for the whole frame (`Sampler.look`), so nothing
  thicker than STEP_PX is stepped over. The first look is at v = 1: the nearest level's top.
- Refinement: between the last step above the surface and the first below it, regula falsi
  (a secant step, a look, and another): exact on planes, sub-pixel on curved surfaces, so
  surfaces glide without jitter.
- Walls: where the level jumps between the two steps by more than EDGE_JUMP_PX of shift, the
  ray went past a near object's edge and under it: a disocclusion. The height field's wall
  would show the object's rim stretched across the opening; instead the opening shows the
  background (the far side's level, n_b): the edge is found by bisection, and the pixel
  takes the background mirrored across it along the ray, while what it mirrors is that same
  background (within MIRROR_TOL_PX), else the background's pixel at the edge: stereo's
  disocclusion fill (`stereo.warp`), in 2-D.

Arrays: `rgb` `(Hs, Ws, 3)` uint8, `level` `(Hs, Ws)` float32 in [0, 1] (1 nearest; edges
snapped, `levels.snap_edges`), frames `(H, W, 3)` uint8. Coordinates are pixel centres. In
between, arrays are the sampler's (numpy arrays or torch tensors on its device), and the code
below uses only what both have: operators, boolean masks, and `xp.where`, `clip`, `abs`,
`hypot`, `zeros_like`, and the sampler's `put` (in place: the coarse march's bookkeeping
costs as much as its looks otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from prodepth_cli.parallax.paths import CameraPose
from prodepth_cli.stereo.warp import EDGE_JUMP_PX, MIRROR_TOL_PX

# The most a coarse step moves a ray's landing point, pixels of the photograph: a ray that
# dips under a surface for less than a step (at the leading edge of a near object) misses it,
# so a step eats at most this much of such an edge.
STEP_PX = 0.75
# A ray that meets a near object this close (pixels of shift) below its top level met its
# top; deeper, its wall (a disocclusion): the map's one-pixel bilinear edge smears no more.
TOP_TOL_PX = 1.0
BISECT_STEPS = 6  # a wall's position to 1/64 of a step
SECANT_STEPS = 1  # regula falsi looks on surfaces after the first secant


@dataclass(frozen=True)
class View:
    """How frames look at the photograph: `out_hw` a frame's (H, W), `src_hw` the photograph's
    and its level map's (Hs, Ws), `overscan` the zoom (>= 1, `paths.overscan`) that keeps
    every frame inside the photograph, `convergence` the level that stays in place."""

    out_hw: tuple[int, int]
    src_hw: tuple[int, int]
    overscan: float
    convergence: float

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(u, v): each frame pixel's place in the photograph before any motion, pixels of the
        photograph from its centre, `(H, W)` float32 each."""
        (h, w), (hs, ws) = self.out_hw, self.src_hw
        u = (np.arange(w, dtype=np.float32) - (w - 1) / 2) * np.float32(ws / w / self.overscan)
        v = (np.arange(h, dtype=np.float32) - (h - 1) / 2) * np.float32(hs / h / self.overscan)
        return np.broadcast_to(u, (h, w)), np.broadcast_to(v[:, None], (h, w))


class Ray:
    """The rays of one frame of `view` at `pose`: where ray level v lands in the photograph."""

    def __init__(self, view: View, pose: CameraPose):
        self.view, self.pose = view, pose
        hs, ws = view.src_hw
        self.centre = ((ws - 1) / 2, (hs - 1) / 2)
        self.lateral = (pose.lateral[0] * ws, pose.lateral[1] * ws)  # photograph px per level

    def affine(self, v: float) -> np.ndarray:
        """The 2x3 matrix from frame pixels to where ray level `v` lands (one v for all)."""
        (h, w), (hs, ws), s = self.view.out_hw, self.view.src_hw, self.view.overscan
        a = v - self.view.convergence
        b = 1.0 + self.pose.zoom + self.pose.radial * a
        kx, ky = ws / w / s, hs / h / s
        return np.float32(
            [
                [kx / b, 0.0, self.centre[0] + (-(w - 1) / 2 * kx - a * self.lateral[0]) / b],
                [0.0, ky / b, self.centre[1] + (-(h - 1) / 2 * ky - a * self.lateral[1]) / b],
            ]
        )

    def lands(self, u: Any, v: Any, level: Any) -> tuple[Any, Any]:
        """(x, y) in the photograph where rays at base places (u, v) and ray levels `level`
        (float32 arrays or tensors of one shape) land."""
        a = level - self.view.convergence
        b = (1.0 + self.pose.zoom) + self.pose.radial * a
        x = (u - a * self.lateral[0]) / b + self.centre[0]
        y = (v - a * self.lateral[1]) / b + self.centre[1]
        return x, y

    def travel_px(self) -> float:
        """The longest way a frame corner's ray moves in the photograph from level 1 to 0."""
        (h, w) = self.view.out_hw
        corners = np.float32([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]])
        longest = 0.0
        for x, y in corners:
            ends = [self.affine(v) @ np.float32([x, y, 1.0]) for v in (0.0, 1.0)]
            longest = max(longest, float(np.hypot(*(ends[1] - ends[0]))))
        return longest


class Sampler(Protocol):
    """A photograph and its level map placed where frames are rendered, and the array
    operations that differ there. Its arrays (`xp`'s: numpy arrays or torch tensors) are
    float32 unless said; points (x, y) are photograph pixels, arrays of any one shape."""

    xp: Any  # the array module: numpy or torch
    view: View
    u: Any  # `View.grid`, `(H, W)` each, as the sampler's arrays
    v: Any

    def look(self, matrix: np.ndarray) -> Any:
        """The level map at the 2x3 affine `matrix` of every frame pixel, `(H, W)`."""
        ...

    def put(self, dst: Any, mask: Any, src: Any) -> None:
        """`dst` takes `src` (an array of its shape, or a number) where `mask`, in place."""
        ...

    def levels(self, x: Any, y: Any) -> Any:
        """The level map at (x, y), bilinear, edges extended: x's shape."""
        ...

    def colours(self, x: Any, y: Any) -> np.ndarray:
        """The photograph at (x, y) `(H, W)` each, bilinear, edges extended: the frame,
        `(H, W, 3)` uint8 RGB numpy (on the host)."""
        ...


def render_frame(sampler: Sampler, pose: CameraPose) -> np.ndarray:
    """The frame `(H, W, 3)` uint8 of the photograph in `sampler` (with its height field)
    seen by the camera at `pose` (see the module's notes)."""
    xp, view = sampler.xp, sampler.view
    ray = Ray(view, pose)
    travel = ray.travel_px()
    steps = max(1, math.ceil(travel / STEP_PX))
    dv = 1.0 / steps

    # Looks at v_i = 1 - (i - 1) dv, i = 1 .. steps + 1: the first at the nearest level's
    # top, the last at 0, which every ray meets. v_0 = 1 + dv is above every level.
    above = sampler.look(ray.affine(1.0 + dv))  # levels seen one step before the surface
    step_met = xp.zeros_like(above)  # the step i where each ray met the surface; 0: not yet
    open_ = step_met == 0
    # the levels seen at the steps around each ray's hit (every ray meets level 0 at the end)
    before, after = xp.zeros_like(above), xp.zeros_like(above)
    for i in range(1, steps + 2):
        v = (steps + 1 - i) / steps  # exactly 0 at the end (1 - steps * dv may not be)
        seen = sampler.look(ray.affine(v))
        met = seen >= v
        met &= open_
        if met.any():
            sampler.put(step_met, met, float(i))
            sampler.put(before, met, above)
            sampler.put(after, met, seen)
            open_ ^= met
            if not open_.any():
                break
        above = seen
    v_hi = (1.0 + dv) - dv * (step_met - 1.0)  # above the surface
    v_lo = v_hi - dv  # at or below it
    wall = (after - before) * travel > EDGE_JUMP_PX
    x, y = _surface(ray, sampler, v_hi, v_lo, before - v_hi, after - v_lo)
    if wall.any():
        _fill_walls(ray, sampler, v_hi, v_lo, travel, wall, x, y)
    return sampler.colours(x, y)


def _surface(
    ray: Ray, sampler: Sampler, v_hi: Any, v_lo: Any, f_hi: Any, f_lo: Any
) -> tuple[Any, Any]:
    """Where each ray meets the surface between ray levels `v_hi` (above it: f_hi = level -
    v < 0) and `v_lo` (at or below: f_lo >= 0): regula falsi, SECANT_STEPS looks."""
    xp = sampler.xp
    for i in range(SECANT_STEPS + 1):
        gap = f_lo - f_hi
        # a flat step (no gap to divide) goes to its low end, as a step onto a plateau does
        t = xp.where(gap > 1e-12, -f_hi / xp.clip(gap, 1e-12, None), 1.0)
        mid = v_hi + xp.clip(t, 0.0, 1.0) * (v_lo - v_hi)
        x, y = ray.lands(sampler.u, sampler.v, mid)
        if i == SECANT_STEPS:
            return x, y
        f = sampler.levels(x, y) - mid
        below = f >= 0
        v_lo, f_lo = xp.where(below, mid, v_lo), xp.where(below, f, f_lo)
        v_hi, f_hi = xp.where(below, v_hi, mid), xp.where(below, f_hi, f)
    raise AssertionError("unreachable")


def _fill_walls(
    ray: Ray,
    sampler: Sampler,
    v_hi: Any,
    v_lo: Any,
    travel: float,
    wall: Any,
    x: Any,
    y: Any,
) -> None:
    """Set (x, y) of the rays that went under a near object's edge to background: mirrored
    across the edge along the ray, else the background's pixel at the edge. `wall`: the rays
    whose coarse step (`v_hi` above the surface, `v_lo` at or below) straddles a jump; after
    bisection, those that met the near side within TOP_TOL_PX of its own level met its top,
    not its wall, and land there. Levels are read a pixel off the edge on either side: on it,
    the map's bilinear blend of the two is neither. In place."""
    xp, level = sampler.xp, sampler.levels
    u, v, hi, lo = sampler.u[wall], sampler.v[wall], v_hi[wall], v_lo[wall]
    (hx, hy), (lx, ly) = ray.lands(u, v, hi), ray.lands(u, v, lo)
    norm = xp.clip(xp.hypot(lx - hx, ly - hy), 1e-6, None)
    rx, ry = (lx - hx) / norm, (ly - hy) / norm  # along the ray, into the near side, 1 px
    for _ in range(BISECT_STEPS):
        mid = (hi + lo) * 0.5
        met = level(*ray.lands(u, v, mid)) >= mid
        hi, lo = xp.where(met, hi, mid), xp.where(met, mid, lo)
    (ex, ey), (tx, ty) = ray.lands(u, v, hi), ray.lands(u, v, lo)  # the edge's two sides
    top = (level(tx + rx, ty + ry) - hi) * travel <= TOP_TOL_PX
    ox, oy = ex - rx, ey - ry  # the background's pixel at the edge
    background = level(ox, oy)
    bx, by = ray.lands(u, v, background)  # where the background would be, under the object
    mx, my = ox + (ex - bx), oy + (ey - by)  # that, mirrored across the edge
    hs, ws = sampler.view.src_hw
    inside = (mx >= 0) & (mx <= ws - 1) & (my >= 0) & (my <= hs - 1)
    same = xp.abs(level(mx, my) - background) * travel <= MIRROR_TOL_PX
    mirror = inside & same
    x[wall] = xp.where(top, tx, xp.where(mirror, mx, ox))
    y[wall] = xp.where(top, ty, xp.where(mirror, my, oy))
