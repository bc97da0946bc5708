"""The accelerator each machine has: which provider `--device` picks from each platform's
provider list, the options it is given, and the fallbacks. Only the CPU runs here, so other
machines are faked: onnxruntime's provider list is replaced, and their sessions are real CPU
sessions that report the accelerator's provider (`PretendAccelerator`), made to fail where
a test says so."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.errors import ModelError, OptionError
from prodepth_cli.models import providers, runtime
from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import DepthOptions, depth_array
from tests.conftest import scene_image
from tests.test_hub import setup  # noqa: F401  (the fake hub fixture, for doctor --verify)

CPU = "CPUExecutionProvider"
COREML = "CoreMLExecutionProvider"
DML = "DmlExecutionProvider"
CUDA = "CUDAExecutionProvider"
TRT = "TensorrtExecutionProvider"

# What `onnxruntime.get_available_providers()` says for each build on each platform.
PLATFORM_PROVIDERS = {
    "linux-onnxruntime-gpu": [TRT, CUDA, CPU],
    "windows-onnxruntime-gpu": [TRT, CUDA, CPU],
    "windows-onnxruntime-directml": [DML, CPU],
    "macos-onnxruntime": [COREML, "AzureExecutionProvider", CPU],
    "macos-intel-onnxruntime": [COREML, "AzureExecutionProvider", CPU],
    "linux-onnxruntime": ["AzureExecutionProvider", CPU],
}
AUTO_CHOICE = {
    "linux-onnxruntime-gpu": ["cuda", "cpu"],  # TensorRT only when asked for
    "windows-onnxruntime-gpu": ["cuda", "cpu"],
    "windows-onnxruntime-directml": ["directml", "cpu"],
    "macos-onnxruntime": ["coreml", "cpu"],
    "macos-intel-onnxruntime": ["cpu"],  # CoreML by hand only: it would run on the CPU
    "linux-onnxruntime": ["cpu"],
}
REAL_SESSION = ort.InferenceSession


@pytest.fixture(autouse=True)
def apple_silicon(monkeypatch):
    """Provider lists with CoreML are a Mac's: an Apple Silicon one unless a test says."""
    monkeypatch.setattr(providers, "on_apple_silicon", lambda: True)


@pytest.mark.parametrize("platform", sorted(PLATFORM_PROVIDERS))
def test_auto_tries_each_accelerator_of_the_platform_then_the_cpu(platform, monkeypatch):
    monkeypatch.setattr(providers, "on_apple_silicon", lambda: platform == "macos-onnxruntime")
    chain = providers.candidates("auto", PLATFORM_PROVIDERS[platform])
    assert [a.device for a in chain] == AUTO_CHOICE[platform]


@pytest.mark.parametrize("platform", sorted(PLATFORM_PROVIDERS))
def test_a_device_the_build_lacks_is_refused_naming_what_it_has(platform):
    listed = PLATFORM_PROVIDERS[platform]
    for device in ("cuda", "tensorrt", "coreml", "directml"):
        if providers.PROVIDERS[device] in listed:
            assert [a.device for a in providers.candidates(device, listed)] == [device]
            continue
        with pytest.raises(ModelError) as err:
            providers.candidates(device, listed)
        message = str(err.value)
        assert f"--device {device}" in message and "\n" not in message
        assert "available: " + ", ".join(providers.devices_of(listed) or ["cpu"]) in message


def test_an_unknown_device_is_refused():
    with pytest.raises(ModelError, match="--device tpu: choose one of auto, cpu, cuda"):
        providers.candidates("tpu", [CPU])


