"""A textured mesh of a photograph's depth: a strided grid of points, two triangles per quad,
cut where a quad spans a depth discontinuity; written as glTF binary (GLB) by trimesh.

Two cuts. The step: a quad is dropped when its four depths differ by more than `cut` of the
nearest, (Z_max - Z_min) / Z_min > cut: a foreground edge would otherwise be joined to the
background behind it by a sheet of long, thin triangles. A smooth surface changes far less
from one grid point to the next: a surface at angle a to the image plane about tan(a) / fx of
its depth a pixel (with a 1500-pixel focal length: 0.07 % at 45 degrees, 0.4 % at 80).
The grazing angle: a model's map is smooth, and spreads an edge over a ramp of many pixels,
each step under the cut; the triangles along it are then nearly edge-on to the camera. A
triangle is dropped when the angle between its normal and the ray from the camera centre
through its centre exceeds `max_angle` (default 85 degrees: the ramp of 0.8 % a pixel at a
1500-pixel focal length; a floor or a wall seen at 60-80 degrees stays).

The texture is the photograph itself, shrunk by a whole factor (averaging k x k blocks) until
its long side is at most MAX_TEXTURE_SIDE, encoded as JPEG inside the GLB. The material is
unlit (KHR_materials_unlit): the photograph already holds its light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from prodepth_cli.scene3d.points import to_gltf

MAX_MESH_VERTICES = 2_000_000  # the default stride keeps a mesh's grid under this
MAX_TEXTURE_SIDE = 8192  # what GPUs and glTF viewers load everywhere
DEFAULT_CUT = 0.05
DEFAULT_MAX_ANGLE = 85.0  # degrees between a face's normal and the ray to it: edge-on beyond
TEXTURE_QUALITY = 90  # JPEG quality of the texture
_UNLIT = "KHR_materials_unlit"


@dataclass
class GridMesh:
    """A grid of `(gh, gw)` points: `xyz` `(gh, gw, 3)` float32 in the camera frame (+X
    right, +Y down, +Z forward), `xs` `(gw,)` and `ys` `(gh,)` the pixel columns and rows
    they sit on, `faces` `(F, 3)` int64 indices into the flattened grid (row-major), wound
    counter-clockwise as seen from the camera; `texture` `(th, tw, 3)` uint8, covering
    `texture_scale` * (th, tw) pixels of the photograph from its top-left corner."""

    xyz: np.ndarray
    xs: np.ndarray
    ys: np.ndarray
    faces: np.ndarray
    texture: np.ndarray
    texture_scale: int

    @property
    def uv(self) -> np.ndarray:
        """`(gh * gw, 2)` float32 texture coordinates of the points' pixel centres (trimesh's
        convention: v = 0 at the bottom of the image)."""
        th, tw = self.texture.shape[:2]
        k = self.texture_scale
        u = (self.xs + 0.5) / (k * tw)
        v = 1.0 - (self.ys + 0.5) / (k * th)
        uu, vv = np.meshgrid(u.astype(np.float32), v.astype(np.float32))
        return np.stack([uu.ravel(), vv.ravel()], axis=1)


def grid_faces(
    xyz: np.ndarray, cut: float = DEFAULT_CUT, max_angle: float = DEFAULT_MAX_ANGLE
) -> np.ndarray:
    """Two triangles for each quad of the grid of camera-frame points `xyz` `(gh, gw, 3)`
    (Z positive), less the quads whose corners' depths differ by more than `cut` of the
    nearest and the triangles seen more edge-on than `max_angle` degrees (normal vs the ray
    from the camera through the triangle's centre): `(F, 3)` int64 indices into the grid
    flattened, counter-clockwise as the camera sees them (image x right, y down)."""
    gh, gw = xyz.shape[:2]
    z = xyz[..., 2]
    index = np.arange(gh * gw, dtype=np.int64).reshape(gh, gw)
    a, b, c, d = index[:-1, :-1], index[:-1, 1:], index[1:, :-1], index[1:, 1:]
    corners = np.stack([z[:-1, :-1], z[:-1, 1:], z[1:, :-1], z[1:, 1:]])
    near, far = corners.min(axis=0), corners.max(axis=0)
    step_ok = far <= near * np.float32(1.0 + cut)
    del corners, near, far
    pa, pb, pc, pd = xyz[:-1, :-1], xyz[:-1, 1:], xyz[1:, :-1], xyz[1:, 1:]
    keep_first = step_ok & _faces_camera(pa, pc, pb, max_angle)
    keep_second = step_ok & _faces_camera(pb, pc, pd, max_angle)
    first = np.stack([a[keep_first], c[keep_first], b[keep_first]], axis=1)
    second = np.stack([b[keep_second], c[keep_second], d[keep_second]], axis=1)
    return np.concatenate([first, second])


def _faces_camera(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, max_angle: float) -> np.ndarray:
    """Whether triangles `(..., 3)` corners p0, p1, p2 (camera frame, camera at the origin)
    are seen within `max_angle` degrees of face-on: |cos| of the angle between the normal and
    the ray to the centre at least cos(max_angle). A degenerate triangle is not."""
    if max_angle >= 90.0:
        return np.ones(p0.shape[:-1], bool)
    normal = np.cross(p1 - p0, p2 - p0)
    ray = p0 + p1 + p2  # the centre's direction (three times the centre)
    dot = np.abs(np.einsum("...k,...k->...", normal, ray))
    lengths = np.sqrt(np.einsum("...k,...k->...", normal, normal)) * np.sqrt(
        np.einsum("...k,...k->...", ray, ray)
    )
    return (dot >= lengths * np.float32(math.cos(math.radians(max_angle)))) & (lengths > 0)


def texture_scale(width: int, height: int, max_side: int = MAX_TEXTURE_SIDE) -> int:
    """The whole factor that brings the long side of a `width` x `height` photograph to at
    most `max_side`."""
    return max(1, math.ceil(max(width, height) / max_side))


class TextureBuilder:
    """The photograph shrunk by `k` (k x k blocks averaged; the last, partial blocks take
    the edge's pixels), built from bands of rows going down: `(ceil(H/k), ceil(W/k), 3)`
    uint8 in memory, the photograph's rows never all at once."""

    def __init__(self, width: int, height: int, k: int):
        self.k = k
        self.width = width
        self.texture = np.empty((math.ceil(height / k), math.ceil(width / k), 3), np.uint8)
        self._row = 0  # texture rows done
        self._carry = np.empty((0, width, 3), np.uint8)  # photograph rows not yet a block

    def add(self, rgb8: np.ndarray, last: bool = False) -> None:
        """The next rows of the photograph, `(n, W, 3)` uint8; `last` for the final band."""
        rows = np.concatenate([self._carry, rgb8]) if len(self._carry) else rgb8
        k = self.k
        whole = len(rows) // k * k
        if last and whole < len(rows):  # the bottom block: pad with the last row
            pad = np.repeat(rows[-1:], k - (len(rows) - whole), axis=0)
            rows, whole = np.concatenate([rows, pad]), len(rows) + len(pad)
        blocks, self._carry = rows[:whole], rows[whole:].copy()
        if not len(blocks):
            return
        if k == 1:
            out = blocks
        else:
            tw = self.texture.shape[1]
            blocks = np.pad(blocks, ((0, 0), (0, tw * k - self.width), (0, 0)), mode="edge")
            shaped = blocks.reshape(len(blocks) // k, k, tw, k, 3).astype(np.float32)
            out = (shaped.mean(axis=(1, 3)) + 0.5).astype(np.uint8)
        self.texture[self._row : self._row + len(out)] = out
        self._row += len(out)


def write_glb(f: BinaryIO, mesh: GridMesh) -> None:
    """Write `mesh` to `f` as GLB: points in glTF's frame (+Y up, -Z forward), the texture
    as JPEG, an unlit double-sided material, no normals (viewers make their own)."""
    import trimesh
    from PIL import Image

    image = Image.fromarray(mesh.texture)
    image.format = "JPEG"  # trimesh writes a JPEG as JPEG, anything else as PNG
    image.encoderinfo = {"quality": TEXTURE_QUALITY}  # Pillow applies it when trimesh saves
    material = trimesh.visual.material.PBRMaterial(
        baseColorTexture=image, metallicFactor=0.0, roughnessFactor=1.0, doubleSided=True
    )
    visual = trimesh.visual.TextureVisuals(uv=mesh.uv, material=material)
    vertices = to_gltf(mesh.xyz.reshape(-1, 3))
    shape = trimesh.Trimesh(vertices, mesh.faces, visual=visual, process=False, validate=False)
    f.write(
        trimesh.exchange.gltf.export_glb(
            shape.scene(), include_normals=False, tree_postprocessor=_unlit
        )
    )


def _unlit(tree: dict) -> None:
    """Mark every material unlit (glTF's KHR_materials_unlit): shown as photographed."""
    for material in tree.get("materials", []):
        material.setdefault("extensions", {})[_UNLIT] = {}
    used = tree.setdefault("extensionsUsed", [])
    if _UNLIT not in used:
        used.append(_UNLIT)
