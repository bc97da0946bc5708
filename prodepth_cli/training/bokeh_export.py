"""Export the bokeh network to TFLite (fp32 and dynamic-range int8) with litert-torch, and
to ONNX (what the tflite engine runs where LiteRT has no build).

Needs the `bokeh-train` extra (litert-torch, ai-edge-quantizer: heavy, pulls jax); the
runtime needs only `ai-edge-litert`. The model takes and gives NHWC (`to_channel_last_io`:
no transposes on the phone) at the fixed frame size `FRAME_HW`. For `-o NAME.tflite` it
writes `NAME.tflite`, `NAME-int8.tflite`, `NAME.onnx` and the torch weights `NAME.pt` (what
the parity tests compare against), each under a temporary name until parity is checked.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from prodepth_cli.errors import ModelError
from prodepth_cli.io.write import atomic_output
from prodepth_cli.nets.bokeh import FRAME_HW, BokehNet, nhwc_predictor
from prodepth_cli.training.checkpoint import load_checkpoint, net_from_checkpoint, save_checkpoint

FP32_TOLERANCE = 1e-4  # max |torch - TFLite|: float32 with another summation order
INT8_TOLERANCE = 2 / 255  # mean |torch - int8 TFLite|: two 8-bit levels


@dataclass(frozen=True)
class BokehExport:
    fp32: Path
    int8: Path
    weights: Path
    parity_fp32: float  # max |torch - TFLite fp32|
    parity_int8: float  # mean |torch - TFLite int8|
    onnx: Path | None = None  # the ONNX export the tflite engine runs where LiteRT is missing
    parity_onnx: float = 0.0  # max |torch - ONNX|


def load_bokeh_weights(path: Path) -> BokehNet:
    """The torch bokeh network of a checkpoint or of exported `NAME.pt` weights."""
    state = load_checkpoint(path)
    if state["config"].get("kind") != "bokeh":
        raise ModelError(f"{path}: not a bokeh network checkpoint")
    return net_from_checkpoint(state)


def convert_tflite(net: BokehNet, path: Path, frame_hw: tuple[int, int] = FRAME_HW) -> None:
    """Write `net` as an NHWC fp32 .tflite of input `(1, fh, fw, 4)` at `path`."""
    try:
        import litert_torch  # the bokeh-train extra: imported only here
    except ImportError:
        raise ModelError(
            "exporting the bokeh network needs the converter: pip install -e '.[bokeh-train]'"
        ) from None
    sample = (torch.zeros(1, frame_hw[0], frame_hw[1], 4),)
    wrapped = litert_torch.to_channel_last_io(net.eval(), args=[0], outputs=[0])
    litert_torch.convert(wrapped.eval(), sample).export(str(path))


class _NHWC(torch.nn.Module):
    """`net` with NHWC input and output, like the TFLite model's."""

    def __init__(self, net: BokehNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def convert_onnx(net: BokehNet, path: Path, frame_hw: tuple[int, int] = FRAME_HW) -> None:
    """Write `net` as an NHWC fp32 .onnx of input `(1, fh, fw, 4)` at `path`, the same
    contract as the .tflite: the tflite engine runs it where LiteRT has no build."""
    sample = (torch.zeros(1, frame_hw[0], frame_hw[1], 4),)
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _NHWC(net.eval()),
            sample,
            str(path),
            input_names=["image_coc"],
            output_names=["render"],
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: no onnxscript needed, same ops
        )


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic-range int8 weights (activations float): ~3x smaller, CPU/GPU friendly."""
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(str(src), recipe.dynamic_wi8_afp32())
    qt.quantize().export_model(str(dst), overwrite=True)


def tflite_error(net: BokehNet, path: Path, seed: int = 0) -> np.ndarray:
    """|torch - TFLite| on one random frame-size input (sRGB in [0, 1], CoC +-64 px)."""
    from prodepth_cli.bokeh.tflite import TFLiteBokehNet

    tflite = TFLiteBokehNet(path)
    x = np.random.default_rng(seed).random((1, *tflite.frame_hw, 4), dtype=np.float32)
    x[..., 3] = (x[..., 3] - 0.5) * 4
    return np.abs(nhwc_predictor(net)(x) - tflite.predict(x))


def onnx_error(net: BokehNet, path: Path, seed: int = 0) -> np.ndarray:
    """|torch - ONNX| on one random frame-size input, as `tflite_error`."""
    from prodepth_cli.bokeh.onnx_net import OnnxBokehNet

    onnx = OnnxBokehNet(path)
    x = np.random.default_rng(seed).random((1, *onnx.frame_hw, 4), dtype=np.float32)
    x[..., 3] = (x[..., 3] - 0.5) * 4
    return np.abs(nhwc_predictor(net)(x) - onnx.predict(x))


def export_bokeh(checkpoint: Path, output: Path) -> BokehExport:
    """Export the checkpoint's network as `output` (.tflite) and its siblings (int8, torch
    weights, and the ONNX export: a stale one would stand in for LiteRT with old weights)."""
    net = load_bokeh_weights(checkpoint)
    int8_path = output.with_name(f"{output.stem}-int8.tflite")
    weights_path = output.with_suffix(".pt")
    onnx_path = output.with_suffix(".onnx")
    with contextlib.ExitStack() as stack:
        fp32, int8, weights, onnx = (
            stack.enter_context(atomic_output(p))
            for p in (output, int8_path, weights_path, onnx_path)
        )
        with contextlib.redirect_stdout(io.StringIO()):  # the converters' chatter: not data
            convert_tflite(net, fp32)
            quantize_int8(fp32, int8)
            convert_onnx(net, onnx)
        parity_fp32 = float(tflite_error(net, fp32).max())
        parity_int8 = float(tflite_error(net, int8).mean())
        parity_onnx = float(onnx_error(net, onnx).max())
        if max(parity_fp32, parity_onnx) > FP32_TOLERANCE or parity_int8 > INT8_TOLERANCE:
            raise ModelError(
                f"{output}: TFLite or ONNX differs from torch (max {parity_fp32:.2e}, int8 "
                f"mean {parity_int8:.2e}, ONNX max {parity_onnx:.2e}); nothing written"
            )
        config = {"kind": "bokeh", "arch": load_checkpoint(checkpoint)["config"]["arch"]}
        save_checkpoint(weights, {"config": config, "model": net.state_dict()})
    return BokehExport(
        output, int8_path, weights_path, parity_fp32, parity_int8, onnx_path, parity_onnx
    )