def test_coreml_runs_as_an_mlprogram_on_every_unit_with_static_shapes_and_a_cache(
    tmp_path, monkeypatch, pointwise_affine
):
    monkeypatch.setenv("PRODEPTH_CACHE", str(tmp_path / "cache"))
    coreml = providers.ACCELERATORS["coreml"]
    chain = coreml.providers(pointwise_affine, "H64_N1_W64")
    (name, options), cpu = chain
    assert name == COREML and cpu == (CPU, {})
    assert options["ModelFormat"] == "MLProgram"
    assert options["MLComputeUnits"] == "ALL"
    assert options["RequireStaticInputShapes"] == "1"
    folder = options["ModelCacheDirectory"]
    assert folder.startswith(str(tmp_path / "cache" / "coreml")) and folder.endswith("H64_N1_W64")
    # The same model and shape find the same folder (compiled once); another shape its own.
    assert coreml.options(pointwise_affine, "H64_N1_W64")["ModelCacheDirectory"] == folder
    assert coreml.options(pointwise_affine, "H32_N1_W64")["ModelCacheDirectory"] != folder


def test_tensorrt_keeps_its_engines_and_falls_back_to_cuda_then_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("PRODEPTH_CACHE", str(tmp_path))
    chain = providers.ACCELERATORS["tensorrt"].providers(tmp_path / "m.onnx")
    assert [p for p, _ in chain] == [TRT, CUDA, CPU]
    options = chain[0][1]
    assert options["trt_engine_cache_enable"] == "True"
    assert options["trt_engine_cache_path"] == str(tmp_path / "tensorrt")


def test_cache_folder_is_the_platforms_user_cache_unless_set(monkeypatch, tmp_path):
    from platformdirs import user_cache_path

    monkeypatch.delenv("PRODEPTH_CACHE", raising=False)
    assert providers.cache_dir() == user_cache_path("prodepth", appauthor=False)
    monkeypatch.setenv("PRODEPTH_CACHE", str(tmp_path))
    assert providers.cache_dir() == tmp_path


class PretendAccelerator:
    """onnxruntime on a machine that has `provider`: a session asked for it is a real CPU
    session reporting `provider` first. `fail`: None, "create" (the session raises),
    "silent" (onnxruntime falls back to the CPU unasked, as a CUDA without its libraries
    does) or "run" (created, but the first run raises). Records what each session got."""

    def __init__(self, provider: str, fail: str | None = None):
        self.provider, self.fail = provider, fail
        self.made: list[dict] = []

    def __call__(self, path, options=None, providers=None):
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        asked = self.provider in names
        self.made.append(
            {
                "providers": providers,
                "mem_pattern": options.enable_mem_pattern if options else None,
                "mode": options.execution_mode if options else None,
            }
        )
        if asked and self.fail == "create":
            raise RuntimeError(f"{self.provider}: failed to create\nmore lines")
        session = REAL_SESSION(path, options, providers=[CPU])
        if not asked or self.fail == "silent":
            return session
        return _Reporting(session, [self.provider, CPU], self.fail == "run")


class _Reporting:
    def __init__(self, session, names, fail_run):
        self._session, self._names, self._fail_run = session, names, fail_run

    def get_providers(self):
        return self._names

    def run(self, *args, **kwargs):
        if self._fail_run:
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : op not supported")
        return self._session.run(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._session, name)


def _pretend(monkeypatch, listed, provider, fail=None) -> PretendAccelerator:
    fake = PretendAccelerator(provider, fail)
    monkeypatch.setattr(providers, "available", lambda: listed)
    monkeypatch.setattr(ort, "InferenceSession", fake)
    return fake


