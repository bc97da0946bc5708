"""Tiny ONNX depth models built by the tests themselves (no downloads, no shipped weights)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 10  # onnxruntime 1.31 reads IR 13 at most
OPSET = 18  # reductions take their axes as an input from opset 18


def _save(graph: onnx.GraphProto, path: Path, spec: dict | None = None) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    if spec is not None:
        path.with_suffix(".json").write_text(json.dumps(spec))
    return path


def pointwise_model(path: Path, spec: dict | None = None, float16_input: bool = False) -> Path:
    """A local filter with no spatial extent: disparity = sigmoid(w . rgb + b), NCHW dynamic
    (with `float16_input`, its image input is float16, cast to float32 inside).

    Tiling cannot change its output, so tiled and untiled maps must agree exactly.
    """
    w = numpy_helper.from_array(np.array([[[[1.5]], [[-2.0]], [[0.7]]]], np.float32), "w")
    b = numpy_helper.from_array(np.array([0.1], np.float32), "b")
    cast = [helper.make_node("Cast", ["image"], ["rgb"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(
        (cast if float16_input else [])
        + [
            helper.make_node("Conv", ["rgb" if float16_input else "image", "w", "b"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["disparity"]),
        ],
        "pointwise",
        [
            helper.make_tensor_value_info(
                "image",
                TensorProto.FLOAT16 if float16_input else TensorProto.FLOAT,
                ["N", 3, "H", "W"],
            )
        ],
        [helper.make_tensor_value_info("disparity", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=[w, b],
    )
    return _save(graph, path, spec)


def luminance_depth_nhwc(path: Path, size: tuple[int, int] = (64, 96)) -> Path:
    """A fixed-size NHWC model whose 'depth' output is 1 + mean(rgb): bright = far."""
    h, w = size
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["im0", "axes"], ["m"], keepdims=1),
            helper.make_node("Add", ["m", "one"], ["depth"]),
        ],
        "lum",
        [helper.make_tensor_value_info("im0", TensorProto.FLOAT, [1, h, w, 3])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, h, w, 1])],
        initializer=[
            numpy_helper.from_array(np.array([3], np.int64), "axes"),
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        ],
    )
    return _save(graph, path)


def not_an_image_model(path: Path) -> Path:
    """A valid ONNX model whose only input is a vector: it cannot be a depth model."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "vector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
    )
    return _save(graph, path)


def self_normalising_model(path: Path, spec: dict | None = None) -> Path:
    """Affine-invariant like real relative-depth nets: each call rescales its own output to
    [0, 1], so every tile comes back in a different frame and only alignment can join them."""
    w = numpy_helper.from_array(np.array([[[[1.5]], [[-2.0]], [[0.7]]]], np.float32), "w")
    axes = numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["image", "w"], ["z"]),
            helper.make_node("ReduceMin", ["z", "axes"], ["lo"], keepdims=1),
            helper.make_node("ReduceMax", ["z", "axes"], ["hi"], keepdims=1),
            helper.make_node("Sub", ["z", "lo"], ["num"]),
            helper.make_node("Sub", ["hi", "lo"], ["den"]),
            helper.make_node("Div", ["num", "den"], ["disparity"]),
        ],
        "selfnorm",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("disparity", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=[w, axes],
    )
    return _save(graph, path, spec)


def flickering_brightness_model(path: Path, seed: float = 1.0) -> Path:
    """A model whose disparity is the image's brightness (mean of RGB in [0, 1], + 0.2)
    times a random gain in [0.5, 1.5] plus a random shift in [0, 0.3], both drawn anew at
    every call (RandomUniform): the truth up to an affine that jumps from frame to frame, as
    a relative-depth model's per-frame normalisation does. NCHW dynamic, any multiple."""
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["image", "axes"], ["brightness"], keepdims=1),
            helper.make_node("Add", ["brightness", "offset"], ["truth"]),
            helper.make_node(
                "RandomUniform", [], ["gain"], shape=[1], low=0.5, high=1.5, seed=seed
            ),
            helper.make_node(
                "RandomUniform", [], ["shift"], shape=[1], low=0.0, high=0.3, seed=seed + 1
            ),
            helper.make_node("Mul", ["truth", "gain"], ["scaled"]),
            helper.make_node("Add", ["scaled", "shift"], ["disparity"]),
        ],
        "flicker",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        [helper.make_tensor_value_info("disparity", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=[
            numpy_helper.from_array(np.array([1], np.int64), "axes"),
            numpy_helper.from_array(np.array(0.2, np.float32), "offset"),
        ],
    )
    return _save(graph, path, {"multiple": 1})
