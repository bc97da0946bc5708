"""Blending: smooth tile weights that sum to exactly one, added up on a canvas.

Weights are separable: along each axis a tile's weight ramps smoothly (smoothstep) from the
tile edge over `overlap` pixels, and the ramps are normalised so that the tiles covering a
point sum to one. The 2-D weight of a tile is the outer product of its row and column
weights, so 2-D weights sum to one too and no weight accumulator is needed: a canvas only
adds weighted tiles, in any order.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from prodepth_cli.tiling.plan import Tile, TilePlan


def smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def axis_weights(length: int, origins: tuple[int, ...], size: int, ramp: int) -> np.ndarray:
    """Per-tile weights along one axis: `(n_tiles, size)` float64, columns of the covered
    positions summing to one. Sides on the image border are not ramped."""
    pos = np.arange(size) + 0.5
    raw = np.empty((len(origins), size))
    for i, o in enumerate(origins):
        left = np.ones(size) if o == 0 else smoothstep(pos / max(ramp, 1))
        right = np.ones(size) if o + size >= length else smoothstep((size - pos) / max(ramp, 1))
        raw[i] = np.minimum(left, right)
    total = np.zeros(length)
    for i, o in enumerate(origins):
        total[o : o + size] += raw[i]
    for i, o in enumerate(origins):
        raw[i] /= total[o : o + size]
    return raw


class TileWeights:
    """Each tile's blend weight, from the plan; weights of the tiles over a pixel sum to one."""

    def __init__(self, plan: TilePlan):
        # float32: the maps are float32 anyway, and the hot path stays in one precision.
        self.wx = axis_weights(plan.width, plan.xs, plan.tile_w, plan.overlap).astype(np.float32)
        self.wy = axis_weights(plan.height, plan.ys, plan.tile_h, plan.overlap).astype(np.float32)

    def of(self, tile: Tile) -> np.ndarray:
        """`(tile_h, tile_w)` weight of one tile."""
        return np.outer(self.wy[tile.row], self.wx[tile.col])

    def apply(
        self, tile: Tile, values: np.ndarray, scale: float = 1.0, shift: float = 0.0
    ) -> np.ndarray:
        """`scale * values + shift` (`values` `(tile_h, tile_w, *channels)`) times the tile's
        weight, as a new array: three passes over the tile, the scale and shift folded into
        the row weights."""
        pixel = (1,) * (values.ndim - 2)
        wy = self.wy[tile.row].reshape(-1, 1, *pixel)
        weighted = values * (np.float32(scale) * wy)
        if shift:
            weighted += np.float32(shift) * wy
        weighted *= self.wx[tile.col].reshape(1, -1, *pixel)
        return weighted


class Canvas(Protocol):
    """Where weighted tiles add up: an array in memory, or a scratch file on disk."""

    def add(self, y0: int, x0: int, values: np.ndarray) -> None: ...


class ArrayCanvas:
    """A canvas in memory: `array` `(H, W, *channels)` float32, zeros until tiles add in."""

    def __init__(self, shape: tuple[int, ...]):
        self.array = np.zeros(shape, np.float32)

    def add(self, y0: int, x0: int, values: np.ndarray) -> None:
        h, w = values.shape[:2]
        self.array[y0 : y0 + h, x0 : x0 + w] += values