def test_coreml_gets_one_session_per_input_shape_with_its_dimensions_fixed(
    tmp_path, monkeypatch, pointwise_affine
):
    """A Mac: auto picks CoreML; every shape the run feeds (the probe, the coarse pass, the
    tile batches) gets a session made with the graph's free dimensions fixed to it, and the
    map is the CPU's."""
    monkeypatch.setenv("PRODEPTH_CACHE", str(tmp_path / "cache"))
    rgb = scene_image(300, 420)
    expected = depth_array(rgb, load_model(pointwise_affine, "cpu"), DepthOptions(tile=256))
    fake = _pretend(monkeypatch, PLATFORM_PROVIDERS["macos-onnxruntime"], COREML)
    made_dims = []
    original = runtime._session

    def spy(path, accel, threads=None, dims=None):
        made_dims.append(dims)
        return original(path, accel, threads, dims)

    monkeypatch.setattr(runtime, "_session", spy)
    model = load_model(pointwise_affine, "auto")
    assert model.provider == COREML and model.notes == []
    disparity = depth_array(rgb, model, DepthOptions(tile=256))
    np.testing.assert_allclose(disparity, expected, rtol=1e-5, atol=1e-6)
    fixed = [d for d in made_dims if d]
    assert len(fixed) >= 2, "the probe and the tiles feed different shapes"
    assert all(set(d) == {"N", "H", "W"} for d in fixed)
    assert len({tuple(sorted(d.items())) for d in fixed}) == len(fixed), "one session a shape"
    coreml_sessions = [m for m in fake.made if m["providers"][0][0] == COREML]
    folders = {m["providers"][0][1]["ModelCacheDirectory"] for m in coreml_sessions}
    assert len(folders) == len(coreml_sessions), "each shape compiles into its own folder"


@pytest.mark.parametrize("fail", ["create", "silent", "run"])
def test_auto_falls_back_to_the_cpu_with_one_note_when_an_accelerator_fails(
    monkeypatch, pointwise_affine, fail
):
    _pretend(monkeypatch, PLATFORM_PROVIDERS["macos-onnxruntime"], COREML, fail)
    model = load_model(pointwise_affine, "auto")
    assert model.provider == CPU
    assert len(model.notes) == 1 and model.notes[0].startswith("CoreML")
    assert model.notes[0].endswith("running on the CPU") and "\n" not in model.notes[0]
    depth_array(scene_image(64, 96), model)  # and the run goes on


@pytest.mark.parametrize("fail", ["create", "silent", "run"])
def test_an_accelerator_asked_for_that_fails_is_one_error(monkeypatch, pointwise_affine, fail):
    _pretend(monkeypatch, PLATFORM_PROVIDERS["macos-onnxruntime"], COREML, fail)
    with pytest.raises(ModelError) as err:
        load_model(pointwise_affine, "coreml")
    assert str(err.value).startswith("--device coreml: CoreML") and "\n" not in str(err.value)


def test_directml_sessions_run_sequentially_without_a_memory_pattern(monkeypatch, pointwise_affine):
    fake = _pretend(monkeypatch, PLATFORM_PROVIDERS["windows-onnxruntime-directml"], DML)
    model = load_model(pointwise_affine, "auto")
    assert model.provider == DML
    made = [m for m in fake.made if m["providers"][0][0] == DML]
    assert made and all(m["mem_pattern"] is False for m in made)
    assert all(m["mode"] == ort.ExecutionMode.ORT_SEQUENTIAL for m in made)


def test_cuda_is_chosen_first_and_feeds_tiles_through_its_memory(monkeypatch, pointwise_affine):
    _pretend(monkeypatch, PLATFORM_PROVIDERS["windows-onnxruntime-gpu"], CUDA)
    model = load_model(pointwise_affine, "auto")
    assert model.provider == CUDA and model.tile_net.accel.device == "cuda"
    assert model.tile_net.feed is not None and model.tile_net.feed.device == "cuda"


def test_the_cpu_path_runs_for_real_here(pointwise_affine):
    """This machine: the onnxruntime-gpu build lists CUDA, which cannot load without a GPU;
    with no NVIDIA driver either, passing it over is no news (no note)."""
    model = load_model(pointwise_affine, "auto")
    assert model.provider == CPU
    assert model.notes == [] or providers.driver_present("cuda")
    assert depth_array(scene_image(64, 96), model).shape == (64, 96)


