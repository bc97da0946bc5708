"""Checkpoint -> ONNX (dynamic batch, height and width) + its JSON spec, checked for parity.

The graph is written with the TorchScript exporter (opset 17) and its IR version capped at
13, the newest onnxruntime 1.31 reads. Parity: onnxruntime and torch must agree on a random
input to within a tolerance relative to the output's range (`parity_ok`), else the export
fails and no file is left behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from prodepth_cli.errors import ModelError
from prodepth_cli.io.write import atomic_output
from prodepth_cli.models import catalog
from prodepth_cli.models.runtime import MAX_IR_VERSION
from prodepth_cli.models.spec import IMAGENET_MEAN, IMAGENET_STD, ModelSpec, write_spec
from prodepth_cli.nets import INPUT_MULTIPLE
from prodepth_cli.training.checkpoint import load_checkpoint, net_from_checkpoint

OPSET = 17
COARSE_MODEL_FILE = "prodepth-coarse.onnx"
# |onnxruntime - torch| allowed, as a fraction of the output's range (at least 1): disparity's
# scale is arbitrary, so a network answering over a span of 20 (HED's trunk) meets the same bar
# as one answering over 1. Float32 agrees to ~1e-6; half precision keeps about three digits.
PARITY_TOLERANCE = {False: 1e-4, True: 1e-2}


def parity_ok(diff: float, span: float, fp16: bool) -> bool:
    """Whether a largest difference `diff` on outputs spanning `span` is within tolerance."""
    return diff <= PARITY_TOLERANCE[fp16] * max(span, 1.0)


@dataclass(frozen=True)
class ExportResult:
    """Where the model and its spec went, and the measured torch/onnxruntime difference."""

    onnx_path: Path
    spec_path: Path
    max_abs_diff: float
    kind: str


def coarse_model_ref(source: str | None) -> str:
    """What an exported refiner's spec names as its coarse model, from the coarse source it
    trained on (`TrainConfig.coarse_checkpoint`): a catalog model by its name (so `prodepth
    depth` finds it installed, or pulls it), another ONNX file by its file name (to sit
    beside the refiner), else the shipped coarse network (a .pt run exports beside it)."""
    if not source or Path(source).suffix.lower() == ".pt":
        return COARSE_MODEL_FILE
    path = Path(source)
    entry = catalog.match_file(path) if path.is_file() else catalog.find(source)
    if entry is not None:
        return entry.ref
    return path.name


def spec_for(
    kind: str, working_size: int, name: str, coarse_model: str = COARSE_MODEL_FILE
) -> ModelSpec:
    """The JSON spec of an exported network of `kind` ("coarse" or "refiner")."""
    common = dict(
        input="image",
        output="disparity",
        layout="NCHW",
        multiple=INPUT_MULTIPLE,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        kind="disparity",
        name=name,
    )
    if kind == "coarse":
        return ModelSpec(**common, working_size=working_size, align="affine")
    return ModelSpec(
        **common,
        working_size=working_size,
        align="none",
        coarse_input="coarse",
        coarse_model=coarse_model,
    )


class _Fp16(nn.Module):
    """Float16 weights and activations inside, float32 in and out (the spec's contract)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net.half()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.net(*(x.half() for x in inputs)).float()


def _example_inputs(kind: str, h: int = 64, w: int = 96) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, h, w, generator=g)
    if kind == "coarse":
        return (image,)
    return image, torch.rand(1, 1, h, w, generator=g)


def _write_onnx(net: nn.Module, kind: str, path: Path) -> None:
    import onnx

    names = ["image"] if kind == "coarse" else ["image", "coarse"]
    dynamic = {n: {0: "batch", 2: "height", 3: "width"} for n in [*names, "disparity"]}
    with atomic_output(path) as tmp:
        torch.onnx.export(
            net,
            _example_inputs(kind),
            str(tmp),
            input_names=names,
            output_names=["disparity"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
        model = onnx.load(str(tmp))
        model.ir_version = min(model.ir_version, MAX_IR_VERSION)
        onnx.checker.check_model(model)
        onnx.save(model, str(tmp))


def onnx_parity(net: nn.Module, kind: str, path: Path) -> tuple[float, float]:
    """Max |onnxruntime - torch| over two input sizes (checks the dynamic axes too), and the
    span of torch's outputs."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = span = 0.0
    for h, w in ((64, 96), (128, 64)):
        inputs = _example_inputs(kind, h, w)
        with torch.no_grad():
            ref = net(*inputs).numpy()
        feed = {i.name: x.numpy() for i, x in zip(sess.get_inputs(), inputs, strict=True)}
        out = sess.run(["disparity"], feed)[0]
        worst = max(worst, float(np.abs(out - ref).max()))
        span = max(span, float(ref.max() - ref.min()))
    return worst, span


def export_checkpoint(checkpoint: Path, onnx_path: Path, fp16: bool = False) -> ExportResult:
    """Export the network in `checkpoint` to `onnx_path` and its spec beside it.

    Raises ModelError (and removes the file) when onnxruntime disagrees with torch by more
    than `PARITY_TOLERANCE` allows.
    """
    state = load_checkpoint(checkpoint)
    cfg = state["config"]
    kind = cfg["kind"]
    net = net_from_checkpoint(state)
    if fp16:
        net = _Fp16(net).eval()
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    _write_onnx(net, kind, onnx_path)
    diff, span = onnx_parity(net, kind, onnx_path)
    if not parity_ok(diff, span, fp16):
        onnx_path.unlink(missing_ok=True)
        raise ModelError(
            f"export parity failed: onnxruntime differs from torch by {diff:.2e} on outputs "
            f"spanning {span:.2g} (tolerance {PARITY_TOLERANCE[fp16]:.0e} of the span)"
        )
    # working_size is the coarse pass's short side: the coarse training size for both
    coarse_model = coarse_model_ref(cfg.get("coarse_checkpoint"))
    spec = spec_for(kind, cfg["size"], onnx_path.stem, coarse_model)
    spec = spec.replace(
        extra={
            "trained_steps": state["step"],
            # the side of what it learnt from: coarse crops, or refiner patches
            "train_patch": cfg["size"] if kind == "coarse" else cfg["patch"],
            "opset": OPSET,
            "fp16": fp16,
            "parity_max_abs_diff": diff,
            # what to rebuild it as in torch (`prodepth video`): the weights are all here
            "arch": {k: v for k, v in (cfg.get("arch") or {}).items() if k != "weights"},
        }
    )
    return ExportResult(onnx_path, write_spec(spec, onnx_path), diff, kind)
