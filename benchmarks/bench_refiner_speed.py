"""Time the shipped PRO refiner (and coarse net) with onnxruntime on the CPU.

    python benchmarks/bench_refiner_speed.py --threads 2 --tile 1024

Prints the median of `--repeat` runs after one warm-up, in seconds per tile.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

MODELS = Path(__file__).resolve().parents[1] / "models"


def time_session(path: Path, feeds: dict[str, np.ndarray], threads: int, repeat: int) -> float:
    """Median seconds of `repeat` runs of the model at `path` on `feeds` (one warm-up)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    sess.run(None, feeds)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--coarse-side", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t = args.tile
    refiner = {
        "image": rng.standard_normal((1, 3, t, t), dtype=np.float32),
        "coarse": rng.random((1, 1, t, t), dtype=np.float32),
    }
    sec = time_session(MODELS / "prodepth-refiner.onnx", refiner, args.threads, args.repeat)
    print(f"refiner {t}x{t}: {sec:.3f} s per tile on {args.threads} threads")
    c = args.coarse_side
    coarse = {"image": rng.standard_normal((1, 3, c, c * 4 // 3 // 32 * 32), dtype=np.float32)}
    sec = time_session(MODELS / "prodepth-coarse.onnx", coarse, args.threads, args.repeat)
    print(f"coarse {coarse['image'].shape[2]}x{coarse['image'].shape[3]}: {sec:.3f} s")


if __name__ == "__main__":
    main()
