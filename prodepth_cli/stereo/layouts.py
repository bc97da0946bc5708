"""Packing a stereo pair into one image: side by side, top and bottom, crossed, squeezed to
half size, or a red-cyan anaglyph; and the file-name tags players recognise them by.

Each function takes bands of rows of both eyes, `(n, w, 3)` float32 sRGB in [0, 1], and
works on each row on its own (or, for `half-tb`, on pairs of rows: bands of an even number of
rows), so a photograph of any size is packed band by band.
"""

from __future__ import annotations

import cv2
import numpy as np

# layout -> file-name tag (as 3D players and VR galleries recognise them)
LAYOUTS = {
    "sbs": "_LRF_Full_SBS",  # left eye | right eye, each at full size
    "half-sbs": "_LR",  # the same, each eye squeezed to half the width
    "tb": "_TBF_fulltb",  # left eye above the right, each at full size
    "half-tb": "_TB",  # the same, each eye squeezed to half the height
    "cross": "_RLF_cross",  # right eye | left eye: for cross-eyed free viewing
    "anaglyph": "_redcyan",  # one image for red (left) / cyan (right) glasses
}
STACKED = ("tb", "half-tb")  # one eye above the other: written one eye after the other

# Dubois' least-squares red-cyan anaglyph matrices, applied to linear RGB of each eye (rows:
# the anaglyph's R, G, B; columns: the eye's R, G, B). Published by Eric Dubois, "A
# projection method to generate anaglyph stereo images", ICASSP 2001, with these values for
# red-cyan glasses in his note "Least squares anaglyph: how to use the matrices in
# Photoshop", https://www.site.uottawa.ca/~edubois/anaglyph/LeastSquaresHowToPhotoshop.pdf
DUBOIS_LEFT = np.array(
    [[0.437, 0.449, 0.164], [-0.062, -0.062, -0.024], [-0.048, -0.050, -0.017]], np.float32
)
DUBOIS_RIGHT = np.array(
    [[-0.011, -0.032, -0.007], [0.377, 0.761, 0.009], [-0.026, -0.093, 1.234]], np.float32
)


def half(n: int) -> int:
    """A squeezed eye's size along a side of `n` pixels (rounded up: nothing dropped)."""
    return (n + 1) // 2


def output_hw(layout: str, h: int, w: int) -> tuple[int, int]:
    """The packed image's (height, width) for eyes of (h, w)."""
    return {
        "sbs": (h, 2 * w),
        "cross": (h, 2 * w),
        "half-sbs": (h, 2 * half(w)),
        "tb": (2 * h, w),
        "half-tb": (2 * half(h), w),
        "anaglyph": (h, w),
    }[layout]


def pack_band(layout: str, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The packed rows for bands of the two eyes, `(n, w, 3)` each, in a layout that keeps
    rows together (not `STACKED`): `(n, W, 3)` float32."""
    if layout == "sbs":
        return np.concatenate([left, right], axis=1)
    if layout == "cross":
        return np.concatenate([right, left], axis=1)
    if layout == "half-sbs":
        return np.concatenate([squeeze_width(left), squeeze_width(right)], axis=1)
    if layout == "anaglyph":
        return anaglyph_dubois(left, right)
    raise ValueError(f"{layout}: the eyes are stacked, one pass each (see STACKED)")


def stacked_band(layout: str, eye: np.ndarray) -> np.ndarray:
    """One eye's band as it goes into a `STACKED` layout: as it is (`tb`) or its pairs of
    rows averaged (`half-tb`; a band's rows start on an even row)."""
    return squeeze_height(eye) if layout == "half-tb" else eye


def squeeze_width(eye: np.ndarray) -> np.ndarray:
    """`(n, w, 3)` -> `(n, half(w), 3)`: area-averaged along each row."""
    n, w = eye.shape[:2]
    return cv2.resize(eye, (half(w), n), interpolation=cv2.INTER_AREA)


def squeeze_height(eye: np.ndarray) -> np.ndarray:
    """`(n, w, 3)` -> `(half(n), w, 3)`: rows 2k and 2k + 1 averaged (an odd last row
    alone)."""
    if len(eye) % 2:
        eye = np.concatenate([eye, eye[-1:]])
    return (eye[0::2] + eye[1::2]) * np.float32(0.5)


def anaglyph_dubois(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Red-cyan anaglyph of two sRGB eyes `(..., 3)` in [0, 1]: Dubois' matrices on linear
    light, clipped to [0, 1], encoded back to sRGB. The red channel carries the left eye
    and the green and blue ones the right, mixed so that each eye's filter passes colours
    close to the original's."""
    mixed = srgb_to_linear(left) @ DUBOIS_LEFT.T + srgb_to_linear(right) @ DUBOIS_RIGHT.T
    return linear_to_srgb(np.clip(mixed, 0.0, 1.0))


def srgb_to_linear(rgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1), float32."""
    rgb = np.asarray(rgb, np.float32)
    return np.where(
        rgb <= 0.04045, rgb / np.float32(12.92), ((rgb + 0.055) / 1.055) ** np.float32(2.4)
    ).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values, float32."""
    linear = np.asarray(linear, np.float32)
    return np.where(
        linear <= 0.0031308,
        linear * np.float32(12.92),
        1.055 * np.power(np.maximum(linear, 0.0031308), np.float32(1 / 2.4)) - 0.055,
    ).astype(np.float32)
