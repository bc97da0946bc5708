"""ModelSpec: how to feed an ONNX depth model and read its answer.

A spec is inferred from the graph, then overridden by a preset, a JSON file beside the model
(same stem, `.json`) and finally by command-line options, in that order.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prodepth_cli.errors import ModelError, write_error

Layout = Literal["NCHW", "NHWC"]
Kind = Literal["disparity", "depth"]
Align = Literal["affine", "scale", "none"]
Units = Literal["relative", "m"]
DEFAULT_WORKING_SIZE = 384  # coarse pass of a dynamic model whose native size is unknown

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """Input/output contract of one ONNX depth model.

    The network sees `(rgb01 * pixel_scale - mean) / std` where rgb01 is the image in
    [0, 1], channels in `color` order, laid out as `layout` (`pixel_scale=255` feeds raw
    0-255 values). `kind` says how to read the output: `disparity` (larger = nearer) or
    `depth` (larger = farther), in `units` (`relative`, or `m` for metric models).
    `align="affine"` means the output is known only up to scale and shift (tiles are fitted
    to the coarse pass); `"scale"` fits the scale only (metric models: a tile's own field of
    view misleads its absolute scale); `"none"` takes tiles as they come (PRO refiners, which
    answer in the coarse pass's frame).

    `working_size` is the side of the squares the network was trained at (its native size),
    when known: the coarse pass sees the image with its short side at that size (the long
    side at most four times it), and so, by default, do the tiles of a dynamic model
    (refiners excepted: they refine detail at full resolution). Unknown (None): the coarse
    pass runs at `DEFAULT_WORKING_SIZE` and tiles at full resolution.
    """

    input: str
    output: str
    layout: Layout = "NCHW"
    size: tuple[int, int] | None = None  # fixed (H, W), or None when the graph is dynamic
    multiple: int = 32  # dynamic inputs are rounded to a multiple of this
    working_size: int | None = None  # native (short) side of a dynamic model, when known
    color: Literal["RGB", "BGR"] = "RGB"
    pixel_scale: float = 1.0  # 255: the network takes raw 0-255 values
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    kind: Kind = "disparity"
    units: Units = "relative"
    align: Align = "affine"
    coarse_input: str | None = None  # PRO refiner: name of the coarse-disparity input
    coarse_model: str | None = None  # PRO refiner: coarse model file, relative to the spec
    name: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_refiner(self) -> bool:
        return self.coarse_input is not None

    @property
    def is_metric(self) -> bool:
        return self.units == "m"

    def replace(self, **changes: Any) -> ModelSpec:
        """A copy with `changes` applied, ignoring None values (unset options)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ModelError(f"unknown spec field(s): {', '.join(sorted(unknown))}")
        for key, allowed in _CHOICES.items():
            if key in changes and changes[key] not in allowed:
                raise ModelError(f"spec {key} {changes[key]!r}: choose {' or '.join(allowed)}")
        return dataclasses.replace(self, **_coerce(changes))

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if not out["extra"]:
            del out["extra"]
        return out


_CHOICES = {
    "layout": ("NCHW", "NHWC"),
    "kind": ("disparity", "depth"),
    "units": ("relative", "m"),
    "align": ("affine", "scale", "none"),
    "color": ("RGB", "BGR"),
}


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    """JSON lists to the tuples the dataclass holds; a metric model aligns in scale only
    unless told otherwise."""
    out = dict(values)
    for key in ("mean", "std", "size"):
        if isinstance(out.get(key), list):
            out[key] = tuple(out[key])
    if out.get("units") == "m" and "align" not in out:
        out["align"] = "scale"
    return out


# Public exports and their conventions, matched by a substring of the file name, for files
# met by path alone (catalog models carry their full spec: models/catalog.json).
PRESETS: dict[str, dict[str, Any]] = {
    "depth_anything": dict(
        mean=IMAGENET_MEAN, std=IMAGENET_STD, multiple=14, working_size=518, kind="disparity"
    ),
    "dpt": dict(
        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), multiple=32, working_size=384, kind="disparity"
    ),
    # The isl-org MiDaS ONNX releases normalise inside the graph: they take rgb / 255.
    "midas": dict(multiple=32, working_size=384, kind="disparity"),
    "pydnet": dict(kind="depth", layout="NHWC"),
}


def preset_for(model_path: Path) -> dict[str, Any]:
    """Preset fields for a known public export, found by its file name; {} otherwise."""
    stem = model_path.stem.lower().replace("-", "_")
    for key, fields in PRESETS.items():
        if key in stem:
            return dict(fields)
    return {}


def sidecar_spec(model_path: Path) -> dict[str, Any]:
    """Fields of the JSON spec beside the model (same stem), or {} when there is none."""
    path = model_path.with_suffix(".json")
    if not path.is_file():
        return {}
    try:
        fields = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a valid JSON spec ({exc})") from exc
    if not isinstance(fields, dict):
        raise ModelError(f"{path}: a spec must be a JSON object")
    return fields


def write_spec(spec: ModelSpec, model_path: Path) -> Path:
    """Write `spec` as the JSON file beside `model_path`; returns its path."""
    path = model_path.with_suffix(".json")
    try:
        path.write_text(json.dumps(spec.to_json(), indent=2) + "\n")
    except OSError as exc:
        raise write_error(path, exc) from None
    return path
