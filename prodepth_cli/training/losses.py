"""Training losses: scale-and-shift-invariant, gradient matching and GPCT consistency.

All maps are `(B, 1, H, W)` disparity tensors (larger = nearer) and every loss takes a boolean
`mask` of the same shape (the Bias-Free-Masking loss mask): masked pixels never contribute.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-6


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def fit_scale_shift(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image least-squares (s, t), each `(B, 1, 1, 1)`, minimising |s*pred + t - target|^2
    over the masked pixels. Centred sums: the raw normal equations lose float32 precision
    when the prediction carries a large offset."""
    m = mask.to(pred.dtype)
    n = m.sum((1, 2, 3), keepdim=True).clamp_min(1.0)
    mp = (m * pred).sum((1, 2, 3), keepdim=True) / n
    mt = (m * target).sum((1, 2, 3), keepdim=True) / n
    pc, tc = pred - mp, target - mt
    var = (m * pc * pc).sum((1, 2, 3), keepdim=True)
    s = (m * pc * tc).sum((1, 2, 3), keepdim=True) / var.clamp_min(EPS * EPS)
    return s, mt - s * mp


def normalize_median_mad(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image: (x - median) / mean|x - median| over the mask (MiDaS' robust alignment)."""
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        v = x[i][mask[i]]
        if v.numel() < 2:
            out[i] = x[i] * 0
            continue
        med = v.median()
        mad = (v - med).abs().mean().clamp_min(EPS)
        out[i] = (x[i] - med) / mad
    return out


def align_to_target(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(aligned pred, normalised target): both normalised by their own median and mean
    absolute deviation (MiDaS). Unlike a least-squares fit, the scale is positive by
    construction, so a prediction with inverted depth order cannot score well."""
    return normalize_median_mad(pred, mask), normalize_median_mad(target, mask)


def ssi_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scale-and-shift-invariant MAE + MSE of `pred` against `target`."""
    aligned, tn = align_to_target(pred, target, mask)
    diff = aligned - tn
    return _masked_mean(diff.abs(), mask) + _masked_mean(diff * diff, mask)


def gradient_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, scales: int = 4
) -> torch.Tensor:
    """Multi-scale gradient matching (MiDaS): L1 of the x/y differences of pred - target,
    halving the resolution `scales` times. Inputs must already share a frame."""
    total = pred.new_zeros(())
    diff, m = pred - target, mask.to(pred.dtype)
    for _ in range(scales):
        mx = m[..., :, 1:] * m[..., :, :-1]
        my = m[..., 1:, :] * m[..., :-1, :]
        gx = (diff[..., :, 1:] - diff[..., :, :-1]).abs()
        gy = (diff[..., 1:, :] - diff[..., :-1, :]).abs()
        total = (
            total
            + (gx * mx).sum() / mx.sum().clamp_min(1)
            + (gy * my).sum() / my.sum().clamp_min(1)
        )
        if min(diff.shape[-2:]) < 8:
            break
        diff = F.avg_pool2d(diff * m, 2) / F.avg_pool2d(m, 2).clamp_min(EPS)
        m = (F.avg_pool2d(m, 2) > 0.99).to(pred.dtype)
    return total / scales


def coarse_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, grad_weight: float = 0.5
) -> torch.Tensor:
    """The coarse net's loss: SSI MAE+MSE plus gradient matching on the aligned prediction."""
    aligned, tn = align_to_target(pred, target, mask)
    diff = aligned - tn
    ssi = _masked_mean(diff.abs(), mask) + _masked_mean(diff * diff, mask)
    return ssi + grad_weight * gradient_loss(aligned, tn, mask)


def refiner_loss(
    pred: torch.Tensor,
    target_in_frame: torch.Tensor,
    mask: torch.Tensor,
    grad_weight: float = 5.0,
) -> torch.Tensor:
    """The refiner's loss against ground truth already in the coarse frame: MAE + MSE (no
    fitting: the refiner must output that frame itself) plus gradient matching. Both maps
    are in the [0, 1]-ish coarse frame, so the gradient weight follows PRO's 5."""
    diff = pred - target_in_frame
    base = _masked_mean(diff.abs(), mask) + _masked_mean(diff * diff, mask)
    return base + grad_weight * gradient_loss(pred, target_in_frame, mask)


def overlap_pairs(
    origins: list[tuple[int, int]], patch: int
) -> list[tuple[int, int, tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """For square patches of side `patch` at `origins` (y, x), every pair (i, j) that overlaps,
    with the shared region in each patch's own coordinates as (y0, y1, x0, x1)."""
    pairs = []
    for i, (yi, xi) in enumerate(origins):
        for j in range(i + 1, len(origins)):
            yj, xj = origins[j]
            y0, y1 = max(yi, yj), min(yi, yj) + patch
            x0, x1 = max(xi, xj), min(xi, xj) + patch
            if y1 > y0 and x1 > x0:
                pairs.append(
                    (
                        i,
                        j,
                        (y0 - yi, y1 - yi, x0 - xi, x1 - xi),
                        (y0 - yj, y1 - yj, x0 - xj, x1 - xj),
                    )
                )
    return pairs


def consistency_loss(
    preds: torch.Tensor,
    masks: torch.Tensor,
    origins: list[tuple[int, int]],
    mse_weight: float = 4.0,
    mae_weight: float = 1.0,
) -> torch.Tensor:
    """GPCT: disagreement of a group's patch predictions on their shared regions.

    preds, masks: `(G, 1, P, P)` predictions of the G patches of one group (one image) and
    where they may be compared; origins: each patch's (y, x) in the image. Returns
    `mse_weight * MSE + mae_weight * MAE` averaged over the overlapping pairs.
    """
    patch = preds.shape[-1]
    terms = []
    for i, j, (a0, a1, b0, b1), (c0, c1, d0, d1) in overlap_pairs(origins, patch):
        pi, pj = preds[i, :, a0:a1, b0:b1], preds[j, :, c0:c1, d0:d1]
        m = masks[i, :, a0:a1, b0:b1] & masks[j, :, c0:c1, d0:d1]
        diff = pi - pj
        terms.append(
            mse_weight * _masked_mean(diff * diff, m) + mae_weight * _masked_mean(diff.abs(), m)
        )
    if not terms:
        return preds.new_zeros(())
    return torch.stack(terms).mean()
