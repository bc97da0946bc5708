"""Stand-ins for public depth models: the real architecture or the ONNX contract, random weights.

Tests and benchmarks need models that meet the pipeline exactly as the released files do (input and
output names, layouts, fixed or dynamic sizes, normalisation inside or outside the graph, external
weights) without downloading anything. Each builder writes one model and returns its path.
Check them all in onnxruntime with ``python tests/standins.py [--small]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple
from unittest import mock

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

if TYPE_CHECKING:
    from transformers import DepthAnythingForDepthEstimation

IR_VERSION = 10  # onnxruntime 1.31 reads IR 13 at most
OPSET = 18  # reductions take their axes as an input, Resize takes `axes`, from opset 18
SEED = 0

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --- Depth Anything V2: the real transformers model, exported as onnx-community does ----------


class _Da2Size(NamedTuple):
    hidden: int
    layers: int
    heads: int
    neck: tuple[int, int, int, int]
    fusion: int
    head: int


DA2_SIZES = {
    # depth-anything/Depth-Anything-V2-Small-hf: DINOv2 ViT-S/14 + DPT neck, 24,785,089 params.
    "small": _Da2Size(hidden=384, layers=12, heads=6, neck=(48, 96, 192, 384), fusion=64, head=32),
    # The same graph ~8x narrower and 3x shallower (0.29 M params): builds and exports in ~3 s.
    "tiny": _Da2Size(hidden=48, layers=4, heads=3, neck=(8, 16, 32, 48), fusion=16, head=8),
}
DA2_TRACE_SIZE = 518  # the size the onnx-community export was traced at (image_size)


def depth_anything_v2_torch(config: str = "tiny") -> DepthAnythingForDepthEstimation:
    """The seeded torch model `depth_anything_v2` exports, for comparing torch with onnxruntime.

    Built from inline configs (no hub access). `return_dict=False` makes it return the 1-tuple
    (predicted_depth,), so the exporter sees exactly the one output the public export has.
    """
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    size = DA2_SIZES[config]
    torch.manual_seed(SEED)
    backbone = Dinov2Config(
        hidden_size=size.hidden,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        image_size=DA2_TRACE_SIZE,
        patch_size=14,
        # V2 taps four evenly spaced blocks (stage3/6/9/12 for ViT-S), V1 the last four.
        out_indices=[size.layers * k // 4 for k in (1, 2, 3, 4)],
        reshape_hidden_states=False,
    )
    model = DepthAnythingForDepthEstimation(
        DepthAnythingConfig(
            backbone_config=backbone,
            use_pretrained_backbone=False,
            patch_size=14,
            reassemble_hidden_size=size.hidden,
            neck_hidden_sizes=list(size.neck),
            fusion_hidden_size=size.fusion,
            head_hidden_size=size.head,
            depth_estimation_type="relative",
            return_dict=False,
        )
    ).eval()
    _calibrate_da2_head(model)
    return model


def _calibrate_da2_head(model: DepthAnythingForDepthEstimation, side: int = 196) -> None:
    """Rescale the last conv so a random image gives disparity ~ relu(N(2, 1)), as O(1) as real.

    Under transformers' N(0, 0.02) init the neck and head shrink activations ~1e5-fold: the raw
    output is ~1e-7 and partly clipped by the final ReLU, so tolerances and scale/shift fits in
    tests would be looking at float noise. Only conv3's weight and bias change, not the graph.
    """
    import torch

    conv = model.head.conv3
    captured: list[torch.Tensor] = []
    hook = conv.register_forward_hook(lambda _module, _inputs, out: captured.append(out))
    try:
        with torch.no_grad():
            model(pixel_values=torch.randn(1, 3, side, side))
    finally:
        hook.remove()
    mean, std = captured[0].mean(), captured[0].std()
    with torch.no_grad():
        conv.weight /= std
        conv.bias.copy_((conv.bias - mean) / std + 2.0)


def depth_anything_v2(path: Path, config: str = "tiny") -> Path:
    """transformers' DepthAnythingForDepthEstimation (V2) with random weights, exported like
    onnx-community/depth-anything-v2-small.

    Input `pixel_values` float32 [batch_size, 3, height, width], dynamic, height and width
    multiples of 14, fed ImageNet-normalised RGB ((rgb/255 - mean) / std, done by the caller).
    Output `predicted_depth` float32 [batch_size, height, width]: relative disparity (larger =
    nearer), >= 0, at the input's own size (traced at 518x518, runs at any multiple of 14).
    `config` is "small" (the real V2 Small: 24.8 M params, ~99 MB) or "tiny" (the same
    architecture, narrow: 0.29 M params, ~1.3 MB). One self-contained file, IR 10, opset 18.
    """
    import torch
    from transformers.models.depth_anything import modeling_depth_anything
    from transformers.utils import torch_int

    model = depth_anything_v2_torch(config)
    dummy = torch.randn(1, 3, DA2_TRACE_SIZE, DA2_TRACE_SIZE)
    # The head upsamples to `int(patch_height * patch_size)`: under the tracer int() turns the
    # traced size into a constant, so the output would stay 518x518 whatever the input. Giving
    # the module transformers' own torch_int (a tensor while tracing) keeps the size in the graph.
    patch_int = mock.patch.object(modeling_depth_anything, "int", torch_int, create=True)
    with patch_int, warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated, but the torch.export one needs onnxscript.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["pixel_values"],
            output_names=["predicted_depth"],
            dynamic_axes={
                "pixel_values": {0: "batch_size", 2: "height", 3: "width"},
                "predicted_depth": {0: "batch_size", 1: "height", 2: "width"},
            },
        )
    exported = onnx.load(str(path))
    exported.ir_version = IR_VERSION
    onnx.save(exported, str(path))
    _assert_output_follows_input(path, "pixel_values", (42, 56))
    return path


def _assert_output_follows_input(path: Path, name: str, size: tuple[int, int]) -> None:
    """Fail loudly, rather than hand tests a model whose output size was baked in by the trace
    (dynamic_axes only labels the output dims, so the graph's metadata cannot tell)."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = session.run(None, {name: np.zeros((1, 3, *size), np.float32)})[0]
    if out.shape[-2:] != size:
        raise RuntimeError(f"{path.name}: output {out.shape} does not follow input {size}")


# --- Contract stand-ins built with onnx.helper: cheap graphs shaped like the releases -----------


class _Graph:
    """Collects nodes and seeded random initialisers, so each stand-in reads as its data flow."""

    def __init__(self, seed: int = SEED) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.rng = np.random.default_rng(seed)

    def weight(self, value: np.ndarray) -> str:
        """A float32 initializer: what `depth_pro_like` moves to its external data file."""
        name = f"weight_{len(self.initializers)}"
        self.initializers.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def const(self, value: object, dtype: type = np.float32) -> str:
        """A Constant node, never moved to external data: onnxruntime's shape inference cannot
        read an external tensor (a Squeeze's axes, say) and refuses to load the model."""
        tensor = numpy_helper.from_array(np.asarray(value, dtype))
        return self.op("Constant", value=tensor)

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: object) -> str:
        out = out or f"{op_type.lower()}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def conv(self, x: str, c_in: int, c_out: int, kernel: int, stride: int = 1) -> str:
        """He-initialised, so activations stay O(1) and every output depends on the image."""
        fan_in = c_in * kernel * kernel
        w = self.rng.normal(0.0, np.sqrt(2.0 / fan_in), (c_out, c_in, kernel, kernel))
        b = self.rng.normal(0.0, 0.1, c_out)
        pad = (kernel - 1) // 2 if stride == 1 else 0
        return self.op(
            "Conv",
            x,
            self.weight(w),
            self.weight(b),
            kernel_shape=[kernel, kernel],
            strides=[stride, stride],
            pads=[pad] * 4,
        )

    def normalise(self, x: str, mean: tuple[float, ...], std: tuple[float, ...]) -> str:
        shape = (1, 3, 1, 1)
        mean_c = self.const(np.reshape(mean, shape))
        return self.op("Div", self.op("Sub", x, mean_c), self.const(np.reshape(std, shape)))

    def squeeze_channel(self, x: str, out: str) -> str:
        """[N, 1, H, W] -> [N, H, W], the layout of the releases' depth outputs."""
        return self.op("Squeeze", x, self.const([1], np.int64), out=out)

    def bounded(self, x: str, low: float, span: float, out: str | None = None) -> str:
        """low + span * sigmoid(x): strictly positive, like metric depth or a focal length."""
        scaled = self.op("Mul", self.op("Sigmoid", x), self.const(span))
        return self.op("Add", scaled, self.const(low), out=out)

    def features(self, x: str, stride: int, channels: int = 8) -> str:
        """Coarse context (a patchified path upsampled back, as ViT/DPT and encoder-decoder nets
        have) plus full-resolution detail, at the input's own size. The coarse path makes tiles
        see different context, so tiling and blending matter; the fine one keeps edges."""
        fine = self.op("Relu", self.conv(x, 3, channels, 3))
        coarse = self.op("Relu", self.conv(x, 3, channels, stride, stride))
        coarse = self.op("Relu", self.conv(coarse, channels, channels, 3))
        size = self.op("Shape", x, start=2)
        up = self.op("Resize", coarse, "", "", size, axes=[2, 3], mode="linear")
        return self.op("Add", fine, up)

    def save(
        self,
        path: Path,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
        external_data: bool = False,
    ) -> Path:
        graph = helper.make_graph(
            self.nodes, path.stem, inputs, outputs, initializer=self.initializers
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model, full_check=True)
        if not external_data:
            onnx.save_model(model, str(path))
            return path
        data = path.with_name(path.name + "_data")
        # onnx appends to an existing data file: a rebuild would grow it with dead bytes.
        data.unlink(missing_ok=True)
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data.name,
            size_threshold=0,
        )
        return path


