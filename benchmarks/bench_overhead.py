"""Pipeline overhead: `prodepth depth` wall time / model-only time for the same tiles.

One run: the pipeline processes the photograph end to end (decode, coarse pass, tiles,
alignment, blending, PNG encoding) while every network call's inputs are recorded; then
the recorded calls are replayed on the bare onnxruntime sessions. The ratio of the two
walls is the pipeline's overhead (goal <= 1.10). After a warm-up run, pipeline and replay
alternate for `--rounds` pairs (the machine's load drifts; each pair is measured side by
side) and the median pair is reported with all ratios.

    python benchmarks/bench_overhead.py [--model M.onnx] [--image PHOTO] [--tile 1024]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from prodepth_cli.data_root import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_IMAGE = SHARED_DATA / "large" / "hubble_ngc1309_4637x4590.jpg"


@dataclass
class Overhead:
    """Pipeline and replay walls of the median pair, every pair's ratio, the last report."""

    pipeline: float
    model_only: float
    ratios: list[float]
    report: object
    calls: int


def measure_overhead(model, image: Path, options, rounds: int) -> Overhead:
    """After a warm-up, `rounds` pairs of (pipeline on `image`, replay of its network calls),
    alternating so that drifting machine load hits both sides; the median pair wins."""
    from prodepth_cli.pipeline import depth_file

    calls: list[tuple[object, tuple]] = []
    for net in {id(n): n for n in (model.tile_net, model.coarse_net)}.values():
        net.run = _recording(net.run, calls)

    def run_pipeline() -> tuple[float, object]:
        calls.clear()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            report = depth_file(image, Path(tmp) / "d.png", model, options)
            return time.perf_counter() - t0, report

    def replay() -> float:
        t0 = time.perf_counter()
        for run, inputs in calls:
            run(*inputs)
        return time.perf_counter() - t0

    run_pipeline()  # warm-up: first-call costs belong to neither side
    pairs = []
    for _ in range(rounds):
        pipeline, report = run_pipeline()
        pairs.append((pipeline, replay()))
    pipeline, model_only = sorted(pairs, key=lambda r: r[0] / r[1])[len(pairs) // 2]
    return Overhead(pipeline, model_only, [p / m for p, m in pairs], report, len(calls))


def overhead_args(doc: str, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse the options every overhead measurement takes (image, tile, batch, rounds) plus
    those already on `parser`; exit with "skipped" when the photograph is absent."""
    parser = parser or argparse.ArgumentParser()
    parser.description = doc.splitlines()[0]
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="pipeline/replay pairs")
    args = parser.parse_args()
    if not args.image.is_file():
        raise SystemExit(f"skipped: {args.image} not found")
    return args


def main() -> None:
    from prodepth_cli.models.runtime import load_model
    from prodepth_cli.pipeline import DepthOptions

    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="file or catalog name (default: shipped)")
    parser.add_argument("--kind", default=None)
    args = overhead_args(__doc__, parser)

    model = load_model(args.model, "cpu", kind=args.kind)
    result = measure_overhead(
        model, args.image, DepthOptions(args.tile, None, args.batch), args.rounds
    )
    report = result.report
    ratios = ", ".join(f"{r:.3f}" for r in result.ratios)
    print(
        f"image     {args.image.name} ({report.width}x{report.height}, "
        f"{len(report.tiles)} tiles of {args.tile}, batch {args.batch})"
    )
    print(f"model     {model.name} on {model.provider}")
    print(f"pipeline  {result.pipeline:8.2f} s  (decode, coarse, tiles, align, blend, encode)")
    print(
        f"model     {result.model_only:8.2f} s  (the same {result.calls} network calls, replayed)"
    )
    print(
        f"overhead  {result.pipeline / result.model_only:8.3f}  "
        f"(median of rounds {ratios}; goal <= 1.10)"
    )


def _recording(run, calls):
    """A network's `run` (its prepared input in, maps out), also appending (bare run, its
    inputs) to `calls`: the replay is the network alone (on the reused input batches' last
    contents, which costs a network the same)."""

    def wrapper(*inputs):
        calls.append((run, inputs))
        return run(*inputs)

    return wrapper


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
