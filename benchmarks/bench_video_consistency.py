"""Video depth side by side in one run: the model frame by frame (what `prodepth depth` gives
per frame), `prodepth video --fast` and the fit, each driven by the same model; flicker,
temporal alignment and accuracy against stereo, and time.

KITTI (kitti_odom_seqA, 51 frames, true poses and a stereo pair per frame):
  jitter  along optical flow from frame t to t-1 and t+1, mean |m(t+1) - 2 m(t) + m(t-1)| on
          forward-backward-consistent pixels, maps as written (16-bit PNG levels over 65535):
          the smooth change a moving camera causes cancels, pumping and shimmer do not
  TAE     the maps given one affine fit to SGBM stereo disparity for the whole clip (so that
          they are depths in metres), frame t's points moved by the true pose into frame t+1
          and compared with its depth there (mean relative error, both directions), as Video
          Depth Anything reports it
  motion  what the jitter measure charges the true camera motion: each frame's map, made
          metric as for TAE, carried exactly by the true poses onto frames t-1 and t+1 (a
          static scene), its |m(t+1) - 2 m(t) + m(t-1)| on the jitter's pixels, in the map's
          own levels. Not zero: a point the camera comes towards grows in disparity faster
          and faster (1 / (Z - v t)), so maps that follow the true geometry of a forward
          drive score about this much jitter however steady they are
  rho     rank correlation with SGBM stereo disparity on 5 frames (valid SGBM pixels), mean
  s/frame wall seconds per frame on this machine (one onnxruntime / torch thread)
DAVIS (--davis, the rollercoaster clip, 70 frames): jitter and time only (no ground truth).

`--cold` adds the fit without a teacher (the cold start from the coarse network, 1500 steps:
~25 min here; `--cold --seeds` with no seed runs it alone beside the model's own figures).

Models: `--model prodepth` (the shipped one, real weights) and `--model standin` (a Depth
Anything V2 architecture with random weights, built here: mechanics, not quality).

    python benchmarks/bench_video_consistency.py [--model prodepth|standin|PATH]
        [--fit-steps 500] [--seeds 0 1 ...] [--no-fit] [--cold] [--davis]
        [--maps video-<clip>-<mode>.npz ...]

`--seeds` fits once with each seed (the batches drawn and the pose net's first weights):
one fit's figures are deterministic on one thread but move with the seed (KITTI: jitter
0.0063 / 0.0066, TAE 0.030 / 0.035, rank correlation 0.783 / 0.764 for seeds 0 / 1) as much
as most settings move them, so compare settings over the same seeds.

`--maps` scores a fit a GPU lease brought back (`scripts/gpu_session.py --video-fit`), its
maps written as `prodepth video` writes them, instead of running the fit here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.data_root import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
KITTI = SHARED_DATA / "sequences" / "kitti_odom_seqA"
DAVIS = SHARED_DATA / "sequences" / "davis_rollercoaster" / "davis_rollercoaster.mp4"
RHO_FRAMES = (5, 15, 25, 35, 45)
TAE_WIDTH = 620  # maps compared at about half KITTI's width
DEPTH_RANGE_M = (1.0, 80.0)  # SGBM's trustworthy range on KITTI: outside it, left out


def kitti_geometry() -> tuple[np.ndarray, float, np.ndarray]:
    """KITTI's left camera matrix K (3x3, full resolution), the stereo baseline in metres and
    the camera-to-world poses `(N, 4, 4)`."""
    rows = [
        np.array(line.split()[1:] if ":" in line else line.split(), float)
        for line in (KITTI / "calib.txt").read_text().splitlines()
        if line.strip()
    ]
    p0, p1 = rows[0].reshape(3, 4), rows[1].reshape(3, 4)
    baseline = -p1[0, 3] / p1[0, 0]
    poses = np.loadtxt(KITTI / "poses.txt").reshape(-1, 3, 4)
    poses = np.concatenate([poses, np.tile([[[0, 0, 0, 1.0]]], (len(poses), 1, 1))], axis=1)
    return p0[:, :3], float(baseline), poses


def stereo_disparity(name: str) -> np.ndarray:
    """SGBM disparity in pixels of KITTI frame `name` (0 where SGBM gives none)."""
    from bench_video import sgbm_disparity

    left = cv2.imread(str(KITTI / "image_l" / name), cv2.IMREAD_GRAYSCALE)
    right = cv2.imread(str(KITTI / "image_r" / name), cv2.IMREAD_GRAYSCALE)
    return sgbm_disparity(left, right)


def _on_stereo_scale(
    maps: list[np.ndarray], stereo: list[np.ndarray], size: tuple[int, int], scale: float
) -> tuple[list[np.ndarray], float, float]:
    """`maps` shrunk to `size` (W, H) and the one affine `(a, b)` for the clip that takes
    them to SGBM disparity in pixels at that size (`scale`: its width over the frames'),
    least squares over SGBM's valid pixels: the maps as metric as stereo makes them."""
    small = [cv2.resize(m.astype(np.float32), size, interpolation=cv2.INTER_AREA) for m in maps]
    disp = [cv2.resize(s, size, interpolation=cv2.INTER_NEAREST) * scale for s in stereo]
    valid = [d > 0 for d in disp]
    x = np.concatenate([m[v] for m, v in zip(small, valid, strict=True)])
    y = np.concatenate([d[v] for d, v in zip(disp, valid, strict=True)])
    a, b = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)[0]
    return small, a, b


