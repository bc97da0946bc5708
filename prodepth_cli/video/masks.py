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
from prodepth_cli.video.cache import write_frame_array
from prodepth_cli.video.stream import IMAGE_SUFFIXES

# A pixel is dynamic when its residual is this many times the frame's median residual
# and above an absolute floor (photometric error units: 0.85 SSIM-term + 0.15 L1 in [0, 1]).
RESIDUAL_RATIO = 3.0
RESIDUAL_FLOOR = 0.12
MIN_REGION_FRACTION = 0.002  # smaller blobs are noise, not objects
MAX_COVERAGE = 0.3  # beyond this the rigid model failed broadly; keep the worst 30 %


def read_mask_folder(
    folder: str | Path, count: int, size: tuple[int, int], out: Path | None = None
) -> np.ndarray:
    """`(count, h, w)` uint8 {0, 1} masks from `folder`: one image per frame in sorted name
    order, nonzero = dynamic object; resized to `size` (`(w, h)`, nearest neighbour).
    `out`: a file they are written to frame by frame and memory-mapped from (read-only),
    never whole in memory; None: an array in memory."""
    p = Path(folder)
    if not p.is_dir():
        raise InputError(f"{p}: --masks must be a folder of mask images")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) != count:
        raise InputError(f"{p}: {len(files)} mask images for {count} frames")

    def masks():
        for f in files:
            m = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            if m is None:
                raise InputError(f"{f}: not a readable mask image")
            yield cv2.resize((m > 0).astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)

    if out is None:
        return np.stack(list(masks())).astype(np.uint8)
    return write_frame_array(out, masks(), np.uint8, {"masks": str(p.resolve()), "size": size})


def residual_masks(errors: np.ndarray) -> np.ndarray:
    """`(N, h, w)` uint8 {0, 1} dynamic masks from `(N, h, w)` minimum-reprojection errors of
    the fitted static model (`residual_mask` of each frame)."""
    return np.stack([residual_mask(e) for e in errors]).astype(np.uint8)


def residual_mask(error: np.ndarray) -> np.ndarray:
    """`(h, w)` uint8 {0, 1} dynamic mask from one frame's `(h, w)` minimum-reprojection
    error of the fitted static model: high residual (against the frame's own statistics),
    opened to drop speckle, small blobs dropped."""
    threshold = max(RESIDUAL_FLOOR, RESIDUAL_RATIO * float(np.median(error)))
    threshold = max(threshold, float(np.quantile(error, 1 - MAX_COVERAGE)))
    kernel = np.ones((3, 3), np.uint8)
    m = cv2.morphologyEx((error > threshold).astype(np.uint8), cv2.MORPH_OPEN, kernel)
    _, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= MIN_REGION_FRACTION * error.size
    keep[0] = False  # background label
    return keep[labels].astype(np.uint8)
