"""`prodepth video`: losses on hand-made cases, geometry, intrinsics, a few-step fit on tiny
clips (synthetic and cut from KITTI), output naming, resuming, and bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.errors import InputError, OptionError
from prodepth_cli.video.coarse_weights import (
    check_parity,
    coarse_net_from_onnx,
    default_coarse_onnx,
)
from prodepth_cli.video.fit import FitConfig
from prodepth_cli.video.geometry import ate_rmse, chain_poses, pose_matrix, project, sample_view
from prodepth_cli.video.intrinsics import default_intrinsics, parse_intrinsics, read_calib
from prodepth_cli.video.losses import (
    depth_consistency,
    edge_aware_smoothness,
    ground_contact_smoothness,
    identity_error,
    reprojection_loss,
)
from prodepth_cli.video.pipeline import VideoOptions, video_depth
from prodepth_cli.video.temporal import EDGE_FADE, fused_frames
from tests.conftest import SHARED_DATA, require, scene_image

KITTI = SHARED_DATA / "sequences" / "kitti_odom_seqA"
runner = CliRunner()
# Two steps in each stage: enough to run every code path (static fit, automatic masks,
# GDS, checkpoint) in a few seconds; quality is the benchmark's business.
TINY_FIT = FitConfig(steps=4, fine_fraction=0.5, checkpoint_every=2)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- losses -------------------------------------------------------------------------------


def _object_scene(object_disp: float, ground: str = "flat") -> tuple[torch.Tensor, ...]:
    """A 40x60 disparity map: ground (flat 0.5, or a ramp nearer at the bottom) and a box
    object (rows 10-24, cols 20-39) standing on row 25; uniform image, object mask."""
    h, w = 40, 60
    rows = torch.linspace(0.2, 0.8, h)[:, None].expand(h, w)
    disp = torch.full((h, w), 0.5) if ground == "flat" else rows.clone()
    disp[10:25, 20:40] = object_disp
    mask = torch.zeros(h, w)
    mask[10:25, 20:40] = 1
    image = torch.full((1, 3, h, w), 0.5)
    return disp[None, None].clone(), image, mask[None, None]


def test_gds_zero_when_object_disparity_equals_its_ground_contact():
    disp, image, mask = _object_scene(0.5)
    assert float(ground_contact_smoothness(disp, image, mask)) == pytest.approx(0.0, abs=1e-7)


def test_gds_positive_when_object_drifts_from_its_ground_contact():
    far, image, mask = _object_scene(0.1)
    near, _, _ = _object_scene(0.9)
    assert float(ground_contact_smoothness(far, image, mask)) > 0.1
    assert float(ground_contact_smoothness(near, image, mask)) > 0.1


def test_gds_prefers_the_contact_disparity_on_a_sloping_ground():
    contact = float(torch.linspace(0.2, 0.8, 40)[25])  # ground disparity where the box stands
    at_contact, image, mask = _object_scene(contact, "ramp")
    drifted, _, _ = _object_scene(0.1, "ramp")
    gds_contact = float(ground_contact_smoothness(at_contact, image, mask))
    gds_drifted = float(ground_contact_smoothness(drifted, image, mask))
    # the standard smoothness barely cares (one edge either way); GDS makes drifting costly
    assert gds_drifted > 10 * gds_contact
    assert float(edge_aware_smoothness(drifted, image)) < 10 * float(
        edge_aware_smoothness(at_contact, image)
    )


def _texture(h: int, w: int) -> torch.Tensor:
    rgb = scene_image(h, w, seed=3).astype(np.float32) / 255
    noise = np.random.default_rng(1).uniform(0, 0.2, (h, w, 1)).astype(np.float32)
    return torch.from_numpy(np.clip(rgb + noise, 0, 1)).permute(2, 0, 1)[None]


def test_photometric_loss_zero_for_an_exact_warp():
    # A fronto-parallel plane at depth 10 seen by a camera moved 0.4 sideways: every pixel
    # moves by fx * 0.4 / 10 = 4 px, so the source is the target shifted by 4 columns.
    h, w, shift, fx, z = 48, 96, 4, 100.0, 10.0
    tex = _texture(h, w + shift)
    target, source = tex[..., shift:], tex[..., :w]
    k = torch.tensor([[[fx, 0, w / 2], [0, fx, h / 2], [0, 0, 1]]])
    motion = pose_matrix(torch.zeros(1, 3), torch.tensor([[shift * z / fx, 0.0, 0.0]]))
    border = torch.zeros(1, 1, h, w)
    border[..., -(shift + 2) :] = 1  # sampled outside the source frame (and SSIM's window)

    def loss(depth: float) -> float:
        grid, _ = project(torch.full((1, 1, h, w), depth), k, motion)
        warped = sample_view(source, grid)
        rep = reprojection_loss(target, [warped], identity_error(target, [source]), border)
        return float(rep.loss)

    assert loss(z) < 1e-5, "the true depth and motion reproduce the target exactly"
    assert loss(z / 2) > 0.02, "a wrong depth leaves a photometric error"


def test_depth_consistency_zero_when_neighbours_agree_under_the_motion():
    # A fronto-parallel plane at depth 10; the camera moves 1 forward, so the plane is at
    # depth 9 in the source view. A source depth of 9 agrees, 12 does not.
    h, w, fx = 32, 48, 60.0
    k = torch.tensor([[[fx, 0, w / 2], [0, fx, h / 2], [0, 0, 1]]])
    forward = pose_matrix(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, -1.0]]))
    grid, z = project(torch.full((1, 1, h, w), 10.0), k, forward)
    assert torch.allclose(z, torch.full_like(z, 9.0))

    def gap(source_depth: float, exclude=None) -> float:
        source = torch.full((1, 1, h, w), source_depth)
        return float(depth_consistency(z, grid, source, exclude))

    assert gap(9.0) < 1e-6
    assert gap(12.0) == pytest.approx(3 / 21, rel=1e-4)
    moving = torch.ones(1, 1, h, w)  # every pixel excluded: nothing left to disagree
    assert gap(12.0, moving) == 0.0


def test_fused_frames_read_each_depth_map_once_and_only_within_the_window():
    # Still camera, each frame a plane at its own depth (within AGREEMENT of the others):
    # every neighbour agrees, so each fused frame is the harmonic mean of its window (inside
    # the border pixels, where the neighbours' word fades: EDGE_FADE). The maps are read one
    # at a time as the window slides (a memory-mapped clip of any length costs
    # 2 x radius + 1 frames), never ahead of it.
    n, radius, h, w = 12, 2, 8, 10
    levels = 10 + np.sin(np.arange(n, dtype=np.float32))
    depth = np.repeat(levels, h * w).reshape(n, h, w).astype(np.float32)
    reads: list[int] = []

    class Recorded:  # a clip on disk: what is read, and when
        shape, dtype = depth.shape, depth.dtype

        def __len__(self) -> int:
            return n

        def __getitem__(self, i: int) -> np.ndarray:
            reads.append(i)
            return depth[i]

    k, still = default_intrinsics(w, h).matrix(), np.tile(np.eye(4), (n - 1, 1, 1))
    for t, fused in enumerate(fused_frames(Recorded(), still, k, radius)):
        assert max(reads) <= t + radius, f"frame {max(reads)} read before fusing {t}"
        window = levels[max(0, t - radius) : t + radius + 1]
        harmonic = len(window) / (1 / window).sum()
        assert np.allclose(fused[1:-1, 1:-1], harmonic, rtol=1e-5)  # float32 sums
    assert sorted(reads) == list(range(n)), "each map read once"


@pytest.mark.parametrize(
    ("factor", "counted"),
    [(3.5, True), (0.3, True), (4.5, False), (0.2, False)],
)
def test_a_neighbour_counts_within_a_factor_of_four_either_way(factor, counted):
    # Still camera, frame 0 a plane at 10, frame 1 at 10 x factor: within four times as
    # far or as near, frame 1's depth is averaged into frame 0's (in disparity); beyond
    # that, an occluder or a moving object by the look of it, frame 0 keeps its own.
    h, w = 8, 10
    depth = np.stack([np.full((h, w), 10.0), np.full((h, w), 10.0 * factor)]).astype(np.float32)
    k, still = default_intrinsics(w, h).matrix(), np.eye(4)[None]
    fused = next(fused_frames(depth, still, k, radius=1))
    harmonic = 2 / (1 / 10.0 + 1 / (10.0 * factor))
    assert np.allclose(fused[1:-1, 1:-1], harmonic if counted else 10.0, rtol=1e-5)


def test_a_neighbours_word_fades_in_from_the_edge_of_its_frame():
    # The camera slides sideways between two frames of a plane at 10 (frame 1 says 12):
    # frame 0's points move 20 px to the right in frame 1, so its last 20 columns fall
    # outside what frame 1 saw. Frame 0's fused depth goes from the two frames' harmonic
    # mean to its own 10 smoothly, over EDGE_FADE of the width, not in one column: a step
    # there is a ring fixed in the frame, which the scene flows through as flicker.
    h, w, shift = 16, 64, 20
    k = default_intrinsics(w, h).matrix()
    slide = np.eye(4)[None]
    slide[0, 0, 3] = shift * 10.0 / k[0, 0]  # x moved so that u + fx * tx / Z = u + 20
    depth = np.stack([np.full((h, w), 10.0), np.full((h, w), 12.0)]).astype(np.float32)
    row = next(fused_frames(depth, slide, k, radius=1))[h // 2]
    assert np.allclose(row[: w - shift - round(EDGE_FADE * w) - 1], 2 / (1 / 10 + 1 / 12))
    assert np.allclose(row[w - shift :], 10.0)
    steps = np.diff(row)
    assert (steps <= 1e-6).all(), "from the mean to its own depth, monotonically"
    assert np.abs(steps).max() < 0.4 * (2 / (1 / 10 + 1 / 12) - 10.0), "no step"


# --- geometry, intrinsics, weights --------------------------------------------------------


def test_inverted_pose_is_the_inverse_transform():
    rot, trans = torch.tensor([[0.1, -0.2, 0.05]]), torch.tensor([[0.3, 0.1, 1.0]])
    product = pose_matrix(rot, trans) @ pose_matrix(rot, trans, invert=True)
    assert torch.allclose(product, torch.eye(4)[None], atol=1e-6)


def test_ate_is_zero_for_a_scaled_rotated_copy_of_the_trajectory():
    forward = np.eye(4)
    forward[2, 3] = 1.0
    turn = pose_matrix(torch.tensor([[0.0, 0.05, 0.0]]), torch.zeros(1, 3))[0].double().numpy()
    reference = chain_poses([np.linalg.inv(turn @ forward)] * 10)
    estimated = reference.copy()
    estimated[:, :3, 3] = 0.2 * reference[:, :3, 3] @ np.diag([1, 1, 1]).T + 3.0
    assert ate_rmse(estimated, reference) < 1e-9
    estimated[5, :3, 3] += 1.0
    assert ate_rmse(estimated, reference) > 0.01


def test_intrinsics_from_flag_calib_file_and_default(tmp_path):
    k = parse_intrinsics("700, 710,600.5,180", 1226, 370).scaled_to(613, 185)
    assert (k.fx, k.fy, k.cx, k.cy) == pytest.approx((350, 355, 300.25, 90))
    for bad in ("700,710,600", "a,b,c,d", "0,700,600,180", ""):
        with pytest.raises(OptionError):
            parse_intrinsics(bad, 100, 100)
    labelled = tmp_path / "calib_labelled.txt"
    labelled.write_text(
        "P2: 721.5 0 609.6 44.9 0 721.5 172.9 0.2 0 0 1 0.003\n"
        "P0: 707.1 0 601.9 0 0 707.1 183.1 0 0 0 1 0\n"
    )
    assert read_calib(labelled, 1226, 370).fx == pytest.approx(707.1), "P0 wins"
    plain = tmp_path / "calib.txt"
    plain.write_text("7.07e2 0 6.02e2 0 0 7.07e2 1.83e2 0 0 0 1 0\n1 2 3\n")
    assert read_calib(plain, 1226, 370).cy == pytest.approx(183.0)
    default = default_intrinsics(960, 540)
    assert (default.fx, default.cx, default.cy) == pytest.approx((556.8, 480, 270))


def test_calibration_without_a_projection_matrix_is_an_input_error(tmp_path):
    bad = tmp_path / "calib.txt"
    bad.write_text("hello\n1 2 3\n")
    with pytest.raises(InputError, match="no 3x4 projection matrix"):
        read_calib(bad, 100, 100)


def test_depth_net_starts_from_the_shipped_coarse_network():
    path = default_coarse_onnx()
    net = coarse_net_from_onnx(path)
    check_parity(net, path, (64, 96))  # raises above the tolerance of the file's precision


# --- fitting and outputs ------------------------------------------------------------------


def _synthetic_frames(folder: Path, n: int = 6, h: int = 64, w: int = 192) -> Path:
    """A camera sliding sideways over a textured image: `frame_a00.png` ... in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    wide = scene_image(h, w + 4 * n, seed=5)
    for i in range(n):
        cv2.imwrite(str(folder / f"frame_a{i:02d}.png"), wide[:, 4 * i : 4 * i + w, ::-1])
    return folder


