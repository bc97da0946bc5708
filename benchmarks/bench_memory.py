"""Peak RSS of `prodepth depth` at 20, 74 and 324 MP and 1 GP: it should stay flat.

Each size runs in its own process (peak RSS is per process). A tiny ONNX model keeps the
run about the pipeline's memory, not the network's. The 1-gigapixel input is made from the
324 MP photograph (upscaled to 32768x32768, tiled JPEG-compressed BigTIFF) in a temporary
folder and deleted afterwards.

    python benchmarks/bench_memory.py [--tile 1024] [--skip-gigapixel]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodepth_cli.data_root import SHARED_DATA  # noqa: E402
from tests.onnx_models import pointwise_model  # noqa: E402
from tests.test_memory import peak_rss_mb  # noqa: E402

LARGE = SHARED_DATA / "large"
PHOTOS = [
    "hubble_ngc1309_4637x4590.jpg",
    "hubble_sombrero_m104_11472x6429.jpg",
    "hubble_orion_nebula_18000x18000.jpg",
]
GIGAPIXEL_SIDE = 32768


def make_gigapixel(src: Path, dst: Path) -> Path:
    import pyvips

    image = pyvips.Image.new_from_file(str(src), access="sequential")
    big = image.resize(GIGAPIXEL_SIDE / image.width, kernel="linear")
    big.tiffsave(
        str(dst), tile=True, tile_width=512, tile_height=512, compression="jpeg", Q=85, bigtiff=True
    )
    return dst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=1024)
    parser.add_argument("--skip-gigapixel", action="store_true")
    args = parser.parse_args()
    if not LARGE.is_dir():
        raise SystemExit(f"skipped: reference photographs not found at {LARGE}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        model = pointwise_model(tmp / "tiny.onnx", {"multiple": 1})
        inputs = [LARGE / name for name in PHOTOS]
        if not args.skip_gigapixel:
            t0 = time.perf_counter()
            inputs.append(make_gigapixel(inputs[-1], tmp / "gigapixel.tif"))
            print(
                f"made a {GIGAPIXEL_SIDE}x{GIGAPIXEL_SIDE} TIFF in "
                f"{time.perf_counter() - t0:.0f} s",
                file=sys.stderr,
            )
        print(f"{'input':40} {'MP':>7} {'peak RSS MB':>12} {'seconds':>8} {'vs 20 MP':>9}")
        first = None
        for image in inputs:
            import pyvips

            header = pyvips.Image.new_from_file(str(image))
            mp = header.width * header.height / 1e6
            try:
                rss, wall = peak_rss_mb(image, model, tmp / "depth.png", args.tile)
            except RuntimeError as exc:
                raise SystemExit(str(exc)) from None
            first = first or rss
            print(
                f"{image.name:40} {mp:7.0f} {rss:12.0f} {wall:8.1f} {rss / first:9.2f}", flush=True
            )


if __name__ == "__main__":
    main()
