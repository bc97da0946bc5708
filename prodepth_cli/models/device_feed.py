"""Feeding a network on a GPU: tiles go to the device as the 8- or 16-bit pixels they are
stored as, and become the network's input there.

A batch of four 1024 tiles is 12 MB of 8-bit pixels and 48 MB of float32: made on the host,
the float batch costs the CPU a multiply-add per value and four times the upload. Here a
small ONNX graph on the network's device (the `normaliser`) does the scaling, mean and std,
channel order, layout and float type, and onnxruntime's I/O binding hands its output to the
network where it lies. The host only copies pixels into a batch, which lets a two-core CPU
keep a fast GPU fed. On the CPU provider nothing is gained (the same work on the same
cores), so networks there keep `Network.prepare`'s host path.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import onnxruntime as ort

from prodepth_cli.io import INTEGER_WHITE
from prodepth_cli.models.spec import ModelSpec

_ONNX_TYPES = {  # onnx.TensorProto's numbers (onnx itself is imported only when needed)
    np.dtype(np.uint8): 2,  # TensorProto.UINT8
    np.dtype(np.uint16): 4,  # TensorProto.UINT16
    np.dtype(np.float32): 1,  # TensorProto.FLOAT
    np.dtype(np.float16): 10,  # TensorProto.FLOAT16
}


def takes_pixels(image: np.ndarray, full_scale: float) -> bool:
    """`image` (one tile as stored) can go to a device feed as it is: 3 channels, 8 or 16 bit
    with white at the type's top."""
    return image.ndim == 3 and image.shape[2] == 3 and INTEGER_WHITE.get(image.dtype) == full_scale


class FedNetwork(Protocol):
    """What a feed needs of a network (`runtime.Network` is one)."""

    spec: ModelSpec
    session: ort.InferenceSession
    input_dtype: np.dtype

    @property
    def provider(self) -> str: ...


class DeviceFeed:
    """Runs `net` on batches of raw pixels `(B, h, w, 3)` (uint8 or uint16): normalised on
    the network's device (`device`, I/O binding's name for its memory: cuda; cpu in
    tests), handed over by I/O binding, the output copied back to the host."""

    def __init__(self, net: FedNetwork, device: str = "cpu"):
        self.net = net
        self.provider = net.provider
        self.device = device
        self._normalisers: dict[np.dtype, ort.InferenceSession] = {}

    def infer(self, pixels: np.ndarray, coarse: np.ndarray | None = None) -> np.ndarray:
        """The network's raw output for `pixels`; `coarse` `(B, 1, h, w)` for refiners."""
        spec, session = self.net.spec, self.net.session
        normaliser = self._normaliser(pixels.dtype)
        normalising = normaliser.io_binding()
        normalising.bind_cpu_input("pixels", np.ascontiguousarray(pixels))
        normalising.bind_output("x", self.device)
        normaliser.run_with_iobinding(normalising)
        (x,) = normalising.get_outputs()  # an OrtValue on the device
        binding = session.io_binding()
        binding.bind_ortvalue_input(spec.input, x)
        if spec.coarse_input is not None and coarse is not None:
            binding.bind_cpu_input(spec.coarse_input, np.ascontiguousarray(coarse))
        binding.bind_output(spec.output, "cpu")
        session.run_with_iobinding(binding)
        return binding.copy_outputs_to_cpu()[0]

    def _normaliser(self, pixels: np.dtype) -> ort.InferenceSession:
        if pixels not in self._normalisers:
            graph = normaliser(self.net, np.dtype(pixels))
            options = ort.SessionOptions()
            options.log_severity_level = 3
            providers = [self.provider] + (["CPUExecutionProvider"] if self.device != "cpu" else [])
            self._normalisers[pixels] = ort.InferenceSession(graph, options, providers=providers)
        return self._normalisers[pixels]


def normaliser(net: FedNetwork, pixels: np.dtype) -> bytes:
    """An ONNX graph, serialised: `pixels` `(N, H, W, 3)` of type `pixels` -> `x`, the batch
    `net.prepare` would make from them (same formula, same layout and type)."""
    from onnx import TensorProto, helper, numpy_helper  # 0.6 s to import: only on a GPU

    spec = net.spec
    order = [2, 1, 0] if spec.color == "BGR" else [0, 1, 2]
    white = INTEGER_WHITE[pixels]
    gain = np.array([spec.pixel_scale / (white * spec.std[c]) for c in range(3)], np.float32)
    bias = np.array([-spec.mean[c] / spec.std[c] for c in range(3)], np.float32)
    constants = [
        numpy_helper.from_array(gain, "gain"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array(order, np.int64), "order"),
    ]
    nodes = [
        helper.make_node("Gather", ["pixels", "order"], ["ordered"], axis=3),
        helper.make_node("Cast", ["ordered"], ["values"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["values", "gain"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["nhwc"]),
    ]
    last = "nhwc"
    if spec.layout == "NCHW":
        nodes.append(helper.make_node("Transpose", [last], ["nchw"], perm=[0, 3, 1, 2]))
        last = "nchw"
    out_type = _ONNX_TYPES[np.dtype(net.input_dtype)]
    nodes.append(helper.make_node("Cast", [last], ["x"], to=out_type))
    graph = helper.make_graph(
        nodes,
        "normaliser",
        [helper.make_tensor_value_info("pixels", _ONNX_TYPES[pixels], ["N", "H", "W", 3])],
        [helper.make_tensor_value_info("x", out_type, None)],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # onnxruntime 1.31 reads IR 13 at most
    return model.SerializeToString()
