"""Train the bokeh network on windows rendered by the classical engine (`bokeh_data`).

Loss: L1 in sRGB against the classical render. Adam, cosine learning rate over a wall-clock
budget (the machine is shared: one process, `--threads` cores, run under `nice`).
Checkpoints (`<run>/last.pt`: arch + weights, the format `bokeh_export` reads) are written
atomically every `--save-every` steps and at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from prodepth_cli.nets.bokeh import BokehArch, BokehNet


def load_windows(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All windows under `folder/train/*.npz`: rgb uint8 `(N, s, s, 3)`, CoC float16
    `(N, s, s)` (already / COC_SCALE), classical render uint8 `(N, s, s, 3)`."""
    files = sorted((folder / "train").glob("*.npz"))
    if not files:
        raise SystemExit(f"no training windows in {folder}/train: run bokeh_data first")
    parts = [np.load(f) for f in files]
    return tuple(np.concatenate([p[k] for p in parts]) for k in ("x", "coc", "y"))


def batch_tensors(
    data: tuple[np.ndarray, np.ndarray, np.ndarray], idx: np.ndarray, crop: int, rng
) -> tuple[torch.Tensor, torch.Tensor]:
    """A random `crop`-size sub-window of each selected window, randomly mirrored:
    input `(B, 4, c, c)` and target `(B, 3, c, c)` float32."""
    rgb, coc, y = data
    s = rgb.shape[1]
    oy, ox = rng.integers(0, s - crop + 1, 2)
    win = (idx, slice(oy, oy + crop), slice(ox, ox + crop))
    x = np.concatenate([rgb[win] / 255.0, coc[win][..., None].astype(np.float32)], axis=3)
    t = y[win] / 255.0
    if rng.random() < 0.5:
        x, t = x[:, :, ::-1], t[:, :, ::-1]
    to = lambda a: torch.from_numpy(np.ascontiguousarray(a, np.float32)).permute(0, 3, 1, 2)  # noqa: E731
    return to(x), to(t)


def train(
    data_dir: Path,
    run: Path,
    minutes: float,
    batch: int,
    crop: int,
    lr: float,
    threads: int,
    save_every: int = 50,
    seed: int = 0,
) -> Path:
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    data = load_windows(data_dir)
    arch = BokehArch()
    net = BokehNet(arch)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    run.mkdir(parents=True, exist_ok=True)
    budget = minutes * 60.0
    t0, step, smooth = time.perf_counter(), 0, None
    while (elapsed := time.perf_counter() - t0) < budget:
        for group in opt.param_groups:
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget)))
        x, target = batch_tensors(data, rng.integers(0, len(data[0]), batch), crop, rng)
        loss = F.l1_loss(net(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        smooth = loss.item() if smooth is None else 0.95 * smooth + 0.05 * loss.item()
        if step % save_every == 0:
            _save(run / "last.pt", net, arch, step)
            print(f"step {step} {elapsed / 60:.1f} min L1 {smooth:.4f}", flush=True)
    _save(run / "last.pt", net, arch, step)
    print(f"done: {step} steps, L1 {smooth:.4f}", flush=True)
    return run / "last.pt"


def _save(path: Path, net: BokehNet, arch: BokehArch, step: int) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save({"arch": asdict(arch), "model": net.state_dict(), "step": step}, tmp)
    os.replace(tmp, path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--data", type=Path, default=Path("runs/bokeh_data"))
    p.add_argument("--run", type=Path, default=Path("runs/bokeh_net"))
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=192)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    train(args.data, args.run, args.minutes, args.batch, args.crop, args.lr, args.threads)


if __name__ == "__main__":
    main()
