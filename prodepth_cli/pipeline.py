"""The depth pipeline: coarse pass -> tile plan -> batched tiles -> align -> blend -> rows.

`iter_depth_rows` is the streaming core: it reads the image band by band and yields finished
rows of disparity (larger = nearer), so memory is bounded by one band of tile rows whatever
the image size. `depth_array` (array in, array out) and `depth_file` (file in, file out) are
the two public entry points; the CLI, eval and benchmarks all go through them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from prodepth_cli.io.read import RowBuffer, open_image, read_thumbnail, to_unit_rgb
from prodepth_cli.io.write import RawRows, write_colormap, write_depth
from prodepth_cli.models.runtime import DepthModel, Network
from prodepth_cli.tiling.align import align_to_coarse, crop_coarse
from prodepth_cli.tiling.blend import BandBlender
from prodepth_cli.tiling.plan import Tile, TilePlan, plan_tiles

TileCallback = Callable[[int], None]  # called with the number of tiles just finished


class RowSource(Protocol):
    """Rows of an image, top to bottom, as stored (white at `full_scale`)."""

    width: int
    height: int
    full_scale: float

    def rows(self, y0: int, y1: int) -> np.ndarray: ...


@dataclass(frozen=True)
class DepthOptions:
    """How to tile: `tile` and `overlap` in full-resolution pixels, `batch` tiles per call."""

    tile: int = 1024
    overlap: int | None = None  # None: a quarter of the tile
    batch: int = 4


@dataclass
class ArraySource:
    """An in-memory `(H, W, 3)` RGB image (uint8, uint16 or float in [0, 1]) as a RowSource."""

    rgb: np.ndarray
    width: int = field(init=False)
    height: int = field(init=False)
    full_scale: float = field(init=False)

    def __post_init__(self) -> None:
        self.height, self.width = self.rgb.shape[:2]
        scales = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}
        self.full_scale = scales.get(self.rgb.dtype, 1.0)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        return self.rgb[y0:y1]

    def thumbnail(self, max_side: int) -> np.ndarray:
        size = _fit_long_side(self.height, self.width, max_side)
        return resize_to(to_unit_rgb(self.rgb, self.full_scale), size)


def resize_to(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Resize `(h, w[, c])` to `hw`: area averaging when shrinking, bilinear when growing."""
    h, w = img.shape[:2]
    if (h, w) == tuple(hw):
        return img
    shrink = hw[0] < h and hw[1] < w
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(img, (hw[1], hw[0]), interpolation=interp)


def coarse_disparity(
    thumbnail: Callable[[int], np.ndarray], hw: tuple[int, int], net: Network
) -> np.ndarray:
    """The coarse pass: the whole image at the network's working size -> `(ch, cw)` disparity."""
    size = net.coarse_hw(*hw)
    small = resize_to(thumbnail(max(size)), size)
    return net.predict(small[None])[0]


