"""The network's fixed frame: fit a photo into it, and bring the render back to full size.

The TFLite model has one input size (`FRAME_HW`, landscape; BOKEH.md: resizing the
interpreter's input fails). A photo is turned landscape, scaled to fit and padded; the CoC
is scaled with it (radii are in pixels). Back at full size, the network's render is
resized and the photo's own fine detail (what the trip through the frame loses) is put back
where the CoC says the image is in focus, so a 12 MP subject stays 12 MP sharp.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

COC_SCALE = 32.0  # must match prodepth_cli.nets.bokeh.COC_SCALE (no torch import here)
FRAME_HW = (1024, 1536)


@dataclass
class FittedPhoto:
    """A photo in the frame: `rgb` `(fh, fw, 3)` float32 (padded by edge replication),
    `scale` (frame px per photo px), `hw` the photo's part of the frame, `transposed` if
    the photo was portrait."""

    rgb: np.ndarray
    scale: float
    hw: tuple[int, int]
    transposed: bool

    def network_input(self, coc_frame: np.ndarray) -> np.ndarray:
        """`(fh, fw, 4)` float32: sRGB + CoC (frame px) / COC_SCALE."""
        return np.concatenate([self.rgb, (coc_frame / COC_SCALE)[:, :, None]], axis=2).astype(
            np.float32
        )


def _resize(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    shrink = hw[0] < img.shape[0]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(img, (hw[1], hw[0]), interpolation=interp)


def _pad(img: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    h, w = img.shape[:2]
    return cv2.copyMakeBorder(img, 0, hw[0] - h, 0, hw[1] - w, cv2.BORDER_REPLICATE)


def fit_to_frame(rgb: np.ndarray, frame_hw: tuple[int, int] = FRAME_HW) -> FittedPhoto:
    """`(H, W, 3)` float32 sRGB -> FittedPhoto (its CoC is fitted by `fit_coc`)."""
    transposed = rgb.shape[0] > rgb.shape[1]
    if transposed:
        rgb = rgb.transpose(1, 0, 2)
    h, w = rgb.shape[:2]
    scale = min(frame_hw[0] / h, frame_hw[1] / w)
    hw = (min(frame_hw[0], round(h * scale)), min(frame_hw[1], round(w * scale)))
    return FittedPhoto(_pad(_resize(rgb, hw), frame_hw), scale, hw, transposed)


def fit_coc(fitted: FittedPhoto, coc: np.ndarray, frame_hw: tuple[int, int] = FRAME_HW):
    """Full-size signed CoC (photo px) -> `(fh, fw)` CoC in frame px."""
    if fitted.transposed:
        coc = coc.T
    return _pad(_resize(coc, fitted.hw) * np.float32(fitted.scale), frame_hw)


def unfit(fitted: FittedPhoto, render: np.ndarray, rgb: np.ndarray, coc: np.ndarray) -> np.ndarray:
    """The network's `(fh, fw, 3)` render -> `(H, W, 3)` at the photo's size.

    rgb, coc: the full-size photo and its CoC (photo px). What the trip through the frame
    loses (detail finer than a frame pixel when shrunk, resampling blur when enlarged) is
    taken from the photo where the CoC is under half a (frame or photo) pixel, faded out
    over one.
    """
    h, w = rgb.shape[:2]
    out = render[: fitted.hw[0], : fitted.hw[1]]
    if fitted.transposed:
        out = out.transpose(1, 0, 2)
    out = cv2.resize(np.ascontiguousarray(out), (w, h), interpolation=cv2.INTER_LINEAR)
    small = fitted.rgb[: fitted.hw[0], : fitted.hw[1]]
    if fitted.transposed:
        small = small.transpose(1, 0, 2)
    coarse = cv2.resize(np.ascontiguousarray(small), (w, h), interpolation=cv2.INTER_LINEAR)
    pixel = np.float32(min(fitted.scale, 1.0))  # the coarser of a frame and a photo pixel
    keep = np.clip(1.5 - np.abs(coc) * pixel, 0.0, 1.0)
    out += (rgb - coarse) * keep[:, :, None]
    return np.clip(out, 0.0, 1.0)