def _pixel_rays(k: np.ndarray, w: int, h: int) -> np.ndarray:
    """`(3, h * w)` the ray of every pixel of a `w` x `h` image with intrinsics `k`."""
    us, vs = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.linalg.inv(k) @ np.stack([us.ravel(), vs.ravel(), np.ones(us.size)])


def temporal_alignment_error(
    maps: list[np.ndarray],
    stereo: list[np.ndarray],
    k: np.ndarray,
    baseline: float,
    poses: np.ndarray,
) -> float:
    """TAE (see the module docstring) of disparity-like `maps` against the true poses."""
    h0, w0 = stereo[0].shape
    scale = TAE_WIDTH / w0
    size = (TAE_WIDTH, round(h0 * scale))
    small, a, b = _on_stereo_scale(maps, stereo, size, scale)
    ks = k.copy()
    ks[:2] *= scale
    fx = ks[0, 0]
    lo, hi = DEPTH_RANGE_M
    depths = [fx * baseline / np.maximum(a * m + b, fx * baseline / hi) for m in small]
    h, w = depths[0].shape
    rays = _pixel_rays(ks, w, h)
    errors = []
    for t in range(len(depths) - 1):
        for src, dst in ((t, t + 1), (t + 1, t)):
            d = depths[src].ravel()
            points = rays * d
            motion = np.linalg.inv(poses[dst]) @ poses[src]
            moved = motion[:3, :3] @ points + motion[:3, 3:]
            z = moved[2]
            proj = ks @ moved
            with np.errstate(divide="ignore", invalid="ignore"):
                u, v = proj[0] / z, proj[1] / z
            sampled = cv2.remap(
                depths[dst],
                u.reshape(h, w).astype(np.float32),
                v.reshape(h, w).astype(np.float32),
                cv2.INTER_LINEAR,
                borderValue=0,
            ).ravel()
            keep = (z > lo) & (d < hi) & (sampled > lo) & (sampled < hi)
            keep &= (u >= 0) & (u <= w - 1) & (v >= 0) & (v <= h - 1)
            errors.append(np.mean(np.abs(z[keep] - sampled[keep]) / sampled[keep]))
    return float(np.mean(errors))


