"""The fitted camera motions refined against the fixed depth (`video/motion_refine.py`)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from prodepth_cli.video.cuts import Shots  # noqa: E402
from prodepth_cli.video.geometry import pose_matrix, project, sample_view  # noqa: E402
from prodepth_cli.video.motion_refine import refined_motions  # noqa: E402

H, W, FX = 96, 160, 120.0
K = np.array([[FX, 0, W / 2], [0, FX, H / 2], [0, 0, 1]])


def _plane_depth(normal: np.ndarray, offset: float) -> np.ndarray:
    """`(H, W)` depth of the plane n . X = offset seen by a camera with intrinsics K."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    rays = np.linalg.inv(K) @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    return (offset / (normal @ rays)).reshape(H, W).astype(np.float32)


def _two_views(truth: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A textured tilted plane (a floor rising to a far wall) seen from two cameras,
    `truth` = T_0_to_1: the frames `(H, W, 3)` uint8 and their depths."""
    normal = np.array([0.0, -0.6, -0.8])  # facing the camera, tilted like a road
    offset = -6.0
    depth0 = _plane_depth(normal, offset)
    r, t = truth[:3, :3], truth[:3, 3]
    normal1 = r @ normal
    depth1 = _plane_depth(normal1, offset + normal1 @ t)
    noise = np.random.default_rng(0).uniform(0, 255, (H, W, 3)).astype(np.float32)
    frame1 = cv2.GaussianBlur(noise, (0, 0), 2.0)
    frame1 = (frame1 - frame1.min()) / np.ptp(frame1) * 255
    grid, _ = project(
        torch.from_numpy(depth0)[None, None],
        torch.from_numpy(K).float()[None],
        torch.from_numpy(truth).float()[None],
    )
    image1 = torch.from_numpy(frame1).permute(2, 0, 1)[None]
    frame0 = sample_view(image1, grid)[0].permute(1, 2, 0).numpy()
    frames = [np.clip(f, 0, 255).astype(np.uint8) for f in (frame0, frame1)]
    return frames, [depth0, depth1]


def _motion(rotation: list[float], translation: list[float]) -> np.ndarray:
    return pose_matrix(torch.tensor([rotation]), torch.tensor([translation]))[0].double().numpy()


def _errors(motion: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(rotation error in degrees, translation error as a fraction of the true step)."""
    relative = motion[:3, :3].T @ truth[:3, :3]
    angle = np.degrees(np.arccos(np.clip((np.trace(relative) - 1) / 2, -1, 1)))
    step = np.linalg.norm(motion[:3, 3] - truth[:3, 3]) / np.linalg.norm(truth[:3, 3])
    return float(angle), float(step)


def test_refinement_brings_a_wrong_motion_back_to_the_one_the_depth_explains():
    truth = _motion([0.0, 0.02, 0.0], [0.05, 0.0, -0.3])  # forward, turning a little
    frames, depths = _two_views(truth)
    wrong = _motion([0.003, 0.016, -0.002], [0.08, 0.01, -0.27])  # 0.3 degrees, 14 % off
    before = _errors(wrong, truth)
    refined = refined_motions(wrong[None], depths, frames, K, steps=100)
    after = _errors(refined[0], truth)
    assert refined.shape == (1, 4, 4) and refined.dtype == np.float64
    assert after[0] < before[0] / 3, (before, after)
    assert after[1] < before[1] / 3, (before, after)


def test_the_true_motion_stays_where_it_is():
    truth = _motion([0.0, 0.02, 0.0], [0.05, 0.0, -0.3])
    frames, depths = _two_views(truth)
    refined = refined_motions(truth[None], depths, frames, K, steps=50)
    angle, step = _errors(refined[0], truth)
    assert angle < 0.1 and step < 0.03, (angle, step)


def test_a_step_across_a_cut_and_moving_pixels_are_left_out():
    truth = _motion([0.0, 0.02, 0.0], [0.05, 0.0, -0.3])
    frames, depths = _two_views(truth)
    wrong = _motion([0.005, 0.01, -0.004], [0.12, 0.03, -0.22])
    across = refined_motions(wrong[None], depths, frames, K, Shots(2, (0, 1)), steps=20)
    assert np.array_equal(across[0], wrong), "no motion joins two shots"
    # every pixel of both frames moving: nothing is left to align, the motion barely moves
    moving = [np.ones((H, W), np.uint8)] * 2
    masked = refined_motions(wrong[None], depths, frames, K, masks=moving, steps=20)
    free = refined_motions(wrong[None], depths, frames, K, steps=20)
    assert _errors(masked[0], wrong)[1] < _errors(free[0], wrong)[1] / 5
