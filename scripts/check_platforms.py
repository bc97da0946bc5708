"""Does `pip install prodepth` resolve on every platform we support, from this one machine?

pip cannot answer that (`--platform` changes wheel tags, not environment markers); uv's resolver
evaluates both for a target. One resolution per platform x Python, in parallel (each waits on
the package index, not the CPU). Exit 1 names each failing package and platform; without uv or
the index it says "skipped" and exits 0, so an offline CI run is not a red one.

    python scripts/check_platforms.py [--extra train] [--extra dev]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# Photographers: macOS (both chips) and Windows; pipelines: Linux x86_64 and aarch64.
PLATFORMS = (
    "x86_64-manylinux_2_28",
    "aarch64-manylinux_2_35",
    "aarch64-apple-darwin",
    "x86_64-apple-darwin",
    "x86_64-pc-windows-msvc",
)
PYTHONS = ("3.10", "3.12", "3.13")
# Sonoma: the oldest macOS that torch (train and dev extras) has Apple Silicon wheels for.
MACOS = "14.0"
TIMEOUT_S = 300
# Wheels are required (a photographer has no compiler), except for these pure-Python packages
# that publish only a source distribution.
SOURCE_ONLY = ("pyvips",)

# uv's words for "could not reach the index" (as opposed to "the index says no").
_NETWORK = re.compile(
    r"error sending request|failed to fetch|dns error|connection refused|network is unreachable"
    r"|timed out|could not connect|tcp connect error|failed to download",
    re.IGNORECASE,
)
_CAUSE = re.compile(r"Because (?:only |the requested )?([A-Za-z0-9][A-Za-z0-9._-]*)")
_DIRECT = re.compile(r"prodepth(?:\[[^\]]*\])? depends on ([A-Za-z0-9][A-Za-z0-9._-]*)")


@dataclass(frozen=True)
class Resolution:
    """One cell of the matrix: "ok", "failed" (`package` names why) or "unreachable"."""

    platform: str
    python: str
    status: str
    package: str = ""
    detail: str = ""


def find_uv() -> list[str] | None:
    """The uv command of this environment (the dev extra installs it), else one on PATH."""
    beside = Path(sys.executable).with_name("uv.exe" if sys.platform == "win32" else "uv")
    if beside.is_file():
        return [str(beside)]
    if importlib.util.find_spec("uv") is not None:
        return [sys.executable, "-m", "uv"]
    found = shutil.which("uv")
    return [found] if found else None


def failing_package(uv_stderr: str) -> str:
    """The package uv's "No solution found" explanation starts from (the one without a
    wheel), and the project's own requirement that pulled it in when they differ."""
    cause, direct = _CAUSE.search(uv_stderr), _DIRECT.search(uv_stderr)
    names = [m.group(1).rstrip(".,") for m in (cause, direct) if m]
    names = [re.split(r"[<>=!~]", n)[0] for n in names]
    if not names:
        lines = [line.strip() for line in uv_stderr.splitlines() if line.strip()]
        return lines[0][:120] if lines else "unknown (uv gave no reason)"
    if len(names) == 2 and names[0] != names[1]:
        return f"{names[0]} (via {names[1]})"
    return names[0]


def index_unreachable(uv: list[str]) -> str:
    """Why the package index cannot answer ("" when it can): resolving numpy for this machine.
    A proxy that blocks the index answers "not found" rather than failing to connect, so
    the matrix's own failures cannot tell an unreachable index from a missing package."""
    command = [*uv, "pip", "compile", "-", "--quiet", "--no-header"]
    command += ["--python", sys.executable, "--no-python-downloads"]
    try:
        done = subprocess.run(
            command, input="numpy\n", capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return f"no answer in {TIMEOUT_S} s"
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return "" if done.returncode == 0 else " / ".join(lines[:3])[:300] or "uv failed"


def resolve(uv: list[str], platform: str, python: str, extras: list[str]) -> Resolution:
    """Resolve the project's requirements for one target; wheels only, as a user installs."""
    command = [*uv, "pip", "compile", str(PYPROJECT), "--quiet", "--no-header"]
    command += ["--python-platform", platform, "--python-version", python]
    # This interpreter builds the metadata of SOURCE_ONLY packages; left to itself uv would try
    # to download a CPython of the target version first (9 s of retries where it cannot).
    command += ["--python", sys.executable, "--no-python-downloads"]
    command += ["--only-binary", ":all:", *(f"--no-binary={name}" for name in SOURCE_ONLY)]
    for extra in extras:
        command += ["--extra", extra]
    try:
        env = {**os.environ, "MACOSX_DEPLOYMENT_TARGET": MACOS}
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    except subprocess.TimeoutExpired:
        return Resolution(platform, python, "unreachable", detail=f"no answer in {TIMEOUT_S} s")
    if done.returncode == 0:
        return Resolution(platform, python, "ok")
    if "No solution found" not in done.stderr and _NETWORK.search(done.stderr):
        return Resolution(platform, python, "unreachable", detail=done.stderr.strip()[:200])
    return Resolution(platform, python, "failed", failing_package(done.stderr), done.stderr)


def table(results: list[Resolution]) -> str:
    """Platform rows x Python columns: "ok", the failing package, or "?" (unreachable)."""
    cell = {(r.platform, r.python): r for r in results}
    words = {"ok": "ok", "unreachable": "?"}
    rows = [["", *PYTHONS]]
    for platform in PLATFORMS:
        row = [platform]
        for python in PYTHONS:
            r = cell[platform, python]
            row.append(words.get(r.status, r.package))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--extra", action="append", default=[], help="also resolve this extra (repeatable)"
    )
    parser.add_argument("--verbose", action="store_true", help="print uv's reason for failures")
    args = parser.parse_args(argv)
    uv = find_uv()
    if uv is None:
        print("check_platforms: skipped (uv is not installed: pip install uv)")
        return 0
    t0 = time.perf_counter()
    why = index_unreachable(uv)
    if why:
        print(f"check_platforms: skipped (package index unreachable: {why})")
        return 0
    cells = [(p, v) for p in PLATFORMS for v in PYTHONS]
    with ThreadPoolExecutor(max_workers=len(cells)) as pool:
        results = list(pool.map(lambda c: resolve(uv, *c, args.extra), cells))
    extras = f"[{','.join(args.extra)}]" if args.extra else ""
    print(f"prodepth{extras} on {len(cells)} targets ({time.perf_counter() - t0:.0f} s):")
    print(table(results))
    failed = [r for r in results if r.status == "failed"]
    for r in failed:
        print(f"FAIL {r.platform} Python {r.python}: {r.package}")
        if args.verbose:
            print(r.detail)
    unreachable = [r for r in results if r.status == "unreachable"]
    if unreachable:
        print(f"({len(unreachable)} targets skipped: package index unreachable)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