def motion_jitter(
    maps: list[np.ndarray],
    frames: list[np.ndarray],
    stereo: list[np.ndarray],
    k: np.ndarray,
    baseline: float,
    poses: np.ndarray,
) -> float:
    """The jitter the true camera motion alone gives `maps` (see the module docstring): on
    the pixels `clip_jitter` counts (at the flow size, forward-backward consistent), the
    second difference of each map's own disparity carried by the true poses, in levels."""
    from prodepth_cli.video.flow import FlowEstimator, flow_size, grey

    h0, w0 = frames[0].shape[:2]
    size = flow_size(w0, h0)
    w, h = size
    small, a, b = _on_stereo_scale(maps, stereo, size, w / w0)
    ks = k.copy()
    ks[0] *= w / w0
    ks[1] *= h / h0
    fb = ks[0, 0] * baseline  # disparity (px) x depth (m)
    rays = _pixel_rays(ks, w, h)
    greys = [grey(cv2.resize(f, size, interpolation=cv2.INTER_AREA)) for f in frames]
    flows = FlowEstimator()
    pairs = [flows.pair(p, q) for p, q in zip(greys, greys[1:], strict=False)]
    lo, hi = DEPTH_RANGE_M
    values = []
    for t in range(1, len(maps) - 1):
        depth = fb / np.maximum(a * small[t].ravel() + b, fb / hi)
        keep = (pairs[t].ok_a & pairs[t - 1].ok_b).ravel() & (depth > lo) & (depth < hi)
        carried = []
        for s in (t - 1, t + 1):
            move = np.linalg.inv(poses[s]) @ poses[t]
            z = (move[:3, :3] @ (rays * depth) + move[:3, 3:])[2]
            carried.append((fb / np.maximum(z, lo) - b) / a)  # back in the map's levels
        second = carried[0] - 2 * small[t].ravel() + carried[1]
        if keep.any():
            values.append(np.mean(np.abs(second[keep])))
    return float(np.mean(values))


def rank_correlation(maps: list[np.ndarray], stereo: dict[int, np.ndarray]) -> float:
    from prodepth_cli.metrics import spearman

    return float(np.mean([spearman(maps[i], s, s > 0) for i, s in stereo.items()]))