def _float(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def midas_v21_small_like(path: Path) -> Path:
    """The contract of isl-org's MiDaS v2.1 small ONNX release (model-small.onnx).

    Input `0` float32 [1, 3, 256, 256], fixed, fed rgb/255: the ImageNet mean/std normalisation
    is inside the graph. Output `797` float32 [1, 256, 256]: relative inverse depth (larger =
    nearer), > 0 (softplus, so no flat clipped areas).
    """
    g = _Graph()
    x = g.normalise("0", IMAGENET_MEAN, IMAGENET_STD)
    z = g.conv(g.features(x, stride=32), 8, 1, 1)
    g.squeeze_channel(g.op("Softplus", z), out="797")
    return g.save(path, [_float("0", [1, 3, 256, 256])], [_float("797", [1, 256, 256])])


def depth_pro_like(path: Path) -> Path:
    """The contract of onnx-community/DepthPro-ONNX (model.onnx + model.onnx_data).

    Input `pixel_values` float32 [1, 3, 1536, 1536], fixed, fed (rgb/255 - 0.5) / 0.5, i.e. in
    [-1, 1] (normalised by the caller). Outputs `predicted_depth` float32 [1, 1536, 1536] in
    metres, 0.5-20.5 (larger = farther), and `focallength_px` float32 [1], 500-1500 px. Weights
    are external, in `<file name>_data` beside the model: the pair must travel together.
    """
    g = _Graph()
    features = g.features("pixel_values", stride=16)
    depth = g.bounded(g.conv(features, 8, 1, 1), 0.5, 20.0)
    g.squeeze_channel(depth, out="predicted_depth")
    pooled = g.op("ReduceMean", features, g.const([1, 2, 3], np.int64), keepdims=0)
    g.bounded(pooled, 500.0, 1000.0, out="focallength_px")
    return g.save(
        path,
        [_float("pixel_values", [1, 3, 1536, 1536])],
        [_float("predicted_depth", [1, 1536, 1536]), _float("focallength_px", [1])],
        external_data=True,
    )


def metric3d_like(path: Path) -> Path:
    """The contract of onnx-community/metric3d-vit-small.

    Input `pixel_values` float32 [batch_size, 3, height, width], dynamic, multiples of 14, fed
    RAW 0-255 RGB: the normalisation (ImageNet mean/std x 255) is inside the graph. Outputs, all
    at the input's size: `predicted_depth` [batch_size, height, width] in metres, 0.1-80.1;
    `predicted_normal` [batch_size, 3, height, width], unit vectors; `normal_confidence`
    [batch_size, 1, height, width] in (0, 1).
    """
    g = _Graph()
    scale = 255.0
    x = g.normalise(
        "pixel_values",
        tuple(m * scale for m in IMAGENET_MEAN),
        tuple(s * scale for s in IMAGENET_STD),
    )
    features = g.features(x, stride=14)
    g.squeeze_channel(g.bounded(g.conv(features, 8, 1, 1), 0.1, 80.0), out="predicted_depth")
    normal = g.conv(features, 8, 3, 1)
    length = g.op("ReduceL2", normal, g.const([1], np.int64), keepdims=1)
    g.op("Div", normal, g.op("Add", length, g.const(1e-6)), out="predicted_normal")
    g.op("Sigmoid", g.conv(features, 8, 1, 1), out="normal_confidence")
    n, h, w = "batch_size", "height", "width"
    return g.save(
        path,
        [_float("pixel_values", [n, 3, h, w])],
        [
            _float("predicted_depth", [n, h, w]),
            _float("predicted_normal", [n, 3, h, w]),
            _float("normal_confidence", [n, 1, h, w]),
        ],
    )


# --- Catalog entries -------------------------------------------------------------------------


def catalog_entry(files: list[Path], like: str | None = None, spec: dict | None = None) -> dict:
    """A model catalog entry (the shape of prodepth_cli/models/catalog.json) for local
    `files`, graph first: with the shipped spec of model `like`, or `spec`. Its release URL
    is never asked: the files are recognised by size and sha256 when loaded by path."""
    from prodepth_cli.models import catalog

    shipped = catalog.lookup(like) if like else None
    return {
        "title": shipped.title if shipped else "a stand-in",
        "licence": shipped.licence if shipped else "test",
        "url": "http://127.0.0.1:9/",
        "spec": shipped.spec if shipped else spec,
        "default_variant": "fp32",
        "variants": {
            "fp32": {
                "files": [
                    {"path": p.name, "bytes": p.stat().st_size, "sha256": catalog.sha256_of(p)}
                    for p in files
                ]
            }
        },
    }


# --- Self-check -------------------------------------------------------------------------------


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # keep it light; timings are single-threaded
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _describe(array: np.ndarray) -> str:
    return f"{array.shape} [{array.min():.3g}, {array.max():.3g}]"


def _run(path: Path, feed: np.ndarray, label: str = "") -> list[np.ndarray]:
    """Load, run once and print names, shapes, file sizes and timings; outputs must vary."""
    t0 = time.perf_counter()
    session = _session(path)
    t1 = time.perf_counter()
    outs = session.run(None, {session.get_inputs()[0].name: feed})
    t2 = time.perf_counter()
    files = sorted(path.parent.glob(path.name + "*"))
    sizes = ", ".join(f"{f.name} {f.stat().st_size / 1e6:.2f} MB" for f in files)
    print(f"  {label or path.name}: {sizes}; load {t1 - t0:.2f} s, run {t2 - t1:.2f} s")
    arg = session.get_inputs()[0]
    print(f"    in  {arg.name} {arg.shape} <- {_describe(feed)}")
    for arg, value in zip(session.get_outputs(), outs, strict=True):
        print(f"    out {arg.name} {arg.shape} -> {_describe(value)}")
        assert value.size == 1 or value.std() > 0, f"{arg.name} is constant"
    return outs


def _check_depth_anything(folder: Path, config: str, rng: np.random.Generator) -> None:
    import torch

    t0 = time.perf_counter()
    path = depth_anything_v2(folder / f"da2_{config}.onnx", config)
    print(f"depth_anything_v2[{config}]: built + exported in {time.perf_counter() - t0:.1f} s")
    model = depth_anything_v2_torch(config)
    print(f"  params {sum(p.numel() for p in model.parameters()):,}")
    for batch, h, w in [(1, 518, 518), (1, 280, 420), (2, 364, 518)]:
        feed = rng.standard_normal((batch, 3, h, w)).astype(np.float32)
        (depth,) = _run(path, feed, f"{h}x{w} batch {batch}")
        assert depth.shape == (batch, h, w), depth.shape
        assert depth.min() >= 0
        with torch.no_grad():
            expected = model(torch.from_numpy(feed))[0].numpy()
        print(f"    torch vs onnxruntime: max abs diff {np.abs(depth - expected).max():.2e}")
        assert np.allclose(depth, expected, rtol=1e-3, atol=1e-3)


def _check_contract_models(folder: Path, rng: np.random.Generator) -> None:
    t0 = time.perf_counter()
    midas = midas_v21_small_like(folder / "model-small.onnx")
    print(f"midas_v21_small_like: built in {time.perf_counter() - t0:.2f} s")
    (inverse_depth,) = _run(midas, rng.random((1, 3, 256, 256), np.float32))
    assert inverse_depth.min() > 0

    t0 = time.perf_counter()
    pro = depth_pro_like(folder / "model.onnx")
    print(f"depth_pro_like: built in {time.perf_counter() - t0:.2f} s")
    depth, focal = _run(pro, rng.uniform(-1, 1, (1, 3, 1536, 1536)).astype(np.float32))
    assert depth.shape == (1, 1536, 1536) and depth.min() > 0 and focal.shape == (1,)
    data = pro.with_name(pro.name + "_data")
    hidden = data.rename(data.with_name("elsewhere"))
    try:
        _session(pro)
    except Exception as error:  # onnxruntime raises its own, unexported, exception types
        print(f"  without {data.name}: refused ({type(error).__name__})")
    else:
        raise AssertionError("loaded without its external data")
    finally:
        hidden.rename(data)

    t0 = time.perf_counter()
    m3d = metric3d_like(folder / "metric3d.onnx")
    print(f"metric3d_like: built in {time.perf_counter() - t0:.2f} s")
    for batch, h, w in [(1, 518, 700), (2, 280, 378)]:
        feed = rng.uniform(0, 255, (batch, 3, h, w)).astype(np.float32)
        depth, normal, confidence = _run(m3d, feed, f"{h}x{w} batch {batch}")
        assert depth.shape == (batch, h, w) and depth.min() > 0
        assert normal.shape == (batch, 3, h, w) and confidence.shape == (batch, 1, h, w)
        assert np.allclose(np.linalg.norm(normal, axis=1), 1, atol=1e-4)


def main(argv: list[str]) -> None:
    """Build every stand-in into a temporary folder and run each once in onnxruntime."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported: prove no hub
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _check_contract_models(folder, rng)
        _check_depth_anything(folder, "tiny", rng)
        if "--small" in argv:
            _check_depth_anything(folder, "small", rng)
    print("ok")


if __name__ == "__main__":
    main(sys.argv[1:])
