"""Several ONNX depth models as one graph: each member's map standardised per image (mean 0,
standard deviation 1), then averaged.

Networks trained apart make different mistakes: our scratch coarse network learned the layout
of scenes, the one on HED's pretrained trunk the objects in them, and their average beats
both (models/MODEL_CARD.md). Relative disparity has no unit, so each member is put on one
footing before the average. Members share a spec (input, normalisation, working size, kind),
so the ensemble is fed and read as any one of them, by the pipeline or anyone else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from prodepth_cli.errors import ModelError, write_error
from prodepth_cli.models.runtime import MAX_IR_VERSION, load_network
from prodepth_cli.models.spec import ModelSpec, write_spec

STD_EPSILON = 1e-6  # keeps a flat map (std 0) finite: it standardises to zeros
PARITY_TOLERANCE = 1e-4  # |ensemble - members averaged in numpy|, standardised units


@dataclass(frozen=True)
class EnsembleResult:
    """Where the ensemble and its spec went, and its largest difference from the members run
    one by one and averaged in numpy (standardised units)."""

    onnx_path: Path
    spec_path: Path
    max_abs_diff: float


def standardise(disparity: np.ndarray) -> np.ndarray:
    """`(B, ...)` maps with each image's mean removed and divided by its standard deviation
    (population, + `STD_EPSILON`): what every member becomes before the average."""
    flat = disparity.reshape(len(disparity), -1).astype(np.float64)
    centred = flat - flat.mean(axis=1, keepdims=True)
    std = np.sqrt((centred**2).mean(axis=1, keepdims=True) + STD_EPSILON)
    return (centred / std).reshape(disparity.shape)


def ensemble_models(members: list[Path], output: Path) -> EnsembleResult:
    """Write the ensemble of the ONNX depth models `members` to `output` (+ its JSON spec).

    Raises ModelError when there are fewer than two members, when their specs differ (the
    names of their input and output aside) or one is a refiner, when their opsets differ, or
    when onnxruntime's answer for the ensemble strays from the members' own by more than
    `PARITY_TOLERANCE`; nothing is left behind then.
    """
    if len(members) < 2:
        raise ModelError("an ensemble needs at least two models")
    nets = [load_network(path, "cpu", {}) for path in members]
    spec = _shared_spec(nets, members)
    graph = _merged_graph(members, [net.spec for net in nets])
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    try:
        _save(graph, tmp)
        diff = _parity(tmp, nets)
        if diff > PARITY_TOLERANCE:
            raise ModelError(f"{output}: the ensemble differs from its members by {diff:.2e}")
        extra = {
            "members": [
                _member_record(path, net.spec) for path, net in zip(members, nets, strict=True)
            ]
        }
        spec_tmp = write_spec(spec.replace(name=output.stem, extra=extra), tmp)
        os.replace(tmp, output)
        os.replace(spec_tmp, output.with_suffix(".json"))
    except OSError as exc:
        raise write_error(output, exc) from None
    finally:
        tmp.unlink(missing_ok=True)
        tmp.with_suffix(".json").unlink(missing_ok=True)
    return EnsembleResult(output, output.with_suffix(".json"), diff)


def extract_member(ensemble: Path, index: int, output: Path) -> Path:
    """Member `index` of the ensemble file `ensemble` as a model of its own at `output` (+ its
    spec): the graph cut at that member's map, to swap one member for another."""
    import onnx.utils

    spec = load_network(ensemble, "cpu", {}).spec
    members = spec.extra.get("members", [])
    if not 0 <= index < len(members):
        raise ModelError(f"{ensemble}: no member {index} (it has {len(members)})")
    outputs = [o.name for o in onnx.load(str(ensemble), load_external_data=False).graph.output]
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    try:
        onnx.utils.extract_model(str(ensemble), str(tmp), [spec.input], [outputs[1 + index]])
        member = spec.replace(output=outputs[1 + index], name=output.stem, extra=members[index])
        os.replace(write_spec(member, tmp), output.with_suffix(".json"))
        os.replace(tmp, output)
    except OSError as exc:
        raise write_error(output, exc) from None
    finally:
        tmp.unlink(missing_ok=True)
    return output


def _shared_spec(nets: list, paths: list[Path]) -> ModelSpec:
    """The members' common spec; their names and input/output names may differ."""

    def contract(net) -> tuple:
        return net.spec.replace(name="-", input="-", output="-"), net.input_dtype

    first = contract(nets[0])
    for net, path in zip(nets, paths, strict=True):
        if net.spec.is_refiner:
            raise ModelError(
                f"{path}: a refiner cannot be an ensemble member (it needs a coarse map)"
            )
        if contract(net) != first:
            raise ModelError(f"{path}: its spec differs from {paths[0]}'s; members must share one")
    return nets[0].spec


def _member_record(path: Path, spec: ModelSpec) -> dict[str, Any]:
    return {"file": path.name, **spec.extra}


