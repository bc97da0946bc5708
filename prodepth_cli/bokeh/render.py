"""The classical bokeh engine: layered far-to-near scatter with disc kernels in linear light.

The signed circle of confusion (CoC, `lens.signed_coc`) is cut into layers at a ladder of
radii (dense near the focal plane, geometric beyond); each pixel belongs to its two nearest
layers with linear (hat) weights, so layer boundaries leave no steps. Each layer's
premultiplied colour and coverage are scattered with one disc of its radius (a uniform disc is
the same as a scatter; large radii are filtered on a downsampled copy, which loses nothing in
a blur that wide) and composited "over" what lies behind it. The result is divided by the
accumulated coverage, which fills the background hidden behind a blurred foreground from its
neighbours instead of darkening it: no halo, no bleeding of a sharp subject outward.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

_DENSE_RADII = (0.0, 1.0, 2.0, 3.0)  # px: fine steps near focus, where the eye is keenest
_RADIUS_RATIO = 1.3  # beyond them, each layer's radius is this times the previous one
_DIRECT_RADIUS = 4.0  # discs below this radius are filtered at full resolution
_MAX_RADIUS_SHARE = 0.25  # CoC radii are capped at this share of the long side
_FOCUS_RADIUS = 0.5  # a disc smaller than this is a point: the layer is left as it is


@dataclass(frozen=True)
class Highlights:
    """Clipped highlights out of focus get their energy back (in linear light):
    `I·(1 + gain·m_bright·m_blur)`, `m_bright` ramping from `threshold` (sRGB, max channel) to
    1, `m_blur` from a CoC radius of `blur_from` px to twice that."""

    gain: float = 3.0
    threshold: float = 0.9
    blur_from: float = 1.5


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1 curve), float32."""
    rgb = rgb.astype(np.float32, copy=False)
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(lin: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB-encoded float32 in [0, 1] (values above 1 clip)."""
    lin = np.clip(lin, 0.0, 1.0)
    return np.where(lin <= 0.0031308, lin * 12.92, 1.055 * lin ** (1 / 2.4) - 0.055).astype(
        np.float32
    )


def radius_ladder(coc_min: float, coc_max: float) -> np.ndarray:
    """Signed layer radii (px), ascending (far to near), covering [coc_min, coc_max]."""
    ladder = list(_DENSE_RADII)
    reach = max(abs(coc_min), abs(coc_max))
    while ladder[-1] < reach:
        ladder.append(ladder[-1] * _RADIUS_RATIO)
    ladder = np.array(ladder, np.float32)
    signed = np.concatenate([-ladder[:0:-1], ladder])
    # keep the layers inside the range plus one beyond each end, for the hat weights
    lo = max(0, int(np.searchsorted(signed, coc_min, "right")) - 1)
    hi = min(len(signed), int(np.searchsorted(signed, coc_max, "left")) + 1)
    return signed[lo:hi]


def disc_kernel(radius: float) -> np.ndarray:
    """A normalised, anti-aliased disc of `radius` px: `(2R+1, 2R+1)` float32, sums to 1."""
    n = int(np.ceil(radius + 0.5))
    yy, xx = np.mgrid[-n : n + 1, -n : n + 1].astype(np.float32)
    kernel = np.clip(radius + 0.5 - np.sqrt(xx * xx + yy * yy), 0.0, 1.0)
    return (kernel / kernel.sum()).astype(np.float32)


def layer_scale(radius: float) -> int:
    """The power-of-2 downsampling at which a disc of `radius` px is filtered: discs up to
    `_DIRECT_RADIUS` at full resolution, wider ones with 4..8 px discs on a block-averaged
    copy (nothing is lost: the disc removes those frequencies anyway)."""
    if radius < _DIRECT_RADIUS:
        return 1
    return 1 << int(np.floor(np.log2(radius / _DIRECT_RADIUS)))


def scatter_disc(layer: np.ndarray, radius: float) -> np.ndarray:
    """Spread every pixel of `(h, w, c)` float32 over a disc of `radius` px (sum preserved;
    zero outside the array, which the final coverage division compensates)."""
    if radius < _FOCUS_RADIUS:
        return layer
    return cv2.filter2D(layer, -1, disc_kernel(radius), borderType=cv2.BORDER_CONSTANT)


def max_radius(h: int, w: int) -> float:
    """The largest CoC radius drawn for an `h` x `w` image: a wider disc is a wash anyway."""
    return _MAX_RADIUS_SHARE * max(h, w)


def render_bokeh(
    rgb: np.ndarray, coc: np.ndarray, highlights: Highlights | None = Highlights()
) -> np.ndarray:
    """Shallow depth of field for one image.

    rgb: `(H, W, 3)` float32 sRGB in [0, 1]. coc: `(H, W)` signed CoC radius in px
    (`lens.signed_coc`: positive = in front of the focal plane). Returns `(H, W, 3)` float32
    sRGB in [0, 1].

    Layers go far to near. Each is filtered at its own scale (`layer_scale`) and the
    accumulator is kept at the finest scale seen so far: the far, wide layers of a background
    are composited on a small grid and the accumulator is refined only as layers come nearer
    to the focal plane, which keeps a 12 MP photo to seconds.
    """
    h, w = coc.shape
    if rgb.shape[:2] != (h, w):
        raise ValueError(f"image {rgb.shape[:2]} and CoC {coc.shape} differ in size")
    reach = max_radius(h, w)
    coc = np.clip(coc, -reach, reach)
    lin = srgb_to_linear(rgb)
    if highlights is not None:
        lin = boost_highlights(rgb, lin, coc, highlights)
    radii = radius_ladder(float(coc.min()), float(coc.max()))
    block = max(layer_scale(abs(float(r))) for r in radii)
    ph, pw = -(-h // block) * block, -(-w // block) * block  # whole blocks at every scale
    acc_scale = layer_scale(abs(float(radii[0])))
    acc = np.zeros((ph // acc_scale, pw // acc_scale, 4), np.float32)  # premult. RGB + cover
    for j, level in enumerate(radii):
        radius = abs(float(level))
        lower = radii[j - 1] if j > 0 else None
        upper = radii[j + 1] if j + 1 < len(radii) else None
        box = _layer_box(coc, level, lower, upper)
        if box is None:
            continue
        s = layer_scale(radius)
        if s < acc_scale:  # nearer the focal plane: refine the accumulator
            acc = cv2.resize(acc, (pw // s, ph // s), interpolation=cv2.INTER_LINEAR)
            acc_scale = s
        y0, y1, x0, x1 = _grow(box, radius, block, ph, pw)
        layer = np.zeros((y1 - y0, x1 - x0, 4), np.float32)
        yh, xw = min(y1, h) - y0, min(x1, w) - x0  # the part inside the image
        weight = _hat(coc[y0 : y0 + yh, x0 : x0 + xw], float(level), lower, upper)
        np.multiply(lin[y0 : y0 + yh, x0 : x0 + xw], weight[:, :, None], out=layer[:yh, :xw, :3])
        layer[:yh, :xw, 3] = weight
        if s > 1:
            layer = cv2.resize(
                layer, ((x1 - x0) // s, (y1 - y0) // s), interpolation=cv2.INTER_AREA
            )
        spread = scatter_disc(layer, radius / s)
        if s != acc_scale:  # a blurred foreground over a finer accumulator
            size = ((x1 - x0) // acc_scale, (y1 - y0) // acc_scale)
            spread = cv2.resize(spread, size, interpolation=cv2.INTER_LINEAR)
        a = acc_scale
        region = acc[y0 // a : y1 // a, x0 // a : x1 // a]
        region *= 1.0 - spread[:, :, 3:4]  # "over": this layer hides what is behind it
        region += spread
    if acc_scale > 1:
        acc = cv2.resize(acc, (pw, ph), interpolation=cv2.INTER_LINEAR)
    acc = acc[:h, :w]
    coverage = np.maximum(acc[:, :, 3:4], 1e-6)
    return linear_to_srgb(acc[:, :, :3] / coverage)


def boost_highlights(
    rgb: np.ndarray, lin: np.ndarray, coc: np.ndarray, params: Highlights
) -> np.ndarray:
    """Linear `(H, W, 3)` with clipped, out-of-focus highlights brightened (see Highlights)."""
    peak = rgb.max(axis=2)
    bright = np.clip((peak - params.threshold) / (1.0 - params.threshold), 0.0, 1.0)
    blurred = np.clip(np.abs(coc) / params.blur_from - 1.0, 0.0, 1.0)
    return lin * (1.0 + params.gain * bright * blurred)[:, :, None]


def _hat(c: np.ndarray, level: float, lower: float | None, upper: float | None) -> np.ndarray:
    """Membership of CoC values `c` in the layer at `level`: 1 there, falling linearly to 0 at
    the neighbouring levels (the outermost layers take everything beyond them)."""
    weight = np.ones_like(c)
    if lower is not None:
        weight = np.minimum(weight, (c - lower) / (level - lower))
    if upper is not None:
        weight = np.minimum(weight, (upper - c) / (upper - level))
    return np.clip(weight, 0.0, 1.0, out=weight)


def _layer_box(
    coc: np.ndarray, level: float, lower: float | None, upper: float | None
) -> tuple[int, int, int, int] | None:
    """Bounding box `(y0, y1, x0, x1)` of the pixels with weight in this layer, or None."""
    lo = -np.inf if lower is None else lower
    hi = np.inf if upper is None else upper
    inside = (coc > lo) & (coc < hi)
    rows = np.flatnonzero(inside.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(inside[rows[0] : rows[-1] + 1].any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _grow(box: tuple[int, int, int, int], radius: float, block: int, ph: int, pw: int):
    """`box` grown by the disc's reach and snapped outward to whole `block`s."""
    m = int(np.ceil(radius)) + 2
    y0, y1, x0, x1 = box
    y0, x0 = max(0, y0 - m) // block * block, max(0, x0 - m) // block * block
    y1, x1 = min(ph, -(-(y1 + m) // block) * block), min(pw, -(-(x1 + m) // block) * block)
    return y0, y1, x0, x1
