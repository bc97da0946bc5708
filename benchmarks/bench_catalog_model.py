"""A real-size catalog model through the pipeline: Depth Anything V2 Small (stand-in).

The stand-in is the real architecture with the Small config (24.8 M parameters, a 99 MB ONNX
with the onnx-community export's contract; random weights: nothing is downloaded), built in a
child process (so torch's memory is not counted here) and run with the shipped catalog's spec
for depth-anything-v2-small. Prints, on a 21 MP photograph:

- seconds per tile, pipeline wall / replay of the same network calls (goal <= 1.05 with a
  real-size model; median of alternating pairs), and this process's peak RSS;
- native-size tiles (each tile seen at 518, the default) against full-resolution tiles, side
  by side on a 2x2-tile crop of the same photograph (after the peak RSS is read: attention
  over a 1024-pixel tile's 5329 tokens takes gigabytes).

    python benchmarks/bench_catalog_model.py [--image PHOTO] [--rounds 3] [--tile 1024]
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_overhead import measure_overhead, overhead_args  # noqa: E402
from tests.standins import catalog_entry  # noqa: E402

NAME = "depth-anything-v2-small"


def build_standin(folder: Path) -> Path:
    """The Small-config stand-in at `folder/model.onnx`, built in a child process."""
    path = folder / "model.onnx"
    code = (
        f"from tests.standins import depth_anything_v2; depth_anything_v2({str(path)!r}, 'small')"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    return path


def register_as_catalog_model(path: Path, folder: Path) -> None:
    """An extra catalog saying `path` is depth-anything-v2-small (shipped spec), so that
    loading the file applies the catalog spec as it would to the pulled file."""
    from prodepth_cli.models import catalog

    extra = folder / "catalog.json"
    extra.write_text(json.dumps({f"{NAME}-standin": catalog_entry([path], NAME)}))
    os.environ[catalog.CATALOG_ENV] = str(extra)


def time_tiles(model, rgb, tile: int, resolution: str) -> float:
    from prodepth_cli.pipeline import DepthOptions, depth_array

    t0 = time.perf_counter()
    depth_array(rgb, model, DepthOptions(tile=tile, tile_resolution=resolution))
    return time.perf_counter() - t0


def main() -> None:
    args = overhead_args(__doc__)

    import pyvips

    from prodepth_cli.models.runtime import load_model
    from prodepth_cli.pipeline import DepthOptions

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        path = build_standin(folder)
        built = time.perf_counter() - t0
        register_as_catalog_model(path, folder)
        model = load_model(path, "cpu")
        spec = model.tile_net.spec
        print(f"model     {model.name}: {path.stat().st_size / 1e6:.1f} MB, built in {built:.0f} s")
        print(
            f"          spec from the catalog: multiple {spec.multiple}, native {spec.working_size}"
        )

        options = DepthOptions(args.tile, None, args.batch)
        result = measure_overhead(model, args.image, options, args.rounds)
        report = result.report
        tiles = len(report.tiles)
        ratios = ", ".join(f"{r:.3f}" for r in result.ratios)
        print(
            f"image     {args.image.name} ({report.width}x{report.height}, {tiles} tiles of "
            f"{args.tile} seen at {spec.working_size}, batch {args.batch}, 1 coarse pass)"
        )
        print(f"pipeline  {result.pipeline:8.2f} s")
        print(f"model     {result.model_only:8.2f} s  ({result.calls} network calls, replayed)")
        print(f"per tile  {result.model_only / (tiles + 1):8.2f} s  (network time / passes)")
        print(
            f"overhead  {result.pipeline / result.model_only:8.3f}  "
            f"(median of rounds {ratios}; goal <= 1.05)"
        )

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS  {peak:8.0f} MB  (this process: pipeline, onnxruntime, the 99 MB model)")

        side = 2 * args.tile - args.tile // 4  # a 2x2 grid of tiles at the default overlap
        rgb = pyvips.Image.new_from_file(str(args.image)).crop(0, 0, side, side).numpy()[..., :3]
        walls = {res: time_tiles(model, rgb, args.tile, res) for res in ("native", "full")}
        print(
            f"tiles     {side}x{side} crop, 4 tiles: native {walls['native']:.1f} s, "
            f"full {walls['full']:.1f} s (full / native {walls['full'] / walls['native']:.1f}x)"
        )


if __name__ == "__main__":
    main()