def _assert_depth_maps(out: Path, names: list[str], shape: tuple[int, int]) -> None:
    for name in names:
        depth = cv2.imread(str(out / f"{name}.png"), cv2.IMREAD_UNCHANGED)
        assert depth is not None, f"{name}.png missing"
        assert depth.dtype == np.uint16 and depth.shape == shape
    poses = np.loadtxt(out / "poses.txt")
    assert poses.shape == (len(names), 12)
    assert np.allclose(poses[0], np.eye(4)[:3].ravel()), "frame 0 at the origin"


def test_fit_on_a_folder_writes_maps_named_by_frame_and_resumes(tmp_path):
    frames = _synthetic_frames(tmp_path / "clip")
    out = tmp_path / "out"
    report = video_depth(frames, out, VideoOptions(device="cpu"), TINY_FIT)
    names = [f"frame_a{i:02d}" for i in range(6)]
    _assert_depth_maps(out, names, (64, 192))
    assert report.fit.steps_run == 4 and report.fit.resumed_from == 0
    assert np.isfinite(report.fit.losses).all()
    assert report.fit.mask_source in ("automatic", "none")
    longer = FitConfig(steps=6, fine_fraction=0.5, checkpoint_every=2)
    again = video_depth(frames, out, VideoOptions(device="cpu"), longer)
    assert again.fit.resumed_from == 4 and again.fit.steps_run == 2
    with pytest.raises(OptionError, match="other intrinsics"):
        video_depth(frames, out, VideoOptions(device="cpu", intrinsics="90,90,96,32"), longer)


