"""Render a point cloud (PLY) or mesh (GLB) that `prodepth depth` wrote, seen from an oblique
viewpoint, to a picture: how docs/images/bartender_points.jpg was made, and a check by eye.

No display or GPU: points are projected from a camera turned about a pivot in the scene and
z-buffered (each point a 2x2 splat, the nearest wins per pixel); a mesh's triangles are
painted far to near (OpenCV's fillConvexPoly), each in its texture's colour at its centre.

    python scripts/render_scene.py examples/bartender.ply docs/images/bartender_points.jpg \
        --yaw 28 --pitch 8
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

BACKGROUND = (24, 24, 28)


def load_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(xyz (N, 3) camera frame, rgb (N, 3) uint8) of a prodepth PLY."""
    from plyfile import PlyData

    ply = PlyData.read(str(path))
    v = ply["vertex"]
    xyz = np.stack([v["x"], v["y"], v["z"]], axis=1).astype(np.float32)
    rgb = np.stack([v["red"], v["green"], v["blue"]], axis=1)
    return xyz, rgb


def load_mesh(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyz (N, 3) camera frame, faces (F, 3), face colours (F, 3) uint8) of a prodepth GLB."""
    import trimesh

    mesh = next(iter(trimesh.load(str(path)).geometry.values()))
    xyz = np.asarray(mesh.vertices, np.float32) * np.float32([1, -1, -1])  # glTF -> camera
    faces = np.asarray(mesh.faces)
    texture = np.asarray(mesh.visual.material.baseColorTexture.convert("RGB"))
    uv = np.asarray(mesh.visual.uv)[faces].mean(axis=1)
    th, tw = texture.shape[:2]
    cols = np.clip((uv[:, 0] * tw).astype(int), 0, tw - 1)
    rows = np.clip(((1 - uv[:, 1]) * th).astype(int), 0, th - 1)
    return xyz, faces, texture[rows, cols]


def view(xyz: np.ndarray, yaw: float, pitch: float, back: float) -> tuple[np.ndarray, float]:
    """Points in a camera turned by `yaw` (about the vertical, degrees; positive looks from
    the right) and `pitch` (from above) about a pivot at the scene's median depth on the
    axis, then moved back by `back` of that depth. Returns (points, pivot depth)."""
    pivot = float(np.median(xyz[:, 2]))
    a, b = math.radians(yaw), math.radians(pitch)
    turn_y = np.array([[math.cos(a), 0, -math.sin(a)], [0, 1, 0], [math.sin(a), 0, math.cos(a)]])
    turn_x = np.array([[1, 0, 0], [0, math.cos(b), -math.sin(b)], [0, math.sin(b), math.cos(b)]])
    centre = np.array([0, 0, pivot], np.float32)
    out = (xyz - centre) @ (turn_x @ turn_y).T.astype(np.float32) + centre
    out[:, 2] += back * pivot
    return out, pivot


def render_points(xyz, rgb, f, size) -> np.ndarray:
    w, h = size
    keep = xyz[:, 2] > 1e-3
    xyz, rgb = xyz[keep], rgb[keep]
    u = (xyz[:, 0] / xyz[:, 2] * f + w / 2).astype(np.int64)
    v = (xyz[:, 1] / xyz[:, 2] * f + h / 2).astype(np.int64)
    image = np.full((h, w, 3), BACKGROUND, np.uint8)
    pix, depth, src = [], [], []
    for dy in (0, 1):
        for dx in (0, 1):
            uu, vv = u + dx, v + dy
            ok = (uu >= 0) & (uu < w) & (vv >= 0) & (vv < h)
            pix.append(vv[ok] * w + uu[ok])
            depth.append(xyz[ok, 2])
            src.append(np.flatnonzero(ok))
    pix, depth, src = np.concatenate(pix), np.concatenate(depth), np.concatenate(src)
    order = np.lexsort((depth, pix))  # by pixel, nearest first
    first = np.unique(pix[order], return_index=True)[1]
    winners = order[first]
    image.reshape(-1, 3)[pix[winners]] = rgb[src[winners]]
    return image


def render_mesh(xyz, faces, colours, f, size) -> np.ndarray:
    w, h = size
    image = np.full((h, w, 3), BACKGROUND, np.uint8)
    z = xyz[:, 2]
    uv = np.stack([xyz[:, 0] / z * f + w / 2, xyz[:, 1] / z * f + h / 2], axis=1)
    face_z = z[faces].max(axis=1)
    front = np.all(z[faces] > 1e-3, axis=1)
    order = np.argsort(-face_z[front])  # far to near: the near ones paint last
    faces, colours = faces[front][order], colours[front][order]
    corners = np.round(uv[faces] * 16).astype(np.int32)  # 4 bits of sub-pixel precision
    for tri, colour in zip(corners, colours.tolist(), strict=True):
        cv2.fillConvexPoly(image, tri, colour, cv2.LINE_AA, shift=4)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scene", type=Path, help="a .ply or .glb from prodepth depth")
    parser.add_argument("out", type=Path, help="a .jpg, or a .png (lossless, to inspect)")
    parser.add_argument("--yaw", type=float, default=28.0)
    parser.add_argument("--pitch", type=float, default=8.0)
    parser.add_argument("--back", type=float, default=0.35, help="dolly out, of the pivot depth")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=800)
    parser.add_argument("--quality", type=int, default=85)
    args = parser.parse_args()
    size = (args.width, args.height)
    if args.scene.suffix.lower() == ".ply":
        xyz, rgb = load_points(args.scene)
        f = args.width / (2 * float(np.max(np.abs(xyz[:, 0] / xyz[:, 2]))))
        moved, _ = view(xyz, args.yaw, args.pitch, args.back)
        image = render_points(moved, rgb, f, size)
    else:
        xyz, faces, colours = load_mesh(args.scene)
        f = args.width / (2 * float(np.max(np.abs(xyz[:, 0] / xyz[:, 2]))))
        moved, _ = view(xyz, args.yaw, args.pitch, args.back)
        image = render_mesh(moved, faces, colours, f, size)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    jpeg = args.out.suffix.lower() in (".jpg", ".jpeg")
    params = [cv2.IMWRITE_JPEG_QUALITY, args.quality] if jpeg else []
    cv2.imwrite(str(args.out), image[:, :, ::-1], params)
    print(f"{args.out}: {args.out.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
