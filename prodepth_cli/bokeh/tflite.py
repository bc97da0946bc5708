"""The TFLite (LiteRT) bokeh engine: the shipped network run by `ai-edge-litert`.

`TFLiteBokehNet` wraps the interpreter (fixed NHWC input `(1, fh, fw, 4)`); `NetRenderer`
is a bokeh Renderer around any such predictor: it fits the photo into the frame, runs the
network and brings the render back to full size (`net_frame`). The torch network gives the
same renderer (parity tests, validation) through `predict` of the same shape, and so does the
ONNX export beside the .tflite (`onnx_net`), which runs where LiteRT is missing.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prodepth_cli.bokeh.lens import signed_coc
from prodepth_cli.bokeh.net_frame import fit_coc, fit_to_frame, unfit
from prodepth_cli.errors import ModelError

MODELS = Path(__file__).resolve().parents[2] / "models"
DEFAULT_TFLITE = MODELS / "prodepth-bokeh.tflite"

Predict = Callable[[np.ndarray], np.ndarray]  # (1, fh, fw, 4) -> (1, fh, fw, 3), float32

# (platform.system(), platform.machine()) where ai-edge-litert publishes wheels; pyproject.toml's
# marker installs it on exactly these (tests/test_platforms.py checks the two agree).
LITERT_PLATFORMS = frozenset(
    {("Linux", "x86_64"), ("Linux", "aarch64"), ("Darwin", "arm64"), ("Windows", "AMD64")}
)


def this_platform() -> str:
    """This machine as a photographer names it: "macOS x86_64", "Windows AMD64"."""
    system = platform.system()
    return f"{'macOS' if system == 'Darwin' else system} {platform.machine()}"


def _litert_has_build() -> bool:
    return (platform.system(), platform.machine()) in LITERT_PLATFORMS


def litert_missing() -> str:
    """Why LiteRT cannot run here, in one clause: no build for this platform, or not installed."""
    if not _litert_has_build():
        return f"LiteRT (ai-edge-litert) has no build for this platform ({this_platform()})"
    return "LiteRT (ai-edge-litert) is not installed"


def litert_missing_error() -> ModelError:
    """The one line for --engine tflite where LiteRT is missing and nothing stands in."""
    hint = "use --engine classic"
    if _litert_has_build():
        hint = f"pip install ai-edge-litert, or {hint}"
    return ModelError(f"{litert_missing()}; {hint}")


def litert_interpreter() -> type | None:
    """LiteRT's Interpreter class, or None where ai-edge-litert is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    return Interpreter


class TFLiteBokehNet:
    """A bokeh .tflite model on the LiteRT interpreter (XNNPACK on CPU)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        interpreter = litert_interpreter()
        if interpreter is None:
            raise litert_missing_error()
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such TFLite model")
        try:
            with _native_stderr_silenced():  # LiteRT's "INFO: Created ... delegate" line
                self._interp = interpreter(model_path=str(path), num_threads=threads)
                self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{path}: not a loadable TFLite model ({exc})") from None
        inputs, outputs = self._interp.get_input_details(), self._interp.get_output_details()
        shape = tuple(inputs[0]["shape"]) if len(inputs) == 1 else ()
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 4 or len(outputs) != 1:
            raise ModelError(
                f"{path}: not a bokeh network (expected one NHWC input (1, H, W, 4): image "
                f"+ CoC; got {[tuple(map(int, i['shape'])) for i in inputs]})"
            )
        self.name = path.name
        self.frame_hw = (int(shape[1]), int(shape[2]))
        self._in, self._out = inputs[0]["index"], outputs[0]["index"]

    def predict(self, x: np.ndarray) -> np.ndarray:
        """`(1, fh, fw, 4)` float32 -> `(1, fh, fw, 3)` float32."""
        self._interp.set_tensor(self._in, np.ascontiguousarray(x, np.float32))
        self._interp.invoke()
        return self._interp.get_tensor(self._out)


@dataclass
class NetRenderer:
    """A bokeh Renderer around a frame-size network `predict` (TFLite or torch)."""

    predict: Predict
    frame_hw: tuple[int, int]
    name: str = "network"
    note: str = ""  # for the person at the terminal: which runtime stood in, and why

    def __call__(
        self, rgb: np.ndarray, disparity01: np.ndarray, focus01: float, k: float
    ) -> np.ndarray:
        coc = signed_coc(disparity01, focus01, k)
        fitted = fit_to_frame(rgb, self.frame_hw)
        x = fitted.network_input(fit_coc(fitted, coc, self.frame_hw))
        render = self.predict(x[None])[0]
        return unfit(fitted, render, rgb, coc)


def load_bokeh_net(path: str | Path | None = None, threads: int | None = None) -> NetRenderer:
    """The TFLite engine as a Renderer (default: the shipped `models/prodepth-bokeh.tflite`).

    Where LiteRT is missing, the same network's ONNX export beside the .tflite (`NAME.onnx`)
    runs on onnxruntime instead, and the renderer's `note` says so; an .onnx `path` always
    runs on onnxruntime. Without either: a ModelError that points to --engine classic.
    """
    from prodepth_cli.bokeh.onnx_net import OnnxBokehNet

    path = Path(path or DEFAULT_TFLITE)
    if path.suffix.lower() == ".onnx":
        net = OnnxBokehNet(path, threads)
        return NetRenderer(net.predict, net.frame_hw, net.name)
    if litert_interpreter() is not None:
        net = TFLiteBokehNet(path, threads)
        return NetRenderer(net.predict, net.frame_hw, net.name)
    onnx = path.with_suffix(".onnx")
    if not onnx.is_file():
        raise litert_missing_error()
    net = OnnxBokehNet(onnx, threads)
    said = f"{litert_missing()}: running {onnx.name}, the same network exported to ONNX"
    return NetRenderer(net.predict, net.frame_hw, net.name, said)


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a while: the C++ runtime logs there directly,
    past Python's sys.stderr. Errors still arrive as Python exceptions."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
