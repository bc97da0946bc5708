"""Dynamic-object masks (1 = moving object): given per frame in a folder, or found
automatically where the fitted rigid-motion model leaves a large photometric residual.

What the automatic masks catch: textured objects whose motion differs from what the camera
motion and the static-scene depth predict (crossing cars, walking people, a waving branch).
What they miss: objects moving with the camera (no residual: the auto-mask drops them and
their depth can still drift far), untextured objects, objects that move in every frame the
same way as a plausible depth would explain. What they wrongly flag: occlusion edges at the
frame border, reflections, lighting changes. Give `--masks` when it matters.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.errors import InputError
from prodepth_cli.video.frames import IMAGE_SUFFIXES

# A pixel is dynamic when its residual is this many times the frame's median residual
# and above an absolute floor (photometric error units: 0.85 SSIM-term + 0.15 L1 in [0, 1]).
RESIDUAL_RATIO = 3.0
RESIDUAL_FLOOR = 0.12
MIN_REGION_FRACTION = 0.002  # smaller blobs are noise, not objects
MAX_COVERAGE = 0.3  # beyond this the rigid model failed broadly; keep the worst 30 %


def read_mask_folder(folder: str | Path, count: int, size: tuple[int, int]) -> np.ndarray:
    """`(count, h, w)` uint8 {0, 1} masks from `folder`: one image per frame in sorted name
    order, nonzero = dynamic object; resized to `size` (`(w, h)`, nearest neighbour)."""
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"{p}: --masks must be a folder of mask images")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) != count:
        raise InputError(f"{p}: {len(files)} mask images for {count} frames")
    masks = np.empty((count, size[1], size[0]), np.uint8)
    for i, f in enumerate(files):
        m = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        if m is None:
            raise InputError(f"{f}: not a readable mask image")
        masks[i] = cv2.resize((m > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    return masks


def residual_masks(errors: np.ndarray) -> np.ndarray:
    """`(N, h, w)` uint8 {0, 1} dynamic masks from `(N, h, w)` minimum-reprojection errors of
    the fitted static model: high residual, opened to drop speckle, small blobs dropped."""
    masks = np.zeros(errors.shape, np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    for i, e in enumerate(errors):
        threshold = max(RESIDUAL_FLOOR, RESIDUAL_RATIO * float(np.median(e)))
        threshold = max(threshold, float(np.quantile(e, 1 - MAX_COVERAGE)))
        m = cv2.morphologyEx((e > threshold).astype(np.uint8), cv2.MORPH_OPEN, kernel)
        n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
        keep = stats[:, cv2.CC_STAT_AREA] >= MIN_REGION_FRACTION * e.size
        keep[0] = False  # background label
        masks[i] = keep[labels]
    return masks
