"""Bias Free Masking: the pixels whose ground truth should not teach the network.

PRO masks regions where the training depth is systematically wrong. For real RGB-D frames
that means holes, mixed-depth pixels along depth edges (the sensor averages foreground and
background there), unregistered borders and specular or saturated spots.
"""

from __future__ import annotations

import cv2
import numpy as np


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    return cv2.dilate(mask.astype(np.uint8), k).astype(bool)


def depth_edge_mask(
    disparity: np.ndarray, valid: np.ndarray, rel_jump: float = 0.08, radius: int = 2
) -> np.ndarray:
    """Pixels within `radius` px of a depth edge, `(H, W)` bool.

    An edge is a 4-neighbour step where the disparity changes by more than `rel_jump` of the
    larger of the two values (a relative test, so near and far edges count alike).
    """
    d = np.where(valid, disparity, 0).astype(np.float32)
    edge = np.zeros(d.shape, bool)
    for axis in (0, 1):
        a = np.take(d, range(d.shape[axis] - 1), axis=axis)
        b = np.take(d, range(1, d.shape[axis]), axis=axis)
        ok = np.take(valid, range(d.shape[axis] - 1), axis=axis) & np.take(
            valid, range(1, d.shape[axis]), axis=axis
        )
        jump = ok & (np.abs(a - b) > rel_jump * np.maximum(np.maximum(a, b), 1e-9))
        if axis == 0:
            edge[:-1] |= jump
            edge[1:] |= jump
        else:
            edge[:, :-1] |= jump
            edge[:, 1:] |= jump
    return _dilate(edge, radius)


def saturated_mask(rgb: np.ndarray, level: float = 0.98, radius: int = 2) -> np.ndarray:
    """Specular or clipped spots: all channels above `level` (rgb float in [0, 1]), dilated."""
    return _dilate(np.all(rgb >= level, axis=-1), radius)


def border_mask(shape: tuple[int, int], width: int) -> np.ndarray:
    """True within `width` px of the image border (unregistered or vignetted sensor edge)."""
    m = np.zeros(shape, bool)
    if width > 0:
        m[:width] = m[-width:] = True
        m[:, :width] = m[:, -width:] = True
    return m


def bias_free_mask(
    rgb: np.ndarray,
    disparity: np.ndarray,
    valid: np.ndarray,
    border_px: int = 8,
    hole_radius: int = 2,
    edge_radius: int = 2,
) -> np.ndarray:
    """Pixels the losses may use, `(H, W)` bool: valid, away from holes and depth edges,
    inside the registered border and not saturated.

    rgb: `(H, W, 3)` float in [0, 1]; disparity: `(H, W)` (any scale, larger = nearer);
    valid: `(H, W)` bool raw validity of the ground truth.
    """
    # Reprojected sensors leave a lattice of 1-2 px gaps inside good surfaces: close those
    # first, so that only real holes (and their mixed-depth rims) are masked.
    k = np.ones((5, 5), np.uint8)
    closed = cv2.morphologyEx(valid.astype(np.uint8), cv2.MORPH_CLOSE, k).astype(bool)
    d = np.where(valid, disparity, 0).astype(np.float32)
    filled = np.where(valid, d, cv2.morphologyEx(d, cv2.MORPH_CLOSE, k))
    keep = valid & ~_dilate(~closed, hole_radius)
    keep &= ~depth_edge_mask(filled, closed & (filled > 0), radius=edge_radius)
    keep &= ~border_mask(valid.shape, border_px)
    keep &= ~saturated_mask(rgb)
    return keep
