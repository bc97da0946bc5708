"""A new eye's view from a photograph and its disparity: a depth-ordered forward warp along
each row, then the disocclusions filled from the background side.

Every function works on a band of rows, each row on its own (stereo shifts are horizontal),
so a band gives exactly the rows the whole image would: large photographs go through in
strips. Arrays: `rgb` `(h, w, C)` float32, `disparity_px` `(h, w)` float32 in pixels, larger
= nearer (the new view moves a pixel by it: right for a left eye, `direction` +1, left for a
right eye, -1).

- Soft edges: the ramp a model's (or an upsampled) map draws across an object's edge is
  made a step first (`snap_edges`), so that the opening behind the object is a hole with a
  clean edge rather than the ramp's pixels stretched across it.
- Sub-pixel: each pixel is splatted onto the two columns around its target, x0 = floor(t)
  with weight 1 - (t - x0) and x0 + 1 with weight t - x0 (bilinear), and each column is the
  weighted mean of what lands on it: no half-pixel jitter along slanted edges, and slopes
  that stretch a surface by up to 2x leave no gaps.
- Near wins: in each column, of the pixels whose floor (or ceiling) lands there, only the
  nearest counts. On a row moved one way, the nearest is the one from furthest the other
  way: a right eye (shift left) keeps the rightmost source, a left eye the leftmost. (If x'
  > x and x' lands at or left of x in a right eye, then d(x') - d(x) >= x' - x > 0.) So the
  z-buffer is a max (or min) of source columns per target column, `np.maximum.at`, with no
  depth comparison and no sort.
- Flying pixels: a source torn from both its neighbours (each more than 2 px away after the
  warp) sits on a depth ramp between a near and a far surface, as a model's soft edges make
  them. Drawn, it would smear the edge across the opening; it is dropped, so the opening is a
  clean hole with the near surface on one side and the far one on the other.
- Holes (disocclusions: what the photograph does not show) are filled from the side whose
  warped disparity is smaller, the background, never the foreground: by mirroring the
  background across the hole's edge (its texture, continued), or where that would reach
  past the background (another surface, another hole, the image edge), its edge pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EDGE_JUMP_PX = 2.0  # a ramp whose ends differ by more than this (px of shift) is an edge
RAMP_SLOPE = 0.5  # px of shift per px: steeper, a pixel is on a ramp between two depths
NEAR_SHARE = 0.25  # an edge pixel goes with the near side unless in the ramp's farthest quarter
TEAR_PX = 1.0  # a source more than 1 + TEAR_PX px from both neighbours after the warp is dropped
MIRROR_TOL_PX = 1.0  # a mirrored pixel counts as the same background within this disparity


@dataclass
class WarpedView:
    """A forward-warped band: `rgb` `(h, w, C)` (0 in holes), `disparity_px` `(h, w)` warped
    with it (the background test of the hole fill), `hole` `(h, w)` bool: nothing landed."""

    rgb: np.ndarray
    disparity_px: np.ndarray
    hole: np.ndarray


def synthesise_view(
    rgb: np.ndarray, disparity_px: np.ndarray, direction: int, max_ramp: int = 8
) -> np.ndarray:
    """The view of `rgb` `(h, w, C)` whose pixels move `direction` * `disparity_px` `(h, w)`
    pixels (x' = x + direction * d; +1: a left eye, -1: a right eye), soft depth edges made
    steps (`snap_edges`, `max_ramp`), near over far, holes filled from the background:
    `(h, w, C)` float32."""
    disparity_px = snap_edges(disparity_px, max_ramp)
    return fill_disocclusions(warp_view(rgb, disparity_px, direction))


def snap_edges(disparity_px: np.ndarray, max_ramp: int) -> np.ndarray:
    """`(h, w)` disparity whose soft depth edges are made steps. A ramp is a run of pixels
    each rising (or falling) by more than RAMP_SLOPE to both neighbours along the row (a
    step's own pixels, flat on one side, are not on one); a ramp up to `max_ramp` px long
    that spans more than EDGE_JUMP_PX between its two ends (longer ones are slanted
    surfaces) is split between them: a pixel in the ramp's farthest NEAR_SHARE takes the
    far end's value, the others the near end's. The ramp a model or an upsampled map draws
    across an edge then goes wholly with the near or the far side, and the opening behind
    the near side is a clean hole, not the ramp's colours stretched across it. The split
    leans to the near side, as the colour edge is often outside the map's: the near
    object's rim moves with it rather than staying behind on the background as a ghost
    outline. Each row on its own."""
    if max_ramp < 1:
        return disparity_px
    step = np.diff(disparity_px, axis=1)  # d(x + 1) - d(x)
    ramp = np.zeros(disparity_px.shape, bool)
    ramp[:, 1:-1] = (step[:, :-1] * step[:, 1:] > 0) & (
        np.minimum(np.abs(step[:, :-1]), np.abs(step[:, 1:])) > RAMP_SLOPE
    )
    rows = np.flatnonzero(ramp.any(axis=1))
    if not len(rows):
        return disparity_px
    ramp, d = ramp[rows], disparity_px[rows]
    w = d.shape[1]
    columns = np.arange(w, dtype=np.int32)
    start = np.maximum.accumulate(np.where(ramp, -1, columns), axis=1)  # the end at or left
    end = np.minimum.accumulate(np.where(ramp, w, columns)[:, ::-1], axis=1)[:, ::-1]
    y, x = np.nonzero(ramp)
    start, end = start[y, x], end[y, x]
    a, b = d[y, start], d[y, end]  # a row's first and last pixels are never on a ramp
    near, far = np.maximum(a, b), np.minimum(a, b)
    snap = (near - far > EDGE_JUMP_PX) & (end - start - 1 <= max_ramp)
    split = d[y, x] - far >= np.float32(NEAR_SHARE) * (near - far)
    out = disparity_px.copy()
    out[rows[y[snap]], x[snap]] = np.where(split, near, far)[snap]
    return out


def warp_view(
    rgb: np.ndarray, disparity_px: np.ndarray, direction: int, splat: bool = True
) -> WarpedView:
    """Forward-warp `rgb` `(h, w, C)` by `direction` * `disparity_px` `(h, w)` along its rows
    (see the module's notes): splatted (or, without `splat`, each pixel rounded to its
    nearest column), near wins, flying pixels dropped, holes marked."""
    if direction not in (-1, 1):
        raise ValueError(f"direction is +1 (left eye) or -1 (right eye), not {direction}")
    h, w = disparity_px.shape
    target = np.arange(w, dtype=np.float32) + np.float32(direction) * disparity_px
    floor = np.floor(target if splat else target + np.float32(0.5))
    frac = target - floor if splat else np.zeros_like(target)
    x0 = floor.astype(np.int32)
    keep = (x0 >= -1) & (x0 < w) & ~_flying(target)
    padded = w + 2  # column c of a padded row: sources landing with floor c - 1; w + 1: none
    rows = np.arange(h, dtype=np.int32)[:, None]
    column = np.where(keep, x0 + 1, w + 1) + rows * padded
    source = np.broadcast_to(np.arange(w, dtype=np.int32), (h, w))
    if direction < 0:  # a right eye: the rightmost source is the nearest
        winner = np.full(h * padded, -1, np.int32)
        np.maximum.at(winner, column.ravel(), source.ravel())
    else:  # a left eye: the leftmost
        winner = np.full(h * padded, w, np.int32)
        np.minimum.at(winner, column.ravel(), source.ravel())
    winner = winner.reshape(h, padded)[:, : w + 1]  # floors -1 .. w - 1
    found = (winner >= 0) & (winner < w)
    pick = (np.where(found, winner, 0) + rows * w).ravel()
    # What landed with floor X - 1 lands with ceiling X: the ceiling's picks are the floor's,
    # one column to the left, so each source is gathered once.
    landed_frac = frac.ravel()[pick].reshape(h, w + 1)
    on_floor = np.where(found[:, 1:], np.float32(1.0) - landed_frac[:, 1:], np.float32(0.0))
    on_ceil = np.where(found[:, :-1], landed_frac[:, :-1], np.float32(0.0))
    total = on_floor + on_ceil
    hole = total <= 0.0
    total[hole] = 1.0
    scale = np.reciprocal(total)
    on_floor *= scale
    on_ceil *= scale
    colours = rgb.reshape(h * w, -1)[pick].reshape(h, w + 1, -1)
    out = on_floor[:, :, None] * colours[:, 1:] + on_ceil[:, :, None] * colours[:, :-1]
    landed = disparity_px.ravel()[pick].reshape(h, w + 1)
    disp = on_floor * landed[:, 1:] + on_ceil * landed[:, :-1]
    return WarpedView(out.astype(np.float32, copy=False), disp, hole)


def _flying(target: np.ndarray) -> np.ndarray:
    """`(h, w)` bool: sources whose warped positions are more than 1 + TEAR_PX px from both
    neighbours' (a row's first and last pixels have one neighbour: never flying)."""
    torn = np.diff(target, axis=1) > 1.0 + TEAR_PX  # between x and x + 1
    flying = np.zeros(target.shape, bool)
    flying[:, 1:-1] = torn[:, :-1] & torn[:, 1:]
    return flying


def fill_disocclusions(view: WarpedView) -> np.ndarray:
    """`view.rgb` with its holes filled along each row from the background side: the
    nearest pixel left or right of the hole whose warped disparity is smaller. The hole
    mirrors the background beyond that edge while the mirrored pixel is background (not a
    hole, within MIRROR_TOL_PX of the edge's disparity, inside the image), else takes the
    edge pixel. Fills `view.rgb` in place and returns it, `(h, w, C)` float32."""
    rows = np.flatnonzero(view.hole.any(axis=1))
    if not len(rows):
        return view.rgb
    hole, disp = view.hole[rows], view.disparity_px[rows]
    w = hole.shape[1]
    columns = np.arange(w, dtype=np.int32)
    left = np.maximum.accumulate(np.where(hole, -1, columns), axis=1)  # nearest valid at/left
    right = np.minimum.accumulate(np.where(hole, w, columns)[:, ::-1], axis=1)[:, ::-1]
    y, x = np.nonzero(hole)
    left, right = left[y, x], right[y, x]
    d_left = np.where(left >= 0, disp[y, np.maximum(left, 0)], np.inf)
    d_right = np.where(right < w, disp[y, np.minimum(right, w - 1)], np.inf)
    from_right = d_right < d_left
    edge = np.clip(np.where(from_right, right, left), 0, w - 1)
    mirror = np.where(from_right, 2 * right - 1 - x, 2 * left + 1 - x)
    inside = (mirror >= 0) & (mirror < w)
    mirror = np.clip(mirror, 0, w - 1)
    background = (
        inside & ~hole[y, mirror] & (disp[y, mirror] <= disp[y, edge] + np.float32(MIRROR_TOL_PX))
    )
    source = np.where(background, mirror, edge)
    view.rgb[rows[y], x] = view.rgb[rows[y], source]
    return view.rgb
