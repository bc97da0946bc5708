"""Read a depth map as `prodepth depth` writes it, for the image it belongs to.

Accepted: 16-bit (or 8-bit) grey PNG (near = bright), float TIFF, PFM, NPY — all relative
inverse depth, larger = nearer, in the map's own units. Non-finite values (`inf` in
Middlebury's ground truth) are invalid and filled; a map of another size is resized. A JPEG
may carry its own map (GDepth, as `prodepth depth --embed` and Google's cameras write it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile

from prodepth_cli.errors import InputError
from prodepth_cli.io.gdepth import EmbeddedDepthError, read_embedded_depth
from prodepth_cli.io.jpeg_xmp import JPEG_START
from prodepth_cli.io.pfm import read_pfm

DEPTH_SUFFIXES = (".png", ".tif", ".tiff", ".pfm", ".npy")


@dataclass(frozen=True)
class DepthMap:
    """Disparity `(H, W)` float32 (larger = nearer, the file's units), fitted to an image.

    `source_hw` is the size as stored (differs from `disparity.shape` when resized);
    `filled` the fraction of pixels that were invalid and filled.
    """

    disparity: np.ndarray
    source_hw: tuple[int, int]
    filled: float

    @property
    def resized(self) -> bool:
        return self.source_hw != self.disparity.shape


def read_depth_map(path: str | Path, hw: tuple[int, int] | None = None) -> DepthMap:
    """Read the depth map at `path`; with `hw` (H, W), resize it to that size (bilinear).

    Raises InputError (one line) for a missing file, an unknown type, a colour image, or a
    map without any valid value.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such depth map")
    suffix = path.suffix.lower()
    if suffix not in DEPTH_SUFFIXES:
        raise InputError(
            f"{path}: not a depth map type prodepth reads (expected "
            f"{', '.join(DEPTH_SUFFIXES)}, as `prodepth depth` writes)"
        )
    raw = _READERS[suffix](path)
    raw = np.squeeze(raw)
    if raw.ndim != 2:
        raise InputError(
            f"{path}: not a depth map (shape {raw.shape}; expected one channel, H x W)"
        )
    if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
        raise InputError(f"{path}: not a depth map (values of type {raw.dtype})")
    disparity = raw.astype(np.float32)
    invalid = ~np.isfinite(disparity)
    if invalid.all():
        raise InputError(f"{path}: the depth map has no valid value")
    filled = float(invalid.mean())
    if filled:
        disparity = fill_invalid(disparity, invalid)
    source_hw = disparity.shape
    if hw is not None and tuple(hw) != source_hw:
        disparity = cv2.resize(disparity, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return DepthMap(disparity, source_hw, filled)


def read_embedded_depth_map(
    path: str | Path, data: bytes | None, hw: tuple[int, int]
) -> DepthMap | None:
    """The depth map embedded in the JPEG at `path` (or its bytes `data`), upright and
    resized to `hw` (H, W); None when it carries none. InputError when it names one that
    cannot be read."""
    if data is None:
        with open(path, "rb") as f:
            if f.read(3) != JPEG_START:
                return None
            data = JPEG_START + f.read()
    elif not data.startswith(JPEG_START):
        return None
    try:
        embedded = read_embedded_depth(data)
    except EmbeddedDepthError as exc:
        raise InputError(f"{path}: embedded depth map unreadable: {exc}") from None
    if embedded is None:
        return None
    disparity = embedded.disparity
    source_hw = disparity.shape
    if tuple(hw) != source_hw:
        disparity = cv2.resize(disparity, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return DepthMap(disparity, source_hw, 0.0)


def fill_invalid(disparity: np.ndarray, invalid: np.ndarray) -> np.ndarray:
    """Fill `invalid` pixels of `(H, W)` disparity along each row with the farther (smaller)
    of the nearest valid values left and right: holes in stereo and in depth maps are
    mostly occluded background. Rows with no valid value take the map's farthest value."""
    h, w = disparity.shape
    idx = np.where(invalid, 0, np.arange(w)[None, :])
    left = np.maximum.accumulate(idx, axis=1)
    ridx = np.where(invalid, w - 1, np.arange(w)[None, :])
    right = np.minimum.accumulate(ridx[:, ::-1], axis=1)[:, ::-1]
    rows = np.arange(h)[:, None]
    far = float(disparity[~invalid].min())
    lv = np.where(invalid[rows, left], np.inf, disparity[rows, left])
    rv = np.where(invalid[rows, right], np.inf, disparity[rows, right])
    fill = np.minimum(lv, rv)
    fill = np.where(np.isfinite(fill), fill, far)
    return np.where(invalid, fill, disparity).astype(np.float32)


def _read_png(path: Path) -> np.ndarray:
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise InputError(f"{path}: not a readable PNG")
    if data.ndim == 3:
        raise InputError(
            f"{path}: a colour image, not a depth map (expected a grey 16-bit PNG, near = "
            "bright; a --colormap preview cannot be read back)"
        )
    return data


def _read_tiff(path: Path) -> np.ndarray:
    try:
        return tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for a bad file
        raise InputError(f"{path}: not a readable TIFF ({exc})") from None


def _read_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise InputError(f"{path}: not a readable NumPy array ({exc})") from None


_READERS = {
    ".png": _read_png,
    ".tif": _read_tiff,
    ".tiff": _read_tiff,
    ".pfm": read_pfm,
    ".npy": _read_npy,
}
