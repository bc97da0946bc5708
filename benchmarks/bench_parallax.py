"""`prodepth parallax` speed: seconds of rendering per second of 1080p video, beside the depth
pass that precedes it, the H.264 encode and `prodepth stereo`'s warp (one side-by-side pair
of the same photograph and map), measured in one run on one photograph.

The photograph (default: examples/bartender.jpg) is read at the size a 1080p video samples
(`parallax_file` does the same), its depth made by `prodepth depth`'s pipeline on the default
model (`ModelDepth`, as the command runs it without --depth), then `--frames` frames of each
path are rendered (ray march, `Clip.frame`, numpy and OpenCV) and, separately, encoded to MP4
(`video_writer`). Then `--torch-frames` frames of the circle are rendered by the torch path
(`torch_sampler`) on the CPU, and on the GPU where torch sees one (`--device auto`'s choice),
as a ratio to OpenCV's time. Ratios, not absolute claims: the numbers depend on the machine
and what else runs on it.

    python benchmarks/bench_parallax.py
    python benchmarks/bench_parallax.py photo.jpg --frames 30 --amount 5 --torch-frames 8
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from prodepth_cli.depth_source import ModelDepth
from prodepth_cli.io.read import open_image
from prodepth_cli.models.runtime import load_model
from prodepth_cli.parallax.encode import video_writer
from prodepth_cli.parallax.paths import PATHS
from prodepth_cli.parallax.render import FPS, Clip, ParallaxOptions, make_clip, plan_view
from prodepth_cli.parallax.samplers import frame_device
from prodepth_cli.stereo.render import stereo_array
from prodepth_cli.stereo.shift import StereoOptions

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "bartender.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photo", nargs="?", type=Path, default=EXAMPLE)
    parser.add_argument("--frames", type=int, default=24, help="frames timed per path")
    parser.add_argument("--amount", type=float, default=3.0)
    parser.add_argument("--device", default="cpu", help="the depth model's (onnxruntime)")
    parser.add_argument(
        "--torch-frames", type=int, default=4, help="circle frames timed per torch device"
    )
    args = parser.parse_args()

    source = open_image(args.photo)
    photo_hw = (source.height, source.width)
    # a 1080p video: the photograph's aspect, 1080 rows (1920 columns when wider than 16:9)
    long_side = 1080 * max(photo_hw) // min(photo_hw)
    options = ParallaxOptions(size=min(1920, long_side), amount=args.amount)
    out_hw = options.out_hw(photo_hw, False)
    _, zoom = plan_view(options, out_hw, args.frames)
    thumb = source.thumbnail(min(max(photo_hw), math.ceil(max(out_hw) * zoom)))
    rgb = (thumb * 255.0 + 0.5).astype(np.uint8)
    print(f"photo {photo_hw[1]}x{photo_hw[0]}, video {out_hw[1]}x{out_hw[0]}, "
          f"sampled from {rgb.shape[1]}x{rgb.shape[0]}")  # fmt: skip

    depth = ModelDepth(load_model(None, args.device))
    depth(rgb[:64, :64])  # first-call set-up out of the timing
    t0 = time.perf_counter()
    disparity = depth(rgb)
    depth_s = time.perf_counter() - t0
    print(f"depth pass ({depth.name}, {args.device}): {depth_s:.2f} s once per photo")

    frames_per_video_second = FPS
    print(f"{'path':8} {'ms/frame':>9} {'render s per video s':>21} {'x depth pass':>13}")
    last = circle = None
    for path in PATHS:
        opts = ParallaxOptions(path, size=options.size, amount=args.amount)
        t0 = time.perf_counter()
        clip = make_clip(rgb, disparity, opts, out_hw, args.frames)
        prep_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        frames = [clip.frame(i) for i in range(args.frames)]
        per_frame = (time.perf_counter() - t0) / args.frames
        per_video_s = per_frame * frames_per_video_second
        print(f"{path:8} {per_frame * 1e3:9.0f} {per_video_s:21.2f} {per_video_s / depth_s:13.2f}"
              f"   (prepare {prep_s * 1e3:.0f} ms once)")  # fmt: skip
        last = frames
        if path == "circle":
            circle = (clip, per_frame)

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with video_writer(Path(tmp) / "v.mp4", FPS, (out_hw[1], out_hw[0])) as write:
            for frame in last:
                write(frame)
        encode = (time.perf_counter() - t0) / len(last)
    print(f"H.264 encode: {encode * 1e3:.0f} ms/frame, "
          f"{encode * frames_per_video_second:.2f} s per video second")  # fmt: skip
    t0 = time.perf_counter()
    stereo_array(rgb.astype(np.float32) / 255.0, disparity, StereoOptions())
    stereo_s = time.perf_counter() - t0
    print(f"stereo pair (sbs, both eyes synthesised) of the same {rgb.shape[1]}x{rgb.shape[0]}: "
          f"{stereo_s:.2f} s, {stereo_s / depth_s:.2f} x the depth pass")  # fmt: skip
    time_torch(*circle, args.torch_frames)


def time_torch(clip: Clip, opencv_per_frame: float, frames: int) -> None:
    """The circle's frames on torch (CPU, and the GPU `--device auto` would take), each
    device's first frame (kernels loaded, memory allocated) out of the timing."""
    try:
        import torch
    except ImportError:
        print("torch: not installed (pip install '.[train]'), no torch rows")
        return
    gpu = frame_device("auto")
    for device in ["cpu"] + ([gpu] if gpu else []):
        on = dataclasses.replace(clip, torch_device=device)
        on.frame(0)
        t0 = time.perf_counter()
        for i in range(1, frames + 1):
            on.frame(i % len(on.poses))  # each frame comes back to the host: timed whole
        per_frame = (time.perf_counter() - t0) / frames
        print(f"circle on {on.renderer} ({torch.get_num_threads()} CPU threads): "
              f"{per_frame * 1e3:.0f} ms/frame, {per_frame * FPS:.2f} s per video second, "
              f"{per_frame / opencv_per_frame:.2f} x OpenCV's")  # fmt: skip
    if not gpu:
        print("no GPU that torch sees: --device auto renders with OpenCV here")


if __name__ == "__main__":
    main()
