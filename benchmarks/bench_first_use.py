"""What pull on first use costs once the model is cached: `-m NAME` against `-m PATH`.

A fake Hugging Face hub on 127.0.0.1 serves the Depth Anything V2 stand-in (its real
architecture, tiny config, random weights; `tests/standins.py`) under a catalog name. The first
`prodepth depth -m NAME` pulls it; then runs by name (resolved in huggingface_hub's cache) and
by the cached file's path (recognised by size and sha256) alternate, each a whole CLI process
on the same photograph. Prints the hub requests the cached runs made (goal: none) and the
median ratio of wall times name / path (goal: about 1).

    python benchmarks/bench_first_use.py [--image PHOTO] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodepth_cli.models.catalog import CATALOG_ENV  # noqa: E402
from tests.fake_hub import FakeHub, hf_env  # noqa: E402
from tests.standins import catalog_entry, depth_anything_v2  # noqa: E402

NAME = "da2-standin"
REPO = "prodepth-bench/da2-standin"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "bartender.jpg")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeHub() as hub:
        folder = Path(tmp)
        graph = depth_anything_v2(folder / "model.onnx", "tiny")
        entry = catalog_entry([graph], like="depth-anything-v2-small")
        entry.update(url=None, repo=REPO, revision=COMMIT)
        entry["variants"]["fp32"]["files"][0]["path"] = "onnx/model.onnx"
        hub.add(REPO, COMMIT, "onnx/model.onnx", graph.read_bytes())
        extra = folder / "catalog.json"
        extra.write_text(json.dumps({NAME: entry}))
        env = {**hf_env(hub, folder / "hf"), CATALOG_ENV: str(extra), "PYTHONPATH": str(ROOT)}

        def run(model: str) -> tuple[float, dict]:
            out = folder / "depth.png"
            cmd = [sys.executable, "-m", "prodepth_cli", "depth", str(args.image), "-m", model]
            start = time.perf_counter()
            done = subprocess.run(
                [*cmd, "-o", str(out), "--overwrite", "--json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            return time.perf_counter() - start, json.loads(done.stdout)

        first, record = run(NAME)
        pulled = len(hub.requests)
        path = next((folder / "hf" / "hub").rglob("snapshots/*/onnx/model.onnx"))
        print(f"first run (pulls {graph.stat().st_size / 1e6:.1f} MB): {first:.2f} s, "
              f"{pulled} hub requests; model {record['model']}")  # fmt: skip
        by_name, by_path = [], []
        for _ in range(args.rounds):
            by_name.append(run(NAME)[0])
            by_path.append(run(str(path))[0])
        ratios = [n / p for n, p in zip(by_name, by_path, strict=True)]
        print(f"cached runs: {len(hub.requests) - pulled} hub requests in {2 * args.rounds} runs")
        print(f"-m NAME {statistics.median(by_name):.2f} s, -m PATH "
              f"{statistics.median(by_path):.2f} s (medians of {args.rounds})")  # fmt: skip
        print(f"name / path = {statistics.median(ratios):.3f} (pairs: "
              + ", ".join(f"{r:.3f}" for r in ratios) + ")")  # fmt: skip


if __name__ == "__main__":
    main()
