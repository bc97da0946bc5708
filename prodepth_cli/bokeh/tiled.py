"""Large photos render in overlapping tiles, through the depth pipeline's plan and weights.

A disc reaches at most `reach` pixels, so a tile rendered with that much context on every
side holds, inside, what the whole image would give. Neighbouring tiles then overlap and are
blended with the depth tiles' partition-of-unity weights, which hides the small differences
the renderer's downsampled layers leave between them. Only one tile's stack of layers
exists at a time, not a whole image's layers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from prodepth_cli.bokeh.render import max_radius
from prodepth_cli.tiling.blend import ArrayCanvas, TileWeights
from prodepth_cli.tiling.plan import Tile, default_overlap, plan_tiles

TILE = 4096  # px: a 12 MP photo renders whole; larger ones in tiles of this size

Render = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (rgb, signed CoC) -> rgb


def render_tiled(render: Render, rgb: np.ndarray, coc: np.ndarray, tile: int = TILE):
    """`render(rgb, coc)` over tiles of `tile` px (one pass when the image fits in one)."""
    h, w = coc.shape
    if max(h, w) <= tile:
        return render(rgb, coc)
    cap = max_radius(h, w)
    coc = np.clip(coc, -cap, cap)  # the whole image's limit, not each tile's
    reach = int(np.ceil(np.abs(coc).max())) + 2
    plan = plan_tiles(h, w, tile, default_overlap(tile))
    weights, out = TileWeights(plan), ArrayCanvas((h, w, 3))
    for t in plan.tiles:
        out.add(t.y, t.x, weights.apply(t, _render_tile(render, rgb, coc, t, reach)))
    return out.array


def _render_tile(render: Render, rgb: np.ndarray, coc: np.ndarray, t: Tile, reach: int):
    h, w = coc.shape
    y0, y1 = max(0, t.y - reach), min(h, t.y + t.h + reach)
    x0, x1 = max(0, t.x - reach), min(w, t.x + t.w + reach)
    full = render(rgb[y0:y1, x0:x1], coc[y0:y1, x0:x1])
    return full[t.y - y0 : t.y - y0 + t.h, t.x - x0 : t.x - x0 + t.w]
