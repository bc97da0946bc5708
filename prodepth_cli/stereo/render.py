"""One call per image: photograph + depth -> a stereo image, a band of rows at a time.

`render_bands` is the core: it reads the photograph and its fitted depth map a band of rows
at a time, makes the eyes (`warp.synthesise_view`, each row on its own) and packs them
(`layouts`), yielding the output's rows top to bottom. Layouts with one eye above the other
run it twice, one eye per pass over the image. `stereo_array` runs it in memory (tests, the
Python API); `stereo_file` from files to a file, so memory stays a few bands whatever the
photograph's size: the photograph is decoded a strip at a time (io/read.py), the map read a
band at a time (io/depth_map.py), and the output encoded from its rows (io/photo_stream.py);
a spatial photo (.heic) is rendered side by side and its eyes encoded as two images
(stereo/spatial_heic.py).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from prodepth_cli.depth_source import ModelDepth
from prodepth_cli.errors import OptionError
from prodepth_cli.io.depth_map import (
    EMBEDDED,
    ArrayRows,
    DepthMapFile,
    DepthRows,
    embedded_disparity,
    map_file_rows,
)
from prodepth_cli.io.photo_stream import PhotoMeta, photo_meta, write_rows
from prodepth_cli.io.read import open_image, to_unit_rgb
from prodepth_cli.stereo.layouts import STACKED, output_hw, pack_band, stacked_band
from prodepth_cli.stereo.shift import (
    StereoOptions,
    eye_shares,
    shift_range_px,
    stereo_disparity,
)
from prodepth_cli.stereo.spatial_camera import SpatialCamera, parallel_options, spatial_camera
from prodepth_cli.stereo.spatial_heic import MAX_EYE_SIDE, is_spatial_output, write_spatial_photo
from prodepth_cli.stereo.warp import synthesise_view

# A band's float RGB rows. Small, so that the warp's temporaries (a few times this) stay under
# the 1 MB mmap threshold the CLI pins (heap.py) and come from the heap: at 2 MB each took a
# fresh zeroed mapping per band and 12 MP took 3.2 s instead of 1.8 s (bench_stereo.py).
BAND_BYTES = 3 << 18


class RowSource(Protocol):
    """A photograph's rows, float32 sRGB `(n, W, 3)` in [0, 1], top to bottom; `restart`
    goes back to the top (another pass)."""

    height: int
    width: int

    def rows(self, y0: int, y1: int) -> np.ndarray: ...

    def restart(self) -> None: ...


def band_rows_for(width: int) -> int:
    """Rows in a band: about BAND_BYTES of float RGB, and even (half-tb averages pairs)."""
    return max(2, BAND_BYTES // (width * 12) // 2 * 2)


def max_ramp_for(width: int, map_width: int) -> int:
    """`warp.snap_edges`' longest ramp: a soft edge's ramp is a few of the map's pixels
    wide, so four times the map's upsampling factor, and at least 8 px (a model's
    full-size map is drawn at about half the resolution)."""
    return max(8, math.ceil(4.0 * width / map_width))


def eye_views(
    rgb: np.ndarray,
    disparity: np.ndarray,
    lo: float,
    hi: float,
    options: StereoOptions,
    eyes: tuple[str, ...] = ("left", "right"),
    max_ramp: int = 8,
) -> dict[str, np.ndarray]:
    """The eyes named in `eyes` for a band: `rgb` `(n, W, 3)` float32 sRGB, `disparity`
    `(n, W)` (larger = nearer) of a map whose whole range is [lo, hi]. The photograph is an
    eye as it is where `synthetic_view` keeps it. `max_ramp`: see `warp.snap_edges`."""
    width = rgb.shape[1]
    stereo = stereo_disparity(disparity, lo, hi, width, options)
    shares = dict(zip(("left", "right"), eye_shares(options), strict=True))
    direction = {"left": 1, "right": -1}
    views = {}
    for eye in eyes:
        share = shares[eye]
        if share == 0:
            views[eye] = rgb
        else:
            views[eye] = synthesise_view(rgb, stereo * share, direction[eye], max_ramp)
    return views


def render_bands(
    photo: RowSource, depth: DepthRows, options: StereoOptions, band_rows: int | None = None
) -> Iterator[np.ndarray]:
    """The packed stereo image's rows, `(n, W_out, 3)` float32 sRGB in [0, 1], top to bottom
    (`layouts.output_hw` gives its size), from bands of `band_rows` rows (default: BAND_BYTES;
    rounded up to even). Every band gives the rows the whole image would."""
    h = photo.height
    step = band_rows or band_rows_for(photo.width)
    step += step % 2
    passes = (("left",), ("right",)) if options.layout in STACKED else (("left", "right"),)
    max_ramp = max_ramp_for(photo.width, depth.source_hw[1])
    for i, eyes in enumerate(passes):
        if i:
            photo.restart()
            depth.restart()
        for y0 in range(0, h, step):
            y1 = min(h, y0 + step)
            rgb, disparity = photo.rows(y0, y1), depth.rows(y0, y1)
            views = eye_views(rgb, disparity, depth.lo, depth.hi, options, eyes, max_ramp)
            if len(eyes) == 2:
                yield pack_band(options.layout, views["left"], views["right"])
            else:
                yield stacked_band(options.layout, views[eyes[0]])


def stereo_array(
    rgb: np.ndarray, disparity: np.ndarray, options: StereoOptions, band_rows: int | None = None
) -> np.ndarray:
    """The stereo image of an in-memory photograph: `rgb` `(H, W, 3)` float32 sRGB in [0, 1],
    `disparity` `(H, W)` or another size (resized; larger = nearer, any units, non-finite
    values filled). Returns `(H_out, W_out, 3)` float32 (`layouts.output_hw`)."""
    h, w = rgb.shape[:2]
    photo = _ArrayPhoto(np.asarray(rgb, np.float32))
    with DepthRows(lambda: ArrayRows(disparity), (h, w), "array") as depth:
        return np.concatenate(list(render_bands(photo, depth, options, band_rows)))


@dataclass
class StereoReport:
    """What `stereo_file` did, for progress lines and `--json`."""

    width: int  # the photograph's
    height: int
    out_width: int
    out_height: int
    bits: int
    depth: str  # the depth map's path, "embedded", or "model:<name>"
    depth_resized_from: tuple[int, int] | None
    shift_px: tuple[float, float]  # (farthest, nearest) x_left - x_right, pixels
    seconds: float
    spatial: SpatialCamera | None = None  # a spatial photo's cameras (out_*: each eye's size)


def stereo_file(
    src: str | Path,
    dst: str | Path,
    options: StereoOptions,
    depth_map: DepthMapFile | None = None,
    model_depth: ModelDepth | None = None,
    data: bytes | None = None,
    band_rows: int | None = None,
    max_eye_side: int = MAX_EYE_SIDE,
) -> StereoReport:
    """Render the image file `src` (or encoded `data` named `src`) as a stereo image at `dst`
    ("-" = PNG on stdout), with the depth map given, `depth_map`, or, without one, the map
    the photograph carries (GDepth; `depth` "embedded"), else the depth pipeline's
    (`model_depth`).

    Nothing appears at `dst` until it is complete (temporary name, then rename). The output
    keeps the photograph's bit depth where its format allows, and its ICC, EXIF and XMP.
    A .heic/.heif `dst` is a spatial photo (`spatial_heic`): the two eyes as two images at
    most `max_eye_side` on their longest side, rendered as parallel cameras see them, with
    `options.layout` not used (side by side inside) and the convergence in the file's
    disparity adjustment (`spatial_camera`).
    """
    t0 = time.perf_counter()
    photo = _FilePhoto(src, data)
    hw = (photo.height, photo.width)
    camera = None
    render_options = options
    with contextlib.ExitStack() as stack:
        depth = stack.enter_context(_open_depth(src, data, hw, depth_map, model_depth))
        if is_spatial_output(dst):
            render_options = parallel_options(options)
            camera = spatial_camera(photo.width, photo.height, photo.meta.exif, options)
            rows = render_bands(photo, depth, render_options, band_rows)
            out_w, out_h = write_spatial_photo(
                dst, photo.width, photo.height, rows, photo.meta, camera, max_eye_side
            )
        else:
            out_h, out_w = output_hw(options.layout, *hw)
            rows = render_bands(photo, depth, options, band_rows)
            write_rows(dst, out_w, out_h, rows, photo.meta)
    return StereoReport(
        photo.width,
        photo.height,
        out_w,
        out_h,
        photo.meta.bits,
        depth.name,
        depth.source_hw if depth.resized else None,
        shift_range_px(photo.width, render_options),
        time.perf_counter() - t0,
        camera,
    )


@contextlib.contextmanager
def _open_depth(
    src: str | Path,
    data: bytes | None,
    hw: tuple[int, int],
    depth_map: DepthMapFile | None,
    model_depth: ModelDepth | None,
) -> Iterator[DepthRows]:
    """The photograph's depth as `DepthRows`: the map given, `depth_map`, else the one it
    carries, else the pipeline's."""
    if depth_map is not None:
        with map_file_rows(depth_map, hw) as depth:
            yield depth
        return
    embedded = embedded_disparity(src, data)
    if embedded is not None:
        with DepthRows(lambda: ArrayRows(embedded), hw, EMBEDDED) as depth:
            yield depth
        return
    if model_depth is None:
        raise OptionError("no depth: pass --depth or a depth model")
    with model_depth.rows(src, data) as depth:
        yield depth


class _FilePhoto:
    """A photograph file decoded a strip at a time (`io.read.open_image`; a RAW developed at
    16 bits), its rows as float32 sRGB in [0, 1]."""

    def __init__(self, src: str | Path, data: bytes | None):
        self._src, self._data = src, data
        self._source = open_image(src, data, raw_bits=16)
        self.height, self.width = self._source.height, self._source.width
        self.meta: PhotoMeta = photo_meta(self._source)

    def rows(self, y0: int, y1: int) -> np.ndarray:
        return to_unit_rgb(self._source.rows(y0, y1), self._source.full_scale)

    def restart(self) -> None:
        """Back to the top: a file streamed from disk is opened again (its decoder only goes
        down); one decoded whole (RAW, HEIC, rotated by its EXIF) is read again as it is."""
        if not self._source.decoded:
            self._source = open_image(self._src, self._data, raw_bits=16)


class _ArrayPhoto:
    """A photograph in memory as a `RowSource`."""

    def __init__(self, rgb: np.ndarray):
        self._rgb = rgb
        self.height, self.width = rgb.shape[:2]

    def rows(self, y0: int, y1: int) -> np.ndarray:
        return self._rgb[y0:y1]

    def restart(self) -> None:
        """Nothing to do: any rows can be read again."""
