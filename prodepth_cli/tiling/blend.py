"""Blending: smooth tile weights that sum to exactly one, and a band accumulator.

Weights are separable: along each axis a tile's weight ramps smoothly (smoothstep) from the
tile edge over `overlap` pixels, and the ramps are normalised so that the tiles covering a
point sum to one. The 2-D weight of a tile is the outer product of its row and column
weights, so 2-D weights sum to one too and no weight accumulator is needed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from prodepth_cli.tiling.plan import TilePlan


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


class BandBlender:
    """Accumulates weighted tile maps row band by row band; yields finished rows.

    Memory: one band of `tile_h` rows of the image width (float32), whatever the height.
    Feed every tile of grid row r (`add`), then call `finish_row(r)` to get the rows that no
    later tile touches.
    """

    def __init__(self, plan: TilePlan, channels: tuple[int, ...] = ()):
        self.plan = plan
        self.channels = channels  # trailing shape of each pixel: () for depth, (3,) for RGB
        # float32: the maps are float32 anyway, and the hot path stays in one precision.
        self.wx = axis_weights(plan.width, plan.xs, plan.tile_w, plan.overlap).astype(np.float32)
        self.wy = axis_weights(plan.height, plan.ys, plan.tile_h, plan.overlap).astype(np.float32)
        self._y0 = 0  # image row of self._acc[0]
        self._acc = np.zeros((plan.tile_h, plan.width, *channels), np.float32)

    def tile_weight(self, row: int, col: int) -> np.ndarray:
        """`(tile_h, tile_w)` weight of one tile."""
        return np.outer(self.wy[row], self.wx[col])

    def add(self, row: int, col: int, values: np.ndarray) -> None:
        """Add a tile's `(tile_h, tile_w)` map with its weight."""
        x, y = self.plan.xs[col], self.plan.ys[row]
        band = self._band_for(y)
        pixel = (1,) * len(self.channels)
        weighted = values * self.wy[row].reshape(-1, 1, *pixel)
        weighted *= self.wx[col].reshape(1, -1, *pixel)
        band[:, x : x + self.plan.tile_w] += weighted

    def finish_row(self, row: int) -> tuple[int, np.ndarray]:
        """(y0, rows) of the image rows completed by grid row `row`, float32."""
        ys = self.plan.ys
        end = ys[row + 1] if row + 1 < len(ys) else self.plan.height
        n = end - self._y0
        done = self._acc[:n].copy()
        y0 = self._y0
        fresh = np.zeros((n, self.plan.width, *self.channels), np.float32)
        self._acc = np.concatenate([self._acc[n:], fresh])
        self._y0 = end
        return y0, done

    def _band_for(self, y: int) -> np.ndarray:
        off = y - self._y0
        return self._acc[off : off + self.plan.tile_h]


def iter_blended(
    plan: TilePlan, tiles_by_row, channels: tuple[int, ...] = ()
) -> Iterator[tuple[int, np.ndarray]]:
    """Blend `tiles_by_row` (an iterable, per grid row, of (col, values) pairs) into finished
    row bands `(y0, rows)`."""
    blender = BandBlender(plan, channels)
    for row, tiles in enumerate(tiles_by_row):
        for col, values in tiles:
            blender.add(row, col, values)
        yield blender.finish_row(row)
