"""Self-supervised losses: photometric reprojection (SSIM + L1, per-pixel minimum over source
frames, auto-masking), edge-aware smoothness, the ground-contact disparity smoothness (GDS),
the geometric consistency of neighbouring frames' depths, and agreement with a per-frame
teacher up to scale and shift.

Images are `(B, 3, H, W)` in [0, 1]; disparities `(B, 1, H, W)`, larger = nearer; masks
`(B, 1, H, W)` float in {0, 1}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from prodepth_cli.video.geometry import lands_inside, sample_view

SSIM_WEIGHT = 0.85  # monodepth2: 0.85 (1 - SSIM) / 2 + 0.15 L1
SMOOTH_WEIGHT = 1e-3  # per scale s divided by 2**s
GDS_OBJECT_WEIGHT = 100.0  # vertical smoothness inside dynamic objects (1 elsewhere)
# Identity errors get a tiny random offset so ties (flat regions) do not favour them.
_IDENTITY_NOISE = 1e-5


def _box3(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean of a `(B, C, H+2, W+2)` padded map -> `(B, C, H, W)`, as shifted sums
    (torch's CPU avg_pool2d with stride 1 is several times slower)."""
    rows = x[..., :-2, :] + x[..., 1:-1, :] + x[..., 2:, :]
    return (rows[..., :-2] + rows[..., 1:-1] + rows[..., 2:]) / 9


def ssim_dissimilarity(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1 - SSIM) / 2 per pixel and channel on 3x3 windows with reflection padding, in [0, 1]."""
    c1, c2 = 0.01**2, 0.03**2
    x, y = F.pad(x, (1, 1, 1, 1), mode="reflect"), F.pad(y, (1, 1, 1, 1), mode="reflect")
    mx, my = _box3(x), _box3(y)
    sx = _box3(x * x) - mx * mx
    sy = _box3(y * y) - my * my
    sxy = _box3(x * y) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sx + sy + c2)
    return ((1 - num / den) / 2).clamp(0, 1)


def photometric_error(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`(B, 1, H, W)`: 0.85 (1 - SSIM) / 2 + 0.15 |pred - target|, averaged over channels."""
    l1 = (pred - target).abs().mean(1, keepdim=True)
    ssim = ssim_dissimilarity(pred, target).mean(1, keepdim=True)
    return SSIM_WEIGHT * ssim + (1 - SSIM_WEIGHT) * l1


@dataclass
class Reprojection:
    """Per-pixel outcome of the reprojection loss: `error` the minimum over warped sources,
    `kept` 1 where a warped source beat every unwarped one (auto-mask), both `(B, 1, H, W)`."""

    loss: torch.Tensor
    error: torch.Tensor
    kept: torch.Tensor


def identity_error(target: torch.Tensor, sources: list[torch.Tensor]) -> torch.Tensor:
    """`(B, 1, H, W)`: the best photometric error of the *unwarped* sources (the auto-mask's
    reference; the same at every scale, so computed once a step)."""
    identity = torch.cat([photometric_error(s, target) for s in sources], 1)
    identity = identity + torch.randn_like(identity) * _IDENTITY_NOISE
    return identity.min(1, keepdim=True).values


def reprojection_loss(
    target: torch.Tensor,
    warped: list[torch.Tensor],
    identity: torch.Tensor,
    exclude: torch.Tensor | None = None,
) -> Reprojection:
    """Minimum reprojection with auto-masking (monodepth2).

    warped: each source frame synthesised into the target view; identity: `identity_error`
    of the same frames unwarped. A pixel an unwarped source explains better than any warp
    (static camera, an object moving with the camera, texture-less) drops out. `exclude`
    (1 = leave out, e.g. dynamic objects) removes pixels from the mean as well.
    """
    reproj = torch.cat([photometric_error(w, target) for w in warped], 1)
    best_reproj = reproj.min(1, keepdim=True).values
    kept = (best_reproj < identity).to(target.dtype)
    weight = kept if exclude is None else kept * (1 - exclude)
    loss = (best_reproj * weight).sum() / weight.sum().clamp_min(1.0)
    return Reprojection(loss, best_reproj.detach(), kept.detach())