def test_fit_uses_given_masks(tmp_path):
    frames = _synthetic_frames(tmp_path / "clip")
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(6):
        m = np.zeros((64, 192), np.uint8)
        m[20:50, 80:110] = 255
        cv2.imwrite(str(masks / f"m{i}.png"), m)
    report = video_depth(
        frames, tmp_path / "out", VideoOptions(device="cpu", masks=str(masks)), TINY_FIT
    )
    assert report.fit.mask_source == "given"
    assert report.fit.masks[:, 30, 90].all() and not report.fit.masks[:, 5, 5].any()


def test_fit_on_kitti_frames_gives_positive_depth_named_by_frame(tmp_path):
    src = require(KITTI / "image_l")
    clip = tmp_path / "kitti"
    clip.mkdir()
    for f in sorted(src.iterdir())[20:28]:  # 8 frames, cut to 384x128 and shrunk to 192x64
        cv2.imwrite(str(clip / f.name), cv2.imread(str(f))[121:249, 421:805])
    options = VideoOptions(device="cpu", calib=str(KITTI / "calib.txt"), size="192x64")
    report = video_depth(clip, tmp_path / "out", options, TINY_FIT)
    _assert_depth_maps(tmp_path / "out", [f"{i:06d}" for i in range(20, 28)], (128, 384))
    assert np.isfinite(report.fit.disparity).all() and (report.fit.disparity > 0).all()


