"""The depth pipeline: coarse pass -> tile plan -> batched tiles -> align -> blend.

`blend_depth` is the core: it runs the tiles down the image in batches and adds each one's
weighted disparity (larger = nearer) into a canvas. `depth_array` (array in, array out) blends
in memory; `depth_file` (file in, file out) reads tiles from a disk ring of decoded rows and
blends into a scratch file, so its memory stays flat however large the image. They are the
two public entry points, both taking their tiling as a `DepthOptions`; the CLI, eval,
benchmarks and the package's `depth()` (api.py) all go through them.
"""

from __future__ import annotations

import numbers
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import cv2
import numpy as np

from prodepth_cli.errors import InputError, OptionError
from prodepth_cli.io import INTEGER_WHITE
from prodepth_cli.io.read import ImageSource, WindowReader, open_stream, to_unit_rgb
from prodepth_cli.io.tiff import TiledTiff
from prodepth_cli.io.write import DepthScratch, PhotoOrigin, write_colormap, write_depth
from prodepth_cli.models.runtime import DepthModel, Network
from prodepth_cli.tiling.align import crop_coarse, fit_to_coarse
from prodepth_cli.tiling.blend import ArrayCanvas, Canvas, TileWeights
from prodepth_cli.tiling.plan import Tile, TilePlan, plan_tiles

TileCallback = Callable[[int], None]  # called with the number of tiles just finished


class TileSource(Protocol):
    """Windows of an image, asked for top to bottom, as stored (white at `full_scale`)."""

    width: int
    height: int
    full_scale: float

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray: ...


@dataclass(frozen=True)
class DepthOptions:
    """How to tile: `tile` and `overlap` in full-resolution pixels, `batch` tiles per call,
    `tile_resolution` native (a dynamic model sees each tile at its native working size, when
    its spec knows it) or full (tiles at full resolution, rounded to the size multiple)."""

    tile: int = 1024
    overlap: int | None = None  # None: a quarter of the tile
    batch: int = 4
    tile_resolution: Literal["native", "full"] = "native"

    def __post_init__(self) -> None:
        """Nonsense is refused here, where it is written, not tiles deep into a run."""
        for name, unit in (("tile", "pixels"), ("overlap", "pixels"), ("batch", "tiles")):
            value = getattr(self, name)
            if name == "overlap" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise OptionError(f"{name}={value!r}: a whole number of {unit}")
        plan_tiles(self.tile, self.tile, self.tile, self.overlap)  # tile >= 16, overlap <= tile/2
        if self.batch < 1:
            raise OptionError(f"batch={self.batch}: at least one tile per model call")
        if self.tile_resolution not in ("native", "full"):
            raise OptionError(f"tile_resolution={self.tile_resolution!r}: native or full")


