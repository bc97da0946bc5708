"""Depth metrics shared by `prodepth eval`, the tests and the benchmarks.

All maps are `(H, W)` float arrays; `valid` is a boolean mask of the same shape. Predictions
and ground truth are compared in disparity space (larger = nearer) after a least-squares
scale-and-shift fit, the usual protocol for affine-invariant models (MiDaS, Depth Anything).
"""

from __future__ import annotations

import numpy as np


def fit_scale_shift(
    pred: np.ndarray, target: np.ndarray, valid: np.ndarray | None = None
) -> tuple[float, float]:
    """Least-squares (s, t) minimising |s * pred + t - target|^2 over valid pixels."""
    p, g = _valid_pairs(pred, target, valid)
    a = np.stack([p, np.ones_like(p)], axis=1)
    (s, t), *_ = np.linalg.lstsq(a, g, rcond=None)
    return float(s), float(t)


def align_disparity(
    pred_disp: np.ndarray, gt_disp: np.ndarray, valid: np.ndarray | None = None
) -> np.ndarray:
    """`pred_disp` scaled and shifted onto `gt_disp`; float64, same shape."""
    s, t = fit_scale_shift(pred_disp, gt_disp, valid)
    return s * pred_disp.astype(np.float64) + t


def abs_rel(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> float:
    """Mean |pred - gt| / gt over valid pixels (depth space)."""
    p, g = pred_depth[valid], gt_depth[valid]
    return float(np.mean(np.abs(p - g) / g))


def delta1(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray) -> float:
    """Fraction of valid pixels with max(pred/gt, gt/pred) < 1.25 (depth space)."""
    p, g = pred_depth[valid], gt_depth[valid]
    return float(np.mean(np.maximum(p / g, g / p) < 1.25))


def spearman(a: np.ndarray, b: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Rank correlation of two maps over valid pixels; tied values share their mean rank.

    Mean ranks matter for maps with large ties (a constant map, a row-wise prior): ranking
    ties by pixel order would correlate with the scan order of the image instead.
    Returns 0.0 when either map is constant over the valid pixels.
    """
    x, y = _valid_pairs(a, b, valid)
    rx, ry = _mean_ranks(x), _mean_ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def _mean_ranks(values: np.ndarray) -> np.ndarray:
    """0-based ranks of a 1-D array, ties given the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    return (first + (counts - 1) / 2.0)[inverse.ravel()]


def affine_invariant_scores(
    pred_disp: np.ndarray, gt_disp: np.ndarray, valid: np.ndarray
) -> dict[str, float]:
    """AbsRel, delta1 and rank correlation of a disparity prediction against ground truth.

    The prediction is fitted to the ground-truth disparity, then both are turned into depth
    (1 / disparity); fitted disparities below 1 % of the ground truth's smallest are clamped
    there, so a bad fit scores badly instead of dividing by zero.
    """
    aligned = align_disparity(pred_disp, gt_disp, valid)
    floor = 0.01 * float(gt_disp[valid].min())
    aligned = np.maximum(aligned, floor)
    gt_depth = 1.0 / np.where(valid, gt_disp, 1.0)
    pred_depth = 1.0 / aligned
    return {
        "absrel": abs_rel(pred_depth, gt_depth, valid),
        "delta1": delta1(pred_depth, gt_depth, valid),
        "spearman": spearman(pred_disp, gt_disp, valid),
    }


def edge_f1(
    pred_disp: np.ndarray,
    gt_disp: np.ndarray,
    valid: np.ndarray,
    threshold: float = 0.05,
    tolerance_px: int = 2,
) -> float:
    """F1 of depth edges: pixels where the disparity jumps by more than `threshold` of the
    map's range to a 4-neighbour, matched within `tolerance_px` pixels.

    Both maps are normalised to [0, 1] over valid pixels before the jump test, so the figure
    is independent of scale and shift. NaN when the ground truth has no edge between two valid
    pixels (sparse LiDAR), where the figure means nothing.
    """
    import cv2

    pe = _depth_edges(pred_disp, valid, threshold)
    ge = _depth_edges(gt_disp, valid, threshold)
    if not ge.any():
        return float("nan")  # nothing to recall: sparse ground truth (KITTI) has no edges
    if not pe.any():
        return 0.0
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance_px + 1,) * 2)
    ge_wide = cv2.dilate(ge.astype(np.uint8), k).astype(bool)
    pe_wide = cv2.dilate(pe.astype(np.uint8), k).astype(bool)
    precision = (pe & ge_wide).sum() / pe.sum()
    recall = (ge & pe_wide).sum() / ge.sum()
    return float(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))


def _depth_edges(disp: np.ndarray, valid: np.ndarray, threshold: float) -> np.ndarray:
    lo, hi = np.percentile(disp[valid], [1, 99])
    d = (disp - lo) / max(hi - lo, 1e-12)
    edges = np.zeros(d.shape, bool)
    dx = np.abs(np.diff(d, axis=1)) > threshold
    dy = np.abs(np.diff(d, axis=0)) > threshold
    vx = valid[:, 1:] & valid[:, :-1]
    vy = valid[1:, :] & valid[:-1, :]
    edges[:, 1:] |= dx & vx
    edges[1:, :] |= dy & vy
    return edges


def seam_ratio(disp: np.ndarray, tiles: list[tuple[int, int, int, int]]) -> float:
    """Gradient across tile edges / the gradient expected there if they were ordinary lines.

    `tiles` holds `(x0, y0, x1, y1)` boxes, end-exclusive. The expectation takes each
    direction on its own (a column edge against the mean horizontal gradient, a row edge
    against the mean vertical one), so any smooth map, a ramp included, scores about 1 and a
    visible seam pushes the figure up. Image borders are not tile edges; with no interior
    edge, or a flat map, the ratio is 1.
    """
    d = disp.astype(np.float64)
    h, w = d.shape
    gx = np.abs(np.diff(d, axis=1))  # gradient between columns x-1 and x, at index x-1
    gy = np.abs(np.diff(d, axis=0))
    cols = sorted({x for x0, _, x1, _ in tiles for x in (x0, x1) if 0 < x < w})
    rows = sorted({y for _, y0, _, y1 in tiles for y in (y0, y1) if 0 < y < h})
    if not cols and not rows:
        return 1.0
    observed = sum(gx[:, x - 1].sum() for x in cols) + sum(gy[y - 1, :].sum() for y in rows)
    expected = len(cols) * gx.mean(axis=1).sum() if cols else 0.0
    expected += len(rows) * gy.mean(axis=0).sum() if rows else 0.0
    if expected == 0:
        return 1.0
    return float(observed / expected)


def _valid_pairs(
    a: np.ndarray, b: np.ndarray, valid: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    mask = np.isfinite(a) & np.isfinite(b)
    if valid is not None:
        mask &= valid
    return a[mask].astype(np.float64), b[mask].astype(np.float64)
