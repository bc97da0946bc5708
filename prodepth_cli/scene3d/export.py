"""One photograph -> its point cloud (PLY) or textured mesh (GLB), a band of rows at a time.

`scene_file` runs the depth pipeline on the photograph (`depth_source.ModelDepth.rows`: the
map stays in the pipeline's scratch file on disk) or reads the map it is given (`DepthMapFile`,
through `io.depth_map` as stereo does), finds the camera (`intrinsics`), and reads the
photograph and its map down the image together, a band of rows at a time, keeping every
`stride`-th pixel. A PLY is written as the bands come, so its memory is a band whatever the
photograph's size; a mesh is gathered (grid, faces, texture) for the glTF writer, so its
default stride caps the grid at MAX_MESH_VERTICES and its texture at MAX_TEXTURE_SIDE.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prodepth_cli.depth_source import ModelDepth
from prodepth_cli.errors import InputError, OptionError, OutputError
from prodepth_cli.io.depth_map import DepthMapFile, DepthRows, map_file_rows
from prodepth_cli.io.read import ImageSource, open_image, to_unit_rgb
from prodepth_cli.io.write import atomic_output
from prodepth_cli.scene3d.intrinsics import Intrinsics, camera_intrinsics
from prodepth_cli.scene3d.mesh import (
    DEFAULT_CUT,
    DEFAULT_MAX_ANGLE,
    MAX_MESH_VERTICES,
    GridMesh,
    TextureBuilder,
    grid_faces,
    texture_scale,
    write_glb,
)
from prodepth_cli.scene3d.ply import ply_header, write_points
from prodepth_cli.scene3d.points import backproject, grid_positions, stride_for
from prodepth_cli.scene3d.scale import DepthScale, default_depth_range

if TYPE_CHECKING:
    from prodepth_cli.models.runtime import DepthModel
    from prodepth_cli.pipeline import DepthOptions, TileCallback

SCENE_FORMATS = {"ply": ".ply", "glb": ".glb"}
MAX_EXPLICIT_MESH_VERTICES = 32_000_000  # a --stride asking for more would not fit in memory
_BAND_BYTES = 4 << 20  # photograph (uint8 RGB) and map (float32) rows read at a time


def scene_format_for(dst: str | Path, fmt: str | None) -> str | None:
    """The scene format of the output file `dst` by its suffix (.ply, .glb), which an explicit
    `fmt` must agree with; None when neither says scene. OutputError for a contradiction."""
    suffix = Path(dst).suffix.lower()
    by_suffix = next((f for f, s in SCENE_FORMATS.items() if s == suffix), None)
    if by_suffix is None:
        if fmt in SCENE_FORMATS:
            raise OutputError(f"{dst}: --format {fmt} writes {SCENE_FORMATS[fmt]} files")
        return None
    if fmt is not None and fmt != by_suffix:
        raise OutputError(f"{dst}: --format {fmt} contradicts the {suffix} suffix ({by_suffix})")
    return by_suffix


@dataclass(frozen=True)
class SceneOptions:
    """How to make the scene: keep every `stride`-th pixel (None: 1 for points, a stride
    capping a mesh at MAX_MESH_VERTICES); `fov_deg`, the horizontal field of view when
    neither EXIF nor the model gives a focal length; `depth_range` (near, far), where a
    relative map's nearest and farthest points go (None: `scale.default_depth_range` of the
    field of view); `cut`, the relative depth step that cuts a mesh's quad, and `max_angle`,
    in degrees, the most edge-on a mesh's triangle may be seen (`mesh.grid_faces`)."""

    stride: int | None = None
    fov_deg: float | None = None
    depth_range: tuple[float, float] | None = None
    cut: float = DEFAULT_CUT
    max_angle: float = DEFAULT_MAX_ANGLE

    def __post_init__(self) -> None:
        if self.stride is not None and self.stride < 1:
            raise OptionError(f"--stride {self.stride}: at least 1 (every pixel)")
        if self.fov_deg is not None and not 0 < self.fov_deg < 180:
            raise OptionError(
                f"--fov {self.fov_deg:g}: a horizontal field of view in degrees, 0-180"
            )
        if self.depth_range is not None:
            near, far = self.depth_range
            if not 0 < near < far:
                raise OptionError(f"--depth-range {near:g},{far:g}: needs 0 < NEAR < FAR")
        if not self.cut > 0:
            raise OptionError(f"--cut {self.cut:g}: a positive fraction of the depth, e.g. 0.05")
        if not 0 < self.max_angle <= 90:
            raise OptionError(
                f"--max-angle {self.max_angle:g}: degrees from face-on, 0-90 (90 keeps all)"
            )


