"""The depth pipeline as the depth source of a render (bokeh, stereo) given no depth map.

`ModelDepth` holds one loaded model: called with pixels it returns their map in memory
(bokeh renders whole images); `rows` runs the pipeline on a file and hands the map out a band
of rows at a time from its scratch file (stereo renders in bands, whatever the size).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from prodepth_cli.io.depth_map import DepthRows

if TYPE_CHECKING:  # the pipeline (onnxruntime) is imported when a map is first made
    from prodepth_cli.models.runtime import DepthModel
    from prodepth_cli.pipeline import DepthOptions


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
    def rows(self, src: str | Path, data: bytes | None = None) -> Iterator[DepthRows]:
        """The map of the image file `src` (or its encoded `data`) as `DepthRows`, read from
        the pipeline's scratch file on disk while the context lasts."""
        from prodepth_cli.io.read import open_stream
        from prodepth_cli.pipeline import blended_map

        image = open_stream(src, data)
        with closing(image), blended_map(image, self.model, self._options()) as scratch:
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