def _merged_graph(paths: list[Path], specs: list[ModelSpec]):
    """One ModelProto: the members' graphs side by side (prefixed `m0_`, `m1_`, ..., in the
    order given) on one input, then the standardise-and-average tail. The ensemble's map is
    the first output; each member's own map follows, in order (`m0_disparity`, ...), for
    whoever needs one member alone (`prodepth video` grows its depth net from the first)."""
    import onnx
    from onnx import compose, helper

    models = [onnx.load(str(path)) for path in paths]
    opsets = [{o.domain or "ai.onnx": o.version for o in m.opset_import} for m in models]
    if any(o != opsets[0] for o in opsets):
        raise ModelError(f"{paths[0]}: members use different opsets ({opsets}); re-export them")
    opset = opsets[0]["ai.onnx"]
    nodes, initializers, value_infos, functions, maps = [], [], [], [], []
    spec = specs[0]  # the ensemble is fed and read as its first member
    for i, (model, member) in enumerate(zip(models, specs, strict=True)):
        prefixed = compose.add_prefix(model, f"m{i}_")
        g = prefixed.graph
        nodes.append(helper.make_node("Identity", [spec.input], [f"m{i}_{member.input}"]))
        nodes += g.node
        initializers += g.initializer
        value_infos += g.value_info
        functions += prefixed.functions
        nodes += _standardise_nodes(f"m{i}_{member.output}", f"m{i}_standard", opset)
        maps.append(f"m{i}_standard")
    nodes.append(helper.make_node("Sum", maps, ["ens_sum"]))
    initializers += _constants(len(maps), opset)
    nodes.append(helper.make_node("Div", ["ens_sum", "ens_count"], ["ens_flat"]))
    nodes.append(helper.make_node("Shape", [f"m0_{spec.output}"], ["ens_shape"]))
    nodes.append(helper.make_node("Reshape", ["ens_flat", "ens_shape"], [spec.output]))
    first = models[0].graph
    image = next(i for i in first.input if i.name == spec.input)
    out = next(o for o in first.output if o.name == spec.output)
    members = [
        _renamed(o, f"m{i}_{o.name}")
        for i, (m, member) in enumerate(zip(models, specs, strict=True))
        for o in m.graph.output
        if o.name == member.output
    ]
    graph = helper.make_graph(
        nodes, "ensemble", [image], [out, *members], initializers, value_info=value_infos
    )
    model = helper.make_model(graph, opset_imports=models[0].opset_import, functions=functions)
    model.ir_version = min(max(m.ir_version for m in models), MAX_IR_VERSION)
    return model


def _renamed(value_info, name: str):
    copy = type(value_info)()
    copy.CopyFrom(value_info)
    copy.name = name
    return copy


def _standardise_nodes(source: str, target: str, opset: int) -> list:
    """Nodes turning `source` `(B, ...)` into `target` `(B, N)`, standardised per image as
    `standardise` does (in float32); they read the constants of `_constants`."""
    import onnx
    from onnx import helper

    def mean(x: str, y: str) -> Any:  # ReduceMean over axis 1; its axes became an input at 18
        if opset >= 18:
            return helper.make_node("ReduceMean", [x, "ens_axis1"], [y], keepdims=1)
        return helper.make_node("ReduceMean", [x], [y], axes=[1], keepdims=1)

    t = target
    return [
        helper.make_node("Cast", [source], [f"{t}_f32"], to=onnx.TensorProto.FLOAT),
        helper.make_node("Flatten", [f"{t}_f32"], [f"{t}_flat"], axis=1),
        mean(f"{t}_flat", f"{t}_mean"),
        helper.make_node("Sub", [f"{t}_flat", f"{t}_mean"], [f"{t}_centred"]),
        helper.make_node("Mul", [f"{t}_centred", f"{t}_centred"], [f"{t}_sq"]),
        mean(f"{t}_sq", f"{t}_var"),
        helper.make_node("Add", [f"{t}_var", "ens_eps"], [f"{t}_var_eps"]),
        helper.make_node("Sqrt", [f"{t}_var_eps"], [f"{t}_std"]),
        helper.make_node("Div", [f"{t}_centred", f"{t}_std"], [target]),
    ]


def _constants(members: int, opset: int) -> list:
    import onnx
    from onnx import helper

    f32, i64 = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    constants = [
        helper.make_tensor("ens_count", f32, [], [members]),
        helper.make_tensor("ens_eps", f32, [], [STD_EPSILON]),
    ]
    if opset >= 18:  # ReduceMean's axes became an input
        constants.append(helper.make_tensor("ens_axis1", i64, [1], [1]))
    return constants


def _save(model, path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{path}: the merged graph is not valid ONNX ({exc})") from None
    onnx.save(model, str(path))


def _parity(path: Path, nets: list) -> float:
    """Largest |ensemble - numpy average of the standardised members| on two random images."""
    import onnxruntime as ort

    spec = nets[0].spec
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    g = np.random.default_rng(0)
    worst = 0.0
    for hw in [spec.size] if spec.size else [(4, 6), (6, 4)]:
        h, w = hw if spec.size else (hw[0] * spec.multiple, hw[1] * spec.multiple)
        shape = (1, 3, h, w) if spec.layout == "NCHW" else (1, h, w, 3)
        x = g.standard_normal(shape).astype(nets[0].input_dtype)
        maps = [net.session.run([net.spec.output], {net.spec.input: x})[0] for net in nets]
        expected = np.mean([standardise(m) for m in maps], axis=0)
        got = session.run([spec.output], {spec.input: x})[0]
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst
