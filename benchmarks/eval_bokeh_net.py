"""Validate the bokeh network against the classical engine on held-back photographs.

For each held-back photo (`bokeh_data.iter_photos(split="val")`, at its own size) the depth
model gives disparity, the focus goes to the main subject and the aperture to f/2; the
classical render is the reference. Reports PSNR/SSIM of the network engine against it (and
of the unblurred photo, as the floor) and the seconds each engine takes per image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from prodepth_cli.bokeh.engine import BokehOptions, Renderer, bokeh_array, classic_renderer
from prodepth_cli.bokeh.quality import psnr, ssim
from prodepth_cli.training.bokeh_data import iter_photos


def evaluate(renderer: Renderer, depth_fn, f_number: float = 2.0) -> dict[str, float]:
    """Mean PSNR/SSIM of `renderer` (and of the photo itself) against the classical engine,
    and mean seconds per image of both, over the held-back photos."""
    rows = []
    for photo in iter_photos(split="val"):
        rgb = photo.rgb.astype(np.float32) / 255.0
        disparity = depth_fn(photo.rgb)
        options = BokehOptions(f_number=f_number)
        t0 = time.perf_counter()
        ref = bokeh_array(rgb, disparity, options, classic_renderer).rgb
        t1 = time.perf_counter()
        got = bokeh_array(rgb, disparity, options, renderer).rgb
        t2 = time.perf_counter()
        rows.append(
            (psnr(got, ref), ssim(got, ref), psnr(rgb, ref), ssim(rgb, ref), t1 - t0, t2 - t1)
        )
    m = np.mean(rows, axis=0)
    keys = ("psnr", "ssim", "psnr_unblurred", "ssim_unblurred", "classic_s", "net_s")
    return {"photos": len(rows), **{k: round(float(v), 4) for k, v in zip(keys, m, strict=True)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model", type=Path, help="a bokeh .tflite")
    p.add_argument("--depth-model", type=Path, default=None, help="default: the shipped one")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    from prodepth_cli.bokeh.tflite import load_bokeh_net
    from prodepth_cli.models.runtime import load_model
    from prodepth_cli.pipeline import depth_array

    model = load_model(args.depth_model, "cpu", **({"kind": "depth"} if args.depth_model else {}))
    report = evaluate(load_bokeh_net(args.model, args.threads), lambda rgb: depth_array(rgb, model))
    print(json.dumps({"model": args.model.name, **report}))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