@dataclass
class ArraySource:
    """An in-memory `(H, W, 3)` RGB image (uint8, uint16 or float in [0, 1]) as a TileSource."""

    rgb: np.ndarray
    width: int = field(init=False)
    height: int = field(init=False)
    full_scale: float = field(init=False)

    def __post_init__(self) -> None:
        self.height, self.width = self.rgb.shape[:2]
        self.full_scale = INTEGER_WHITE.get(self.rgb.dtype, 1.0)

    def window(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.rgb[y0:y1, x0:x1]

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


def blend_depth(
    source: TileSource,
    thumbnail: Callable[[int], np.ndarray],
    model: DepthModel,
    canvas: Canvas,
    options: DepthOptions = DepthOptions(),
    on_tiles: TileCallback | None = None,
) -> None:
    """Add every tile's weighted disparity into `canvas` (zeros at first): the whole map."""
    hw = (source.height, source.width)
    plan = plan_tiles(*hw, options.tile, options.overlap)
    net = model.tile_net
    fitted = net.spec.align in ("affine", "scale")
    shift = net.spec.align == "affine"  # else scale only (metric models)
    weights = TileWeights(plan)
    native = options.tile_resolution == "native"
    batches = [
        tiles[i : i + options.batch]
        for row in range(len(plan.ys))
        for tiles in [plan.row_tiles(row)]
        for i in range(0, len(tiles), options.batch)
    ]

    def anchor() -> np.ndarray | None:
        """The coarse map the tiles are anchored to (None when nothing needs it)."""
        if not (net.spec.is_refiner or (fitted and len(plan.tiles) > 1)):
            return None
        coarse = coarse_disparity(thumbnail, hw, model.coarse_net)
        if net.spec.is_refiner:
            lo, hi = float(coarse.min()), float(coarse.max())
            coarse = (coarse - lo) / max(hi - lo, 1e-12)  # the refiner's global [0, 1] frame
        return coarse

    def read(tiles: list[Tile]) -> tuple[np.ndarray, np.ndarray | None]:
        """A batch of tiles as the network takes them, and for a refiner the `(B, h, w)`
        coarse crops under them."""
        th, tw = tiles[0].h, tiles[0].w
        windows = [source.window(t.y, t.y + th, t.x, t.x + tw) for t in tiles]
        pixels, full_scale = _at_size(windows, source.full_scale, net.tile_hw(th, tw, native))
        batch = buffers.take(*net.batch_for(len(pixels), pixels[0], full_scale))
        x = net.prepare(pixels, full_scale, batch)
        crops = None
        if net.spec.is_refiner:
            out_hw = pixels[0].shape[:2]
            crops = np.stack([crop_coarse(coarse_job.result(), hw, t.box, out_hw) for t in tiles])
        return x, crops

    def blend(tiles: list[Tile], maps: np.ndarray) -> None:
        coarse = coarse_job.result()
        for tile, disp in zip(tiles, maps, strict=True):
            disp = resize_to(disp, (tile.h, tile.w))
            s, t = 1.0, 0.0
            if coarse is not None and fitted:
                s, t = fit_to_coarse(disp, coarse, hw, tile.box, shift=shift)
            canvas.add(tile.y, tile.x, weights.apply(tile, disp, s, t))
        if on_tiles:
            on_tiles(len(tiles))

    # On a GPU the CPU idles while the network runs a batch: one thread then reads the
    # batches to come (up to four ahead) and another blends the ones before (up to four
    # behind), so that a slow read or blend (a band sliding, rows going to disk, a page
    # fault storm) holds up neither the network nor the other stage (74 MP, 5 ms/tile: two
    # each way 1.85 s, four 1.54 s, six no better; one behind in lockstep was 2.4 s).
    # onnxruntime releases the GIL; the coarse pass runs on the blending thread while the
    # first batches are read. On the CPU the network already uses every core, and the extra
    # threads only slowed it (bench_catalog_model: 1.07 -> 1.10). A thread more, to decode
    # or to normalise, made it slower on two cores (bench_throughput, 5 ms/tile: 2.50 ->
    # 2.64 s and 2.55 -> 2.73 s).
    side_by_side = _network_leaves_cpu_idle(net)
    lead = 4 if side_by_side else 0  # batches prepared ahead of the one the network runs
    lag = 4 if side_by_side else 1  # batches blended behind it, at most
    buffers = _BatchBuffers(in_flight=lead + 1)
    with _stage(side_by_side, "read") as reader, _stage(side_by_side, "blend") as blender:
        coarse_job = blender.submit(anchor)
        ahead = deque(reader.submit(read, tiles) for tiles in batches[:lead])
        behind: deque[Future] = deque()
        for i, tiles in enumerate(batches):
            x, crops = (ahead.popleft() if ahead else reader.submit(read, tiles)).result()
            if lead and i + lead < len(batches):
                ahead.append(reader.submit(read, batches[i + lead]))
            maps = net.run(x, crops)
            while len(behind) >= lag:
                behind.popleft().result()
            behind.append(blender.submit(blend, tiles, maps))
        for blending in behind:
            blending.result()


def _network_leaves_cpu_idle(net: Network) -> bool:
    return net.provider != "CPUExecutionProvider"


def _stage(threaded: bool, name: str) -> ThreadPoolExecutor | _Inline:
    """A pipeline stage: its own thread, or run at once in the caller's."""
    return ThreadPoolExecutor(1, f"prodepth-{name}") if threaded else _Inline()


class _Inline:
    """An executor that runs each job when it is submitted (same interface as the pool's)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def submit(self, fn: Callable, *args: object) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:
            future.set_exception(exc)
        return future


class _BatchBuffers:
    """Network input batches used in turn, `in_flight` of them: one the network runs, the
    ones being filled for the batches after it (the network is done with a batch when its
    call returns); a row's last, shorter batch is the front of one. A fresh batch of four
    1024 tiles is 48 MB of new pages each time, which cost as much as filling them."""

    def __init__(self, in_flight: int):
        self.in_flight = in_flight
        self._turn: deque[np.ndarray] = deque()

    def take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A batch of `shape` (one image's tiles: one size) and `dtype`."""
        n = shape[0]
        if len(self._turn) < self.in_flight or self._turn[0].shape[0] < n:
            self._turn.append(np.empty(shape, dtype))
            if len(self._turn) > self.in_flight:
                self._turn.popleft()
        else:
            self._turn.rotate(-1)
        return self._turn[-1][:n]


def _at_size(
    windows: list[np.ndarray], full_scale: float, hw: tuple[int, int]
) -> tuple[list[np.ndarray], float]:
    """Stored pixels resized to `hw`, and the value of white in them. Integer pixels are
    resized in their own type: a 1024 tile seen at 518 then costs a quarter of the float
    work (the 8-bit rounding is the photograph's own precision). Anything else is taken to
    [0, 1] first."""
    if all(w.dtype in (np.uint8, np.uint16) for w in windows):
        return [resize_to(w, hw) for w in windows], full_scale
    return [resize_to(to_unit_rgb(w, full_scale), hw) for w in windows], 1.0


def depth_array(
    rgb: np.ndarray, model: DepthModel, options: DepthOptions = DepthOptions()
) -> np.ndarray:
    """Disparity (larger = nearer; relative, or 1/metres for metric models) for an
    in-memory image, tiled as `options` say.

    rgb: `(H, W, 3)` uint8/uint16, or float in [0, 1]. Returns `(H, W)` float32.
    """
    _check_call("depth_array", model, options)
    source = ArraySource(check_rgb(rgb))
    canvas = ArrayCanvas((source.height, source.width))
    blend_depth(source, source.thumbnail, model, canvas, options)
    return canvas.array


def check_rgb(rgb: np.ndarray) -> np.ndarray:
    """`rgb` when it is an image `depth_array` takes: `(H, W, 3)` uint8, uint16 or float in
    [0, 1]; else InputError saying what it is and how to make it one."""
    if not isinstance(rgb, np.ndarray):
        raise InputError(f"an image array is a numpy array, not {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        hint = ""
        if rgb.ndim == 2:
            hint = " (grey: np.dstack([grey] * 3))"
        elif rgb.ndim == 3 and rgb.shape[2] == 4:
            hint = " (RGBA: rgb[..., :3])"
        raise InputError(f"an image array is (H, W, 3) RGB, not {rgb.shape}{hint}")
    if 0 in rgb.shape:
        raise InputError(f"an image array of shape {rgb.shape} has no pixels")
    if rgb.dtype.kind == "f":
        top = float(np.nanmax(rgb))
        if top > 1.0 + 1e-3:  # well past rounding: pixels on a 0-255 (or other) scale
            raise InputError(f"float pixels are in [0, 1], found up to {top:g} (divide by 255?)")
    elif rgb.dtype not in INTEGER_WHITE:
        raise InputError(
            f"{rgb.dtype} pixels: give uint8 (0-255), uint16 (0-65535) or float in [0, 1]"
        )
    return rgb


def _check_call(function: str, model: object, options: object) -> None:
    """A TypeError at the call for arguments of the wrong kind (a tile size where the
    options go, a model's name where a loaded model goes), not one tiles deep."""
    if not isinstance(options, DepthOptions):
        example = (
            f"DepthOptions(tile={options!r})" if isinstance(options, int) else "DepthOptions()"
        )
        raise TypeError(
            f"{function}: options must be a DepthOptions, such as {example}, "
            f"not {type(options).__name__}"
        )
    if not hasattr(model, "tile_net"):
        raise TypeError(
            f"{function}: model must be a loaded model (load_model(name or path)), not "
            f"{type(model).__name__}; prodepth_cli.depth() also takes names and paths"
        )


@dataclass
class DepthReport:
    """What `depth_file` did, for progress lines and `--json`."""

    input: str
    output: str | None  # None: nothing written
    width: int
    height: int
    plan: TilePlan
    seconds: float
    colormap: str | None = None
    units: str = "relative"  # of the values in a float output: relative, or m (metres)
    disparity: np.ndarray | None = field(default=None, repr=False)  # (H, W) float32: keep_map

    @property
    def tiles(self) -> list[list[int]]:
        return [list(t.box) for t in self.plan.tiles]


def depth_file(
    src: str | Path,
    dst: str | Path | None,
    model: DepthModel,
    options: DepthOptions = DepthOptions(),
    fmt: str = "png16",
    colormap: Path | None = None,
    data: bytes | None = None,
    on_start: Callable[[int], None] | None = None,
    on_tiles: TileCallback | None = None,
    keep_map: bool = False,
) -> DepthReport:
    """Depth map of the image file `src` (or encoded `data` named `src`) written to `dst`
    ("-" = stdout; None: not written) in `fmt`; `colormap` also writes an 8-bit colour
    preview there. `keep_map` also returns the map in the report: `(H, W)` float32
    disparity, upright, 4 bytes a pixel in memory (the reading and blending stay flat).

    Nothing appears at `dst` until it is complete (written under a temporary name, renamed).
    The map carries the photograph's camera EXIF; `fmt` "jpeg" writes the photograph with
    the map embedded. `on_start(n_tiles)` is called once the plan is known.
    """
    _check_call("depth_file", model, options)
    t0 = time.perf_counter()
    image = open_stream(src, data)
    origin = PhotoOrigin(str(src), data, image.camera_tags())
    plan = plan_tiles(image.height, image.width, options.tile, options.overlap)
    if on_start:
        on_start(len(plan.tiles))
    with closing(image), blended_map(image, model, options, on_tiles) as scratch:
        # The map last: a rerun skips an input whose map exists, so a preview that failed
        # must not leave one behind.
        if colormap is not None:
            write_colormap(scratch, colormap, origin)
        if dst is not None:
            write_depth(scratch, dst, fmt, origin)
        disparity = _whole_map(scratch) if keep_map else None
    return DepthReport(
        str(src),
        str(dst) if dst is not None else None,
        image.width,
        image.height,
        plan,
        time.perf_counter() - t0,
        str(colormap) if colormap else None,
        "m" if model.is_metric and fmt != "png16" else "relative",
        disparity,
    )


def tile_count(height: int, width: int, options: DepthOptions = DepthOptions()) -> int:
    """How many tiles the pipeline runs on a `height` x `width` image (progress totals)."""
    return len(plan_tiles(height, width, options.tile, options.overlap).tiles)


@contextmanager
def blended_map(
    image: ImageSource | TiledTiff,
    model: DepthModel,
    options: DepthOptions = DepthOptions(),
    on_tiles: TileCallback | None = None,
) -> Iterator[DepthScratch]:
    """The depth map of an opened image (`io.read.open_stream`), every tile blended into a
    scratch file on disk (memory flat in the image's size), for as long as the context
    lasts. Its rows are read as the writers read them (`strips`, `values`), or, once its
    `range` is known (which settles it), as `scratch.array.read(y0, y1)`: `(n, W)` float32
    disparity."""
    plan = plan_tiles(image.height, image.width, options.tile, options.overlap)
    with (
        WindowReader(image, keep_rows=plan.tile_h) as reader,
        DepthScratch(image.width, image.height, model.is_metric, plan.tile_h) as scratch,
    ):
        blend_depth(reader, image.thumbnail, model, scratch, options, on_tiles)
        yield scratch


def _whole_map(scratch: DepthScratch) -> np.ndarray:
    """The finished map in memory, `(H, W)` float32 disparity, filled strip by strip."""
    out = np.empty((scratch.height, scratch.width), np.float32)
    y = 0
    for strip in scratch.strips():
        out[y : y + len(strip)] = strip
        y += len(strip)
    return out


def _fit_long_side(h: int, w: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))