def depth_consistency(
    depth_in_source: torch.Tensor,
    grid: torch.Tensor,
    source_depth: torch.Tensor,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """Geometric consistency (SC-SfMLearner): the depth each target point has in the source
    camera (`depth_in_source`, `(B, 1, H, W)`, from `geometry.project`, landing at `grid`)
    against the source's own depth there, as |z - d| / (z + d) in [0, 1), averaged over the
    points that land inside the source frame (and are not `exclude`d, e.g. moving objects).

    Zero when the two frames' depths agree under the motion; it ties each frame's depth to
    its neighbours', which the photometric loss alone leaves free to flicker.
    """
    seen = sample_view(source_depth, grid)
    weight = lands_inside(grid).to(seen.dtype)
    if exclude is not None:
        weight = weight * (1 - exclude)
    gap = (seen - depth_in_source).abs() / (seen + depth_in_source)
    return (gap * weight).sum() / weight.sum().clamp_min(1.0)


def _mean_normalised(disp: torch.Tensor) -> torch.Tensor:
    return disp / disp.mean((2, 3), keepdim=True).clamp_min(1e-7)


def _gradients(disp: torch.Tensor, image: torch.Tensor):
    """|d/dx| and |d/dy| of disparity and the image edge damping exp(-mean_c |dI|)."""
    dx = (disp[..., :, 1:] - disp[..., :, :-1]).abs()
    dy = (disp[..., 1:, :] - disp[..., :-1, :]).abs()
    ex = torch.exp(-(image[..., :, 1:] - image[..., :, :-1]).abs().mean(1, keepdim=True))
    ey = torch.exp(-(image[..., 1:, :] - image[..., :-1, :]).abs().mean(1, keepdim=True))
    return dx, dy, ex, ey


def edge_aware_smoothness(disp: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Mean of |dd/dx| e^-|dI/dx| + |dd/dy| e^-|dI/dy| on mean-normalised disparity: flat
    where the image is flat, free to jump at image edges."""
    dx, dy, ex, ey = _gradients(_mean_normalised(disp), image)
    return (dx * ex).mean() + (dy * ey).mean()


def ground_contact_smoothness(
    disp: torch.Tensor, image: torch.Tensor, objects: torch.Tensor
) -> torch.Tensor:
    """GDS: edge-aware smoothness outside `objects` (the dilated dynamic-object mask); inside,
    only the vertical term, 100 times stronger and without edge damping, so the disparity of
    the ground where an object stands propagates up through it.

    Zero when every object's disparity equals its contact point's and the rest is flat.
    """
    dx, dy, ex, ey = _gradients(_mean_normalised(disp), image)
    # A vertical pair belongs to the object when its upper pixel does: the object's bottom
    # row is tied to the ground below it, its top edge stays free (edge-aware).
    inside_y = objects[..., :-1, :]
    inside_x = torch.maximum(objects[..., :, 1:], objects[..., :, :-1])
    vertical = dy * (inside_y * GDS_OBJECT_WEIGHT + (1 - inside_y) * ey)
    horizontal = dx * ex * (1 - inside_x)
    return vertical.mean() + horizontal.mean()


def dilate(mask: torch.Tensor, iterations: int = 10) -> torch.Tensor:
    """`(B, 1, H, W)` {0, 1} mask grown by `iterations` 3x3 steps (the paper uses 10)."""
    if iterations <= 0:
        return mask
    return F.max_pool2d(mask, 2 * iterations + 1, 1, iterations)


def align_to(teacher: torch.Tensor, disp: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """`teacher` `(B, 1, H, W)` scaled and shifted per image onto `disp` by weighted least
    squares (a scale of at least 1e-6: never flipped), without gradient."""
    with torch.no_grad():
        w = weight.expand_as(disp)
        sw = w.sum((1, 2, 3)).clamp_min(1e-6)
        mt = (w * teacher).sum((1, 2, 3)) / sw
        md = (w * disp).sum((1, 2, 3)) / sw
        cov = (w * (teacher - mt.view(-1, 1, 1, 1)) * (disp - md.view(-1, 1, 1, 1))).sum((1, 2, 3))
        var = (w * (teacher - mt.view(-1, 1, 1, 1)) ** 2).sum((1, 2, 3)).clamp_min(1e-12)
        scale = (cov / var).clamp_min(1e-6)
        shift = md - scale * mt
        return teacher * scale.view(-1, 1, 1, 1) + shift.view(-1, 1, 1, 1)


def teacher_loss(disp: torch.Tensor, teacher: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Scale-and-shift-invariant L1 to a per-frame teacher (MiDaS-style): the teacher
    `(B, 1, H, W)` aligned to the disparity `disp` by least squares (`align_to`, detached),
    |disp - aligned| over disp's mean absolute deviation from its median (detached: the
    normalised maps), weighted per pixel by `weight` `(B, 1, H, W)` and averaged.

    Zero when `disp` is an affine copy of the teacher, whatever the scale of either."""
    aligned = align_to(teacher, disp, torch.ones_like(disp))
    flat = disp.detach().flatten(1)
    spread = (flat - flat.median(1, keepdim=True).values).abs().mean(1).clamp_min(1e-9)
    gap = (disp - aligned).abs() * weight / spread.view(-1, 1, 1, 1)
    return gap.mean()
