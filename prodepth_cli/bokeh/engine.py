"""One call per image: photo + depth + focus + aperture -> shallow depth of field.

`bokeh_array` is the pure core (arrays in, array out) that the CLI, the benchmark, the
training-data generator and the tests share; `bokeh_file` adds decoding, the depth pipeline
when no depth map is given, and the atomic encoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from prodepth_cli.bokeh.focus import default_focus, focus_at_point
from prodepth_cli.bokeh.lens import (
    DEFAULT_F_NUMBER,
    blur_scale,
    disparity_range,
    normalise_disparity,
    signed_coc,
)
from prodepth_cli.bokeh.photo_io import read_photo, write_photo
from prodepth_cli.bokeh.render import render_bokeh
from prodepth_cli.bokeh.tiled import render_tiled
from prodepth_cli.depth_source import DepthSource, photo_depth
from prodepth_cli.errors import OptionError
from prodepth_cli.io.depth_map import DepthMapFile

ENGINES = ("classic", "tflite")


class Renderer(Protocol):
    """A bokeh engine: sRGB `(H, W, 3)` float32 in [0, 1] + normalised disparity `(H, W)`
    (0 far .. 1 near) + focus (same units) + K (px per unit) -> sRGB `(H, W, 3)`."""

    def __call__(
        self, rgb: np.ndarray, disparity01: np.ndarray, focus01: float, k: float
    ) -> np.ndarray: ...


def classic_renderer(
    rgb: np.ndarray, disparity01: np.ndarray, focus01: float, k: float
) -> np.ndarray:
    """The classical engine as a Renderer (large images in tiles)."""
    return render_tiled(render_bokeh, rgb, signed_coc(disparity01, focus01, k))


@dataclass(frozen=True)
class BokehOptions:
    """Aperture and focus. `focus_xy` is a pixel of the image (x, y); `focus_depth` a value
    in the depth map's units; neither: the main subject (`focus.default_focus`)."""

    f_number: float = DEFAULT_F_NUMBER
    focus_xy: tuple[int, int] | None = None
    focus_depth: float | None = None

    def __post_init__(self) -> None:
        if self.focus_xy is not None and self.focus_depth is not None:
            raise OptionError("--focus and --focus-depth: give one or the other")
        blur_scale(self.f_number, 1, 1)  # validates the f-number


@dataclass
class BokehResult:
    """The rendered image and what was decided on the way (for --json)."""

    rgb: np.ndarray  # (H, W, 3) float32 sRGB in [0, 1]
    focus: float  # the focal plane, in the depth map's units
    blur_px: float  # K: CoC radius (px) per unit of normalised disparity
    max_radius_px: float  # the largest disc drawn


def choose_focus(disparity: np.ndarray, options: BokehOptions) -> float:
    """The focal plane's disparity (depth map units) for `options`."""
    if options.focus_depth is not None:
        return float(options.focus_depth)
    if options.focus_xy is not None:
        return focus_at_point(disparity, *options.focus_xy)
    return default_focus(disparity)


def bokeh_array(
    rgb: np.ndarray,
    disparity: np.ndarray,
    options: BokehOptions = BokehOptions(),
    renderer: Renderer = classic_renderer,
) -> BokehResult:
    """Shallow depth of field for an in-memory image.

    rgb: `(H, W, 3)` float32 sRGB in [0, 1]; disparity: `(H, W)` float32, larger = nearer,
    finite, any units (relative maps are normalised over the image).
    """
    h, w = disparity.shape
    if rgb.shape[:2] != (h, w):
        raise ValueError(f"image {rgb.shape[:2]} and disparity {disparity.shape} differ in size")
    focus = choose_focus(disparity, options)
    lo, hi = disparity_range(disparity)
    k = blur_scale(options.f_number, h, w)
    d01 = normalise_disparity(disparity, lo, hi)
    f01 = (focus - lo) / (hi - lo)
    out = renderer(rgb, d01, f01, k)
    reach = k * max(abs(float(d01.min()) - f01), abs(float(d01.max()) - f01))
    return BokehResult(out, focus, k, reach)


@dataclass
class BokehReport:
    """What `bokeh_file` did, for progress lines and `--json`."""

    width: int
    height: int
    bits: int
    focus: float
    blur_px: float
    max_radius_px: float
    depth: str  # the depth map's path, "embedded", or "model:<name>"
    depth_resized_from: tuple[int, int] | None
    seconds: float


def bokeh_file(
    src: str | Path,
    dst: str | Path,
    options: BokehOptions,
    depth_map: DepthMapFile | None = None,
    depth_source: DepthSource | None = None,
    renderer: Renderer = classic_renderer,
    data: bytes | None = None,
) -> BokehReport:
    """Render the image file `src` (or encoded `data` named `src`) to `dst` ("-" = PNG on
    stdout), with the depth map given, `depth_map`, or, without one, the map the photograph
    carries (GDepth; `depth` "embedded"), else from `depth_source`.

    Nothing appears at `dst` until it is complete (temporary name, then rename).
    """
    t0 = time.perf_counter()
    photo = read_photo(src, data)
    depth = photo_depth(src, data, photo.hw, depth_map, depth_source, photo.as_uint8)
    result = bokeh_array(photo.rgb, depth.disparity, options, renderer)
    write_photo(photo.with_pixels(result.rgb), dst)
    return BokehReport(
        photo.hw[1],
        photo.hw[0],
        photo.bits,
        result.focus,
        result.blur_px,
        result.max_radius_px,
        depth.name,
        depth.resized_from,
        time.perf_counter() - t0,
    )
