"""Train the bokeh network on windows rendered by the classical engine (`bokeh_data`).

Loss: L1 in sRGB against the classical render. Adam with the depth networks' schedule
(warm-up, cosine). Checkpoints have the format of `training.checkpoint` (config kind
"bokeh"), so `prodepth export` and `--resume` treat them like the depth networks'. A step's
batch depends only on (seed, step): a resumed run continues the same stream.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from prodepth_cli.errors import InputError
from prodepth_cli.nets.bokeh import BokehArch, BokehNet
from prodepth_cli.training.checkpoint import load_checkpoint, net_from_checkpoint, save_checkpoint
from prodepth_cli.training.config import TrainConfig
from prodepth_cli.training.loop import StepHook, TrainResult, lr_at

CROP = 192  # training window side (frame px); the data hold 256 px windows


def load_windows(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All windows under `folder/train/*.npz`: rgb uint8 `(N, s, s, 3)`, CoC float16
    `(N, s, s)` (already / COC_SCALE), classical render uint8 `(N, s, s, 3)`."""
    files = sorted((folder / "train").glob("*.npz"))
    if not files:
        raise InputError(f"{folder}: no training windows (train/*.npz)")
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


def train_bokeh(
    data_dir: Path,
    run: Path,
    steps: int,
    *,
    batch: int = 8,
    lr: float = 2e-3,
    resume: bool = False,
    device: str = "cpu",
    on_step: StepHook | None = None,
) -> TrainResult:
    """Train for `steps` steps on the windows in `data_dir`; `run/last.pt` every 50 steps."""
    cfg = TrainConfig(kind="bokeh", steps=steps, batch=batch, lr=lr, warmup=20)
    data = load_windows(data_dir)
    run.mkdir(parents=True, exist_ok=True)
    last = run / "last.pt"
    if resume and last.is_file():
        state = load_checkpoint(last)
        net, step = net_from_checkpoint(state).train(), state["step"]
    else:
        state, net, step = None, BokehNet(BokehArch()), 0
    net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    t0, loss = time.perf_counter(), float("nan")
    while step < steps:
        rng = np.random.default_rng([cfg.seed, step])
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        x, target = batch_tensors(data, rng.integers(0, len(data[0]), batch), CROP, rng)
        loss_t = F.l1_loss(net(x.to(device)), target.to(device))
        opt.zero_grad()
        loss_t.backward()
        opt.step()
        step, loss = step + 1, loss_t.item()
        if on_step:
            on_step(step, loss)
        if step % 50 == 0 or step == steps:
            _save(last, net, opt, step)
    return TrainResult(run, step, loss, {"l1": loss}, time.perf_counter() - t0)


def _save(path: Path, net: BokehNet, opt: torch.optim.Optimizer, step: int) -> None:
    config = {"kind": "bokeh", "arch": asdict(net.arch)}
    state = {"config": config, "model": net.state_dict(), "optimizer": opt.state_dict()}
    save_checkpoint(path, {**state, "step": step})
