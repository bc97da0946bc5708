"""Anchoring tiles to the coarse pass: coarse crops under a tile, robust scale-and-shift fits."""

from __future__ import annotations

import cv2
import numpy as np


def crop_coarse(
    coarse: np.ndarray,
    image_hw: tuple[int, int],
    box: tuple[int, int, int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """The part of `coarse` (a `(ch, cw)` map of the whole `image_hw` image) under `box`
    (x0, y0, x1, y1 in image pixels), resampled bilinearly to `out_hw`: `(h, w)` float32."""
    (H, W), (ch, cw), (oh, ow) = image_hw, coarse.shape, out_hw
    x0, y0, x1, y1 = box
    sx, sy = cw / W, ch / H
    # Output pixel centre (u + 0.5) maps to image x0 + (u + 0.5) * (x1 - x0) / ow, then to
    # coarse pixel coordinates (centres at integer + 0.5).
    ax, ay = (x1 - x0) / ow * sx, (y1 - y0) / oh * sy
    bx = (x0 + 0.5 * (x1 - x0) / ow) * sx - 0.5
    by = (y0 + 0.5 * (y1 - y0) / oh) * sy - 0.5
    m = np.array([[ax, 0.0, bx], [0.0, ay, by]], np.float64)
    return cv2.warpAffine(
        coarse.astype(np.float32),
        m,
        (ow, oh),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def fit_robust_scale_shift(
    pred: np.ndarray, target: np.ndarray, iters: int = 6, shift: bool = True
) -> tuple[float, float]:
    """(s, t) making `s * pred + t` match `target` in the L1 sense (IRLS), with s >= 0;
    with `shift=False`, t = 0 and only the scale is fitted (metric maps: zero stays zero).

    L1 rather than least squares: a tile's prediction and the coarse map disagree most at
    depth edges (the coarse map is blurred there), and those pixels must not drag the fit.
    A tile with no contrast (sky, a wall) takes the coarse map's median (s = 0); a
    scale-only fit of it needs no such fallback.
    """
    x = pred.ravel().astype(np.float64)
    y = target.ravel().astype(np.float64)
    x_spread = np.std(x) if shift else np.mean(np.abs(x))
    if not np.isfinite(x_spread) or x_spread <= 1e-9 * (abs(np.mean(x)) + 1e-12):
        return (0.0, float(np.median(y))) if shift else (0.0, 0.0)
    floor = 1e-3 * (np.std(y) + 1e-12)
    w = np.ones_like(x)
    s, t = 0.0, 0.0
    for _ in range(iters):
        s, t = _weighted_line(x, y, w, shift)
        w = 1.0 / np.maximum(np.abs(s * x + t - y), floor)
    if not (np.isfinite(s) and np.isfinite(t)) or s < 0:
        return 0.0, float(np.median(y))
    return s, t


def _weighted_line(x: np.ndarray, y: np.ndarray, w: np.ndarray, shift: bool) -> tuple[float, float]:
    """Weighted least squares `y ~ s * x (+ t)` from the normal equations: a 2x2 solve.
    Plain numpy sums, not BLAS: right after a network call BLAS's threads wait on cores
    that onnxruntime's still hold, and a general solver cost 2 ms a call there."""
    wx = w * x
    sw, swx, swy = float(w.sum()), float(wx.sum()), float((w * y).sum())
    swxx, swxy = float((wx * x).sum()), float((wx * y).sum())
    if not shift:
        return (swxy / swxx if swxx > 0 else 0.0), 0.0
    det = sw * swxx - swx * swx
    if det <= 1e-12 * sw * swxx:
        return 0.0, swy / sw
    return (sw * swxy - swx * swy) / det, (swxx * swy - swx * swxy) / det


def fit_to_coarse(
    tile_disp: np.ndarray,
    coarse: np.ndarray,
    image_hw: tuple[int, int],
    box: tuple[int, int, int, int],
    min_side: int = 8,
    shift: bool = True,
) -> tuple[float, float]:
    """(s, t) that put `tile_disp` (the model's `(h, w)` disparity for `box`) onto the
    coarse disparity under it as `s * tile_disp + t` (t = 0 without `shift`). The fit runs
    at the coarse map's resolution (at least `min_side` samples a side), where the two maps
    carry the same information."""
    (H, W), (ch, cw) = image_hw, coarse.shape
    x0, y0, x1, y1 = box
    gh = max(min_side, round((y1 - y0) * ch / H))
    gw = max(min_side, round((x1 - x0) * cw / W))
    target = crop_coarse(coarse, image_hw, box, (gh, gw))
    return fit_robust_scale_shift(_shrink(tile_disp, (gh, gw)), target, shift=shift)


def _shrink(disp: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """`disp` area-averaged down to `hw`, from every k-th pixel when each output pixel would
    average more than 8 x 8 of them: a 1024 tile fitted at 46 x 46 then reads 1/25 of its
    pixels and still averages ~20 under each sample (the fit is robust, the map smooth)."""
    step = max(1, min(disp.shape[0] // hw[0], disp.shape[1] // hw[1]) // 4)
    sparse = disp[::step, ::step] if step > 1 else disp
    return cv2.resize(sparse, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)
