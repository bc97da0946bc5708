"""Training configuration: one dataclass, defaults per network kind, JSON overrides."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from prodepth_cli.errors import OptionError


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved inside every checkpoint.

    Sizes are pixels. `real_fraction` of the samples are real RGB-D pairs, the rest synthetic.
    Refiner groups (GPCT): four `patch`-sized crops of one image in a 2x2 arrangement whose
    neighbours share `overlap` pixels, i.e. a region of `2 * patch - overlap` pixels. With
    `ema` (e.g. 0.999), an exponential moving average of the weights is kept beside them:
    at a constant rate the weights wander from step to step, their average less. Each coarse
    batch has the short side `size` and a long side `size` times one of `aspects`, landscape
    or portrait alike: the pipeline shows the network whole photos of any shape that way.
    """

    kind: str = "coarse"
    steps: int = 2000
    batch: int = 8  # coarse: images per step; refiner: groups of four patches per step
    size: int = 256  # coarse training side (the short side, see `aspects`)
    aspects: list[float] = field(default_factory=lambda: [1.0])  # coarse: long / short side
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    schedule: str = "cosine"  # or "constant": a run that keeps growing by resuming
    real_fraction: float = 0.5
    seed: int = 0
    threads: int = 2
    workers: int = 0  # processes building the coming batches (0: the training process)
    val_every: int = 100
    val_synthetic: int = 12
    grad_weight: float = 0.5
    patch: int = 256
    overlap: int = 96
    image_side: int = 512  # refiner: side of the synthetic high-resolution image
    consistency: bool = True
    consistency_weight: float = 1.0
    coarse_checkpoint: str | None = None  # refiner: coarse .pt, .onnx or catalog name
    coarse_from_net: float = 0.5  # refiner: fraction of groups whose coarse input is the net's
    arch: dict[str, Any] = field(default_factory=dict)
    ema: float = 0.0  # decay of the weights' moving average (validated, exported); 0: none
    precision: str = "auto"  # bf16 | fp32 | auto: bf16 where the processor has it natively

    def uses_bf16(self, device: str) -> bool:
        """Whether the forward pass runs in bfloat16 (`precision`; for auto: a CUDA device
        with bf16, or a CPU with AVX512-BF16 or AMX, where it is fast rather than emulated;
        never Apple's mps, whose autocast covers float16 only)."""
        if self.precision != "auto":
            return self.precision == "bf16"
        if device.startswith("mps"):
            return False
        if device.startswith("cuda"):
            return torch.cuda.is_bf16_supported()
        native = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, name, lambda: False)() for name in native)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


REFINER_DEFAULTS: dict[str, Any] = dict(batch=2, lr=1e-3, grad_weight=5.0)


def make_config(kind: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The defaults for `kind`, then `overrides` (from a JSON file or the command line)."""
    if kind not in ("coarse", "refiner"):
        raise OptionError(f"unknown network {kind!r}: train 'coarse' or 'refiner'")
    base: dict[str, Any] = dict(kind=kind, **(REFINER_DEFAULTS if kind == "refiner" else {}))
    base.update({k: v for k, v in (overrides or {}).items() if v is not None})
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = set(base) - names
    if unknown:
        raise OptionError(f"unknown training option(s): {', '.join(sorted(unknown))}")
    if base.get("schedule", "cosine") not in ("cosine", "constant"):
        raise OptionError(f"schedule {base['schedule']!r}: choose cosine or constant")
    if base.get("precision", "auto") not in ("auto", "bf16", "fp32"):
        raise OptionError(f"precision {base['precision']!r}: choose auto, bf16 or fp32")
    return TrainConfig(**base)


def read_config_file(path: Path) -> dict[str, Any]:
    """The JSON object in `path` (training options by field name)."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise OptionError(f"{path}: not a readable JSON config ({exc})") from exc
    if not isinstance(values, dict):
        raise OptionError(f"{path}: a config must be a JSON object")
    return values
