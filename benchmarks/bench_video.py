"""`prodepth video` on real clips: depth against stereo, camera path against ground truth,
flicker against per-frame inference, CPU time; printed side by side from one run.

KITTI (kitti_odom_seqA, 51 frames): the clip is fitted with the calibration file (left images
only; the right images serve SGBM stereo for evaluation, poses.txt the trajectory check).
  spearman  rank correlation with OpenCV SGBM disparity on the middle frame, valid SGBM
            pixels only; references: the rows prior ("lower is nearer") and per-frame
            inference with the shipped coarse model and the default (refiner) model
  ATE       RMSE of camera positions after a similarity alignment (monocular scale is free),
            also as a percentage of the path length
  flicker   mean over consecutive frames of |aligned(n[t+1]) - n[t]|, each map normalised by
            its median and mean absolute deviation, n[t+1] warped onto frame t by optical flow
            of the images (DIS), then scale/shift-fitted onto n[t]; lower = steadier. "raw" is
            the same without the flow. Neither is pure flicker: at 10 Hz and 12 m/s near
            points' disparity really changes by tens of per cent a frame, so a map with true
            geometry scores worse than a fixed layout; SGBM stereo (valid pixels) is printed
            as the reference for what true geometry scores.
DAVIS (--davis): the rollercoaster clip with the default intrinsics; checks 70 maps appear.

    python benchmarks/bench_video.py [--steps 1500] [--size 416x128] [--davis]
Run it under `nice -n 10` on a shared machine; it uses one thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.data_root import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]

KITTI = SHARED_DATA / "sequences" / "kitti_odom_seqA"
DAVIS = SHARED_DATA / "sequences" / "davis_rollercoaster" / "davis_rollercoaster.mp4"
MIDDLE = 25
FLICKER_SIZE = (416, 128)  # (w, h) every method's maps are compared at


def sgbm_disparity(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Stereo disparity in pixels (0 where SGBM gives none) of a rectified grey pair."""
    block = 5
    sgbm = cv2.StereoSGBM_create(
        minDisparity=0,
        numDisparities=128,
        blockSize=block,
        P1=8 * block * block,
        P2=32 * block * block,
        uniquenessRatio=10,
        speckleWindowSize=100,
        speckleRange=2,
        disp12MaxDiff=1,
        mode=cv2.STEREO_SGBM_MODE_HH,
    )
    disp = sgbm.compute(left, right).astype(np.float32) / 16
    return np.where(disp > 0, disp, 0)


