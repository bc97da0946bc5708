"""The bokeh network's ONNX export on onnxruntime: the tflite engine where LiteRT is missing.

Same contract as `tflite.TFLiteBokehNet` (fixed NHWC input `(1, fh, fw, 4)`, output
`(1, fh, fw, 3)`), so `tflite.NetRenderer` drives either; onnxruntime is in every install.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prodepth_cli.errors import ModelError, first_line


class OnnxBokehNet:
    """A bokeh .onnx model (`training.bokeh_export.convert_onnx`) on onnxruntime's CPU."""

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise ModelError(f"{path}: no such ONNX model")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own classes, not one base
            raise ModelError(f"{path}: not a loadable ONNX model ({first_line(exc)})") from None
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        shape = tuple(inputs[0].shape) if len(inputs) == 1 else ()
        if len(shape) != 4 or shape[0] != 1 or shape[3] != 4 or len(outputs) != 1:
            raise ModelError(
                f"{path}: not a bokeh network (expected one NHWC input (1, H, W, 4): image "
                f"+ CoC; got {[tuple(i.shape) for i in inputs]})"
            )
        self.name = path.name
        self.frame_hw = (int(shape[1]), int(shape[2]))
        self._in = inputs[0].name

    def predict(self, x: np.ndarray) -> np.ndarray:
        """`(1, fh, fw, 4)` float32 -> `(1, fh, fw, 3)` float32."""
        return self._session.run(None, {self._in: np.ascontiguousarray(x, np.float32)})[0]