def _video(path: Path, n: int = 5, h: int = 64, w: int = 96) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 12, (w, h))
    wide = scene_image(h, w + 3 * n, seed=7)
    for i in range(n):
        writer.write(np.ascontiguousarray(wide[:, 3 * i : 3 * i + w, ::-1]))
    writer.release()
    return path


def test_cli_on_a_video_names_maps_by_index_and_writes_a_preview(tmp_path):
    src = _video(tmp_path / "clip.mp4")
    out, preview = tmp_path / "out", tmp_path / "preview.mp4"
    result = runner.invoke(
        app,
        ["video", str(src), "-o", str(out), "--steps", "2", "--size", "96x64"]
        + ["--device", "cpu", "--preview", str(preview), "--json"],
    )
    assert result.exit_code == 0, result.stderr
    *shots, record = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["record"] == "run" and record["frames"] == 5 and record["steps_run"] == 2
    assert [(s["record"], s["first"], s["last"]) for s in shots] == [("shot", 0, 4)]
    _assert_depth_maps(out, [f"{i:06d}" for i in range(5)], (64, 96))
    cap = cv2.VideoCapture(str(preview))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()


def _assert_one_line_error(result, *needles: str) -> None:
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line, got: {result.stderr!r}"
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing", "no such file"),
        ("not_a_video", "not a video"),
        ("empty_folder", "no image files"),
        ("bad_intrinsics", "fx,fy,cx,cy"),
        ("bad_calib", "no 3x4 projection matrix"),
        ("both_intrinsics", "choose one"),
        ("bad_size", "multiples of 32"),
    ],
)
def test_cli_bad_input_is_one_line_error(tmp_path, case, needle):
    frames = _synthetic_frames(tmp_path / "clip", n=3)
    calib = tmp_path / "calib.txt"
    calib.write_text("not a calibration\n")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"definitely not a video")
    (tmp_path / "empty").mkdir()
    args = {
        "missing": [str(tmp_path / "nope.mp4")],
        "not_a_video": [str(junk)],
        "empty_folder": [str(tmp_path / "empty")],
        "bad_intrinsics": [str(frames), "--intrinsics", "700,700"],
        "bad_calib": [str(frames), "--calib", str(calib)],
        "both_intrinsics": [str(frames), "--intrinsics", "1,1,1,1", "--calib", str(calib)],
        "bad_size": [str(frames), "--size", "100x50"],
    }[case]
    result = runner.invoke(app, ["video", *args, "-o", str(tmp_path / "out"), "--steps", "1"])
    _assert_one_line_error(result, needle)
    if case in ("missing", "not_a_video", "empty_folder", "bad_calib"):
        assert Path(args[-1]).name in result.stderr


def test_cli_import_does_not_load_torch():
    import subprocess

    code = "import sys, prodepth_cli.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