def normalised(disp: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """`disp` minus its median, over its mean absolute deviation (both over `valid`)."""
    med = np.median(disp[valid])
    return (disp - med) / max(float(np.mean(np.abs(disp[valid] - med))), 1e-12)


def flows(frames: list[Path]) -> list[np.ndarray]:
    """Optical flow (DIS, OpenCV) from each frame to the next at FLICKER_SIZE: method-neutral
    motion compensation, taken from the images and not from any depth model."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = [
        cv2.resize(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE), FLICKER_SIZE, cv2.INTER_AREA)
        for f in frames
    ]
    return [dis.calc(a, b, None) for a, b in zip(grey, grey[1:], strict=False)]


def flicker(
    maps: list[np.ndarray], flow: list[np.ndarray] | None = None, valid: list | None = None
) -> float:
    """Mean |aligned(n[t+1]) - n[t]| over consecutive frames; with `flow`, n[t+1] is first
    warped back onto frame t (pixels the flow sends outside the frame are left out). `valid`:
    per-map masks of pixels that have a value (SGBM), at FLICKER_SIZE."""
    from prodepth_cli.metrics import align_disparity

    small = [cv2.resize(m, FLICKER_SIZE, interpolation=cv2.INTER_AREA) for m in maps]
    valid = valid or [np.ones(s.shape, bool) for s in small]
    h, w = small[0].shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    changes = []
    for t in range(len(small) - 1):
        a, b, vb = small[t], small[t + 1].astype(np.float32), valid[t + 1].astype(np.float32)
        inside = np.ones((h, w), bool)
        if flow is not None:
            mx, my = xs + flow[t][..., 0], ys + flow[t][..., 1]
            b = cv2.remap(b, mx, my, cv2.INTER_LINEAR)
            vb = cv2.remap(vb, mx, my, cv2.INTER_NEAREST)
            inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
        v = valid[t] & (vb > 0.5) & inside
        na, nb = normalised(a, v), normalised(b, v)
        changes.append(np.mean(np.abs(align_disparity(nb, na, v) - na)[v]))
    return float(np.mean(changes))


def per_frame(model_path: Path | None, frames: list[Path]) -> list[np.ndarray]:
    """Disparity of each frame on its own, through the depth pipeline."""
    from prodepth_cli.models.runtime import load_model
    from prodepth_cli.pipeline import DepthOptions, depth_array

    model = load_model(model_path, "cpu")
    return [
        depth_array(cv2.imread(str(f))[:, :, ::-1], model, DepthOptions(tile=1024)) for f in frames
    ]


def read_maps(out: Path, names: list[str]) -> list[np.ndarray]:
    return [
        cv2.imread(str(out / f"{n}.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) for n in names
    ]


def bench_kitti(steps: int, size: str, out: Path) -> None:
    from prodepth_cli.metrics import spearman
    from prodepth_cli.video.coarse_weights import default_coarse_onnx
    from prodepth_cli.video.geometry import ate_rmse
    from prodepth_cli.video.pipeline import VideoOptions, video_depth

    frames = sorted((KITTI / "image_l").glob("*.png"))
    names = [f.stem for f in frames]
    options = VideoOptions(steps=steps, calib=str(KITTI / "calib.txt"), size=size, device="cpu")
    wall, cpu = time.perf_counter(), time.process_time()
    report = video_depth(KITTI / "image_l", out, options)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if report.fit.resumed_from:
        print(f"note: resumed at step {report.fit.resumed_from}; times cover the rest only")

    left = cv2.imread(str(frames[MIDDLE]), cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(str(KITTI / "image_r" / frames[MIDDLE].name), cv2.IMREAD_GRAYSCALE)
    stereo = sgbm_disparity(left, right)
    valid = stereo > 0
    rows = np.repeat(np.arange(left.shape[0], dtype=np.float64)[:, None], left.shape[1], 1)
    ours = read_maps(out, names)
    coarse = per_frame(default_coarse_onnx(), frames)
    default = per_frame(None, frames)

    gt = np.loadtxt(KITTI / "poses.txt").reshape(-1, 3, 4)
    fitted = np.loadtxt(out / "poses.txt").reshape(-1, 3, 4)
    path = float(np.linalg.norm(np.diff(gt[:, :, 3], axis=0), axis=1).sum())
    ate = ate_rmse(fitted, gt)

    print(
        f"kitti_odom_seqA: {len(frames)} frames {left.shape[1]}x{left.shape[0]}, "
        f"fitted at {report.fit_size[0]}x{report.fit_size[1]}, {report.fit.steps_run} steps, "
        f"masks: {report.fit.mask_source}"
    )
    print(f"SGBM valid pixels on frame {names[MIDDLE]}: {valid.mean():.1%}")
    flow = flows(frames)
    stereo_maps = [
        sgbm_disparity(
            cv2.imread(str(f), cv2.IMREAD_GRAYSCALE),
            cv2.imread(str(KITTI / "image_r" / f.name), cv2.IMREAD_GRAYSCALE),
        )
        for f in frames
    ]
    stereo_valid = [
        cv2.resize(s, FLICKER_SIZE, interpolation=cv2.INTER_NEAREST) > 0 for s in stereo_maps
    ]
    print(f"{'method':<34}{'spearman':>9}{'flicker':>9}{'raw':>9}")
    print(f"{'rows prior (lower = nearer)':<34}{spearman(rows, stereo, valid):>9.3f}")
    sgbm_flicker = flicker(stereo_maps, flow, stereo_valid)
    sgbm_raw = flicker(stereo_maps, None, stereo_valid)
    print(f"{'stereo SGBM (reference geometry)':<34}{'-':>9}{sgbm_flicker:>9.3f}{sgbm_raw:>9.3f}")
    for label, maps in (
        ("per-frame prodepth-coarse.onnx", coarse),
        ("per-frame default (refiner)", default),
        ("prodepth video (fitted)", ours),
    ):
        rho = spearman(maps[MIDDLE], stereo, valid)
        print(f"{label:<34}{rho:>9.3f}{flicker(maps, flow):>9.3f}{flicker(maps):>9.3f}")
    print(
        f"trajectory: ATE {ate:.2f} m after similarity alignment, path {path:.1f} m "
        f"({100 * ate / path:.1f} % of it)"
    )
    print(
        f"time for {len(frames)} frames: {wall:.0f} s wall, {cpu:.0f} s CPU "
        f"({report.fit.seconds:.0f} s in the fit)"
    )


def bench_davis(steps: int, size: str | None, out: Path) -> None:
    from prodepth_cli.video.pipeline import VideoOptions, video_depth

    options = VideoOptions(steps=steps, size=size, device="cpu", preview=str(out / "preview.mp4"))
    wall = time.perf_counter()
    report = video_depth(DAVIS, out, options)
    wall = time.perf_counter() - wall
    written = sorted(out.glob("[0-9]*.png"))
    ok = "ok" if len(written) == 70 else "WRONG"
    masks = report.fit.masks
    coverage = f" ({masks.mean():.1%} of pixels)" if masks is not None else ""
    print(
        f"davis_rollercoaster: {report.frames} frames {report.width}x{report.height}, fitted at "
        f"{report.fit_size[0]}x{report.fit_size[1]}, {report.fit.steps_run} steps, "
        f"masks: {report.fit.mask_source}{coverage}"
    )
    print(f"maps written: {len(written)} (expected 70: {ok}), {wall:.0f} s wall")


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--size", default=None, help="fitting size WxH (default: the command's)")
    parser.add_argument("--davis", action="store_true", help="the DAVIS clip instead of KITTI")
    parser.add_argument("--out", type=Path, default=None, help="output folder (kept; resumes)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    clip = DAVIS if args.davis else KITTI
    if not clip.exists():
        raise SystemExit(f"reference data not found: {clip}")
    out = args.out or ROOT / "runs" / ("bench_video_davis" if args.davis else "bench_video_kitti")
    if args.davis:
        bench_davis(args.steps, args.size, out)
    else:
        bench_kitti(args.steps, args.size, out)


if __name__ == "__main__":
    main()
