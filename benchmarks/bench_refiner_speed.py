"""Time the shipped PRO refiner (and coarse net) with onnxruntime on the CPU.

    python benchmarks/bench_refiner_speed.py --threads 2 --tile 1024
    python benchmarks/bench_refiner_speed.py --torch cuda --tile 1024

Prints the median of `--repeat` runs after one warm-up, in seconds per tile. With `--torch
DEVICE` the same networks (the shipped architectures, untrained weights: the time does not
depend on them; for an ensemble coarse model, each of its members) run through torch
instead: onnxruntime's CUDA provider is too large to carry to the GPU machine, so GPU
figures come from here. The coarse pass runs at the shipped coarse model's working size
(its short side), 4:3.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from prodepth_cli.models.runtime import pass_hw
from prodepth_cli.models.spec import sidecar_spec

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


def shipped_spec(kind: str) -> dict:
    """The JSON spec of the shipped `kind` model."""
    return sidecar_spec(MODELS / f"prodepth-{kind}.onnx")


def time_torch(kind: str, inputs: list[np.ndarray], device: str, repeat: int) -> float:
    """Median seconds of `repeat` forward passes of a `kind` network in torch on `device`."""
    import torch

    from prodepth_cli.nets import build_net

    archs = [
        member.get("arch") for member in shipped_spec(kind).get("extra", {}).get("members", [{}])
    ]
    nets = [build_net(kind, arch, pretrained=False).to(device).eval() for arch in archs]
    xs = [torch.from_numpy(a).to(device) for a in inputs]
    times = []
    with torch.inference_mode():
        for _ in range(repeat + 1):  # the first is the warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for net in nets:
                net(*xs)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tile", type=int, default=1024)
    ap.add_argument("--coarse-side", type=int, default=shipped_spec("coarse")["working_size"])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--torch", metavar="DEVICE", help="Run through torch on cpu or cuda.")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    t = args.tile
    refiner = {
        "image": rng.standard_normal((1, 3, t, t), dtype=np.float32),
        "coarse": rng.random((1, 1, t, t), dtype=np.float32),
    }
    c = args.coarse_side
    ch, cw = pass_hw(3000, 4000, c, 32)  # a 4:3 photo's coarse pass
    coarse = {"image": rng.standard_normal((1, 3, ch, cw), dtype=np.float32)}
    where = f"torch {args.torch}" if args.torch else f"onnxruntime, {args.threads} threads"
    for kind, feeds in (("refiner", refiner), ("coarse", coarse)):
        if args.torch:
            sec = time_torch(kind, list(feeds.values()), args.torch, args.repeat)
        else:
            path = MODELS / f"prodepth-{kind}.onnx"
            sec = time_session(path, feeds, args.threads, args.repeat)
        size = "x".join(str(n) for n in feeds["image"].shape[2:])
        print(f"{kind} {size}: {sec:.3f} s per call ({where})")


if __name__ == "__main__":
    main()