def iter_depth_rows(
    source: RowSource,
    thumbnail: Callable[[int], np.ndarray],
    model: DepthModel,
    options: DepthOptions = DepthOptions(),
    on_tiles: TileCallback | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield `(y0, rows)`: finished `(n, W)` float32 disparity rows, top to bottom."""
    hw = (source.height, source.width)
    plan = plan_tiles(*hw, options.tile, options.overlap)
    net = model.tile_net
    anchored = net.spec.is_refiner or (net.spec.align == "affine" and len(plan.tiles) > 1)
    coarse = coarse_disparity(thumbnail, hw, model.coarse_net) if anchored else None
    if net.spec.is_refiner:
        lo, hi = float(coarse.min()), float(coarse.max())
        coarse = (coarse - lo) / max(hi - lo, 1e-12)  # the refiner's global [0, 1] frame
    blender = BandBlender(plan)
    for row in range(len(plan.ys)):
        tiles = plan.row_tiles(row)
        band = source.rows(plan.ys[row], plan.ys[row] + plan.tile_h)
        for start in range(0, len(tiles), options.batch):
            chunk = tiles[start : start + options.batch]
            maps = _run_tiles(band, source.full_scale, chunk, net, coarse, hw)
            for tile, disp in zip(chunk, maps, strict=True):
                if coarse is not None and net.spec.align == "affine":
                    disp = align_to_coarse(disp, coarse, hw, tile.box)
                blender.add(tile.row, tile.col, disp)
            if on_tiles:
                on_tiles(len(chunk))
        yield blender.finish_row(row)


def _run_tiles(
    band: np.ndarray,
    full_scale: float,
    tiles: list[Tile],
    net: Network,
    coarse: np.ndarray | None,
    hw: tuple[int, int],
) -> list[np.ndarray]:
    """Run a batch of same-size tiles cut from `band` (rows as stored, white at `full_scale`);
    returns each tile's `(h, w)` disparity at full size."""
    th, tw = tiles[0].h, tiles[0].w
    size = net.input_hw(th, tw)
    rgb = np.stack(
        [resize_to(to_unit_rgb(band[:, t.x : t.x + tw], full_scale), size) for t in tiles]
    )
    crops = None
    if net.spec.is_refiner:
        crops = np.stack([crop_coarse(coarse, hw, t.box, size) for t in tiles])
    maps = net.predict(rgb, crops)
    return [resize_to(m, (th, tw)) for m in maps]


def depth_array(
    rgb: np.ndarray,
    model: DepthModel,
    tile: int = 1024,
    overlap: int | None = None,
    batch: int = 4,
) -> np.ndarray:
    """Disparity (larger = nearer, relative) for an in-memory image.

    rgb: `(H, W, 3)` uint8/uint16, or float in [0, 1]. Returns `(H, W)` float32.
    """
    source = ArraySource(rgb)
    out = np.empty((source.height, source.width), np.float32)
    options = DepthOptions(tile, overlap, batch)
    for y0, rows in iter_depth_rows(source, source.thumbnail, model, options):
        out[y0 : y0 + len(rows)] = rows
    return out


@dataclass
class DepthReport:
    """What `depth_file` did, for progress lines and `--json`."""

    input: str
    output: str
    width: int
    height: int
    plan: TilePlan
    seconds: float
    colormap: str | None = None

    @property
    def tiles(self) -> list[list[int]]:
        return [list(t.box) for t in self.plan.tiles]


def depth_file(
    src: str | Path,
    dst: str | Path,
    model: DepthModel,
    options: DepthOptions = DepthOptions(),
    fmt: str = "png16",
    colormap: Path | None = None,
    data: bytes | None = None,
    on_start: Callable[[int], None] | None = None,
    on_tiles: TileCallback | None = None,
) -> DepthReport:
    """Depth map of the image file `src` (or encoded `data` named `src`) written to `dst`
    ("-" = stdout) in `fmt`; `colormap` also writes an 8-bit colour preview there.

    Nothing appears at `dst` until it is complete (written under a temporary name, renamed).
    `on_start(n_tiles)` is called once the plan is known.
    """
    t0 = time.perf_counter()
    image = open_image(src, data)
    plan = plan_tiles(image.height, image.width, options.tile, options.overlap)
    if on_start:
        on_start(len(plan.tiles))

    def thumbnail(max_side: int) -> np.ndarray:
        return read_thumbnail(src, data, max_side)

    with RawRows(image.width, image.height) as raw:
        for _, rows in iter_depth_rows(RowBuffer(image), thumbnail, model, options, on_tiles):
            raw.write(rows)
        write_depth(raw, dst, fmt)
        if colormap is not None:
            write_colormap(raw, colormap)
    return DepthReport(
        str(src),
        str(dst),
        image.width,
        image.height,
        plan,
        time.perf_counter() - t0,
        str(colormap) if colormap else None,
    )


def _fit_long_side(h: int, w: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))
