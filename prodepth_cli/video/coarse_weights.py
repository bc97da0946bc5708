"""Our default coarse network, rebuilt in torch from the shipped ONNX file.

Only `models/prodepth-coarse.onnx` ships (its torch checkpoint stays in the training run
folder, which is not distributed). Its JSON spec names the architecture (`extra.arch`, as
trained; none: the default `CoarseNet`), built without any pretrained weights of its own:
the ONNX file holds them all, a frozen HED trunk's too. The exporter folded each batch norm
into the convolution before it, so the fused weights go back into the convolutions and the
batch norms become the identity plus the fused bias. Convolutions appear in the graph in the
order the modules run, which is the order our coarse networks register them; the parity
check proves the mapping. From an ensemble of coarse networks (`models/ensemble.py`) the
first member is rebuilt, checked against its own output in the ensemble's graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from prodepth_cli.errors import ModelError
from prodepth_cli.models.runtime import MODELS_DIR
from prodepth_cli.models.spec import sidecar_spec
from prodepth_cli.nets import build_net
from prodepth_cli.training.export import COARSE_MODEL_FILE, parity_ok


def default_coarse_onnx() -> Path:
    """The shipped coarse network (the one the default refiner's coarse pass runs)."""
    return MODELS_DIR / COARSE_MODEL_FILE


def coarse_net_from_onnx(path: str | Path) -> nn.Module:
    """The coarse network of the ONNX file at `path` (architecture from its spec), carrying
    the file's weights."""
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except (OSError, ValueError, onnx.onnx_cpp2py_export.checker.ValidationError) as exc:
        raise ModelError(f"{path}: cannot read the coarse network ({exc})") from None
    tensors = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    extra, prefix = _member(Path(path))
    convs = [n for n in graph.node if n.op_type == "Conv" and n.input[1].startswith(prefix)]
    arch = dict(extra.get("arch") or {})
    try:
        net = build_net("coarse", arch, pretrained=False)
    except (TypeError, ValueError, ModelError) as exc:
        raise ModelError(f"{path}: cannot rebuild its architecture {arch} ({exc})") from None
    targets = _conv_slots(net)
    if len(convs) != len(targets):
        raise ModelError(
            f"{path}: {len(convs)} convolutions, the coarse network has {len(targets)}"
        )
    with torch.no_grad():
        for node, (conv, bn) in zip(convs, targets, strict=True):
            weight, bias = tensors[node.input[1]], tensors[node.input[2]]
            if tuple(weight.shape) != tuple(conv.weight.shape):
                raise ModelError(f"{path}: weights do not fit the coarse network")
            conv.weight.copy_(torch.from_numpy(np.array(weight, np.float32)))
            if bn is None:
                conv.bias.copy_(torch.from_numpy(np.array(bias, np.float32)))
            else:
                bn.weight.fill_(1.0)
                bn.bias.copy_(torch.from_numpy(np.array(bias, np.float32)))
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
    return net.eval()


def check_parity(net: nn.Module, path: str | Path, hw: tuple[int, int] = (128, 416)) -> float:
    """Largest |torch - onnxruntime| on a random input; ModelError above the export's
    tolerance for the file's precision (its spec's `extra.fp16`)."""
    import onnxruntime as ort

    x = np.random.default_rng(0).standard_normal((1, 3, *hw)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    extra, prefix = _member(Path(path))
    output = session.get_outputs()[1 if prefix else 0].name  # an ensemble's first member: 2nd
    (ref,) = session.run([output], {session.get_inputs()[0].name: x})
    with torch.no_grad():
        out = net.eval()(torch.from_numpy(x)).numpy()
    diff = float(np.abs(out - ref).max())
    fp16 = bool(extra.get("fp16"))
    if not parity_ok(diff, float(ref.max() - ref.min()), fp16):
        raise ModelError(f"{path}: rebuilt coarse network differs from the ONNX file by {diff}")
    return diff


def _member(path: Path) -> tuple[dict, str]:
    """The spec extras of the network to rebuild and the prefix of its graph's names: the
    file's own network ("" prefix), or an ensemble's first member (`models/ensemble.py`:
    "m0_"), the scratch network the video fit was built on; a pretrained VGG trunk would make
    every step of the fit several times slower."""
    extra = sidecar_spec(path).get("extra", {})
    members = extra.get("members")
    return (members[0], "m0_") if members else (extra, "")


def _conv_slots(net: nn.Module) -> list[tuple[nn.Conv2d, nn.BatchNorm2d | None]]:
    """Each convolution with the batch norm that follows it (None for the biased head)."""
    modules = list(net.modules())
    slots = []
    for i, m in enumerate(modules):
        if isinstance(m, nn.Conv2d):
            nxt = modules[i + 1] if i + 1 < len(modules) else None
            slots.append((m, nxt if isinstance(nxt, nn.BatchNorm2d) else None))
    return slots
