"""A pinhole camera's intrinsics, in pixels: what the video fit projects with and what a
photograph's point cloud is back-projected with (`video/intrinsics.py` and
`scene3d/intrinsics.py` say where each gets them from)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

ASSUMED = "assumed"  # `source` of a focal length no file or model gave
FILM_DIAGONAL_MM = math.hypot(36.0, 24.0)  # 35 mm film's frame, which "equivalent" means


def focal_from_35mm(focal_35mm_mm: float, width: int, height: int) -> float:
    """The focal length in pixels of a `width` x `height` image taken at a 35 mm equivalent
    focal length: equivalence is along the diagonal (the image's diagonal sees what the
    film's 43.3 mm diagonal sees), so any aspect ratio and orientation works."""
    return focal_35mm_mm * math.hypot(width, height) / FILM_DIAGONAL_MM


def focal_from_fov(hfov_deg: float, width: int) -> float:
    """The focal length in pixels of a `width`-pixel image seeing `hfov_deg` across."""
    return 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera for a `width` x `height` upright image: focal lengths `fx`, `fy` and
    principal point `cx`, `cy`, in pixels. Pixel (x, y) has its centre at u = x + 0.5,
    v = y + 0.5, so the image centre is (width / 2, height / 2). `source` says where the
    focal length came from, where that is reported (empty: not said)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    source: str = ""

    def scaled_to(self, width: int, height: int) -> Intrinsics:
        """The same camera seen through the image resized to `width` x `height`."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(
            self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, width, height, self.source
        )

    def matrix(self) -> np.ndarray:
        """`(3, 3)` float32 K."""
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=np.float32)

    @property
    def hfov_deg(self) -> float:
        """Horizontal field of view, degrees."""
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.fx)))

    @property
    def long_fov_deg(self) -> float:
        """Field of view across the image's long side, degrees."""
        return math.degrees(2.0 * math.atan(max(self.width, self.height) / (2.0 * self.fx)))

    @property
    def assumed(self) -> bool:
        return self.source == ASSUMED