@dataclass
class SceneReport:
    """What `scene_file` did, for progress lines and `--json`."""

    width: int
    height: int
    fmt: str
    stride: int
    points: int  # PLY points, or mesh vertices
    faces: int | None  # mesh only
    camera: Intrinsics
    scale: DepthScale
    z_range: tuple[float, float]
    texture_hw: tuple[int, int] | None
    seconds: float
    depth: str = ""  # the map's path, or "model:<name>"
    depth_resized_from: tuple[int, int] | None = None  # a given map's stored (h, w), resized

    def fields(self) -> dict[str, Any]:
        """The report's `--json` entries."""
        camera = self.camera
        out: dict[str, Any] = {
            "width": self.width,
            "height": self.height,
            "stride": self.stride,
            ("points" if self.fmt == "ply" else "vertices"): self.points,
        }
        if self.faces is not None:
            out["faces"] = self.faces
            out["texture"] = list(self.texture_hw[::-1]) if self.texture_hw else None
        return out | {
            "focal_px": round(camera.fx, 2),
            "focal_source": camera.source,
            "fov_deg": round(camera.hfov_deg, 2),
            "depth": self.depth,
            "depth_resized_from": self.depth_resized_from,
            "units": self.scale.units,
            "z_range": [round(v, 4) for v in self.z_range],
            "assumed": self.scale.assumption,
            "seconds": round(self.seconds, 3),
        }


def scene_file(
    src: str | Path,
    dst: str | Path,
    fmt: str,
    model: DepthModel | None,
    options: SceneOptions = SceneOptions(),
    depth_options: DepthOptions | None = None,
    data: bytes | None = None,
    depth_map: DepthMapFile | None = None,
    on_start: Callable[[int], None] | None = None,
    on_tiles: TileCallback | None = None,
) -> SceneReport:
    """The point cloud (`fmt` "ply") or mesh ("glb") of the image file `src` (or its encoded
    `data`) at `dst`, with the depth map `depth_map`, else the depth of `model` tiled as
    `depth_options` say (`on_start(n_tiles)`, `on_tiles(n_done)`: its progress).

    Nothing appears at `dst` until it is complete (temporary name, then rename)."""
    if fmt not in SCENE_FORMATS:
        raise OptionError(f"{fmt}: a scene is {' or '.join(SCENE_FORMATS)}")
    if str(dst) == "-":
        raise OutputError(f"-o -: standard output carries PNG only, not {fmt.upper()}")
    t0 = time.perf_counter()
    photo = open_image(src, data)
    hw = (photo.height, photo.width)
    found = _scene_depth(src, data, hw, model, depth_options, depth_map, on_start, on_tiles)
    with closing(photo), found as (depth, metric):
        camera = camera_intrinsics(photo, options.fov_deg, model)
        near, far = options.depth_range or default_depth_range(camera.long_fov_deg)
        scale = DepthScale(metric, depth.lo, depth.hi, near, far)
        stride = _stride(options, fmt, photo.width, photo.height)
        writer = _write_ply if fmt == "ply" else _write_mesh
        report = writer(dst, _Grid(photo, depth, stride), camera, scale, options)
        report.depth = depth.name
        report.depth_resized_from = depth.source_hw if depth.resized else None
    report.seconds = time.perf_counter() - t0
    return report


@contextmanager
def _scene_depth(
    src: str | Path,
    data: bytes | None,
    hw: tuple[int, int],
    model: DepthModel | None,
    depth_options: DepthOptions | None,
    depth_map: DepthMapFile | None,
    on_start: Callable[[int], None] | None,
    on_tiles: TileCallback | None,
) -> Iterator[tuple[DepthRows, bool]]:
    """The photograph's disparity as `DepthRows` fitted to `hw` (H, W), and whether it is
    1/metres: the map given (resized to the photograph when stored at another size), else
    the model's."""
    if depth_map is not None:
        with map_file_rows(depth_map, hw) as depth:
            yield depth, depth_map.metres
        return
    if model is None:
        raise OptionError("no depth: pass --depth or a depth model")
    with ModelDepth(model, depth_options).rows(src, data, on_start, on_tiles) as depth:
        if (depth.height, depth.width) != hw:
            raise InputError(
                f"{src}: the photograph reads {hw[1]}x{hw[0]} but its depth "
                f"{depth.width}x{depth.height}"
            )
        yield depth, model.is_metric


def _stride(options: SceneOptions, fmt: str, width: int, height: int) -> int:
    """The stride asked for, else 1 for points and for a mesh one that caps its grid."""
    if fmt == "ply":
        return options.stride or 1
    if options.stride is None:
        return stride_for(width, height, MAX_MESH_VERTICES)
    vertices = len(grid_positions(width, options.stride)) * len(
        grid_positions(height, options.stride)
    )
    if vertices > MAX_EXPLICIT_MESH_VERTICES:
        least = stride_for(width, height, MAX_EXPLICIT_MESH_VERTICES)
        raise OptionError(
            f"--stride {options.stride}: a mesh of {vertices:,} vertices does not fit in "
            f"memory; use --stride {least} or more (or leave it out)"
        )
    return options.stride


