"""Memory stays flat: a 9x taller or a 5x wider image costs no more memory."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyvips

from tests.conftest import scene_image

PEAK_RSS = """
import resource, sys
from prodepth_cli.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
finally:
    print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _tall_tiff(path: Path, width: int, height: int) -> Path:
    """A JPEG-compressed tiled TIFF upscaled from a small scene (never decoded whole here)."""
    small = pyvips.Image.new_from_array(np.ascontiguousarray(scene_image(90, 80)))
    small = small.copy(interpretation="srgb")
    big = small.resize(width / 80, vscale=height / 90, kernel="linear")
    big.tiffsave(str(path), tile=True, compression="jpeg", Q=80, bigtiff=True)
    return path


def peak_rss_mb(image: Path, model: Path, out: Path, tile: int = 1024) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of one `prodepth depth` process (benchmarks use it too)."""
    t0 = time.perf_counter()
    command = ["depth", str(image), "-o", str(out), "--model", str(model), "--tile", str(tile)]
    done = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command, "--overwrite", "--quiet"],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=Path(__file__).resolve().parents[1],
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{image.name}: {done.stderr.strip()}")
    kb = next(int(ln.split()[1]) for ln in done.stderr.splitlines() if ln.startswith("PEAK_KB"))
    return kb / 1024, wall


def test_peak_memory_grows_with_neither_height_nor_width(tmp_path, pointwise_affine):
    def peak(width: int, height: int) -> float:
        image = _tall_tiff(tmp_path / f"{width}x{height}.tif", width, height)
        return peak_rss_mb(image, pointwise_affine, tmp_path / f"{width}x{height}.png")[0]

    base = peak(8000, 1500)
    tall, wide = peak(8000, 13500), peak(40000, 1500)
    # 108 MP decoded as float32 RGB would be 1.3 GB; holding even one copy of the image or
    # of its depth map (432 MB) would show. A band of tile rows 40000 pixels wide held in
    # memory would be 160 MB per float32 copy. 100 MB covers allocator and decoder noise.
    assert tall < base + 100, f"{base:.0f} MB at 12 MP, {tall:.0f} MB 9x taller"
    assert wide < base + 100, f"{base:.0f} MB at 12 MP, {wide:.0f} MB 5x wider"
