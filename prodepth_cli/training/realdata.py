"""Real RGB-D training pairs from `shared/data/train`: decoding, weighting and the split.

Each source stores depth its own way (train/README.md); every pair is decoded to disparity
(1 / metres, or the stored stereo disparity in pixels for Middlebury: only the ratio matters
to the affine-invariant losses) with a raw validity mask and a Bias-Free-Masking loss mask.
Never reads `gt/` or `sequences/kitti_*`: those are for evaluation only.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.data_root import SHARED_DATA
from prodepth_cli.training.bfm import bias_free_mask

TRAIN_ROOT = SHARED_DATA / "train"
SEVEN_SCENES = ("7scenes_tsdfpy", "7scenes_tsdf", "3dmatch_demo")
UNREGISTERED = SEVEN_SCENES + ("nyu_raw_sample",)  # wider masked border


@dataclass(frozen=True)
class RealPair:
    """A decoded pair. rgb: `(H, W, 3)` float32 [0, 1]; disparity: `(H, W)` float32, larger =
    nearer, 0 where invalid; loss_mask: `(H, W)` bool (valid and not masked by BFM)."""

    name: str
    rgb: np.ndarray
    disparity: np.ndarray
    loss_mask: np.ndarray


def _rot13(v: np.ndarray) -> np.ndarray:
    """SUN RGB-D / APC storage: the 16-bit value rotated right by 3 bits."""
    v = v.astype(np.uint32)
    return (((v >> 3) | (v << 13)) & 0xFFFF).astype(np.float64)


def _depth_metres(pair_dir: Path) -> np.ndarray | None:
    """Metric depth `(H, W)` float64 (0 = invalid), or None for a disparity-only source."""
    source, item = pair_dir.parent.name, pair_dir.name
    if source == "middlebury2006_third":
        return None
    if item == "nyu_raw_sample":
        raw = cv2.imread(str(pair_dir / "depth_mm.png"), cv2.IMREAD_UNCHANGED)
        return raw.astype(np.float64) / 1000.0
    path = next(p for p in (pair_dir / "depth.png", pair_dir / "depth.pgm") if p.is_file())
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw.ndim == 3:
        raw = raw[..., 0]
    invalid = (raw == 0) | (raw == 65535)
    if source == "apc_shelf":
        depth = _rot13(raw) / 10000.0
    elif source == "sunrgbd_toy" or item == "sunrgbd_sample":
        depth = _rot13(raw) / 1000.0
    elif source == "metric3d_demo" and item.startswith("kitti"):
        depth = raw / 256.0
    elif item in ("tum_sample",) or item.startswith("ch7") or source == "tum2klg_capture":
        depth = raw / 5000.0
    else:  # millimetres: 7-Scenes, 3DMatch, Redwood, slambook ch5, NYU demo
        depth = raw / 1000.0
    return np.where(invalid, 0.0, depth)


def pair_rgb(pair_dir: Path) -> np.ndarray:
    """The RGB image of a pair folder, `(H, W, 3)` float32 in [0, 1]."""
    path = next(p for p in sorted(pair_dir.iterdir()) if p.stem == "rgb")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0


def load_pair(pair_dir: Path) -> RealPair:
    """Decode one `train/<source>/<item>` folder into a RealPair."""
    rgb = pair_rgb(pair_dir)
    depth = _depth_metres(pair_dir)
    if depth is None:
        disp = cv2.imread(str(pair_dir / "disp.png"), cv2.IMREAD_UNCHANGED)
        disp = (disp[..., 0] if disp.ndim == 3 else disp).astype(np.float64)
        valid = disp > 0
    else:
        valid = (depth > 0.1) & (depth < 80.0)
        disp = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0)
    if disp.shape != rgb.shape[:2]:
        disp = cv2.resize(disp, rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST)
        valid = cv2.resize(
            valid.astype(np.uint8), rgb.shape[1::-1], interpolation=cv2.INTER_NEAREST
        ).astype(bool)
    unregistered = pair_dir.parent.name in UNREGISTERED or pair_dir.name in UNREGISTERED
    mask = bias_free_mask(
        rgb, disp, valid, border_px=16 if unregistered else 6, edge_radius=4 if unregistered else 2
    )
    return RealPair(f"{pair_dir.parent.name}/{pair_dir.name}", rgb, disp.astype(np.float32), mask)


def list_pairs(root: Path = TRAIN_ROOT) -> list[Path]:
    """All pair folders under `root`, sorted (empty when the data folder is absent)."""
    if not root.is_dir():
        return []
    return sorted(p.parent for p in root.glob("*/*/meta.json"))


def split_pairs(pairs: list[Path], every: int = 10) -> tuple[list[Path], list[Path]]:
    """(train, held-out): every `every`-th pair of each source with >= 5 pairs is held out."""
    train, held = [], []
    by_source: dict[str, list[Path]] = {}
    for p in pairs:
        by_source.setdefault(p.parent.name, []).append(p)
    for items in by_source.values():
        for i, p in enumerate(items):
            (held if len(items) >= 5 and i % every == every // 2 else train).append(p)
    return train, held


def sampling_weights(pairs: list[Path]) -> np.ndarray:
    """Per-pair probabilities that balance scenes, not files: a source's share grows with
    the square root of its distinct scenes, shared equally by its scenes, and a scene's by
    its pairs. 17 frames of one capture (a shelf bin, one office) are one scene, and the 21
    Middlebury scenes 21: by files the shelf bin alone drew 14 % of the real samples."""
    scenes = [(p.parent.name, _scene_of(p)) for p in pairs]
    per_scene = {key: scenes.count(key) for key in set(scenes)}
    per_source: dict[str, int] = {}
    for source, _ in per_scene:
        per_source[source] = per_source.get(source, 0) + 1
    w = np.array(
        [np.sqrt(per_source[src]) / per_source[src] / per_scene[(src, sc)] for src, sc in scenes]
    )
    return w / w.sum()


def _scene_of(pair_dir: Path) -> str:
    """The scene a pair shows: the folder its image came from in its repository (the frames
    of one sequence share one), as its meta.json records; else the pair's own folder."""
    try:
        source = json.loads((pair_dir / "meta.json").read_text()).get("rgb_src")
    except (OSError, ValueError):
        source = None
    return str(Path(source).parent) if source else pair_dir.name


@functools.lru_cache(maxsize=256)
def cached_pair(pair_dir: Path) -> RealPair:
    """`load_pair`, memoised: the whole folder is about 200 pairs of 640x480."""
    return load_pair(pair_dir)
