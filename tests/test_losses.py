"""Losses on hand-made cases, and Bias Free Masking on a made-up depth map."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from prodepth_cli.training.bfm import bias_free_mask  # noqa: E402
from prodepth_cli.training.gpct import group_origins  # noqa: E402
from prodepth_cli.training.losses import (  # noqa: E402
    coarse_loss,
    consistency_loss,
    fit_scale_shift,
    gradient_loss,
    refiner_loss,
    ssi_loss,
)


def _ramp(b: int = 2, h: int = 32, w: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    base = torch.linspace(0.2, 2.0, h)[:, None] * torch.linspace(1, 1.5, w)[None]
    return (base + 0.1 * torch.rand(b, 1, h, w, generator=g)).float()


def test_fit_scale_shift_recovers_known_affine():
    x = _ramp()
    mask = torch.ones_like(x, dtype=torch.bool)
    s, t = fit_scale_shift(x, 3.0 * x - 0.5, mask)
    assert torch.allclose(s, torch.full_like(s, 3.0), atol=1e-3)
    assert torch.allclose(t, torch.full_like(t, -0.5), atol=1e-3)


def test_ssi_loss_is_invariant_to_scale_and_shift_of_prediction():
    target = _ramp()
    pred = target + 0.05 * torch.sin(target * 20)
    mask = torch.ones_like(target, dtype=torch.bool)
    base = ssi_loss(pred, target, mask)
    # the fit is exact least squares in float32: 1e-4 relative covers the rounding
    assert torch.allclose(ssi_loss(7.0 * pred + 3.0, target, mask), base, rtol=1e-4, atol=1e-6)
    assert torch.allclose(ssi_loss(0.01 * pred - 5.0, target, mask), base, rtol=1e-3, atol=1e-6)
    assert float(ssi_loss(2 * target + 1, target, mask)) < 1e-4


def test_losses_ignore_masked_pixels():
    target = _ramp()
    pred = target.clone()
    mask = torch.ones_like(target, dtype=torch.bool)
    mask[..., :8, :] = False
    pred[..., :8, :] = 100.0  # garbage only where masked
    assert float(ssi_loss(pred, target, mask)) < 1e-4
    assert float(gradient_loss(pred, target, mask)) < 1e-5
    assert float(refiner_loss(pred, target, mask)) < 1e-5
    assert float(coarse_loss(pred, target, mask)) < 1e-3


def test_gradient_loss_sees_a_missing_edge():
    target = torch.zeros(1, 1, 32, 32)
    target[..., 16:] = 1.0
    blurred = torch.linspace(0, 1, 32).expand(1, 1, 32, 32).clone()
    mask = torch.ones_like(target, dtype=torch.bool)
    assert float(gradient_loss(target, target, mask)) == 0.0
    assert float(gradient_loss(blurred, target, mask)) > 0.01


def _group_from_image(img: torch.Tensor, patch: int, overlap: int):
    origins = group_origins(0, 0, patch, overlap)
    preds = torch.stack([img[:, y : y + patch, x : x + patch] for y, x in origins])
    return preds, origins


def test_gpct_loss_is_zero_for_consistent_patches():
    img = _ramp(1, 48, 48)[0]
    preds, origins = _group_from_image(img, 32, 16)
    masks = torch.ones_like(preds, dtype=torch.bool)
    assert float(consistency_loss(preds, masks, origins)) == 0.0


def test_gpct_loss_is_positive_when_patches_disagree():
    img = _ramp(1, 48, 48)[0]
    preds, origins = _group_from_image(img, 32, 16)
    preds = preds.clone()
    preds[3] += 0.1  # the bottom-right patch is shifted: a seam against its three neighbours
    masks = torch.ones_like(preds, dtype=torch.bool)
    loss = float(consistency_loss(preds, masks, origins))
    # 3 of the 6 overlapping pairs differ by 0.1: (4 * 0.01 + 1 * 0.1) * 3 / 6 = 0.07
    assert loss == pytest.approx(0.07, rel=1e-4)


def test_bfm_masks_holes_and_depth_edges():
    h, w = 64, 64
    disp = np.full((h, w), 0.5, np.float32)
    disp[:, 32:] = 2.0  # a depth step at column 32
    valid = np.ones((h, w), bool)
    valid[10:20, 10:20] = False  # a hole
    rgb = np.full((h, w, 3), 0.5, np.float32)
    mask = bias_free_mask(rgb, disp, valid, border_px=2)
    assert not mask[10:20, 10:20].any()  # the hole itself
    assert not mask[9, 15] and not mask[20, 15]  # its rim (mixed depth)
    assert not mask[40, 30:34].any()  # both sides of the depth edge
    assert mask[40, 20] and mask[40, 45]  # well inside each surface
    assert not mask[0].any() and not mask[:, -1].any()  # the border


def test_bfm_masks_saturated_spots():
    disp = np.ones((32, 32), np.float32)
    rgb = np.full((32, 32, 3), 0.5, np.float32)
    rgb[14:18, 14:18] = 1.0
    mask = bias_free_mask(rgb, disp, np.ones((32, 32), bool), border_px=0)
    assert not mask[15, 15] and mask[5, 5]
