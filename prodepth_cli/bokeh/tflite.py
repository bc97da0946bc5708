"""The TFLite (LiteRT) bokeh engine: the shipped network run by `ai-edge-litert`.

`TFLiteBokehNet` wraps the interpreter (fixed NHWC input `(1, fh, fw, 4)`); `NetRenderer`
is a bokeh Renderer around any such predictor: it fits the photo into the frame, runs the
network and brings the render back to full size (`net_frame`). The torch network gives the
same renderer (parity tests, validation) through `predict` of the same shape.
"""

from __future__ import annotations

import contextlib
import os
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


class TFLiteBokehNet:
    """A bokeh .tflite model on the LiteRT interpreter (XNNPACK on CPU)."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            raise ModelError(
                "--engine tflite needs ai-edge-litert (pip install ai-edge-litert)"
            ) from None
        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such TFLite model")
        try:
            with _native_stderr_silenced():  # LiteRT's "INFO: Created ... delegate" line
                self._interp = Interpreter(model_path=str(path), num_threads=threads)
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

    def __call__(
        self, rgb: np.ndarray, disparity01: np.ndarray, focus01: float, k: float
    ) -> np.ndarray:
        coc = signed_coc(disparity01, focus01, k)
        fitted = fit_to_frame(rgb, self.frame_hw)
        x = fitted.network_input(fit_coc(fitted, coc, self.frame_hw))
        render = self.predict(x[None])[0]
        return unfit(fitted, render, rgb, coc)


def load_bokeh_net(path: str | Path | None = None, threads: int | None = None) -> NetRenderer:
    """The TFLite engine as a Renderer (default: the shipped `models/prodepth-bokeh.tflite`)."""
    net = TFLiteBokehNet(path or DEFAULT_TFLITE, threads)
    return NetRenderer(net.predict, net.frame_hw, net.name)


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
