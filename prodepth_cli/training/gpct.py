"""Grouped Patch Consistency Training: four pairwise-overlapping patches of one image.

The group is a 2x2 arrangement of `patch`-sized squares whose neighbours share `overlap`
pixels, placed at a random position of a high-resolution image; all four are refined in the
same forward pass and their disagreement on the shared regions is penalised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def group_origins(y0: int, x0: int, patch: int, overlap: int) -> list[tuple[int, int]]:
    """(y, x) of the four patches of a group whose region starts at (y0, x0)."""
    step = patch - overlap
    return [(y0, x0), (y0, x0 + step), (y0 + step, x0), (y0 + step, x0 + step)]


@dataclass(frozen=True)
class Group:
    """Four patches of one image. rgb `(4, P, P, 3)`, coarse/target `(4, P, P)` float32 in the
    coarse frame, mask `(4, P, P)` bool; origins: each patch's (y, x) inside the group region
    (the consistency loss needs only their relative placement)."""

    rgb: np.ndarray
    coarse: np.ndarray
    target: np.ndarray
    mask: np.ndarray
    origins: list[tuple[int, int]]


def cut_group(
    rgb: np.ndarray,
    coarse: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    patch: int,
    overlap: int,
    rng: np.random.Generator,
) -> Group:
    """A group at a random place of an image at least `2 * patch - overlap` pixels square."""
    region = 2 * patch - overlap
    h, w = mask.shape
    if h < region or w < region:
        raise ValueError(f"image {h}x{w} is smaller than the GPCT region {region}")
    y0, x0 = int(rng.integers(0, h - region + 1)), int(rng.integers(0, w - region + 1))
    origins = group_origins(0, 0, patch, overlap)
    crops = {name: [] for name in ("rgb", "coarse", "target", "mask")}
    for oy, ox in origins:
        ys, xs = slice(y0 + oy, y0 + oy + patch), slice(x0 + ox, x0 + ox + patch)
        for name, a in (("rgb", rgb), ("coarse", coarse), ("target", target), ("mask", mask)):
            crops[name].append(a[ys, xs])
    return Group(*(np.stack(crops[k]) for k in ("rgb", "coarse", "target", "mask")), origins)
