"""PyDNet++ (Apache-2.0; `../shared/data/models/pydnet_pp_448x640.onnx`) as a trainable torch
network, rebuilt from its ONNX graph: the one pretrained depth network we have, a candidate
start for the coarse network (issue 14).

The graph keeps its convolution weights as int8 with per-channel scales (DequantizeLinear
nodes); they are folded into float weights, and the graph up to its finest map (half the
input's resolution: convolutions, LeakyReLU, 2x transposed convolutions, concatenations) is
run by `GraphNet`, a module per weighted node. onnx2torch would convert it too, but it
imports torchvision, whose PyPI build does not load with the CPU build of torch we pin. The
last step, TensorFlow's bilinear 2x upsampling (an ONNX Resize with "asymmetric"
coordinates), is written out. In: RGB `(B, 3, H, W)` in [0, 1], H and W multiples of 64. Out:
`(B, 1, H, W)` depth as PyDNet++ gives it (larger = farther, arbitrary scale).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from prodepth_cli.models.spec import IMAGENET_MEAN, IMAGENET_STD
from prodepth_cli.nets.blocks import coordinate_channels

PYDNET_FILE = "pydnet_pp_448x640.onnx"  # in ../shared/data/models
FINEST_SLICE = "PSD/strided_slice"  # channel 0 of the finest map, before its 2x resize
MULTIPLE = 64  # its input sides (six 2x downsamplings)


class PyDNet(nn.Module):
    def __init__(self, core: nn.Module):
        super().__init__()
        self.core = core

    def forward(self, rgb: torch.Tensor) -> torch.Tensor:
        half = self.core(rgb.permute(0, 2, 3, 1))  # the graph takes NHWC
        return upsample2_asymmetric(half[:, :1])


class GraphNet(nn.Module):
    """An ONNX graph of Transpose, Conv, LeakyRelu, ConvTranspose and Concat nodes (in
    topological order) as a torch module: weights become parameters, the rest is replayed."""

    def __init__(self, graph) -> None:
        from onnx import helper, numpy_helper

        super().__init__()
        consts = {
            t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer
        }
        self.layers = nn.ModuleDict()
        self.steps: list[tuple[str, list[str], str, dict]] = []
        for i, node in enumerate(graph.node):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            inputs = [name for name in node.input if name not in consts]
            if node.op_type in ("Conv", "ConvTranspose"):
                weight, bias = (consts[name] for name in node.input[1:3])
                layer = (nn.Conv2d if node.op_type == "Conv" else nn.ConvTranspose2d)(
                    *_channels(node.op_type, weight, attrs),
                    kernel_size=tuple(attrs["kernel_shape"]),
                    stride=tuple(attrs.get("strides", (1, 1))),
                )
                layer.weight.data.copy_(weight)
                layer.bias.data.copy_(bias)
                self.layers[f"{node.op_type.lower()}{i}"] = layer
                attrs["layer"] = f"{node.op_type.lower()}{i}"
            elif node.op_type not in ("Transpose", "LeakyRelu", "Concat"):
                raise ValueError(f"GraphNet: no {node.op_type} ({node.name})")
            self.steps.append((node.op_type, inputs, node.output[0], attrs))
        self.input, self.output = graph.input[0].name, graph.output[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self.input: x}
        for op, inputs, output, attrs in self.steps:
            args = [values[name] for name in inputs]
            if op == "Transpose":
                y = args[0].permute(*attrs["perm"])
            elif op == "LeakyRelu":
                y = F.leaky_relu(args[0], attrs["alpha"])
            elif op == "Concat":
                y = torch.cat(args, attrs["axis"])
            elif op == "Conv":
                top, left, bottom, right = attrs.get("pads", (0, 0, 0, 0))
                y = self.layers[attrs["layer"]](F.pad(args[0], (left, right, top, bottom)))
            else:  # ConvTranspose, no padding to take off (PyDNet's are 2x2, stride 2)
                if any(attrs.get("pads", ())):
                    raise ValueError("GraphNet: padded transposed convolutions are not done")
                y = self.layers[attrs["layer"]](args[0])
            values[output] = y
        return values[self.output]


def _channels(op: str, weight: torch.Tensor, attrs: dict) -> tuple[int, int]:
    """(in, out) channels of a Conv (weight out, in, k, k) or ConvTranspose (in, out, k, k)."""
    if attrs.get("group", 1) != 1 or attrs.get("dilations", [1, 1]) != [1, 1]:
        raise ValueError("GraphNet: grouped or dilated convolutions are not done")
    return (
        (weight.shape[1], weight.shape[0]) if op == "Conv" else (weight.shape[0], weight.shape[1])
    )


class PyDNetCoarse(nn.Module):
    """PyDNet++ behind the coarse network's contract (`CoarseNet`): ImageNet-normalised RGB
    `(B, 3, H, W)` in (padded inside to PyDNet's multiple of 64), relative disparity
    `1 / (depth + 1)` out (larger = nearer; the + 1 keeps it finite where PyDNet's depth
    touches zero)."""

    def __init__(self, pydnet: PyDNet, coordinates: bool = False) -> None:
        super().__init__()
        self.pydnet, self.coordinates = pydnet, coordinates
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        if coordinates:  # the first convolution also sees them, with zero weights at first
            name, first = next((k, v) for k, v in pydnet.core.layers.items() if v.in_channels == 3)
            wider = nn.Conv2d(5, first.out_channels, first.kernel_size, first.stride)
            with torch.no_grad():
                wider.weight.zero_()
                wider.weight[:, :3] = first.weight
                wider.bias.copy_(first.bias)
            pydnet.core.layers[name] = wider

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        h, w = image.shape[-2:]
        rgb = (image * self.std + self.mean).clamp(0.0, 1.0)
        rgb = F.pad(rgb, (0, (-w) % MULTIPLE, 0, (-h) % MULTIPLE), mode="replicate")
        if self.coordinates:
            rgb = torch.cat([rgb, coordinate_channels(rgb)], 1)
        depth = self.pydnet(rgb)[..., :h, :w]
        return 1.0 / (F.relu(depth) + 1.0)


def upsample2_asymmetric(x: torch.Tensor) -> torch.Tensor:
    """Bilinear 2x of `(B, C, h, w)` with source = destination / 2 (TensorFlow 1's resize):
    even outputs copy an input, odd ones average it with the next (the last one repeated)."""
    return _doubled(_doubled(x, 2), 3)


def _doubled(x: torch.Tensor, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    following = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
    return torch.stack([x, (x + following) / 2], dim + 1).flatten(dim, dim + 1)


def load_pydnet(path: Path) -> PyDNet:
    """PyDNet++ from its quantised ONNX file, float weights, ready to train."""
    import onnx

    model = onnx.load(str(path))
    _fold_dequantized_weights(model.graph)
    finest = next(n.input[0] for n in model.graph.node if n.name == FINEST_SLICE)
    # Only what the finest map needs: the coarser outputs reshape to the 448x640 input's sizes.
    model = onnx.shape_inference.infer_shapes(model)  # the extractor needs the value infos
    core = onnx.utils.Extractor(model).extract_model([model.graph.input[0].name], [finest])
    return PyDNet(GraphNet(core.graph))


def _fold_dequantized_weights(graph) -> None:
    """Replace each DequantizeLinear of constant int8 weights by the float weights it makes."""
    from onnx import numpy_helper

    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kept, folded = [], []
    for node in graph.node:
        if node.op_type != "DequantizeLinear" or not all(i in consts for i in node.input):
            kept.append(node)
            continue
        q, scale = consts[node.input[0]].astype(np.float32), consts[node.input[1]]
        zero = consts[node.input[2]].astype(np.float32) if len(node.input) > 2 else np.float32(0)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.size > 1:  # per channel along `axis`
            shape = [1] * q.ndim
            shape[axis] = -1
            scale, zero = scale.reshape(shape), np.reshape(zero, shape if zero.size > 1 else ())
        weights = ((q - zero) * scale).astype(np.float32)
        folded.append(numpy_helper.from_array(weights, node.output[0]))
    used = {name for node in kept for name in node.input}
    initializers = [t for t in graph.initializer if t.name in used] + folded
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
