"""Synthetic RGB + exact disparity scenes, ray-cast on the CPU with numpy and OpenCV.

A scene is a ground plane (floor, road or table top) with one of four layouts on it (a room,
a tabletop, a street, open ground): walls or building fronts, textured boxes, spheres,
upright cylinders, leaning boards, poles and hanging wires, composited with a z-buffer. The camera
follows the pinhole model: a pixel (u, v) casts the ray `r = R @ ((u-cx)/f, (v-cy)/f, 1)`
and a hit at parameter t lies at camera depth Z = t metres; disparity is 1 / Z (1/m,
larger = nearer, 0 for the sky). Photometric effects (shading, haze, defocus, noise, colour
jitter) are applied to the image only, so the disparity stays exact.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from prodepth_cli.training.textures import texture_bank


@dataclass(frozen=True)
class SyntheticSample:
    """One rendered scene.

    rgb: `(H, W, 3)` float32 in [0, 1]; disparity: `(H, W)` float32 in 1/m (larger = nearer,
    0 = sky); valid: `(H, W)` bool, True where the disparity is exact.
    """

    rgb: np.ndarray
    disparity: np.ndarray
    valid: np.ndarray


@dataclass
class _Canvas:
    """The z-buffer being painted: rays `(H, W, 3)`, disparity, colour, shading."""

    rays: np.ndarray
    disp: np.ndarray
    rgb: np.ndarray

    def paint(self, disp: np.ndarray, rgb: np.ndarray, hit: np.ndarray, box: tuple) -> None:
        """Z-test `disp` (over `box` = (y0, y1, x0, x1)) and keep the nearer surface."""
        y0, y1, x0, x1 = box
        cur = self.disp[y0:y1, x0:x1]
        win = hit & (disp > cur)
        cur[win] = disp[win]
        self.rgb[y0:y1, x0:x1][win] = rgb[win]


def _rotation(pitch: float, roll: float, yaw: float) -> np.ndarray:
    cp, sp, cr, sr, cy, sy = (
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
        np.cos(yaw),
        np.sin(yaw),
    )
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    return ry @ rx @ rz


def _sample_texture(tex: np.ndarray, a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    """Texture looked up at surface coordinates (a, b) metres, `scale` texture px per metre."""
    size = tex.shape[0]
    mx = np.mod(a * scale, size - 1).astype(np.float32)
    my = np.mod(b * scale, size - 1).astype(np.float32)
    return cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _lambert(normal: np.ndarray, light: np.ndarray, ambient: float) -> np.ndarray:
    """Shading factor for normals `(..., 3)` facing the camera, in [ambient, 1]."""
    return ambient + (1 - ambient) * np.clip(normal @ light, 0, 1)


def _plane_hits(
    rays: np.ndarray,
    normal: np.ndarray,
    point: np.ndarray,
    extent: tuple[np.ndarray, np.ndarray, float, float] | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ray parameter t (= depth, m), hit mask and surface coordinates (a, b) for `rays`."""
    denom = rays @ normal
    k = float(normal @ point)
    t = k / np.where(np.abs(denom) < 1e-9, 1e-9, denom)
    hit = t > 0.05
    if extent is None:
        e1 = np.cross(normal, [0.0, 0.0, 1.0] if abs(normal[2]) < 0.9 else [1.0, 0.0, 0.0])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(normal, e1)
    else:
        e1, e2 = extent[0], extent[1]
    rel = rays * t[..., None] - point
    a, b = rel @ e1, rel @ e2
    if extent is not None:
        hit &= (np.abs(a) <= extent[2]) & (np.abs(b) <= extent[3])
    return t, hit, a, b


def _window(hit_coarse: np.ndarray, stride: int, shape: tuple[int, int]) -> tuple | None:
    """Full-resolution box (y0, y1, x0, x1) around the hits of a grid sampled every `stride`
    pixels, grown by one cell; None when nothing was hit."""
    ys, xs = np.nonzero(hit_coarse)
    if len(ys) == 0:
        return None
    h, w = shape
    y0, y1 = max(0, (ys.min() - 1) * stride), min(h, (ys.max() + 2) * stride)
    x0, x1 = max(0, (xs.min() - 1) * stride), min(w, (xs.max() + 2) * stride)
    return (y0, y1, x0, x1)


