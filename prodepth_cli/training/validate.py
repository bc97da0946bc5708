"""Validation on held-out synthetic scenes and held-out real training pairs (never gt/)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from prodepth_cli.metrics import affine_invariant_scores, edge_f1
from prodepth_cli.training.coarse_input import CoarsePass, simulate_coarse, target_in_frame
from prodepth_cli.training.realdata import cached_pair
from prodepth_cli.training.samples import Sample, resize_sample, synthetic_sample
from prodepth_cli.training.tensors import image_tensor, map_tensor

VAL_SEED = 10_000_000  # synthetic validation seeds start here; training seeds are random


def validation_set(
    pairs: list[Path], n_synthetic: int, hw: tuple[int, int]
) -> list[tuple[str, Sample]]:
    """(name, sample) for the held-out real pairs and `n_synthetic` fixed scenes, at `hw`."""
    out = [(f"syn{i}", synthetic_sample(VAL_SEED + i, hw)) for i in range(n_synthetic)]
    for p in pairs:
        pair = cached_pair(p)
        out.append((pair.name, resize_sample((pair.rgb, pair.disparity, pair.loss_mask), hw)))
    return out


def _mean_by_group(rows: list[tuple[str, dict[str, float]]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for group, pick in (
        ("syn", lambda n: n.startswith("syn")),
        ("real", lambda n: not n.startswith("syn")),
    ):
        sel = [m for n, m in rows if pick(n)]
        for key in sel[0] if sel else []:
            out[f"{group}_{key}"] = float(np.nanmean([m[key] for m in sel]))
    return out


@torch.no_grad()
def validate_coarse(net: nn.Module, val: list[tuple[str, Sample]], device: str) -> dict[str, float]:
    """Mean affine-invariant AbsRel / delta1 and rank correlation (negative: depth order
    backwards) per group; `score` (lower is better) = mean AbsRel."""
    net.eval()
    rows = []
    for name, (rgb, disp, mask) in val:
        # the sky (disparity 0) has no finite depth; beyond 80 m the synthetic horizon makes
        # AbsRel explode (KITTI-style cap; real pairs are all nearer)
        scored = mask & (disp > 1.0 / 80.0)
        if scored.sum() < 16:
            continue
        pred = net(image_tensor([rgb]).to(device))[0, 0].cpu().numpy()
        s = affine_invariant_scores(pred, disp, scored)
        rows.append((name, {k: s[k] for k in ("absrel", "delta1", "spearman")}))
    out = _mean_by_group(rows)
    out["score"] = float(np.nanmean([m["absrel"] for _, m in rows]))
    return out


@torch.no_grad()
def validate_refiner(
    net: nn.Module,
    val: list[tuple[str, Sample]],
    device: str,
    coarse_pass: CoarsePass | None = None,
) -> dict[str, float]:
    """Frame MAE and edge F1 of the refined map vs its coarse input, per group, the coarse
    inputs simulated with fixed seeds; `score` = mean refined frame MAE (lower is better).
    With `coarse_pass`, the same figures with that network's outputs as the inputs too
    (`net_...`): what the refiner meets in the pipeline."""
    net.eval()
    rows = []
    for i, (name, (rgb, disp, mask)) in enumerate(val):
        if mask.sum() < 16:
            continue
        inputs = {"": simulate_coarse(disp, mask, np.random.default_rng(VAL_SEED + i))}
        if coarse_pass is not None:
            inputs["net_"] = coarse_pass.disparity(rgb, device)
        scores: dict[str, float] = {}
        for prefix, coarse in inputs.items():
            target = target_in_frame(disp, mask, coarse)
            pred = net(image_tensor([rgb]).to(device), map_tensor([coarse]).to(device))
            pred = pred[0, 0].cpu().numpy()
            scores[prefix + "mae"] = float(np.abs(pred - target)[mask].mean())
            scores[prefix + "mae_coarse"] = float(np.abs(coarse - target)[mask].mean())
            scores[prefix + "edge_f1"] = edge_f1(pred, target, mask)
            scores[prefix + "edge_f1_coarse"] = edge_f1(coarse, target, mask)
        rows.append((name, scores))
    out = _mean_by_group(rows)
    out["score"] = float(np.nanmean([m["mae"] for _, m in rows]))
    return out
