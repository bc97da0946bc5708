"""One GPU lease, prepared: the coarse net, then the PRO refiner fed by it, then the
refiner's speed through torch; checkpoints and logs land in $OUT for export and evaluation
on the CPU machine (the GT scenes do not travel).

On the device machine, with the data subset that `scripts/gpu_bundle.sh` makes carried:
    PRODEPTH_DATA=.gpu_data python3 scripts/gpu_session.py --coarse-steps 1500 --refiner-steps 600
A dry run of the same flow anywhere: --device cpu --tiny --coarse-steps 2 --refiner-steps 2

With `--continue-runs`, the lease goes on with the accumulating runs of `checkpoints/`
instead of starting new ones: the HED-trunk coarse run (its trunk from the half-precision
copy the bundle carries) for `--coarse-steps` more steps, then the refiner, fed by the
shipped coarse model, for `--refiner-steps` more; their `last.pt` come back as
`coarse-hed.pt` and `refiner.pt`, to copy into `checkpoints/` and score here.

With `--refiner-on MODEL.onnx`, the lease trains a fresh PRO refiner on that model's coarse
outputs instead (PRO on the model it was made for: Depth Anything V2 Small's `model.onnx`,
carried in the bundle, since the device reaches no hub): the refiner in torch on the GPU,
the coarse pass on onnxruntime's CPU provider, as the pipeline's coarse pass runs it; the
refiner comes back as `refiner-on.pt` and exported, `refiner-on.onnx`, its spec naming the
coarse model (a catalog file by its catalog name).

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

HED_TRUNK_FILE = "hed_trunk_fp16.h5"  # written by scripts/gpu_bundle.sh (nets/hed.save_trunk)

# small enough for a CPU dry run of the whole flow in seconds
TINY = {
    "coarse": dict(size=64, batch=2, workers=1, val_synthetic=1, val_every=1),
    "refiner": dict(
        batch=1, workers=1, patch=64, overlap=16, image_side=128, val_synthetic=1, val_every=1
    ),
}


def run_logged(cfg, folder: Path, log_path: Path, device: str, resume: bool = False):
    """`run_training` with each validation printed and written to `log_path` as a JSON line."""
    with log_path.open("w") as log:

        def on_val(step: int, metrics: dict[str, float]) -> None:
            line = json.dumps({"kind": cfg.kind, **{k: round(v, 4) for k, v in metrics.items()}})
            print(line, flush=True)
            print(line, file=log, flush=True)

        return run_training(cfg, folder, device=device, resume=resume, on_val=on_val)


def train(kind: str, steps: int, device: str, runs: Path, out: Path, tiny: bool, **extra) -> Path:
    """Train `kind` with configs/<kind>-gpu.json; returns its best checkpoint, copied to `out`."""
    overrides = read_config_file(ROOT / "configs" / f"{kind}-gpu.json")
    overrides.update(steps=steps, **extra, **(TINY[kind] if tiny else {}))
    result = run_logged(make_config(kind, overrides), runs / kind, out / f"{kind}.log", device)
    best = out / f"{kind}.pt"
    shutil.copyfile(runs / kind / "best.pt", best)
    print(f"{kind}: {result.step} steps in {result.seconds:.0f} s", flush=True)
    return best


def continue_run(
    source: Path, steps: int, device: str, runs: Path, out: Path, tiny: bool, **extra
) -> Path:
    """Resume the run folder `source` (copied into `runs`) for `steps` more steps, with its
    own config, the GPU config's threads and workers, and `extra`; its last.pt goes to `out`
    as `<folder name>.pt`."""
    from prodepth_cli.training.checkpoint import load_checkpoint

    name = source.name
    folder = runs / name
    shutil.copytree(source, folder, dirs_exist_ok=True)
    state = load_checkpoint(folder / "last.pt")
    kind = state["config"]["kind"]
    gpu = read_config_file(ROOT / "configs" / f"{kind}-gpu.json")
    overrides = {**state["config"], "threads": gpu["threads"], "workers": gpu["workers"]}
    overrides.update(steps=state["step"] + steps, **extra, **(TINY[kind] if tiny else {}))
    cfg = make_config(kind, overrides)
    result = run_logged(cfg, folder, out / f"{name}.log", device, resume=True)
    last = out / f"{name}.pt"
    shutil.copyfile(folder / "last.pt", last)
    print(f"{name}: step {result.step} in {result.seconds:.0f} s", flush=True)
    return last


def continue_runs(args: argparse.Namespace, runs: Path, out: Path) -> None:
    """The accumulating HED-trunk coarse run, then the refiner on the shipped coarse model."""
    source = args.checkpoints or ROOT / "checkpoints"
    trunk = Path(os.environ.get("PRODEPTH_DATA", ROOT / ".gpu_data")) / HED_TRUNK_FILE
    arch = {"start": "hed", "weights": str(args.hed_weights or trunk)}
    steps, device, tiny = args.coarse_steps, args.device, args.tiny
    continue_run(source / "coarse-hed", steps, device, runs, out, tiny, arch=arch)
    coarse = args.coarse_model or ROOT / "models" / "prodepth-coarse.onnx"
    steps = args.refiner_steps
    continue_run(source / "refiner", steps, device, runs, out, tiny, coarse_checkpoint=str(coarse))


def refiner_on(model: Path, args: argparse.Namespace, runs: Path, out: Path) -> None:
    """A new refiner fed only by `model`'s coarse maps, then exported beside its checkpoint."""
    from prodepth_cli.training.export import export_checkpoint

    extra = {"coarse_checkpoint": str(model), "coarse_from_net": 1.0}
    best = train("refiner", args.refiner_steps, args.device, runs, out, args.tiny, **extra)
    checkpoint = best.rename(out / "refiner-on.pt")
    result = export_checkpoint(checkpoint, out / "refiner-on.onnx")
    print(f"refiner-on: {result.onnx_path} and {result.spec_path}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coarse-steps", type=int, default=1500)
    ap.add_argument("--refiner-steps", type=int, default=600)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="Tiny sizes: a dry run of the flow.")
    ap.add_argument("--continue-runs", action="store_true", help="Go on with checkpoints/.")
    ap.add_argument("--checkpoints", type=Path, help="Runs to go on with (default checkpoints/).")
    ap.add_argument("--hed-weights", type=Path, help="HED trunk .h5 (default: the bundle's).")
    ap.add_argument("--coarse-model", type=Path, help="Refiner's coarse ONNX (default: shipped).")
    ap.add_argument("--refiner-on", type=Path, help="Train a refiner on this ONNX model alone.")
    args = ap.parse_args()
    out = Path(os.environ.get("OUT", ROOT / "runs" / "gpu_session"))
    out.mkdir(parents=True, exist_ok=True)
    runs = ROOT / "runs" / "gpu_session_work"
    start = time.time()
    if args.refiner_on:
        refiner_on(args.refiner_on, args, runs, out)
        print(f"session: {time.time() - start:.0f} s", flush=True)
        return
    if args.continue_runs:
        continue_runs(args, runs, out)
        print(f"session: {time.time() - start:.0f} s", flush=True)
        return
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