@pytest.mark.parametrize("driver", [True, False])
def test_cuda_that_does_not_load_is_a_note_only_where_an_nvidia_driver_is(
    monkeypatch, pointwise_affine, driver
):
    _pretend(monkeypatch, PLATFORM_PROVIDERS["linux-onnxruntime-gpu"], CUDA, "silent")
    monkeypatch.setattr(providers, "driver_present", lambda device: driver)
    model = load_model(pointwise_affine, "auto")
    assert model.provider == CPU
    if driver:
        assert model.notes == [
            "CUDA did not load (no NVIDIA driver, or the CUDA/cuDNN/TensorRT libraries are "
            "missing): running on the CPU"
        ]
    else:
        assert model.notes == []


@pytest.mark.parametrize("device", ["coreml", "directml", "cuda"])
def test_cli_device_missing_here_is_one_line_and_writes_nothing(tmp_path, pointwise_affine, device):
    import cv2

    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), scene_image(64, 96))
    args = ["depth", str(src), "-m", str(pointwise_affine), "--device", device]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"prodepth: error: --device {device}: ")
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]


def test_cli_json_records_carry_the_provider_used(tmp_path, pointwise_affine):
    import cv2

    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), scene_image(64, 96))
    args = ["depth", str(src), "-m", str(pointwise_affine), "--json", "--device", "auto"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["provider"] == CPU


@pytest.mark.parametrize(
    ("cuda", "mps", "auto"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_training_and_video_use_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, auto):
    torch = pytest.importorskip("torch")
    from prodepth_cli.torch_device import choose_torch_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert choose_torch_device("auto") == auto
    assert choose_torch_device("cpu") == "cpu"
    for device, usable in (("cuda", cuda), ("mps", mps)):
        if usable:
            assert choose_torch_device(device) == device
        else:
            with pytest.raises(OptionError, match=f"--device {device}: torch cannot use it"):
                choose_torch_device(device)
    with pytest.raises(OptionError, match="--device coreml: training and video's fit run in"):
        choose_torch_device("coreml")


def test_doctor_reports_the_cpu_provider_a_plain_run_uses_here():
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["run"]["provider"] == CPU
    assert report["system"]["python"].startswith(".".join(map(str, sys.version_info[:2])))
    assert report["onnxruntime"]["providers"] == ort.get_available_providers()
    assert report["libraries"]["libheif"].endswith("(HEVC decoder: True)")
    assert report["storage"]["prodepth_cache"] == str(providers.cache_dir())


def test_doctor_exits_1_with_a_line_to_act_on_when_a_plain_run_cannot_work(monkeypatch, tmp_path):
    monkeypatch.setenv("PRODEPTH_MODEL", str(tmp_path / "gone.onnx"))
    result = CliRunner().invoke(app, ["doctor"])
    assert result.exit_code == 1
    problems = [line for line in result.stdout.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 1 and "gone.onnx" in problems[0]


def test_doctor_verify_finds_a_pulled_model_whose_file_changed(setup):  # noqa: F811
    assert setup.run("models", "pull", "tiny").returncode == 0
    report = json.loads(setup.run("doctor", "--json", "--verify").stdout)
    assert "tiny (" + _size(setup.tiny) + "): sha256 ok" in report["models"]["installed"]
    assert report["problems"] == []
    blob = next((setup.home / "hub").glob("models--*/blobs/*"))
    blob.write_bytes(setup.tiny[:-1] + b"x")  # one byte changed on disk
    checked = setup.run("doctor", "--verify")
    assert checked.returncode == 0, "a plain run (the shipped model) still works"
    problems = [ln for ln in checked.stdout.splitlines() if ln.startswith("problem: tiny:")]
    assert len(problems) == 1 and "tiny: onnx/model.onnx does not match its sha256" in problems[0]
    assert problems[0].endswith("prodepth models rm tiny && prodepth models pull tiny")


def _size(data: bytes) -> str:
    from prodepth_cli.models.catalog import human_bytes

    return human_bytes(len(data))
