"""The install on every supported platform, without the network: pyproject's environment
markers evaluated for each target (one onnxruntime build, LiteRT only where it has wheels),
and scripts/check_platforms.py's reading of uv's answers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "check_platforms.py"
_spec = importlib.util.spec_from_file_location("check_platforms", SCRIPT)
check_platforms = importlib.util.module_from_spec(_spec)
sys.modules["check_platforms"] = check_platforms  # its dataclass looks its module up there
_spec.loader.exec_module(check_platforms)

# What Python reports on each target (the markers' variables), keyed by uv's target name.
TARGETS = {
    "x86_64-manylinux_2_28": ("linux", "Linux", "x86_64"),
    "aarch64-manylinux_2_35": ("linux", "Linux", "aarch64"),
    "aarch64-apple-darwin": ("darwin", "Darwin", "arm64"),
    "x86_64-apple-darwin": ("darwin", "Darwin", "x86_64"),
    "x86_64-pc-windows-msvc": ("win32", "Windows", "AMD64"),
}
# Platforms we do not check but where an install must still pick one onnxruntime build.
OTHERS = {
    "windows-arm64": ("win32", "Windows", "ARM64"),
    "linux-ppc64le": ("linux", "Linux", "ppc64le"),
    "freebsd-amd64": ("freebsd14", "FreeBSD", "amd64"),
}
ONNXRUNTIME_BUILDS = {"onnxruntime", "onnxruntime-gpu", "onnxruntime-directml"}


def environment(target: tuple[str, str, str], python: str) -> dict[str, str]:
    sys_platform, system, machine = target
    return {
        "sys_platform": sys_platform,
        "platform_system": system,
        "platform_machine": machine,
        "os_name": "nt" if sys_platform == "win32" else "posix",
        "python_version": python,
        "python_full_version": f"{python}.0",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "extra": "",
    }


def installed(env: dict[str, str], extra: str | None = None) -> dict[str, Requirement]:
    """The requirements (base, or one extra) whose markers hold in `env`, by name."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lines = project["optional-dependencies"][extra] if extra else project["dependencies"]
    reqs = [Requirement(line) for line in lines]
    return {r.name: r for r in reqs if r.marker is None or r.marker.evaluate(env)}


def onnxruntime_builds(env: dict[str, str]) -> list[str]:
    return sorted(set(installed(env)) & ONNXRUNTIME_BUILDS)


def test_targets_are_the_ones_the_check_script_resolves():
    assert tuple(TARGETS) == check_platforms.PLATFORMS
    assert check_platforms.PYTHONS == ("3.10", "3.12", "3.13")


@pytest.mark.parametrize("python", check_platforms.PYTHONS)
@pytest.mark.parametrize("target", check_platforms.PLATFORMS)
def test_exactly_one_onnxruntime_build_the_gpu_one_where_it_has_wheels(target, python):
    # onnxruntime-gpu wheels: Linux x86_64, Windows x64, Linux aarch64 for cp311+ only.
    gpu = target in ("x86_64-manylinux_2_28", "x86_64-pc-windows-msvc") or (
        target == "aarch64-manylinux_2_35" and python != "3.10"
    )
    expected = ["onnxruntime-gpu"] if gpu else ["onnxruntime"]
    assert onnxruntime_builds(environment(TARGETS[target], python)) == expected


@pytest.mark.parametrize("python", ["3.10", "3.11", "3.14"])
@pytest.mark.parametrize("name", sorted(OTHERS))
def test_one_onnxruntime_build_on_platforms_not_checked_either(name, python):
    # The two markers are complements: never both (one module), never none (no runtime).
    assert len(onnxruntime_builds(environment(OTHERS[name], python))) == 1


@pytest.mark.parametrize("target", check_platforms.PLATFORMS)
def test_litert_only_where_it_has_wheels(target):
    # ai-edge-litert 2.3 has no macOS x86_64 wheel; the other four targets have one.
    for python in check_platforms.PYTHONS:
        wanted = "ai-edge-litert" in installed(environment(TARGETS[target], python))
        assert wanted == (target != "x86_64-apple-darwin"), (target, python)


def test_litert_platforms_of_the_bokeh_engine_are_where_pyproject_installs_it():
    """tflite.LITERT_PLATFORMS words the error ("no build for this platform"): it must say
    the same as the marker, Python by Python."""
    from prodepth_cli.bokeh.tflite import LITERT_PLATFORMS

    for target in (*TARGETS.values(), *OTHERS.values()):
        _, system, machine = target
        for python in check_platforms.PYTHONS:
            marked = "ai-edge-litert" in installed(environment(target, python))
            assert marked == ((system, machine) in LITERT_PLATFORMS), (target, python)


