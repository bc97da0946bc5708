"""Networks trained by `prodepth train`: the coarse model and the PRO refiner (torch)."""

from __future__ import annotations

from typing import Any

from torch import nn

from prodepth_cli.nets.coarse import CoarseArch, CoarseNet
from prodepth_cli.nets.refiner import RefinerArch, RefinerNet

KINDS = ("coarse", "refiner")


def build_net(kind: str, arch: dict[str, Any] | None = None) -> nn.Module:
    """The network of `kind` ("coarse" or "refiner") with `arch` fields overriding defaults."""
    if kind == "coarse":
        return CoarseNet(CoarseArch(**(arch or {})))
    if kind == "refiner":
        return RefinerNet(RefinerArch(**(arch or {})))
    raise ValueError(f"unknown network kind {kind!r}; expected one of {KINDS}")