def written_levels(folder: Path, names: list[str]) -> list[np.ndarray]:
    """16-bit PNG maps as written, over the clip's own 1st-99th percentile span: every
    method's jitter in units of the range its maps use (`--fast` leaves headroom in a shot's
    PNG range, a map on its own range does not)."""
    maps = [
        cv2.imread(str(folder / f"{n}.png"), cv2.IMREAD_UNCHANGED).astype(np.float32) for n in names
    ]
    lo, hi = np.percentile(np.stack(maps[:: max(1, len(maps) // 10)]), [1, 99])
    return [(m - lo) / max(hi - lo, 1e-6) for m in maps]


def frame_by_frame(model, frames: list[np.ndarray], out: Path, names: list[str]) -> float:
    """Each frame through the depth pipeline on its own, written as `prodepth depth` writes
    it (16-bit PNG over the frame's own range); returns seconds."""
    from prodepth_cli.io.write import DepthScratch, write_depth
    from prodepth_cli.pipeline import depth_array

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for name, rgb in zip(names, frames, strict=True):
        disparity = depth_array(rgb, model)
        with DepthScratch(rgb.shape[1], rgb.shape[0], False) as scratch:
            scratch.add(0, 0, disparity)
            write_depth(scratch, out / f"{name}.png", "png16")
    return time.perf_counter() - start


def video_run(model, clip: Path, out: Path, config=None, **options) -> float:
    """`prodepth video` (the fit, `fast=True`, or with `model` None the cold start) into
    `out`, with `config` (a `FitConfig`) over the fit's defaults; returns seconds."""
    from prodepth_cli.video.pipeline import VideoOptions, video_depth

    start = time.perf_counter()
    video_depth(clip, out, VideoOptions(device="cpu", **options), config=config, model=model)
    return time.perf_counter() - start


def returned_fit(path: Path, names: list[str], size: tuple[int, int], out: Path) -> None:
    """The disparity of a fit a GPU lease returned (`video-<clip>-<mode>.npz`, `(N, h, w)`
    at the fitting size) written into `out` as `prodepth video` writes it, at `size` (W, H)."""
    from prodepth_cli.video.outputs import write_depth_frames

    with np.load(path) as z:
        disparity, returned = z["disparity"].astype(np.float32), [str(n) for n in z["names"]]
    if returned != names:
        raise SystemExit(f"{path}: maps of {len(returned)} frames, the clip has {len(names)}")
    write_depth_frames(disparity, names, out, size)


def load(which: str, folder: Path):
    from prodepth_cli.models.runtime import load_model

    if which == "standin":
        sys.path.insert(0, str(ROOT))
        from tests.standins import depth_anything_v2

        return load_model(depth_anything_v2(folder / "dav2-standin.onnx"), "cpu")
    return load_model(which, "cpu")


def read_frames(clip: Path) -> tuple[list[np.ndarray], list[str]]:
    if clip.is_dir():
        files = sorted(clip.glob("*.png"))
        return [cv2.imread(str(f))[:, :, ::-1].copy() for f in files], [f.stem for f in files]
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(bgr[:, :, ::-1].copy())
    return frames, [f"{i:06d}" for i in range(len(frames))]


def per_frame(seconds: float | None, frames: list) -> str:
    """The s/frame column: '-' for maps timed elsewhere."""
    return f"{'-':>9}" if seconds is None else f"{seconds / len(frames):>9.2f}"


def main() -> None:
    from prodepth_cli.video.consistency import clip_jitter

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="prodepth", help="prodepth, standin or a path")
    parser.add_argument("--fit-steps", type=int, default=500)
    parser.add_argument("--no-fit", action="store_true", help="leave the fit out (slow)")
    parser.add_argument("--davis", action="store_true", help="the DAVIS clip instead of KITTI")
    parser.add_argument("--cold", action="store_true", help="also the fit without a teacher")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="*",
        default=[0],
        help="fit from the model once with each of these seeds (none: only --cold's fit)",
    )
    parser.add_argument(
        "--maps", type=Path, action="append", help="a GPU lease's fit to score instead of fitting"
    )
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    clip = DAVIS if args.davis else KITTI / "image_l"
    if not clip.exists():
        raise SystemExit(f"reference data not found: {clip}")
    work = Path(tempfile.mkdtemp(prefix="bench_video_"))
    model = load(args.model, work)
    frames, names = read_frames(clip)
    runs = {"frame by frame": frame_by_frame(model, frames, work / "per_frame", names)}
    runs["--fast"] = video_run(model, clip, work / "fast", fast=True)
    folders = {"frame by frame": "per_frame", "--fast": "fast"}
    for path in args.maps or []:  # timed on the GPU: its video.json holds the seconds
        returned_fit(path, names, frames[0].shape[1::-1], work / path.stem)
        runs[path.stem], folders[path.stem] = None, path.stem
    if not args.no_fit and not args.maps:
        from prodepth_cli.video.fit import default_config

        extra = {} if args.davis else {"calib": str(KITTI / "calib.txt")}
        for seed in args.seeds:  # the fit's figures move with its seed: say by how much
            label = f"fit, {args.fit_steps} steps" + (f", seed {seed}" if seed else "")
            config = dataclasses.replace(default_config(True, args.fit_steps), seed=seed)
            runs[label] = video_run(model, clip, work / f"fit{seed}", config, **extra)
            folders[label] = f"fit{seed}"
        if args.cold:  # no model teaches (`video_depth(model=None)`): 1500 steps, coarse net
            runs["fit, cold start"] = video_run(None, clip, work / "cold", **extra)
            folders["fit, cold start"] = "cold"
    print(
        f"{clip.name}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}, "
        f"model {model.name}"
    )
    if args.davis:
        print(f"{'method':<24}{'jitter':>9}{'s/frame':>9}")
        for label, seconds in runs.items():
            maps = written_levels(work / folders[label], names)
            print(f"{label:<24}{clip_jitter(maps, frames):>9.4f}{per_frame(seconds, frames)}")
        return
    k, baseline, poses = kitti_geometry()
    stereo = [stereo_disparity(f"{n}.png") for n in names]
    print(f"{'method':<24}{'jitter':>9}{'motion':>9}{'TAE':>9}{'rho':>9}{'s/frame':>9}")
    for label, seconds in runs.items():
        maps = written_levels(work / folders[label], names)
        print(
            f"{label:<24}{clip_jitter(maps, frames):>9.4f}"
            f"{motion_jitter(maps, frames, stereo, k, baseline, poses):>9.4f}"
            f"{temporal_alignment_error(maps, stereo, k, baseline, poses):>9.3f}"
            f"{rank_correlation(maps, {i: stereo[i] for i in RHO_FRAMES}):>9.3f}"
            f"{per_frame(seconds, frames)}"
        )
    truth = [np.where(s > 0, s, 0) for s in stereo]
    print(
        f"{'SGBM stereo (reference)':<24}{'-':>9}{'-':>9}"
        f"{temporal_alignment_error(truth, stereo, k, baseline, poses):>9.3f}"
    )


if __name__ == "__main__":
    main()
