"""One GPU lease, prepared: the coarse net, then the PRO refiner fed by it, then the
refiner's speed through torch; checkpoints and logs land in $OUT for export and evaluation
on the CPU machine (the GT scenes do not travel).

On the device machine, with the data subset that `scripts/gpu_bundle.sh` makes carried:
    PRODEPTH_DATA=.gpu_data python3 scripts/gpu_session.py --coarse-steps 1500 --refiner-steps 600
A dry run of the same flow anywhere: --device cpu --tiny --coarse-steps 2 --refiner-steps 2

It calls the trainer directly rather than the `prodepth` command, whose photo I/O needs
libvips, which the GPU image lacks.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodepth_cli.training.config import make_config, read_config_file  # noqa: E402
from prodepth_cli.training.loop import run_training  # noqa: E402

# small enough for a CPU dry run of the whole flow in seconds
TINY = {
    "coarse": dict(size=64, batch=2, workers=1, val_synthetic=1, val_every=1),
    "refiner": dict(
        batch=1, workers=1, patch=64, overlap=16, image_side=128, val_synthetic=1, val_every=1
    ),
}


def train(kind: str, steps: int, device: str, runs: Path, out: Path, tiny: bool, **extra) -> Path:
    """Train `kind` with configs/<kind>-gpu.json; returns its best checkpoint, copied to `out`."""
    overrides = read_config_file(ROOT / "configs" / f"{kind}-gpu.json")
    overrides.update(steps=steps, **extra, **(TINY[kind] if tiny else {}))
    cfg = make_config(kind, overrides)
    with (out / f"{kind}.log").open("w") as log:

        def on_val(step: int, metrics: dict[str, float]) -> None:
            line = json.dumps({"kind": kind, **{k: round(v, 4) for k, v in metrics.items()}})
            print(line, flush=True)
            print(line, file=log, flush=True)

        result = run_training(cfg, runs / kind, device=device, on_val=on_val)
    best = out / f"{kind}.pt"
    shutil.copyfile(runs / kind / "best.pt", best)
    print(f"{kind}: {result.step} steps in {result.seconds:.0f} s", flush=True)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coarse-steps", type=int, default=1500)
    ap.add_argument("--refiner-steps", type=int, default=600)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="Tiny sizes: a dry run of the flow.")
    args = ap.parse_args()
    out = Path(os.environ.get("OUT", ROOT / "runs" / "gpu_session"))
    out.mkdir(parents=True, exist_ok=True)
    runs = ROOT / "runs" / "gpu_session_work"
    start = time.time()
    coarse = train("coarse", args.coarse_steps, args.device, runs, out, args.tiny)
    train(
        "refiner",
        args.refiner_steps,
        args.device,
        runs,
        out,
        args.tiny,
        coarse_checkpoint=str(coarse),
    )
    speed = [sys.executable, str(ROOT / "benchmarks" / "bench_refiner_speed.py")]
    speed += ["--torch", args.device, "--tile", "256" if args.tiny else "1024"]
    timing = subprocess.run(speed, capture_output=True, text=True, check=True).stdout
    (out / "speed.txt").write_text(timing)
    print(timing + f"session: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