def _plane(
    cv: _Canvas,
    normal: np.ndarray,
    point: np.ndarray,
    tex: np.ndarray,
    rng: np.random.Generator,
    extent: tuple[np.ndarray, np.ndarray, float, float] | None,
    light: np.ndarray,
) -> None:
    """Paint the plane through `point` with `normal`; `extent` = (e1, e2, half1, half2) bounds
    it to a rectangle spanned by unit vectors e1, e2 around `point` (None: infinite)."""
    h, w = cv.disp.shape
    box: tuple | None = (0, h, 0, w)
    if extent is not None:  # find the rectangle on a coarse grid first: most are small
        stride = 8
        _, coarse, _, _ = _plane_hits(cv.rays[::stride, ::stride], normal, point, extent)
        box = _window(coarse, stride, (h, w))
        if box is None:
            return
    y0, y1, x0, x1 = box
    t, hit, a, b = _plane_hits(cv.rays[y0:y1, x0:x1], normal, point, extent)
    if not hit.any():
        return
    disp = np.where(hit, 1.0 / np.maximum(t, 1e-6), 0).astype(np.float32)
    scale = rng.uniform(60, 400)
    color = _sample_texture(tex, a + 1000.0, b + 1000.0, scale)
    facing = -normal if normal @ point > 0 else normal
    shade = float(_lambert(facing, light, rng.uniform(0.3, 0.6)))
    tint = rng.uniform(0.6, 1.2, 3).astype(np.float32)
    cv.paint(disp, np.clip(color * shade * tint, 0, 1), hit, box)


def _paint_curved(
    cv: _Canvas,
    t: np.ndarray,
    hit: np.ndarray,
    color: np.ndarray,
    normal: np.ndarray,
    light: np.ndarray,
    ambient: float,
) -> None:
    """Z-test and paint a curved surface hit at ray parameter `t` (over the whole frame): its
    texture `color` Lambert-shaded by the per-pixel `normal`."""
    h, w = cv.disp.shape
    shade = _lambert(normal, light, ambient)[..., None]
    disp = np.where(hit, 1.0 / np.maximum(t, 1e-6), 0).astype(np.float32)
    cv.paint(disp, np.clip(color * shade, 0, 1).astype(np.float32), hit, (0, h, 0, w))


