"""Ground-truth scenes for `prodepth eval`: real photographs with stereo disparity.

Decodes the four encodings of ../shared/data/gt (see its README) into one `Scene` value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.data_root import SHARED_DATA
from prodepth_cli.errors import InputError
from prodepth_cli.io.pfm import read_pfm

DEFAULT_GT_DIR = SHARED_DATA / "gt"


@dataclass(frozen=True)
class Scene:
    """One image with its ground truth.

    `rgb` is `(H, W, 3)` uint8 RGB; `disparity` is `(H, W)` float32 in pixels (larger = nearer),
    0 where `valid` (`(H, W)` bool) is False.
    """

    name: str
    rgb: np.ndarray
    disparity: np.ndarray
    valid: np.ndarray

    @property
    def valid_fraction(self) -> float:
        return float(self.valid.mean())


def read_rgb(path: Path) -> np.ndarray:
    """`(H, W, 3)` uint8 RGB of an image file; an alpha channel is dropped."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise InputError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_png_u(path: Path) -> np.ndarray:
    """A single-channel 8- or 16-bit PNG as stored, `(H, W)` uint8/uint16."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.ndim != 2:
        raise InputError(f"cannot read {path} as a single-channel PNG")
    return raw


def disparity_from_png(raw: np.ndarray, divisor: float) -> tuple[np.ndarray, np.ndarray]:
    """Disparity `raw / divisor` (pixels, float32) and validity `raw > 0`, both `(H, W)`.

    Middlebury 2005 uses divisor 3 (uint8), KITTI 2015 divisor 256 (uint16); 0 = unknown.
    """
    valid = raw > 0
    return (raw.astype(np.float32) / np.float32(divisor)) * valid, valid


def disparity_from_pfm(disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Zero the invalid pixels (`inf`, NaN, <= 0) of a PFM disparity; returns (disp, valid)."""
    valid = np.isfinite(disp) & (disp > 0)
    return np.where(valid, disp, 0).astype(np.float32), valid


def middlebury2014_scene(folder: Path) -> Scene:
    """`im0.png` with `disp0GT.pfm`; every finite pixel is valid, occluded ones included."""
    disp, valid = disparity_from_pfm(read_pfm(folder / "disp0GT.pfm"))
    return Scene(folder.name, read_rgb(folder / "im0.png"), disp, valid)


def middlebury2005_scene(folder: Path) -> Scene:
    """`view1.png` with `disp1.png` (uint8, disparity = value / 3, 0 = unknown)."""
    disp, valid = disparity_from_png(read_png_u(folder / "disp1.png"), 3.0)
    return Scene(folder.name, read_rgb(folder / "view1.png"), disp, valid)


def kitti2015_scene(folder: Path) -> Scene:
    """`image_2.png` with `disp_occ_0.png` (uint16, disparity = value / 256, 0 = no point)."""
    disp, valid = disparity_from_png(read_png_u(folder / "disp_occ_0.png"), 256.0)
    return Scene(f"KITTI {folder.name}", read_rgb(folder / "image_2.png"), disp, valid)


def sceneflow_scene(folder: Path) -> Scene:
    """`left.png` (RGBA on disk) with `disp_left.pfm` (synthetic, dense)."""
    disp, valid = disparity_from_pfm(read_pfm(folder / "disp_left.pfm"))
    return Scene("FlyingThings3D", read_rgb(folder / "left.png"), disp, valid)


# Dataset folder -> (file marking a scene folder, loader). Scenes load in this order.
DATASETS: dict[str, tuple[str, Callable[[Path], Scene]]] = {
    "middlebury2014_Q": ("disp0GT.pfm", middlebury2014_scene),
    "middlebury2005_third": ("disp1.png", middlebury2005_scene),
    "kitti2015": ("disp_occ_0.png", kitti2015_scene),
    "sceneflow_flyingthings3d_sample": ("disp_left.pfm", sceneflow_scene),
}


def scene_folders(data_dir: Path) -> list[tuple[Path, Callable[[Path], Scene]]]:
    """Every scene folder under `data_dir` with its loader, datasets in `DATASETS` order."""
    found = []
    for dataset, (marker, loader) in DATASETS.items():
        root = data_dir / dataset
        if (root / marker).is_file():  # a dataset folder that is itself one scene
            found.append((root, loader))
        elif root.is_dir():
            found += [(d, loader) for d in sorted(root.iterdir()) if (d / marker).is_file()]
    return found


def load_scenes(data_dir: Path | None = None) -> list[Scene]:
    """All ground-truth scenes found under `data_dir` (default: ../shared/data/gt).

    Raises `InputError` naming the folder when it is missing or holds no known scene.
    """
    data_dir = Path(data_dir) if data_dir is not None else DEFAULT_GT_DIR
    if not data_dir.is_dir():
        raise InputError(f"ground-truth folder not found: {data_dir}")
    folders = scene_folders(data_dir)
    if not folders:
        raise InputError(
            f"no ground-truth scenes in {data_dir} (expected {', '.join(DATASETS)} folders)"
        )
    return [loader(folder) for folder, loader in folders]