def test_base_install_carries_platformdirs_everywhere():
    for target in TARGETS.values():
        assert "platformdirs" in installed(environment(target, "3.12"))


def test_dev_extra_brings_uv_for_the_check_script():
    assert "uv" in installed(environment(TARGETS["x86_64-manylinux_2_28"], "3.12"), "dev")


# uv 0.13's answers, captured: the package without a wheel, possibly behind a dependency.
UV_NO_MACOS_WHEEL = """\
error: No solution found when resolving dependencies
  cause: Because onnxruntime-gpu>=1.18.0 has no wheels with a matching platform tag (e.g., \
`macosx_13_0_arm64`) and prodepth depends on onnxruntime-gpu>=1.18, we can conclude that your \
requirements are unsatisfiable.

hint: Wheels are available for `onnxruntime-gpu` (v1.31.1) on the following platforms: \
`manylinux_2_28_x86_64`, `manylinux_2_34_aarch64`, `win_amd64`
"""
UV_NO_WHEEL_BEHIND_A_DEPENDENCY = """\
error: No solution found when resolving dependencies
  cause: Because litert-converter>=0.5.0.dev20260821,<=0.5.0 has no wheels with a matching \
platform tag (e.g., `win_amd64`) and only the following versions of litert-converter are available:
             litert-converter<0.5.dev0
             litert-converter>=0.5.0.dev20260821,<=0.5.0
             litert-converter>0.6.dev0
         we can conclude that litert-converter==0.5.* cannot be used.
         And because litert-torch>=0.10.0 depends on litert-converter==0.5.* and \
prodepth[bokeh-train] depends on litert-torch==0.10.0, we can conclude that your requirements \
are unsatisfiable.
"""
UV_ONLY_OLDER_VERSIONS = """\
error: No solution found when resolving dependencies
  cause: Because only ai-edge-litert<2.3 is available and prodepth depends on \
ai-edge-litert>=2.3, we can conclude that your requirements are unsatisfiable.
"""


@pytest.mark.parametrize(
    ("uv_stderr", "named"),
    [
        (UV_NO_MACOS_WHEEL, "onnxruntime-gpu"),
        (UV_NO_WHEEL_BEHIND_A_DEPENDENCY, "litert-converter (via litert-torch)"),
        (UV_ONLY_OLDER_VERSIONS, "ai-edge-litert"),
    ],
)
def test_failing_package_named_from_uv_output(uv_stderr, named):
    assert check_platforms.failing_package(uv_stderr) == named


def fake_uv(monkeypatch, failures: dict[tuple[str, str], str], unreachable: str = "") -> None:
    """check_platforms with uv answering from `failures` ((platform, python) -> stderr)."""
    monkeypatch.setattr(check_platforms, "find_uv", lambda: ["uv"])
    monkeypatch.setattr(check_platforms, "index_unreachable", lambda uv: unreachable)

    def resolve(uv, platform, python, extras):
        stderr = failures.get((platform, python))
        if stderr is None:
            return check_platforms.Resolution(platform, python, "ok")
        package = check_platforms.failing_package(stderr)
        return check_platforms.Resolution(platform, python, "failed", package, stderr)

    monkeypatch.setattr(check_platforms, "resolve", resolve)


def test_a_failure_is_named_with_its_platform_and_exits_1(monkeypatch, capsys):
    fake_uv(monkeypatch, {("aarch64-apple-darwin", "3.12"): UV_NO_MACOS_WHEEL})
    assert check_platforms.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL aarch64-apple-darwin Python 3.12: onnxruntime-gpu" in out
    assert out.count("FAIL") == 1 and out.count(" ok") == 14


def test_all_resolving_exits_0(monkeypatch, capsys):
    fake_uv(monkeypatch, {})
    assert check_platforms.main([]) == 0
    assert "FAIL" not in capsys.readouterr().out


def test_unreachable_index_or_missing_uv_is_skipped_not_failed(monkeypatch, capsys):
    fake_uv(monkeypatch, {}, unreachable="error sending request")
    assert check_platforms.main([]) == 0
    assert "skipped (package index unreachable" in capsys.readouterr().out
    monkeypatch.setattr(check_platforms, "find_uv", lambda: None)
    assert check_platforms.main([]) == 0
    assert "skipped (uv is not installed" in capsys.readouterr().out


def test_network_errors_during_a_resolution_are_not_failures(monkeypatch):
    class Done:
        returncode = 2
        stderr = "error: Request failed after 3 retries\n  cause: error sending request for url"

    monkeypatch.setattr(check_platforms.subprocess, "run", lambda *a, **k: Done())
    result = check_platforms.resolve(["uv"], "x86_64-apple-darwin", "3.12", [])
    assert result.status == "unreachable"
