"""Bokeh: issue 4's quality check on Motorcycle and the time of a 12 MP photo, both engines.

Quality: Motorcycle (Middlebury 2014, quarter size) with its ground-truth disparity as the
depth map, focus on the headlight (x=535, y=150, a near region), f/2: the share of the
in-focus region's sharpness (mean |Laplacian|) kept (goal >= 0.80) and of the far region's
kept (goal <= 0.50). Speed: the same scene upscaled to 4032x3024 (12.2 MP, a phone photo's
size), file in -> file out (JPEG decode, render, JPEG encode), median of `--repeat` runs.

    python benchmarks/bench_bokeh.py [--engines classic,tflite] [--repeat 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.data_root import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
MOTORCYCLE = SHARED_DATA / "gt" / "middlebury2014_Q" / "Motorcycle"
FOCUS_XY = (535, 150)
PHONE_HW = (3024, 4032)


def main() -> None:
    from prodepth_cli.bokeh import quality
    from prodepth_cli.bokeh.engine import BokehOptions, bokeh_array, bokeh_file, classic_renderer
    from prodepth_cli.io.depth_map import DepthMapFile, read_depth_map

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="classic,tflite")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="cv2 and LiteRT threads")
    parser.add_argument("--f-number", type=float, default=2.0)
    args = parser.parse_args()
    if not MOTORCYCLE.is_dir():
        raise SystemExit(f"skipped: {MOTORCYCLE} not found")
    cv2.setNumThreads(args.threads)

    renderers = {"classic": classic_renderer}
    if "tflite" in args.engines:
        from prodepth_cli.bokeh.tflite import load_bokeh_net

        renderers["tflite"] = load_bokeh_net(threads=args.threads)
    renderers = {k: v for k, v in renderers.items() if k in args.engines.split(",")}

    rgb = cv2.imread(str(MOTORCYCLE / "im0.png"))[:, :, ::-1].astype(np.float32) / 255.0
    disparity = read_depth_map(MOTORCYCLE / "disp0GT.pfm").disparity
    options = BokehOptions(f_number=args.f_number, focus_xy=FOCUS_XY)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "phone.jpg"
        cv2.imwrite(
            str(big),
            cv2.resize(
                (rgb[:, :, ::-1] * 255).astype(np.uint8),
                PHONE_HW[::-1],
                interpolation=cv2.INTER_CUBIC,
            ),
            [cv2.IMWRITE_JPEG_QUALITY, 95],
        )
        depth = DepthMapFile(Path(tmp) / "phone_depth.npy")
        np.save(depth.path, cv2.resize(disparity, PHONE_HW[::-1], interpolation=cv2.INTER_LINEAR))
        scale = PHONE_HW[1] / rgb.shape[1]
        big_options = BokehOptions(
            f_number=args.f_number,
            focus_xy=(round(FOCUS_XY[0] * scale), round(FOCUS_XY[1] * scale)),
        )
        for name, renderer in renderers.items():
            result = bokeh_array(rgb, disparity, options, renderer)
            regions = quality.focus_regions(disparity, result.focus)
            kept = quality.sharpness_kept(rgb, result.rgb, regions.focus)
            far = quality.sharpness_kept(rgb, result.rgb, regions.far)
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                bokeh_file(big, Path(tmp) / f"out_{name}.jpg", big_options, depth, None, renderer)
                times.append(time.perf_counter() - t0)
            rows.append(
                {
                    "engine": name,
                    "focus_sharpness_kept": round(kept, 3),
                    "far_sharpness_kept": round(far, 3),
                    "pass": bool(kept >= 0.8 and far <= 0.5),
                    "seconds_12mp": round(statistics.median(times), 2),
                }
            )
    print(
        f"# {platform.processor() or platform.machine()}, {args.threads} threads, f/{args.f_number}"
    )
    print("| engine | in-focus sharpness kept | far sharpness kept | pass | 12 MP file->file (s) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['engine']} | {r['focus_sharpness_kept']:.2f} | {r['far_sharpness_kept']:.2f} "
            f"| {r['pass']} | {r['seconds_12mp']:.1f} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
