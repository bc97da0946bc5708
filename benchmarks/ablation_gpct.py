"""GPCT ablation: train the PRO refiner briefly with and without the consistency loss (same
seed, same steps), then measure the seam ratio of 2x2 tiled inference on held-out scenes.

Each tile is refined once (PRO's "refine once"); tiles are joined with a hard cut in the
middle of each overlap, so any disagreement between neighbours shows up as a step across the
cut, which `metrics.seam_ratio` measures (about 1 = seamless). Run from the repository root:

    python benchmarks/ablation_gpct.py --steps 300 --out runs/ablation
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from prodepth_cli.metrics import seam_ratio
from prodepth_cli.training.checkpoint import load_checkpoint, net_from_checkpoint
from prodepth_cli.training.coarse_input import simulate_coarse
from prodepth_cli.training.config import make_config
from prodepth_cli.training.loop import run_training
from prodepth_cli.training.realdata import list_pairs, split_pairs
from prodepth_cli.training.tensors import image_tensor, map_tensor
from prodepth_cli.training.validate import VAL_SEED, validation_set


def cut_boxes(h: int, w: int, tile: int) -> tuple[list[tuple[int, int]], list[tuple]]:
    """Origins (y, x) of a 2x2 grid of `tile`-sized tiles covering (h, w), and the boxes
    (x0, y0, x1, y1) each tile owns when neighbours are cut in the middle of their overlap."""
    if 2 * tile <= max(h, w):
        raise ValueError(f"tiles of {tile} px do not overlap on a {h}x{w} image")
    ys, xs = [0, h - tile], [0, w - tile]
    cy, cx = h // 2, w // 2  # the middle of the overlaps [h - tile, tile), [w - tile, tile)
    origins = [(y, x) for y in ys for x in xs]
    boxes = [(0, 0, cx, cy), (cx, 0, w, cy), (0, cy, cx, h), (cx, cy, w, h)]
    return origins, boxes


@torch.no_grad()
def tiled_refine(net, rgb: np.ndarray, coarse: np.ndarray, tile: int) -> tuple[np.ndarray, list]:
    """Refine the four tiles in one batch and join them with hard cuts; returns the map and
    the owned boxes."""
    h, w = coarse.shape
    origins, boxes = cut_boxes(h, w, tile)
    x = image_tensor([rgb[y : y + tile, x0 : x0 + tile] for y, x0 in origins])
    c = map_tensor([coarse[y : y + tile, x0 : x0 + tile] for y, x0 in origins])
    pred = net(x, c)[:, 0].numpy()
    out = np.zeros((h, w), np.float32)
    for (y, x0), (bx0, by0, bx1, by1), p in zip(origins, boxes, pred, strict=True):
        out[by0:by1, bx0:bx1] = p[by0 - y : by1 - y, bx0 - x0 : bx1 - x0]
    return out, boxes


def seam_ratios(checkpoint: Path, n_synthetic: int, side: int, tile: int) -> dict[str, float]:
    net = net_from_checkpoint(load_checkpoint(checkpoint))
    _, held = split_pairs(list_pairs())
    val = validation_set(held, n_synthetic, (side, side))
    ratios, ratios_coarse = [], []
    for i, (_, (rgb, disp, mask)) in enumerate(val):
        coarse = simulate_coarse(disp, mask, np.random.default_rng(VAL_SEED + i))
        refined, boxes = tiled_refine(net, rgb, coarse, tile)
        ratios.append(seam_ratio(refined, boxes))
        ratios_coarse.append(seam_ratio(coarse, boxes))
    return {
        "seam_ratio": float(np.mean(ratios)),
        "seam_ratio_median": float(np.median(ratios)),
        "coarse_seam_ratio": float(np.mean(ratios_coarse)),
        "images": len(val),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation_gpct"))
    ap.add_argument("--patch", type=int, default=128)
    ap.add_argument("--overlap", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--val-images", type=int, default=12)
    ap.add_argument("--residual", action="store_true", help="Residual head, not the convex one.")
    args = ap.parse_args()
    results = {}
    for name, consistency in (("gpct", True), ("no_gpct", False)):
        cfg = make_config(
            "refiner",
            dict(
                steps=args.steps,
                val_every=args.steps,
                patch=args.patch,
                overlap=args.overlap,
                image_side=2 * args.patch,
                consistency=consistency,
                threads=args.threads,
                seed=0,
                val_synthetic=4,
                arch={"convex": not args.residual},
            ),
        )
        start = time.time()
        run_training(cfg, args.out / name)
        metrics = seam_ratios(
            args.out / name / "last.pt", args.val_images, 2 * args.patch + 64, args.patch + 64
        )
        metrics["train_seconds"] = time.time() - start
        results[name] = metrics
        print(name, json.dumps(metrics), flush=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(
        f"seam ratio with GPCT {results['gpct']['seam_ratio']:.3f}, without "
        f"{results['no_gpct']['seam_ratio']:.3f} (1.0 = seamless)"
    )


if __name__ == "__main__":
    main()
