"""Tile plans: a four-way overlapping grid over an image of any size.

Tiles are `tile` pixels square (or the whole image along a side shorter than that), evenly
spaced so that neighbours overlap by about `overlap` pixels (at least that, see
`axis_origins`); the first and last tile of each row and column sit flush with the image
border (shifted inward, never padded). Every point is covered by at most two tiles along each
axis: four in all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from prodepth_cli.errors import OptionError


@dataclass(frozen=True)
class Tile:
    """One tile: top-left corner and size in full-resolution pixels; `row` of the grid."""

    x: int
    y: int
    w: int
    h: int
    row: int
    col: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), end-exclusive."""
        return self.x, self.y, self.x + self.w, self.y + self.h


@dataclass(frozen=True)
class TilePlan:
    """The grid: tile origins along each axis, and the tile size."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    xs: tuple[int, ...]
    ys: tuple[int, ...]
    overlap: int

    @property
    def tiles(self) -> list[Tile]:
        return [self.tile(r, c) for r in range(len(self.ys)) for c in range(len(self.xs))]

    def tile(self, row: int, col: int) -> Tile:
        return Tile(self.xs[col], self.ys[row], self.tile_w, self.tile_h, row, col)

    def row_tiles(self, row: int) -> list[Tile]:
        return [self.tile(row, c) for c in range(len(self.xs))]


def default_overlap(tile: int) -> int:
    """A quarter of the tile: wide enough for an invisible blend, 1.8x the tiles of a grid."""
    return tile // 4


def axis_origins(length: int, tile: int, overlap: int) -> tuple[int, ...]:
    """Origins of tiles of size min(tile, length) covering [0, length), evenly spaced.

    Neighbours overlap by at least `overlap`, except where that would put a third tile over a
    point (stride below half a tile): then the tiles spread to a stride of half a tile, so
    every point stays under at most two tiles along the axis.
    """
    if length <= tile:
        return (0,)
    span = length - tile
    gaps = max(1, min(math.ceil(span / (tile - overlap)), span // (tile // 2)))
    return tuple(round(i * span / gaps) for i in range(gaps + 1))


def plan_tiles(height: int, width: int, tile: int = 1024, overlap: int | None = None) -> TilePlan:
    """Plan the grid for a `height` x `width` image (see module docstring)."""
    if overlap is None:
        overlap = default_overlap(tile)
    if tile < 16:
        raise OptionError(f"--tile {tile}: tiles must be at least 16 pixels")
    if not 0 <= overlap <= tile // 2:
        raise OptionError(f"--overlap {overlap}: must be between 0 and half the tile ({tile // 2})")
    if height < 1 or width < 1:
        raise OptionError(f"image of {width}x{height} pixels has nothing to tile")
    return TilePlan(
        width=width,
        height=height,
        tile_w=min(tile, width),
        tile_h=min(tile, height),
        xs=axis_origins(width, tile, overlap),
        ys=axis_origins(height, tile, overlap),
        overlap=overlap,
    )
