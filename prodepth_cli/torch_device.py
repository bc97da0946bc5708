"""Which torch device trains a network or fits a video: CUDA, then Apple's GPU (mps), then
the CPU. onnxruntime's providers are chosen elsewhere (`models/providers.py`)."""

from __future__ import annotations

from prodepth_cli.errors import OptionError

TORCH_DEVICES = ("auto", "cpu", "cuda", "mps")
# onnxruntime's name (`prodepth depth --device`) for the hardware a torch device name means,
# where they differ: a command that runs both a fit and an ONNX model takes one --device.
_ONNX_NAMES = {"mps": "coreml"}


def onnx_device(device: str) -> str:
    """The onnxruntime device (`providers.DEVICES`) on the hardware of torch device name
    `device`: Apple's GPU (mps) is CoreML's; auto, cpu and cuda are the same words, and
    onnxruntime's own names (tensorrt, coreml, directml) pass as they are."""
    device = device.lower()
    return _ONNX_NAMES.get(device, device)


def choose_torch_device(device: str) -> str:
    """`--device` -> a torch device name. auto: cuda when torch sees an NVIDIA GPU, else mps
    on Apple Silicon, else cpu; a device asked for that torch cannot use is refused in one
    line (CoreML, DirectML and TensorRT are onnxruntime's, not torch's)."""
    import torch

    device = device.lower()
    usable = {"cuda": torch.cuda.is_available(), "mps": _mps_available(torch), "cpu": True}
    if device == "auto":
        return next(d for d in ("cuda", "mps", "cpu") if usable[d])
    if device not in TORCH_DEVICES:
        raise OptionError(
            f"--device {device}: training and video's fit run in torch; choose one of "
            f"{', '.join(TORCH_DEVICES)}"
        )
    if not usable[device]:
        seen = [d for d in ("cuda", "mps") if usable[d]] + ["cpu"]
        raise OptionError(f"--device {device}: torch cannot use it here; it has {', '.join(seen)}")
    return device


def _mps_available(torch) -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())
