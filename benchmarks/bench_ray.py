"""A folder of photographs through one local process and through `--ray`, side by side.

100 images (640x480 renders of the test scene generator, made in a temporary folder) through
`prodepth depth DIR -o OUT` and through the same with `--ray --workers 2`, each as a user runs
it (a fresh process); then Ray's own start-up and shut-down alone, measured apart. Prints wall
seconds and images per second for each. The shipped default model unless --model.

    python benchmarks/bench_ray.py [--images 100] [--workers 2] [--model M]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import scene_image  # noqa: E402

PRODEPTH = [sys.executable, "-m", "prodepth_cli"]


def timed(command: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - t0


def ray_start_stop(workers: int) -> float:
    """Seconds for a local Ray to start and stop, as `--ray` does, with nothing to run."""
    code = (
        "import time, logging; t = time.perf_counter(); import ray; "
        "logging.getLogger('ray').setLevel(logging.ERROR); "
        f"ray.init(num_cpus={workers}, include_dashboard=False, log_to_driver=False, "
        "logging_level='ERROR', configure_logging=False); ray.shutdown(); "
        "print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--model", default=None, help="file or catalog name (default: shipped)")
    args = parser.parse_args()
    model = ["--model", args.model] if args.model else []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i in range(args.images):
            cv2.imwrite(str(folder / f"im{i:03d}.jpg"), scene_image(480, 640, seed=i)[:, :, ::-1])
        base = [*PRODEPTH, "depth", str(folder), "-q", *model]
        local = timed([*base, "-o", str(Path(tmp) / "local")])
        ray = timed([*base, "-o", str(Path(tmp) / "ray"), "--ray", "--workers", str(args.workers)])
        start_stop = ray_start_stop(args.workers)
    n = args.images
    print(f"images           {n} of 640x480, model {args.model or 'shipped default'}")
    print(f"local process    {local:7.1f} s  {n / local:6.1f} images/s")
    print(f"--ray, {args.workers} workers  {ray:7.1f} s  {n / ray:6.1f} images/s")
    print(f"Ray start + stop {start_stop:7.1f} s  (alone, inside the --ray figure)")
    print(f"ratio            {local / ray:7.2f}  (local / ray wall)")


if __name__ == "__main__":
    main()
