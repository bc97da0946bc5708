"""Which onnxruntime execution provider runs a network, and with which options.

`candidates(device)` turns `--device` into the accelerators to try, in order, each with the
options that make it fast and stable on its platform (CoreML's MLProgram and compiled-model
cache, DirectML's sequential execution, TensorRT's engine cache). What onnxruntime offers is
asked once (`available`), so tests can fake any machine's provider list.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import onnxruntime as ort

from prodepth_cli.errors import ModelError

DEVICES = ("auto", "cpu", "cuda", "tensorrt", "coreml", "directml")
AUTO_ORDER = ("cuda", "coreml", "directml", "cpu")  # TensorRT only when asked for
CPU = "CPUExecutionProvider"
PROVIDERS = {
    "cpu": CPU,
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "directml": "DmlExecutionProvider",
}
TITLES = {
    "cpu": "CPU",
    "cuda": "CUDA",
    "tensorrt": "TensorRT",
    "coreml": "CoreML",
    "directml": "DirectML",
}


def available() -> list[str]:
    """The providers the installed onnxruntime build has (listed is not loadable: probe)."""
    return ort.get_available_providers()


def devices_of(providers: list[str]) -> list[str]:
    """`--device` names for a provider list, in `DEVICES` order."""
    return [d for d in DEVICES[1:] if PROVIDERS[d] in providers]


def cache_dir() -> Path:
    """prodepth's own cache folder: $PRODEPTH_CACHE, else the platform's user cache
    (~/Library/Caches/prodepth, %LOCALAPPDATA%\\prodepth\\Cache, ~/.cache/prodepth)."""
    override = os.environ.get("PRODEPTH_CACHE")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_cache_path

    return user_cache_path("prodepth", appauthor=False)


@dataclass(frozen=True)
class Accelerator:
    """One way to run a network: `device` (a `DEVICES` name) and its provider.

    `static_shapes`: the provider compiles fixed input shapes (CoreML), so every input shape
    a run feeds gets a session of its own, made with that shape (`Network` keeps them).
    """

    device: str
    static_shapes: bool = False
    needs_sequential: bool = False  # DirectML: no parallel execution, no memory pattern
    extra: tuple[str, ...] = field(default=())  # providers to try behind it, before the CPU

    @property
    def provider(self) -> str:
        return PROVIDERS[self.device]

    @property
    def title(self) -> str:
        return TITLES[self.device]

    @property
    def io_device(self) -> str | None:
        """onnxruntime's name for its memory in I/O binding, when tiles can stay there."""
        return "cuda" if self.device in ("cuda", "tensorrt") else None

    def providers(self, model: Path, shape_key: str = "") -> list[tuple[str, dict[str, str]]]:
        """The provider list for a session of `model` (fed `shape_key`'s shapes): this
        accelerator with its options, then any behind it, then the CPU for what it lacks."""
        chain = [(self.provider, self.options(model, shape_key))]
        chain += [(p, {}) for p in self.extra]
        if self.device != "cpu":
            chain.append((CPU, {}))
        return chain

    def options(self, model: Path, shape_key: str = "") -> dict[str, str]:
        """Provider options: CoreML as an MLProgram on every compute unit, static shapes,
        compiled models kept per model file and input shape (a second run does not
        recompile); TensorRT with its engines and timings kept."""
        if self.device == "coreml":
            folder = cache_dir() / "coreml" / model_key(model) / (shape_key or "any")
            folder.mkdir(parents=True, exist_ok=True)
            return {
                "ModelFormat": "MLProgram",
                "MLComputeUnits": "ALL",
                "RequireStaticInputShapes": "1",
                "ModelCacheDirectory": str(folder),
            }
        if self.device == "tensorrt":
            folder = cache_dir() / "tensorrt"
            folder.mkdir(parents=True, exist_ok=True)
            return {
                "trt_engine_cache_enable": "True",
                "trt_engine_cache_path": str(folder),
                "trt_timing_cache_enable": "True",
                "trt_timing_cache_path": str(folder),
            }
        return {}

    def configure(self, options: ort.SessionOptions) -> None:
        """Session options this provider needs."""
        if self.needs_sequential:
            options.enable_mem_pattern = False
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL


ACCELERATORS = {
    "cpu": Accelerator("cpu"),
    "cuda": Accelerator("cuda"),
    "tensorrt": Accelerator("tensorrt", extra=(PROVIDERS["cuda"],)),
    "coreml": Accelerator("coreml", static_shapes=True),
    "directml": Accelerator("directml", needs_sequential=True),
}


def candidates(device: str, providers: list[str] | None = None) -> list[Accelerator]:
    """The accelerators to try for `--device`, in order (the CPU last for auto). A device
    that the installed onnxruntime lacks is refused in one line naming what it has."""
    device = device.lower()
    if device not in DEVICES:
        raise ModelError(f"--device {device}: choose one of {', '.join(DEVICES)}")
    providers = available() if providers is None else providers
    if device == "auto":
        usable = [d for d in AUTO_ORDER if PROVIDERS[d] in providers or d == "cpu"]
        if not on_apple_silicon():  # an Intel Mac's CoreML runs on its CPU: no gain, by hand
            usable = [d for d in usable if d != "coreml"]
        return [ACCELERATORS[d] for d in usable]
    if PROVIDERS[device] not in providers and device != "cpu":
        raise ModelError(
            f"--device {device}: this onnxruntime ({build_name()}) has no {TITLES[device]} "
            f"provider; available: {', '.join(devices_of(providers) or ['cpu'])}"
            f"{install_hint(device)}"
        )
    return [ACCELERATORS[device]]


def on_apple_silicon() -> bool:
    """A Mac with Apple's chip: its GPU and Neural Engine are CoreML's to use."""
    import platform
    import sys

    return sys.platform == "darwin" and platform.machine() == "arm64"


def build_name() -> str:
    """Which onnxruntime build is installed (they share one module): its package name."""
    from importlib import metadata

    for name in ("onnxruntime-gpu", "onnxruntime-directml", "onnxruntime"):
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return f"onnxruntime {ort.__version__}"


def install_hint(device: str) -> str:
    """What gives this machine the provider, said after a refusal."""
    hints = {
        "cuda": "; CUDA needs onnxruntime-gpu on Linux or Windows with an NVIDIA GPU",
        "tensorrt": "; TensorRT needs onnxruntime-gpu and NVIDIA's TensorRT libraries",
        "coreml": "; CoreML is in the plain onnxruntime on macOS",
        "directml": (
            "; DirectML (Windows, any DirectX 12 GPU): pip uninstall -y onnxruntime-gpu "
            "&& pip install onnxruntime-directml"
        ),
    }
    return hints.get(device, "")


def driver_present(device: str) -> bool:
    """Whether the machine has the driver `device` needs (NVIDIA's, for CUDA and TensorRT):
    without it, auto passing the device over is no news (an onnxruntime-gpu on a machine
    with no NVIDIA GPU), with it a failure is worth a note."""
    if device not in ("cuda", "tensorrt"):
        return True
    import ctypes.util
    import shutil

    return bool(shutil.which("nvidia-smi") or ctypes.util.find_library("cuda"))


def model_key(path: Path) -> str:
    """A short name for one version of a model file (path, size, time), for cache folders."""
    stat = path.stat()
    text = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return f"{path.stem[:40]}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
