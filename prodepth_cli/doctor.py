"""What this machine gives prodepth: the report `prodepth doctor` prints for a bug report.

`diagnose` gathers the system, the onnxruntime build and the provider a plain run uses
(after its probe), GPUs, torch, the codec libraries, the cache folders, the network settings
and the installed catalog models; each problem it finds comes with one line saying what to
do. Nothing here downloads or writes outside the cache folders.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import prodepth_cli
from prodepth_cli.errors import ProdepthError, first_line
from prodepth_cli.models import catalog, hub, providers

ORT_BUILDS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-directml")
LOW_DISK = 2 << 30  # below this, a catalog model may not fit (Depth Anything V2 Large: 1.3 GB)
ENVIRONMENT = ("HF_HUB_OFFLINE", "HF_ENDPOINT", "HF_HOME", "PRODEPTH_MODEL", "PRODEPTH_CACHE")


@dataclass
class Diagnosis:
    """Sections of name -> value, the problems found (each says what to do), and whether a
    plain `prodepth depth` works here."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    plain_run_works: bool = False

    def add(self, section: str, name: str, value: Any) -> None:
        self.sections.setdefault(section, {})[name] = value

    def to_json(self) -> dict[str, Any]:
        return {**self.sections, "problems": self.problems, "ok": self.plain_run_works}


def diagnose(verify: bool = False) -> Diagnosis:
    """Everything `prodepth doctor` reports; `verify` also checks every installed catalog
    model's files against their sha256 (reads them whole: seconds per GB)."""
    report = Diagnosis()
    _system(report)
    _onnxruntime(report)
    _plain_run(report)
    _gpus(report)
    _torch(report)
    _libraries(report)
    _storage(report)
    _models(report, verify)
    return report


def _system(report: Diagnosis) -> None:
    report.add("system", "os", platform.platform())
    report.add("system", "machine", platform.machine())
    report.add("system", "python", f"{platform.python_version()} ({sys.executable})")
    report.add("system", "prodepth", prodepth_cli.__version__)
    report.add("system", "installed_at", str(Path(prodepth_cli.__file__).parent))


def _onnxruntime(report: Diagnosis) -> None:
    builds = [f"{name} {_version(name)}" for name in ORT_BUILDS if _version(name)]
    report.add("onnxruntime", "build", ", ".join(builds) or "none")
    report.add("onnxruntime", "providers", providers.available())
    if len(builds) > 1:
        report.problems.append(
            f"{' and '.join(builds)} are installed together and overwrite one module: "
            f"pip uninstall -y {' '.join(b.split()[0] for b in builds)} && pip install -e ."
        )
    apple_silicon = sys.platform == "darwin" and platform.machine() == "arm64"
    if apple_silicon and providers.PROVIDERS["coreml"] not in providers.available():
        report.problems.append(
            "this onnxruntime has no CoreML provider, so the Mac's GPU and Neural Engine go "
            "unused: pip install --force-reinstall onnxruntime"
        )


def _plain_run(report: Diagnosis) -> None:
    """Load the model a plain run uses, as it would (auto: probe each accelerator)."""
    from prodepth_cli.models.runtime import default_model_ref, load_model

    ref = default_model_ref()
    report.add("run", "model", ref)
    try:
        model = load_model(ref, "auto", pull=False)
        model.tile_net.probe()
    except ProdepthError as exc:
        report.add("run", "provider", None)
        report.problems.append(f"a plain run fails: {exc}")
        return
    report.add("run", "provider", model.provider)
    report.add("run", "notes", model.notes)
    report.plain_run_works = True


def _gpus(report: Diagnosis) -> None:
    nvidia = _nvidia_gpus()
    report.add("gpu", "nvidia", nvidia or None)
    if sys.platform == "darwin":
        memory = _sysctl("hw.memsize")
        chip = _sysctl("machdep.cpu.brand_string")
        if chip and memory and memory.isdigit():
            chip += f", {catalog.human_bytes(int(memory))} unified memory"
        report.add("gpu", "apple", chip)
    provider = report.sections.get("run", {}).get("provider")
    if nvidia and provider == providers.CPU:
        report.problems.append(
            "an NVIDIA GPU is here but onnxruntime's CUDA did not load: install CUDA 12 and "
            "cuDNN 9, or pip install 'onnxruntime-gpu[cuda,cudnn]'"
        )


