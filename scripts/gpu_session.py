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

With `--video-fit [CLIP ...]`, the lease fits `prodepth video`'s depth and pose networks
to each clip `scripts/video_bundle.py` bundled (frames, the shipped model's teacher maps and
intrinsics, made on the CPU machine): the teacher-driven fit (`TAUGHT_STEPS`, or
`--video-steps`), then the cold one (`COLD_STEPS`, or `--video-cold-steps`), each timed; the
fused disparity and camera motions come back as `video-<clip>-<teacher|cold>.npz`, with the
times in `video.json`, to score here (`benchmarks/bench_video_consistency.py --maps`).

It calls the trainer and the fit directly rather than the `prodepth` command, whose photo and
video I/O needs libvips and PyAV, which the GPU image lacks; the library's I/O modules still
import them, so absent ones are stood in for by modules that fail only when used.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Imported by the library's photo and video I/O, absent from the GPU image; nothing a lease
# runs uses them (isal: PNG deflate, imagecodecs: tiled TIFF).
PHOTO_IO_MODULES = ("av", "pyvips", "imagecodecs", "isal", "isal.isal_zlib")


class _Absent(types.ModuleType):
    """A module this machine lacks: importing it succeeds, using it raises."""

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise ModuleNotFoundError(f"{self.__name__} is not installed here ({attr} asked for)")


def stand_in_for_photo_io() -> list[str]:
    """Put an `_Absent` module in `sys.modules` for each of PHOTO_IO_MODULES not installed,
    so that the library imports; returns their names."""
    absent = []
    for name in PHOTO_IO_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # its parent package is absent
            found = False
        if not found:
            module = sys.modules[name] = _Absent(name)
            parent, _, child = name.rpartition(".")
            if parent:
                setattr(sys.modules[parent], child, module)
            absent.append(name)
    return absent


ABSENT = stand_in_for_photo_io()

from prodepth_cli.training.config import make_config, read_config_file  # noqa: E402
from prodepth_cli.training.loop import run_training  # noqa: E402

if TYPE_CHECKING:
    from video_bundle import BundledClip

HED_TRUNK_FILE = "hed_trunk_fp16.h5"  # written by scripts/gpu_bundle.sh (nets/hed.save_trunk)
VIDEO_FOLDER = "video"  # <clip>.npz, written by scripts/video_bundle.py

# small enough for a CPU dry run of the whole flow in seconds
TINY = {
    "coarse": dict(size=64, batch=2, workers=1, val_synthetic=1, val_every=1),
    "refiner": dict(
        batch=1, workers=1, patch=64, overlap=16, image_side=128, val_synthetic=1, val_every=1
    ),
    "video": dict(frames=8, steps=2),  # each clip's first frames, steps of either fit
}


def bundle_data() -> Path:
    """The data the lease carries (`scripts/gpu_bundle.sh`'s .gpu_data, or $PRODEPTH_DATA)."""
    return Path(os.environ.get("PRODEPTH_DATA", ROOT / ".gpu_data"))


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
    trunk = bundle_data() / HED_TRUNK_FILE
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


def fit_clip(
    bundled: BundledClip, steps: int, taught: bool, device: str, work: Path, target: Path
) -> dict:
    """Fit `bundled` (a `video_bundle.BundledClip`) for `steps` steps, with its teacher maps
    or cold, its checkpoints in the empty folder `work`. The fused disparity `(N, h, w)`
    float16 (the fit's scale, larger = nearer), the camera motions `(N-1, 4, 4)` T_i_to_i+1
    and the losses go to `target` (.npz). Returns the fit's record: `seconds` the whole fit
    (networks built, start, steps, temporal fusion), `loop_seconds` from the first step's
    end to the last's, `seconds_per_step` the median step (None for a single step)."""
    import numpy as np

    from prodepth_cli.video.coarse_weights import default_coarse_onnx
    from prodepth_cli.video.fit import default_config, fit_video

    ends: list[float] = []  # each step's end (the loss read back: CUDA has finished it)

    def on_step(step: int, total: int, loss: float, stage: str) -> None:
        ends.append(time.perf_counter())
        if step == total or step % 100 == 0:
            print(f"  {target.stem}: step {step}/{total} loss {loss:.4f} ({stage})", flush=True)

    clip, config = bundled.clip, default_config(taught, steps)
    teacher = bundled.teacher if taught else None
    checkpoint, coarse = work / "checkpoint.pt", default_coarse_onnx()
    fit = fit_video(
        clip, bundled.intrinsics, checkpoint, coarse, config, None, device, on_step, teacher
    )
    np.savez_compressed(
        target,
        disparity=fit.disparity.astype(np.float16),
        motions=fit.steps,
        losses=np.array(fit.losses, np.float32),
        names=np.array(clip.names),
    )
    gaps = np.diff(ends)
    return {
        "steps": fit.steps_run,
        "seconds": round(fit.seconds, 2),
        "loop_seconds": round(float(ends[-1] - ends[0]), 2) if ends else 0.0,
        "seconds_per_step": round(float(np.median(gaps)), 4) if len(gaps) else None,
        "final_loss": round(float(np.mean(fit.losses[-20:])), 5) if fit.losses else None,
        "masks": fit.mask_source,
        "file": target.name,
    }