@dataclass
class _Band:
    """A band of the grid: rows `ys` `(n,)` of the grid's columns; `rgb8` `(n, m, 3)`
    uint8 colours and `disparity` `(n, m)` float32 at them; `photo_rows` `(r, W, 3)` uint8,
    every row of the photograph the band covers (for a texture)."""

    ys: np.ndarray
    rgb8: np.ndarray
    disparity: np.ndarray
    photo_rows: np.ndarray
    last: bool


class _Grid:
    """A photograph and its depth map read down together, `stride`-th pixels kept."""

    def __init__(self, photo: ImageSource, depth: DepthRows, stride: int):
        self.photo, self.depth, self.stride = photo, depth, stride
        self.xs = grid_positions(photo.width, stride)
        self.ys = grid_positions(photo.height, stride)

    @property
    def hw(self) -> tuple[int, int]:
        return len(self.ys), len(self.xs)

    def bands(self) -> Iterator[_Band]:
        h, w, s = self.photo.height, self.photo.width, self.stride
        rows = max(s, _BAND_BYTES // (w * 7) // s * s)  # 3 bytes of colour, 4 of depth
        for y0 in range(0, h, rows):
            y1 = min(h, y0 + rows)
            ys = self.ys[(self.ys >= y0) & (self.ys < y1)]
            photo_rows = _rgb8(self.photo.rows(y0, y1), self.photo.full_scale)
            disparity = self.depth.rows(y0, y1)
            picked = ys - y0
            yield _Band(
                ys,
                photo_rows[picked][:, self.xs],
                disparity[picked][:, self.xs],
                photo_rows,
                y1 == h,
            )


def _rgb8(pixels: np.ndarray, full_scale: float) -> np.ndarray:
    """Photograph rows as stored (uint8, uint16 or float) -> `(n, W, 3)` uint8."""
    if pixels.dtype == np.uint8:
        return pixels
    return (to_unit_rgb(pixels, full_scale) * 255.0 + 0.5).astype(np.uint8)


def _camera_comments(camera: Intrinsics, scale: DepthScale) -> list[str]:
    return [
        "made by prodepth (prodepth depth -o *.ply)",
        "frame: camera at the origin, +X right, +Y down, +Z forward (OpenCV); pixel (x, y) "
        "at u = x + 0.5, v = y + 0.5: X = (u - cx) / fx * Z, Y = (v - cy) / fy * Z",
        f"intrinsics: fx {camera.fx:.3f} fy {camera.fy:.3f} cx {camera.cx:.3f} "
        f"cy {camera.cy:.3f} px, image {camera.width}x{camera.height}, "
        f"focal length source: {camera.source}",
        f"depth: {scale.assumption}",
    ]


def _write_ply(
    dst: str | Path, grid: _Grid, camera: Intrinsics, scale: DepthScale, options: SceneOptions
) -> SceneReport:
    count = grid.hw[0] * grid.hw[1]
    z_lo, z_hi = np.inf, -np.inf
    with atomic_output(dst) as tmp, open(tmp, "wb") as f:
        f.write(ply_header(count, _camera_comments(camera, scale)))
        for band in grid.bands():
            if not len(band.ys):
                continue
            z = scale.depth(band.disparity)
            z_lo, z_hi = min(z_lo, float(z.min())), max(z_hi, float(z.max()))
            write_points(f, backproject(z, grid.xs, band.ys, camera), band.rgb8)
    return SceneReport(
        camera.width,
        camera.height,
        "ply",
        grid.stride,
        count,
        None,
        camera,
        scale,
        (z_lo, z_hi),
        None,
        0.0,
    )


def _write_mesh(
    dst: str | Path, grid: _Grid, camera: Intrinsics, scale: DepthScale, options: SceneOptions
) -> SceneReport:
    gh, gw = grid.hw
    xyz = np.empty((gh, gw, 3), np.float32)
    k = texture_scale(camera.width, camera.height)
    texture = TextureBuilder(camera.width, camera.height, k)
    row = 0
    for band in grid.bands():
        texture.add(band.photo_rows, band.last)
        n = len(band.ys)
        if n:
            xyz[row : row + n] = backproject(scale.depth(band.disparity), grid.xs, band.ys, camera)
            row += n
    z = xyz[..., 2]
    faces = grid_faces(xyz, options.cut, options.max_angle)
    mesh = GridMesh(xyz, grid.xs, grid.ys, faces, texture.texture, k)
    with atomic_output(dst) as tmp, open(tmp, "wb") as f:
        write_glb(f, mesh)
    return SceneReport(
        camera.width,
        camera.height,
        "glb",
        grid.stride,
        gh * gw,
        len(mesh.faces),
        camera,
        scale,
        (float(z.min()), float(z.max())),
        texture.texture.shape[:2],
        0.0,
    )
