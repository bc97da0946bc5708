"""Throughput: can the tiler keep a fast network fed? Pipeline wall against the I/O floor.

For each photograph (21 and 74 MP; 324 MP with --large), measured side by side in one run:

- the I/O floor: libvips decoding the JPEG and encoding a 16-bit grey PNG of the same size;
- the pipeline (`depth_file`, PNG out) with a near-free ONNX model (one pointwise
  convolution on onnxruntime's CPU), and its network calls replayed alone;
- the pipeline with a stand-in for a GPU: each call sleeps 1, 5 or 20 ms per tile (the GIL
  released, as onnxruntime does) and answers at once, so the CPU is free meanwhile. Tiles
  go to it as 8-bit pixels, as they go to a GPU (`models/device_feed.py`: normalised on
  the device); `--host-normalise` makes the float batches on the CPU instead, as before.

Each line prints pipeline / max(floor, model), from the medians of `--rounds` rounds that
interleave every case: 1.0 means the pipeline costs no more than the slower of
reading-and-writing and the network. `bound` is a ratio no schedule could beat with the
near-free model on this machine's cores: the CPU seconds of decoding the photo and of the
network alone, spread perfectly over every core (before any tiling, blending or writing).
Goals (issue 13): <= 1.5 with the near-free model and <= 1.2 at 5 ms per tile, on the
2-core machine.

    python benchmarks/bench_throughput.py [--rounds 3] [--large] [--tile 1024] [--host-normalise]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodepth_cli.data_root import SHARED_DATA  # noqa: E402
from tests.onnx_models import pointwise_model  # noqa: E402

PHOTOS = ["hubble_ngc1309_4637x4590.jpg", "hubble_sombrero_m104_11472x6429.jpg"]
LARGE = "hubble_orion_nebula_18000x18000.jpg"
LATENCIES_MS = (1, 5, 20)
CORES = len(os.sched_getaffinity(0))


class LatencySession:
    """An onnxruntime session's stand-in for a fast GPU: `per_tile` seconds of sleep per
    image in the batch (the GIL released), then channel 0 of the input as the map (a copy:
    a GPU's answer is a new array, and the pipeline reuses its input batches)."""

    def __init__(self, per_tile: float):
        self.per_tile = per_tile

    def run(self, names, feeds):
        (x,) = feeds.values()
        time.sleep(self.per_tile * len(x))
        return [x[:, :1].copy()]

    def get_providers(self) -> list[str]:
        return ["LatencyStandIn"]  # not the CPU: the pipeline runs its stages side by side


class LatencyFeed:
    """The same stand-in fed raw pixels, as a `DeviceFeed` is: normalising them is part of
    the device's `per_tile`. Its answer costs the host what a GPU's does, a copy of the
    float maps out of device memory: the maps are channel 0 of the first batch of each
    size (content barely matters to the blending's cost), copied out on every call."""

    def __init__(self, per_tile: float):
        self.per_tile = per_tile
        self._device_maps: dict[tuple, np.ndarray] = {}

    def infer(self, pixels, coarse=None):
        time.sleep(self.per_tile * len(pixels))
        if pixels.shape not in self._device_maps:
            self._device_maps[pixels.shape] = pixels[:, None, :, :, 0].astype(np.float32)
        return self._device_maps[pixels.shape].copy()


def io_floor(photo: Path, out: Path) -> float:
    """Seconds for libvips to decode `photo` and write a 16-bit grey PNG of its size."""
    import pyvips

    def floor() -> None:
        image = pyvips.Image.new_from_file(str(photo), access="sequential")
        grey = image.colourspace("grey16").cast("ushort")
        grey.pngsave(str(out), compression=1)

    return _timed(floor)[0]


def decode_cpu(photo: Path) -> float:
    """CPU seconds for libvips to decode `photo` once, top to bottom (summing its pixels)."""
    import pyvips

    return _timed(pyvips.Image.new_from_file(str(photo), access="sequential").avg)[1]


def _timed(work: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds of `work()` and the CPU seconds this process spent on it, all threads."""
    t0, c0 = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - t0, time.process_time() - c0


def timed_pipeline(model, photo: Path, out: Path, options) -> tuple[float, int]:
    from prodepth_cli.pipeline import depth_file

    t0 = time.perf_counter()
    report = depth_file(photo, out, model, options)
    return time.perf_counter() - t0, len(report.tiles)


def near_free_model(folder: Path):
    """The pointwise ONNX model, its network calls (prepared inputs) recorded for a replay."""
    from prodepth_cli.models.runtime import load_model

    model = load_model(pointwise_model(folder / "near_free.onnx", {"multiple": 1}), "cpu")
    calls: list[tuple] = []
    run = model.tile_net.run

    def recording(*inputs):
        # The pipeline reuses its input batches: the replay runs on their last contents,
        # which costs a network the same.
        calls.append(inputs)
        return run(*inputs)

    model.tile_net.run = recording
    return model, lambda: _replay(run, calls), calls


def latency_model(folder: Path, per_tile: float, device_feed: bool = True):
    """The pointwise model's spec and plumbing, its session replaced by `LatencySession`
    and, with `device_feed`, fed raw pixels through `LatencyFeed`."""
    from prodepth_cli.models.runtime import load_model

    model = load_model(pointwise_model(folder / "latency.onnx", {"multiple": 1}), "cpu")
    model.tile_net.session = LatencySession(per_tile)
    model.tile_net.feed = LatencyFeed(per_tile) if device_feed else None
    return model


def _replay(run, calls) -> tuple[float, float]:
    def replay() -> None:
        for inputs in calls:
            run(*inputs)

    return _timed(replay)


def main() -> None:
    from prodepth_cli.pipeline import DepthOptions

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="medians over this many rounds")
    parser.add_argument("--large", action="store_true", help="also the 324 MP photograph")
    parser.add_argument(
        "--host-normalise",
        action="store_true",
        help="the GPU stand-in takes float batches made on the CPU (no device feed)",
    )
    args = parser.parse_args()
    photos = [SHARED_DATA / "large" / p for p in PHOTOS + ([LARGE] if args.large else [])]
    missing = [p for p in photos if not p.is_file()]
    if missing:
        raise SystemExit(f"skipped: {missing[0]} not found")
    options = DepthOptions(args.tile, None, args.batch)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        near_free, replay, calls = near_free_model(folder)
        feed = not args.host_normalise
        latency = {ms: latency_model(folder, ms / 1000, feed) for ms in LATENCIES_MS}
        print(
            f"{'photo':<34} {'model':<14} {'pipeline':>9} {'floor':>7} {'model':>7} {'ratio':>6}"
            f" {'bound':>6}"
        )
        for photo in photos:
            out = folder / "depth.png"
            walls: dict[str, list[float]] = {}
            floors, replays, cpu = [], [], []
            # Rounds interleave every case, so that the machine's drift hits them all alike.
            for _ in range(args.rounds):
                floors.append(io_floor(photo, folder / "floor.png"))
                calls.clear()
                wall, tiles = timed_pipeline(near_free, photo, out, options)
                walls.setdefault("near-free", []).append(wall)
                replay_wall, replay_cpu = replay()
                replays.append(replay_wall)
                cpu.append(decode_cpu(photo) + replay_cpu)
                for ms, model in latency.items():
                    wall, _ = timed_pipeline(model, photo, out, options)
                    walls.setdefault(f"{ms} ms/tile", []).append(wall)
            floor = statistics.median(floors)
            model_s = {"near-free": statistics.median(replays)}
            model_s |= {f"{ms} ms/tile": ms / 1000 * (tiles + 1) for ms in LATENCIES_MS}
            # The near-free pipeline must at least decode the photo and run the network: their
            # CPU seconds spread perfectly over every core bound its wall from below.
            best = statistics.median(cpu) / CORES / max(floor, model_s["near-free"])
            name = f"{photo.name[:24]} ({tiles} tiles)"
            for label, runs in walls.items():
                wall = statistics.median(runs)
                ratio = wall / max(floor, model_s[label])
                figures = f"{wall:8.2f}s {floor:6.2f}s {model_s[label]:6.2f}s {ratio:6.2f}"
                bound = f"{best:6.2f}" if label == "near-free" else ""
                print(f"{name:<34} {label:<14} {figures} {bound}")
    print(f"medians of {args.rounds} rounds; ratio = pipeline / max(floor, model)")
    print(
        f"bound: no schedule on {CORES} cores does better, (decode + model) CPU seconds / "
        f"{CORES} / max(floor, model)"
    )
    print("goals: near-free <= 1.5, 5 ms/tile <= 1.2")


if __name__ == "__main__":
    main()
