"""`prodepth stereo` speed and memory: seconds and peak RSS against the photograph's size.

For each size a synthetic photograph (JPEG: noise texture) and its depth map (NPY: a slope
with near rectangles, so that holes open) are written, then one fresh process renders the
stereo pair (`stereo_file`, side by side, JPEG out) and reports its wall time, its peak RSS
(VmHWM) and its peak before the call (the interpreter and libraries). Memory should stay
flat in the image's size: the photograph, its map and the output go through in bands.

    python benchmarks/bench_stereo.py --mp 12 25 50 100
    python benchmarks/bench_stereo.py --mp 12 --layout tb --repeat 3
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = """
import json, sys, time
from pathlib import Path
from prodepth_cli.heap import pin_mmap_threshold
from prodepth_cli.io.depth_map import DepthMapFile
from prodepth_cli.stereo.render import stereo_file
from prodepth_cli.stereo.shift import StereoOptions

def peak_kb():  # this process's own peak RSS: ru_maxrss would carry the parent's over exec
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

src, depth, dst, layout = sys.argv[1:5]
pin_mmap_threshold()  # as the CLI does
before = peak_kb()
t0 = time.perf_counter()
report = stereo_file(src, dst, StereoOptions(layout=layout), DepthMapFile(Path(depth)))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_kb": peak_kb(), "before_kb": before,
                  "out": [report.out_width, report.out_height]}))
"""


def make_inputs(folder: Path, megapixels: float) -> tuple[Path, Path, int, int]:
    """A 4:3 synthetic photograph of `megapixels` (JPEG) and its depth map (NPY), written a
    strip at a time."""
    import numpy as np
    import pyvips

    h = int(math.sqrt(megapixels * 1e6 * 3 / 4))
    w = int(h * 4 / 3)
    noise = pyvips.Image.gaussnoise(w, h, mean=128, sigma=40)
    grad = pyvips.Image.xyz(w, h)[0] * (255.0 / w)
    photo = noise.bandjoin([grad, (noise + grad) / 2]).cast("uchar")
    src = folder / f"photo_{megapixels:g}mp.jpg"
    photo.jpegsave(str(src), Q=90)
    depth = folder / f"photo_{megapixels:g}mp.npy"
    out = np.lib.format.open_memmap(depth, mode="w+", dtype=np.float32, shape=(h, w))
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)
    for y0 in range(0, h, 256):
        y1 = min(h, y0 + 256)
        band = np.tile(x, (y1 - y0, 1))
        rows = np.arange(y0, y1)[:, None]
        cols = np.arange(w)[None, :]
        near = ((rows // (h // 8)) % 2 == 0) & ((cols // (w // 10)) % 3 == 1)
        band[near] = 2.0
        out[y0:y1] = band
    out.flush()
    del out
    return src, depth, w, h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mp", type=float, nargs="+", default=[12.0])
    parser.add_argument("--layout", default="sbs")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (best time)")
    args = parser.parse_args()
    print(f"{'MP':>6} {'size':>12} {'out':>12} {'s':>7} {'s/12MP':>7} {'RSS MB':>7} {'+MB':>6}")
    with tempfile.TemporaryDirectory(prefix="bench-stereo-") as tmp:
        folder = Path(tmp)
        for mp in args.mp:
            src, depth, w, h = make_inputs(folder, mp)
            runs = []
            for _ in range(args.repeat):
                dst = folder / "out.jpg"
                done = subprocess.run(
                    [sys.executable, "-c", _CHILD, str(src), str(depth), str(dst), args.layout],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
                dst.unlink()
            best = min(runs, key=lambda r: r["seconds"])
            peak, before = best["peak_kb"] / 1024, best["before_kb"] / 1024
            out = "x".join(map(str, best["out"]))
            print(
                f"{w * h / 1e6:6.1f} {f'{w}x{h}':>12} {out:>12} {best['seconds']:7.2f} "
                f"{best['seconds'] * 12e6 / (w * h):7.2f} {peak:7.0f} {peak - before:6.0f}"
            )
            src.unlink()
            depth.unlink()


if __name__ == "__main__":
    main()
