"""Checkpoints: `last.pt` and `best.pt` under the run folder, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

from prodepth_cli.errors import ModelError
from prodepth_cli.io.write import atomic_output
from prodepth_cli.nets import build_net


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write `state` to `path` through a temporary file, so a kill never leaves half a file;
    OutputError naming `path` and the cause when it cannot be written (DiskFullError: no
    space left), the temporary file removed."""
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        kept = _WriteFailure(f)
        try:
            torch.save(state, kept)
        except RuntimeError:
            if kept.error is None:
                raise
            raise kept.error from None


class _WriteFailure:
    """A file's write and flush for torch.save, keeping the OSError that failed a write:
    torch's zip writer reports it as `RuntimeError: [enforce fail at inline_container.cc]`,
    errno and all lost."""

    def __init__(self, file: BinaryIO):
        self._file = file
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        try:
            return self._file.write(data)
        except OSError as exc:
            self.error = exc
            raise

    def flush(self) -> None:
        self._file.flush()


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The dict saved by the trainer; ModelError when `path` is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ModelError(f"{path}: not a readable checkpoint ({exc})") from exc
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise ModelError(f"{path}: not a prodepth training checkpoint")
    return state


def net_from_checkpoint(state: dict[str, Any]) -> nn.Module:
    """The network of a loaded checkpoint, in eval mode: its moving average of the weights
    when the run kept one (what is exported and shipped), else the weights as trained."""
    cfg = state["config"]
    net = build_net(cfg["kind"], cfg.get("arch") or None)
    load_weights(net, state.get("ema_model") or state["model"])
    return net.eval()


def trained_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    """`net`'s state without its frozen parameters: a pretrained trunk that `build_net` loads
    again from its own weights file (a HED-trunk run's checkpoint: 66 MB with them)."""
    frozen = _frozen(net)
    return {k: v for k, v in net.state_dict().items() if k not in frozen}


def load_weights(net: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Load `weights` (all of `net`'s state but, possibly, its frozen parameters)."""
    missing, unexpected = net.load_state_dict(weights, strict=False)
    missing = sorted(set(missing) - _frozen(net))
    if missing or unexpected:
        raise ModelError(
            f"checkpoint does not fit the network: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )


def _frozen(net: nn.Module) -> set[str]:
    return {name for name, p in net.named_parameters() if not p.requires_grad}
