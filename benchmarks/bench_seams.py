"""Seams on real photographs: a naive tile grid against prodepth's anchored, blended tiles.

For each image the same model runs three ways with the same tile size:
  naive    tiles side by side, no overlap, each in its own frame (no alignment)
  anchored tiles side by side, each fitted to the coarse pass, no overlap
  prodepth overlapping tiles fitted to the coarse pass, blended with smooth weights
Seam ratio = mean gradient across tile edges / mean gradient everywhere (1 = no seam). Real
depth edges that happen to cross a tile line move it too, so the untiled map's ratio on the
same lines is printed as the reference, and `rel` divides by it.

    python benchmarks/bench_seams.py [--model M.onnx] [--kind depth] [--tile 256]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.data_root import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]

IMAGES = [
    "gt/middlebury2014_Q/Motorcycle/im0.png",
    "gt/kitti2015/000046_10/image_2.png",
    "gt/sceneflow_flyingthings3d_sample/left.png",
    "gt/middlebury2005_third/Art/view1.png",
    "sequences/davis_rollercoaster/davis_rollercoaster.mp4",  # its middle frame
]


def main() -> None:
    from prodepth_cli.metrics import seam_ratio
    from prodepth_cli.models.runtime import load_model
    from prodepth_cli.pipeline import DepthOptions, depth_array, resize_to
    from prodepth_cli.tiling.plan import plan_tiles

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--kind", default=None)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument(
        "--max-side",
        type=int,
        default=1400,
        help="larger photographs are shrunk to this first (speed)",
    )
    args = parser.parse_args()
    found = [SHARED_DATA / p for p in IMAGES if (SHARED_DATA / p).is_file()]
    if not found:
        raise SystemExit(f"skipped: no reference images under {SHARED_DATA}")

    plain = load_model(args.model, "cpu", kind=args.kind)
    raw = load_model(args.model, "cpu", kind=args.kind, align="none")
    print(f"model {plain.name}, tile {args.tile}")
    print(
        f"{'image':28} {'untiled':>8} {'naive':>7} {'rel':>5} {'anchored':>9} {'rel':>5} "
        f"{'prodepth':>9} {'rel':>5}"
    )
    for path in found:
        rgb = _read_rgb(path)
        scale = min(1.0, args.max_side / max(rgb.shape[:2]))
        rgb = resize_to(rgb, (round(rgb.shape[0] * scale), round(rgb.shape[1] * scale)))
        h, w = rgb.shape[:2]
        untiled = depth_array(rgb, plain, DepthOptions(tile=max(h, w)))
        naive = depth_array(
            rgb, raw if not plain.is_refiner else plain, DepthOptions(tile=args.tile, overlap=0)
        )
        anchored = depth_array(rgb, plain, DepthOptions(tile=args.tile, overlap=0))
        ours = depth_array(rgb, plain, DepthOptions(tile=args.tile))
        # Score every map on the same lines: the edges of the grid without overlap and ours.
        boxes = [t.box for t in plan_tiles(h, w, args.tile, 0).tiles]
        boxes += [t.box for t in plan_tiles(h, w, args.tile).tiles]
        ref = seam_ratio(untiled, boxes)
        row = [seam_ratio(m, boxes) for m in (naive, anchored, ours)]
        print(
            f"{path.parent.name + '/' + path.name:28.28} {ref:8.3f} "
            + " ".join(f"{r:{9 if i else 7}.3f} {r / ref:5.2f}" for i, r in enumerate(row))
        )


def _read_rgb(path: Path) -> np.ndarray:
    if path.suffix == ".mp4":
        video = cv2.VideoCapture(str(path))
        video.set(cv2.CAP_PROP_POS_FRAMES, video.get(cv2.CAP_PROP_FRAME_COUNT) // 2)
        ok, bgr = video.read()
        if not ok:
            raise SystemExit(f"{path}: cannot decode a frame")
    else:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
