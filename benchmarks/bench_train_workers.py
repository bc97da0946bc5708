"""Coarse training with its batches built in the training process and in worker processes,
side by side in one run: seconds for the same steps and the ratio.

    python benchmarks/bench_train_workers.py [--steps 40] [--workers 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from prodepth_cli.training.config import make_config
from prodepth_cli.training.loop import run_training


def seconds(steps: int, workers: int) -> float:
    cfg = make_config("coarse", dict(steps=steps, val_every=10**9, threads=1, workers=workers))
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        run_training(cfg, Path(folder))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    alone, helped = seconds(args.steps, 0), seconds(args.steps, args.workers)
    print(f"{args.steps} coarse steps (batch 8 of 256 px, one torch thread):")
    print(f"  batches in the training process: {alone:.1f} s")
    print(f"  batches in {args.workers} worker process(es): {helped:.1f} s")
    print(f"  speed-up: {alone / helped:.2f}x")


if __name__ == "__main__":
    main()