def _sphere(
    cv: _Canvas,
    center: np.ndarray,
    radius: float,
    tex: np.ndarray,
    light: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Paint a textured, Lambert-shaded sphere."""
    r = cv.rays
    a = np.einsum("hwc,hwc->hw", r, r)
    b = r @ center
    c = float(center @ center - radius**2)
    disc = b * b - a * c
    hit = disc > 0
    t = (b - np.sqrt(np.maximum(disc, 0))) / a
    hit &= t > 0.05
    if not hit.any():
        return
    pts = r * t[..., None]
    nrm = (pts - center) / radius
    u = np.arctan2(nrm[..., 0], nrm[..., 2]) * radius
    v = np.arcsin(np.clip(nrm[..., 1], -1, 1)) * radius
    color = _sample_texture(tex, u + 100.0, v + 100.0, rng.uniform(100, 400))
    _paint_curved(cv, t, hit, color, nrm, light, rng.uniform(0.15, 0.4))


def _cylinder(
    cv: _Canvas,
    base: np.ndarray,
    radius: float,
    height: float,
    tex: np.ndarray,
    light: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Paint a vertical cylinder (world y is down) standing at `base` (its bottom centre)."""
    r = cv.rays
    rx, rz = r[..., 0], r[..., 2]
    cx, cz = base[0], base[2]
    a = rx * rx + rz * rz
    b = rx * cx + rz * cz
    c = cx * cx + cz * cz - radius**2
    disc = b * b - a * c
    hit = disc > 0
    t = (b - np.sqrt(np.maximum(disc, 0))) / np.maximum(a, 1e-12)
    y = r[..., 1] * t
    hit &= (t > 0.05) & (y <= base[1]) & (y >= base[1] - height)
    if not hit.any():
        return
    nx, nz = (rx * t - cx) / radius, (rz * t - cz) / radius
    nrm = np.stack([nx, np.zeros_like(nx), nz], -1)
    color = _sample_texture(tex, np.arctan2(nx, nz) * radius + 100, y + 100, rng.uniform(100, 400))
    _paint_curved(cv, t, hit, color, nrm, light, rng.uniform(0.2, 0.5))


def _wire(
    cv: _Canvas,
    p0: np.ndarray,
    p1: np.ndarray,
    sag: float,
    thickness: int,
    color: np.ndarray,
    intr: tuple[float, float, float],
    rot: np.ndarray,
) -> None:
    """Paint a hanging wire (a parabola from p0 to p1 sagging by `sag` m) as thin segments."""
    f, cx, cy = intr
    h, w = cv.disp.shape
    s = np.linspace(0, 1, 64)[:, None]
    pts = p0 * (1 - s) + p1 * s
    pts[:, 1] += sag * 4 * s[:, 0] * (1 - s[:, 0])
    cam = pts @ rot  # world -> camera frame: R^T p for each row p (R orthonormal)
    if np.any(cam[:, 2] <= 0.1):
        return
    uv = np.stack([f * cam[:, 0] / cam[:, 2] + cx, f * cam[:, 1] / cam[:, 2] + cy], 1)
    layer = np.zeros((h, w), np.float32)
    for i in range(len(uv) - 1):
        d = 0.5 * (1 / cam[i, 2] + 1 / cam[i + 1, 2])
        a = tuple(np.round(uv[i] * 16).astype(int))
        b = tuple(np.round(uv[i + 1] * 16).astype(int))
        cv2.line(layer, a, b, float(d), thickness, cv2.LINE_8, shift=4)
    hit = layer > 0
    if hit.any():
        rgb = np.broadcast_to(color.astype(np.float32), (h, w, 3))
        cv.paint(layer, rgb, hit, (0, h, 0, w))


def _box(
    cv: _Canvas,
    center: np.ndarray,
    half: np.ndarray,
    yaw: float,
    tex: np.ndarray,
    light: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Paint the six faces of a box rotated by `yaw` about the vertical axis."""
    rot = _rotation(0.0, 0.0, yaw)
    axes = rot.T  # rows: box axes in world coordinates
    for i in range(3):
        j, k = [m for m in range(3) if m != i]
        for sign in (-1.0, 1.0):
            n = axes[i] * sign
            extent = (axes[j], axes[k], float(half[j]), float(half[k]))
            face = center + n * half[i]
            if n @ face < 0:  # back faces are hidden: skip them
                _plane(cv, n, face, tex, rng, extent, light)


def _sky(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    top, bottom = rng.uniform(0.3, 1.0, 3), rng.uniform(0.5, 1.0, 3)
    g = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    sky = top * (1 - g) + bottom * g
    return np.broadcast_to(sky, (h, w, 3)).astype(np.float32).copy()


def _defocus(
    rgb: np.ndarray, disp: np.ndarray, rng: np.random.Generator, focus: float | None
) -> np.ndarray:
    """Depth-dependent blur: blend of a few blur levels chosen by |disp - focus disp|; the
    focus is `focus` when given (a subject), else a random depth of the scene."""
    quantile = float(np.quantile(disp, rng.uniform(0.2, 0.9)))
    focus = quantile if focus is None else focus
    spread = np.abs(disp - focus) / max(float(disp.max()), 1e-6)
    max_sigma = rng.uniform(0.5, 3.0) * rgb.shape[1] / 512
    sigma = np.clip(spread * max_sigma * 3, 0, max_sigma)
    levels = np.linspace(0, max_sigma, 4)
    blurred = [rgb] + [cv2.GaussianBlur(rgb, (0, 0), s) for s in levels[1:]]
    pos = np.clip(sigma / max(levels[1], 1e-6), 0, len(levels) - 1.001)
    lo = np.floor(pos).astype(int)
    frac = (pos - lo)[..., None]
    stack = np.stack(blurred, 0)
    yy, xx = np.indices(lo.shape)
    return stack[lo, yy, xx] * (1 - frac) + stack[lo + 1, yy, xx] * frac


def _photometric(
    rgb: np.ndarray, disp: np.ndarray, rng: np.random.Generator, focus: float | None = None
) -> np.ndarray:
    """Haze, defocus (on `focus` when given), colour jitter, vignetting and sensor noise;
    returns float32 in [0, 1]."""
    if rng.random() < 0.5:
        depth = 1.0 / np.maximum(disp, 1e-3)
        beta = rng.uniform(0.005, 0.08)
        t = np.exp(-beta * depth)[..., None]
        haze = rng.uniform(0.6, 1.0, 3).astype(np.float32)
        rgb = rgb * t + haze * (1 - t)
    if rng.random() < 0.6:
        rgb = _defocus(rgb.astype(np.float32), disp, rng, focus)
    gains = rng.uniform(0.8, 1.2, 3)
    rgb = np.clip(rgb * gains * rng.uniform(0.7, 1.3), 0, 1) ** rng.uniform(0.7, 1.4)
    gray = rgb.mean(-1, keepdims=True)
    rgb = gray + (rgb - gray) * rng.uniform(0.5, 1.4)
    h, w = disp.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) ** 2 + (yy - h / 2) ** 2) / (0.25 * (w * w + h * h))
    rgb = rgb * (1 - rng.uniform(0, 0.4) * r2)[..., None]
    rgb = rgb + rng.normal(0, rng.uniform(0.002, 0.03), rgb.shape)
    return np.clip(rgb, 0, 1).astype(np.float32)


@dataclass
class _Scene:
    """What the layout functions paint with: the canvas, the camera and the random source."""

    cv: _Canvas
    rng: np.random.Generator
    bank: tuple[np.ndarray, ...]
    light: np.ndarray
    intr: tuple[float, float, float]
    rot: np.ndarray
    cam_h: float  # height of the camera above the support plane (world y is down), metres

    def tex(self) -> np.ndarray:
        return self.bank[self.rng.integers(len(self.bank))]

    def plane(self, normal: np.ndarray, point: np.ndarray, extent=None) -> None:
        _plane(self.cv, normal, point, self.tex(), self.rng, extent, self.light)

    def spot(self, near: float, far: float, spread: float = 0.8) -> np.ndarray:
        """A point on the support plane, log-uniform in distance (many mid-range objects,
        few that fill the frame), within `spread` x distance of the optical axis."""
        z = np.exp(self.rng.uniform(np.log(near), np.log(far)))
        return np.array([self.rng.uniform(-spread, spread) * z, self.cam_h, z])


UP = np.array([0.0, 1.0, 0.0])


def _room(sc: _Scene, depth: float, half_w: float, ceiling: bool) -> None:
    """A back wall `depth` m away, side walls `half_w` m to each side (each 80 %), a ceiling."""
    yaw = sc.rng.uniform(-0.4, 0.4)
    back = np.array([np.sin(yaw), 0, np.cos(yaw)])
    sc.plane(back, back * depth)
    for side in (-1, 1):
        if sc.rng.random() < 0.8:
            n = np.array([np.cos(yaw) * side, 0, -np.sin(yaw) * side])
            sc.plane(n, n * half_w)
    if ceiling:
        sc.plane(UP, np.array([0, sc.cam_h - sc.rng.uniform(2.4, 3.5), 0]))


def _objects(sc: _Scene, near: float, far: float, size: float, count: int) -> None:
    """`count` objects of about `size` m resting on the support plane between `near` and
    `far` m: boxes, spheres, upright cylinders and a few leaning boards (1 in 10 float)."""
    rng = sc.rng
    for _ in range(count):
        p = sc.spot(near, far)
        lift = rng.uniform(0, 3 * size) if rng.random() < 0.1 else 0.0
        kind = rng.choice(4, p=[0.45, 0.2, 0.25, 0.1])
        if kind == 0:
            half = size * rng.uniform(0.2, 1.2, 3)
            p[1] -= half[1] + lift
            _box(sc.cv, p, half, rng.uniform(0, np.pi), sc.tex(), sc.light, rng)
        elif kind == 1:
            rad = size * rng.uniform(0.2, 0.9)
            p[1] -= rad + lift
            _sphere(sc.cv, p, rad, sc.tex(), sc.light, rng)
        elif kind == 2:
            p[1] -= lift
            rad, tall = size * rng.uniform(0.1, 0.5), size * rng.uniform(0.6, 3)
            _cylinder(sc.cv, p, rad, tall, sc.tex(), sc.light, rng)
        else:
            n = rng.normal(size=3)
            n[2] = -abs(n[2]) - 0.5
            n /= np.linalg.norm(n)
            e1 = np.cross(n, UP)
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(n, e1)
            h1, h2 = (float(size * rng.uniform(0.3, 1.5)) for _ in range(2))
            p[1] -= h2 * abs(e2[1]) + lift
            sc.plane(n, p, (e1, e2, h1, h2))


def _poles(sc: _Scene, near: float, far: float, count: int) -> None:
    """Thin upright poles, neighbours joined by sagging wires (thin structures)."""
    rng, tops = sc.rng, []
    for _ in range(count):
        p = sc.spot(near, far)
        height_m = rng.uniform(1.5, 6)
        _cylinder(sc.cv, p, rng.uniform(0.01, 0.08), height_m, sc.tex(), sc.light, rng)
        tops.append(p - np.array([0, height_m, 0]))
    width = sc.cv.disp.shape[1]
    for a, b in zip(tops[:-1], tops[1:], strict=True):
        if rng.random() < 0.7:
            thick = max(1, int(round(width / 700 * rng.uniform(0.6, 2))))
            colour = rng.uniform(0, 0.4, 3)
            _wire(sc.cv, a, b, rng.uniform(0.05, 0.8), thick, colour, sc.intr, sc.rot)


def _indoor(sc: _Scene) -> None:
    """A room with furniture-sized objects on the floor."""
    rng = sc.rng
    depth = rng.uniform(3, 12)
    _room(sc, depth, rng.uniform(1.5, 5), rng.random() < 0.5)
    _objects(sc, 1.0, depth, rng.uniform(0.3, 0.8), int(rng.integers(2, 9)))


def _tabletop(sc: _Scene) -> None:
    """Small things on a table seen from just above it, a backdrop close behind."""
    rng = sc.rng
    depth = rng.uniform(0.8, 3.0)
    _room(sc, depth, rng.uniform(0.5, 2.0), False)
    _objects(sc, 0.3, depth, rng.uniform(0.05, 0.2), int(rng.integers(3, 12)))


def _street(sc: _Scene) -> None:
    """A road between building fronts, car-sized boxes, poles and wires, sky or far end."""
    rng = sc.rng
    for side in (-1, 1):
        if rng.random() < 0.8:
            n = np.array([side * np.cos(rng.uniform(-0.1, 0.1)), 0, rng.uniform(-0.1, 0.1)])
            sc.plane(n / np.linalg.norm(n), n * rng.uniform(3, 12))
    if rng.random() < 0.4:
        sc.plane(np.array([0, 0, 1.0]), np.array([0, 0, rng.uniform(40, 120)]))
    _objects(sc, 3.0, 50.0, rng.uniform(0.8, 1.6), int(rng.integers(2, 10)))
    _poles(sc, 2.0, 40.0, int(rng.integers(0, 6)))


def _open(sc: _Scene) -> None:
    """Open ground with a far slanted background (hill, building front) or sky."""
    rng = sc.rng
    if rng.random() < 0.6:
        yaw = rng.uniform(-0.8, 0.8)
        back = np.array([np.sin(yaw), rng.uniform(-0.1, 0.1), np.cos(yaw)])
        back /= np.linalg.norm(back)
        sc.plane(back, back * rng.uniform(15, 80))
    _objects(sc, 1.5, 30.0, rng.uniform(0.3, 1.2), int(rng.integers(2, 10)))
    _poles(sc, 1.5, 30.0, int(rng.integers(0, 6)))


SUBJECT_FRACTION = 0.35  # of the scenes that get a subject in front (see `_subject`)


def _blob(
    shape: tuple[int, int], centre: tuple[float, float], radii: tuple[float, float], rng
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An irregular rounded outline around `centre` (u, v) with `radii` (px): an ellipse whose
    radius wobbles with a few harmonics of the angle. Returns rho (0 at the centre, 1 on the
    outline, > 1 outside) and the unit offsets (du, dv) for a bulging normal."""
    h, w = shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float32)
    du, dv = (u - centre[0]) / radii[0], (v - centre[1]) / radii[1]
    angle = np.arctan2(dv, du)
    wobble = np.ones_like(angle)
    for k in range(2, 6):
        wobble += rng.uniform(0, 0.15) / np.sqrt(k) * np.cos(k * angle + rng.uniform(0, 2 * np.pi))
    return np.hypot(du, dv) / wobble, du, dv


def _subject(sc: _Scene) -> float:
    """A photograph's subject: an irregular rounded figure (one to three blobs stacked, like
    a body and head, a vase, an animal) standing on the support plane in front of what the
    layout painted, near the middle of the frame, textured and shaded as a bulging surface.
    Returns its disparity (the focus of a shallow depth of field)."""
    cv, rng = sc.cv, sc.rng
    h, w = cv.disp.shape
    f, cx, cy = sc.intr
    behind = cv.disp[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
    solid = behind[behind > 0]
    z_behind = float(np.median(1.0 / solid)) if solid.size else 50.0
    z = max(0.3, z_behind * rng.uniform(0.1, 0.6))
    ground = np.array([rng.uniform(-0.25, 0.25) * z * w / f, sc.cam_h, z]) @ sc.rot
    scale = f / ground[2]  # pixels per metre at the subject
    foot_u, foot_v = f * ground[0] / ground[2] + cx, f * ground[1] / ground[2] + cy
    tall = rng.uniform(0.35, 1.1) * h  # pixels; a portrait may run out of the frame
    width = tall * rng.uniform(0.25, 0.8)
    tex, tex_scale = sc.tex(), rng.uniform(100, 400)
    ambient, tint = rng.uniform(0.2, 0.5), rng.uniform(0.6, 1.2, 3).astype(np.float32)
    parts = int(rng.integers(1, 4))
    top = foot_v
    for i in range(parts):
        part_h = tall * (rng.uniform(0.45, 0.7) if i == 0 else rng.uniform(0.15, 0.35))
        part_w = width * (1.0 if i == 0 else rng.uniform(0.35, 0.8))
        centre = (foot_u + rng.uniform(-0.15, 0.15) * width, top - part_h / 2)
        top -= part_h * rng.uniform(0.75, 0.95)  # parts overlap a little
        rho, du, dv = _blob((h, w), centre, (part_w / 2, part_h / 2), rng)
        hit = rho < 1
        if not hit.any():
            continue
        bulge = np.sqrt(np.clip(1 - rho * rho, 0, 1))
        depth = ground[2] - bulge * (part_w / 2 / scale) * rng.uniform(0.5, 1.0)
        disp = np.where(hit, 1.0 / np.maximum(depth, 0.05), 0).astype(np.float32)
        normal = np.stack([du, dv, -np.maximum(bulge, 0.05)], -1)
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        v, u = np.mgrid[0:h, 0:w].astype(np.float32)
        colour = _sample_texture(tex, u / scale + 100.0, v / scale + 100.0, tex_scale) * tint
        shade = _lambert(normal @ sc.rot.T, sc.light, ambient)[..., None]
        cv.paint(disp, np.clip(colour * shade, 0, 1).astype(np.float32), hit, (0, h, 0, w))
    return 1.0 / ground[2]


# name: (layout, its probability, the camera height range above its support plane in metres)
LAYOUTS = {
    "room": (_indoor, 0.3, (1.0, 2.0)),
    "tabletop": (_tabletop, 0.25, (0.1, 0.5)),
    "street": (_street, 0.2, (1.2, 2.5)),
    "open": (_open, 0.25, (0.8, 2.5)),
}


def render_scene(
    seed: int, height: int, width: int, layout: str | None = None, subject: bool | None = None
) -> SyntheticSample:
    """Render the scene of `seed` at `(height, width)` pixels; same seed -> identical arrays.

    One of four layouts (`LAYOUTS`; drawn from the seed unless `layout` names one), each
    with its own camera height and object sizes, so that object size, ground contact and
    perspective relate the way they do in photographs. A `SUBJECT_FRACTION` of the scenes
    (or as `subject` says) get a subject in front, most of them in focus; it draws from a
    random stream of its own, so the scenes without one are what they were before it.
    """
    rng = np.random.default_rng(seed)
    f = width * rng.uniform(0.6, 1.5)
    cx = width / 2 + rng.uniform(-0.05, 0.05) * width
    cy = height / 2 + rng.uniform(-0.05, 0.05) * height
    rot = _rotation(rng.uniform(-0.25, 0.3), rng.uniform(-0.06, 0.06), 0.0)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    rays_cam = np.stack([(u - cx) / f, (v - cy) / f, np.ones_like(u)], -1)
    rays = rays_cam @ rot.T.astype(np.float32)  # world frame: y down, camera at origin
    cv = _Canvas(rays, np.zeros((height, width), np.float32), _sky(height, width, rng))
    light = rng.normal(size=3)
    light[1] = -abs(light[1])  # light from above
    light /= np.linalg.norm(light)
    names = list(LAYOUTS)
    drawn = names[rng.choice(len(names), p=[LAYOUTS[n][1] for n in names])]
    paint, _, (lo, hi) = LAYOUTS[layout or drawn]
    sc = _Scene(cv, rng, texture_bank(), light, (f, cx, cy), rot, rng.uniform(lo, hi))
    sc.plane(UP, np.array([0, sc.cam_h, 0]))  # the ground, floor or table top
    paint(sc)
    focus = None
    sub_rng = np.random.default_rng([seed, 1])
    if subject if subject is not None else sub_rng.random() < SUBJECT_FRACTION:
        subject_disp = _subject(dataclasses.replace(sc, rng=sub_rng))
        focus = subject_disp if sub_rng.random() < 0.7 else None
    rgb = _photometric(cv.rgb, cv.disp, rng, focus)
    valid = np.isfinite(cv.disp)
    return SyntheticSample(rgb, cv.disp.astype(np.float32), valid)