def _nvidia_gpus() -> list[str]:
    """Names and memory of the NVIDIA GPUs nvidia-smi sees (none without its driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    query = [smi, "--query-gpu=name,memory.total", "--format=csv,noheader"]
    try:
        out = subprocess.run(query, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def _sysctl(name: str) -> str | None:
    try:
        out = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _torch(report: Diagnosis) -> None:
    """torch trains and fits videos; inference does not need it."""
    try:
        import torch
    except ImportError:
        report.add("torch", "version", None)
        report.add("torch", "note", "not installed: train and video need pip install '.[train]'")
        return
    from prodepth_cli.torch_device import choose_torch_device

    report.add("torch", "version", torch.__version__)
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices = [f"cuda ({torch.cuda.get_device_name(0)})", *devices]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices = ["mps", *devices]
    report.add("torch", "devices", devices)
    report.add("torch", "auto", choose_torch_device("auto"))


def _libraries(report: Diagnosis) -> None:
    """The decoders behind each kind of photograph, and LiteRT for the bokeh network."""
    try:
        import pyvips

        report.add("libraries", "libvips", ".".join(str(pyvips.version(i)) for i in range(3)))
    except Exception as exc:  # pyvips raises its own errors when libvips cannot load
        report.add("libraries", "libvips", None)
        report.problems.append(f"libvips does not load ({first_line(exc)}): pip install pyvips")
    try:
        import rawpy

        report.add("libraries", "LibRaw", ".".join(map(str, rawpy.libraw_version)))
    except ImportError:
        report.add("libraries", "LibRaw", None)
        report.problems.append("camera RAW files cannot be read: pip install rawpy")
    try:
        import pillow_heif

        info = pillow_heif.libheif_info()
        hevc = any("HEVC" in str(d) for d in info.get("decoders", {}).values())
        report.add("libraries", "libheif", f"{info.get('libheif')} (HEVC decoder: {hevc})")
        if not hevc:
            report.problems.append(
                "libheif has no HEVC decoder, so iPhone HEIC photos cannot be read: "
                "pip install --force-reinstall pillow-heif"
            )
    except ImportError:
        report.add("libraries", "libheif", None)
        report.problems.append("HEIC photos cannot be read: pip install pillow-heif")
    litert = _version("ai-edge-litert")
    report.add(
        "libraries",
        "LiteRT",
        litert or "not installed: bokeh --engine tflite is not here, --engine classic is",
    )


def _storage(report: Diagnosis) -> None:
    from huggingface_hub import constants

    cache = providers.cache_dir()
    models = Path(constants.HF_HUB_CACHE).expanduser()
    report.add("storage", "prodepth_cache", str(cache))
    report.add("storage", "model_cache", str(models))
    free = shutil.disk_usage(_existing(models)).free
    report.add("storage", "free", catalog.human_bytes(free))
    if free < LOW_DISK:
        report.problems.append(
            f"only {catalog.human_bytes(free)} free for models in {models}: free space or "
            "set HF_HOME to a larger disk"
        )
    for name in ENVIRONMENT:
        report.add("environment", name, os.environ.get(name))


def _existing(path: Path) -> Path:
    """The nearest folder that exists at or above `path` (the disk it is, or will be, on)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _models(report: Diagnosis, verify: bool) -> None:
    installed = []
    for model in catalog.all_models():
        path = hub.installed_path(model)
        if path is None:
            continue
        line = f"{model.ref} ({catalog.human_bytes(model.bytes)})"
        if verify:
            broken = hub.verify(model)
            line += ": sha256 ok" if not broken else ": sha256 MISMATCH"
            for problem in broken:
                report.problems.append(
                    f"{problem}: prodepth models rm {model.ref} && prodepth models pull {model.ref}"
                )
        installed.append(line)
    report.add("models", "installed", installed)


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None