def video_fits(args: argparse.Namespace, out: Path) -> None:
    """The teacher-driven and the cold fit of each bundled clip; `video.json` sums them up
    (rewritten after each fit, so a lease cut short still brings back what it finished)."""
    import tempfile

    import torch
    from video_bundle import load_bundle

    from prodepth_cli.video.fit import COLD_STEPS, TAUGHT_STEPS

    folder = bundle_data() / VIDEO_FOLDER
    names = args.video_fit or sorted(p.stem for p in folder.glob("*.npz"))
    missing = [n for n in names if not (folder / f"{n}.npz").exists()]
    if not names or missing:
        raise SystemExit(f"{folder}: no bundled {' '.join(missing) or 'clips'}; run gpu_bundle.sh")
    tiny = TINY["video"] if args.tiny else None
    taught_steps = args.video_steps or (tiny["steps"] if tiny else TAUGHT_STEPS)
    cold_steps = args.video_cold_steps or (tiny["steps"] if tiny else COLD_STEPS)
    gpu = torch.cuda.get_device_name() if args.device.startswith("cuda") else None
    summary = {"device": args.device, "gpu": gpu, "torch": torch.__version__, "clips": {}}
    for name in names:
        bundled = load_bundle(folder / f"{name}.npz")
        if tiny:
            bundled = first_frames(bundled, tiny["frames"])
        clip = bundled.clip
        record = summary["clips"][name] = {
            "frames": len(clip),
            "fit_size": list(clip.size),
            "original_size": [clip.width, clip.height],
            "intrinsics": bundled.intrinsics_origin,
        }
        for mode, steps in (("teacher", taught_steps), ("cold", cold_steps)):
            target = out / f"video-{name}-{mode}.npz"
            with tempfile.TemporaryDirectory(prefix="video_fit_") as work:  # its checkpoints
                taught = mode == "teacher"
                record[mode] = fit_clip(bundled, steps, taught, args.device, Path(work), target)
            (out / "video.json").write_text(json.dumps(summary, indent=2))
            fit = record[mode]
            print(
                f"{name} {mode}: {fit['steps']} steps in {fit['seconds']:.1f} s "
                f"({fit['seconds_per_step']} s/step)",
                flush=True,
            )


def first_frames(bundled: BundledClip, n: int) -> BundledClip:
    """`bundled` cut to its first `n` frames (a dry run)."""
    from dataclasses import replace

    clip = bundled.clip
    short = replace(clip, rgb=clip.rgb[:n], names=clip.names[:n])
    return replace(bundled, clip=short, teacher=bundled.teacher[:n])


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
    ap.add_argument(
        "--video-fit",
        nargs="*",
        metavar="CLIP",
        help="Fit the video depth to these bundled clips (none named: every one), with the "
        "teacher and cold.",
    )
    ap.add_argument("--video-steps", type=int, help="Teacher-driven fit's steps (default 300).")
    ap.add_argument("--video-cold-steps", type=int, help="Cold fit's steps (default 1500).")
    args = ap.parse_args()
    out = Path(os.environ.get("OUT", ROOT / "runs" / "gpu_session"))
    out.mkdir(parents=True, exist_ok=True)
    runs = ROOT / "runs" / "gpu_session_work"
    start = time.time()
    if ABSENT:
        print(f"not installed here, stood in for: {', '.join(ABSENT)}", flush=True)
    if args.video_fit is not None:
        video_fits(args, out)
        print(f"session: {time.time() - start:.0f} s", flush=True)
        return
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
