"""The depth pipeline as the depth source of a render (bokeh, stereo, parallax) given no
depth map.

`ModelDepth` holds one loaded model: called with pixels it returns their map in memory
(bokeh renders whole images); `rows` runs the pipeline on a file and hands the map out a band
of rows at a time from its scratch file (stereo renders in bands, whatever the size).
`photo_depth` picks a whole-image render's map: the one given, else the one the photograph
carries, else the model's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from prodepth_cli.errors import OptionError
from prodepth_cli.io.depth_map import (
    EMBEDDED,
    DepthMapFile,
    DepthRows,
    read_depth_map,
    read_embedded_depth_map,
)

if TYPE_CHECKING:  # the pipeline (onnxruntime) is imported when a map is first made
    from prodepth_cli.models.runtime import DepthModel
    from prodepth_cli.pipeline import DepthOptions, TileCallback


@dataclass
class ModelDepth:
    """A loaded depth model (`models.runtime.load_model`) as a source of disparity (larger =
    nearer), tiled as `options` say (default: `prodepth depth`'s 1024-pixel tiles)."""

    model: DepthModel
    options: DepthOptions | None = None

    @property
    def name(self) -> str:
        return self.model.name

    def _options(self) -> DepthOptions:
        from prodepth_cli.pipeline import DepthOptions

        return self.options or DepthOptions()

    def __call__(self, rgb_uint8: np.ndarray) -> np.ndarray:
        """`(H, W, 3)` uint8 pixels -> `(H, W)` float32 disparity, in memory."""
        from prodepth_cli.pipeline import depth_array

        return depth_array(rgb_uint8, self.model, self._options())

    @contextmanager
    def rows(
        self,
        src: str | Path,
        data: bytes | None = None,
        on_start: Callable[[int], None] | None = None,
        on_tiles: TileCallback | None = None,
    ) -> Iterator[DepthRows]:
        """The map of the image file `src` (or its encoded `data`) as `DepthRows`, read from
        the pipeline's scratch file on disk while the context lasts. `on_start(n_tiles)` and
        `on_tiles(n_done)` report progress as `pipeline.depth_file`'s do."""
        from prodepth_cli.io.read import open_stream
        from prodepth_cli.pipeline import blended_map, tile_count

        options = self._options()
        image = open_stream(src, data)
        if on_start:
            on_start(tile_count(image.height, image.width, options))
        with closing(image), blended_map(image, self.model, options, on_tiles) as scratch:
            lo, hi = scratch.range  # settles the scratch: its rows are all on disk
            hw = (scratch.height, scratch.width)
            reader = _ScratchRows(scratch.array, hw)
            with DepthRows(lambda: reader, hw, f"model:{self.name}", lo, hi) as depth:
                yield depth


class _ScratchRows:
    """A `ScratchArray` of disparity as `MapRows` (any rows, any order)."""

    def __init__(self, array, hw: tuple[int, int]):
        self._array = array
        self.height, self.width = hw

    def rows(self, y0: int, y1: int) -> np.ndarray:
        return self._array.read(y0, y1)

    def close(self) -> None:
        """The scratch file is the pipeline's to close."""


class DepthSource(Protocol):
    """Where depth comes from when no map is given: `(H, W, 3)` pixels -> `(H, W)` disparity
    (a `ModelDepth`, or a stand-in in tests)."""

    name: str

    def __call__(self, rgb_uint8: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class PhotoDepth:
    """A photograph's disparity `(H, W)` float32 (larger = nearer) at its size; `name` the
    map's path, "embedded" or "model:<name>"; `resized_from` the given map's stored (h, w)
    where it was resized, else None."""

    disparity: np.ndarray
    name: str
    resized_from: tuple[int, int] | None = None


def photo_depth(
    src: str | Path,
    data: bytes | None,
    hw: tuple[int, int],
    depth_map: DepthMapFile | None,
    source: DepthSource | None,
    pixels: Callable[[], np.ndarray],
) -> PhotoDepth:
    """The depth of the photograph `src` (or its encoded `data`) at `hw` (H, W): the map
    given, `depth_map` (one of metres read as 1/metres), else the one it carries (GDepth),
    else `source` run on `pixels()` (its `(H, W, 3)` pixels, asked for only then).
    OptionError when there is none."""
    if depth_map is not None:
        fitted = read_depth_map(depth_map.path, hw, metres=depth_map.metres)
        resized_from = fitted.source_hw if fitted.resized else None
        return PhotoDepth(fitted.disparity, str(depth_map.path), resized_from)
    embedded = read_embedded_depth_map(src, data, hw)
    if embedded is not None:
        return PhotoDepth(embedded.disparity, EMBEDDED)
    if source is None:
        raise OptionError("no depth: pass --depth or a depth model")
    return PhotoDepth(source(pixels()), f"model:{source.name}")
