"""Batches of inputs: expand files, folders, globs and "-" into jobs with output paths.

Shared by every command that turns images into files (depth, bokeh, stereo): where each
output goes, which depth map goes with each input, which outputs are already complete
(resume), and the per-input outcome records.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prodepth_cli.errors import DiskFullError, InputError, OptionError, ProdepthError
from prodepth_cli.io.depth_map import DEPTH_SUFFIXES, DepthMapFile
from prodepth_cli.io.raw import RAW_SUFFIXES, is_raw

IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".tif",
    ".tiff",
    ".webp",
    ".bmp",
    ".ppm",
    ".pgm",
    ".pnm",
    ".jp2",
    ".heic",
    ".heif",
    ".hif",
    ".avif",
    ".gif",
    ".exr",
    ".hdr",
} | RAW_SUFFIXES
STDIO = "-"
PREFER = ("raw", "jpeg")  # which of a RAW + JPEG pair of one shot is used


@dataclass(frozen=True)
class Job:
    """One input and where its result goes. `root` is the folder it was found under;
    `skip` why it is not run (another file of the same shot is)."""

    input: str
    output: str
    root: Path | None = None
    skip: str | None = None


@dataclass
class Outcome:
    """What happened to one job; `record` is its `--json` line."""

    job: Job
    status: str  # ok | skipped | error
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    stops_batch: bool = False  # the next job would fail the same way (a full disk)

    @classmethod
    def missing(cls, item: str, why: str) -> Outcome:
        return cls(Job(item, ""), "error", why)

    @classmethod
    def failed(cls, job: Job, exc: ProdepthError) -> Outcome:
        """The outcome of a job that raised `exc`: a full disk stops the batch."""
        return cls(job, "error", str(exc), stops_batch=isinstance(exc, DiskFullError))

    @property
    def record(self) -> dict[str, Any]:
        return {
            "input": self.job.input,
            "output": self.job.output,
            **self.info,
            "status": self.status,
            "error": self.error,
        }


Missing = list[tuple[str, str]]  # (input as given, why it yields no image)


def expand_inputs(
    inputs: list[str], recursive: bool
) -> tuple[list[tuple[str, Path | None]], Missing]:
    """(found, missing): `found` holds (path, root folder or None) for every image named
    directly, found in a folder or matched by a glob; `missing` what matched nothing."""
    found: list[tuple[str, Path | None]] = []
    missing: Missing = []
    for item in inputs:
        if item == STDIO:
            found.append((STDIO, None))
            continue
        path = Path(item)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            images = sorted(
                p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
            )
            if not images:
                hint = "" if recursive else " (try --recursive)"
                missing.append((item, f"{item}: no images in this folder{hint}"))
            found.extend((str(p), path) for p in images)
        elif path.exists() or not glob.has_magic(item):
            found.append((item, None))
        else:
            matches = sorted(glob.glob(item, recursive=recursive))
            if not matches:
                missing.append((item, f"{item}: no file matches"))
            found.extend((m, None) for m in matches if Path(m).is_file())
    return found, missing


def plan_jobs(
    inputs: list[str],
    output: str | None,
    recursive: bool,
    suffix: str | Callable[[str], str],
    tag: str,
    prefer: str = "raw",
) -> tuple[list[Job], Missing]:
    """Jobs for `inputs`, and the inputs that matched nothing.

    A RAW file and a developed image (JPEG, HEIC...) of one shot (same folder, same stem)
    make one output: the RAW's, or with `prefer` "jpeg" the other's; the other job is marked
    `skip`.

    Outputs are named `<stem><tag><suffix>`: beside the input without `-o`; inside `-o DIR`
    (mirroring a folder's structure) for several inputs or a folder; at `-o FILE` for one
    input; on stdout for `-o -`. `suffix` is one for all, or a function of each input
    (e.g. to keep its own format).
    """
    if prefer not in PREFER:
        raise OptionError(f"--prefer {prefer}: choose one of {', '.join(PREFER)}")
    found, missing = expand_inputs(inputs, recursive)
    twins = same_shot_twins([f for f, _ in found], prefer)
    if not found:
        return [], missing
    many = len(found) > 1 or any(root is not None for _, root in found)
    if output == STDIO and many:
        raise OptionError("-o -: standard output takes a single image")
    if STDIO in (f for f, _ in found) and output is None:
        raise OptionError("input from stdin needs -o FILE or -o -")
    out_dir = None
    if output not in (None, STDIO) and (many or Path(output).is_dir()):
        out_dir = Path(output)
        if out_dir.exists() and not out_dir.is_dir():
            raise OptionError(f"-o {output}: exists and is not a folder (several outputs)")
    jobs = []
    for item, root in found:
        name = "stdin" if item == STDIO else Path(item).stem
        ext = suffix(item) if callable(suffix) else suffix
        if out_dir is not None:
            rel = Path(item).parent.relative_to(root) if root is not None else Path()
            out = str(out_dir / rel / f"{name}{tag}{ext}")
        elif output is not None:
            out = output
        else:
            out = str(Path(item).with_name(f"{name}{tag}{ext}"))
        jobs.append(Job(item, out, root, twins.get(item)))
    return jobs, missing


def depth_maps_for(
    jobs: list[Job], depth: Path | None, metres: bool = False
) -> dict[str, DepthMapFile | None]:
    """Each input's depth map for `--depth` (of metres with `metres`, `--depth-metres`): the
    file for a single input, or `<stem>_depth.*` (or `<stem>.*`) in a folder (None where it
    holds none); {} without `depth`. With `metres`, a folder's float map comes before a PNG
    of the same stem, which holds no metres; OptionError without `depth`, a map for it to
    describe."""
    if depth is None:
        if metres:
            raise OptionError("--depth-metres says what the --depth map holds: pass --depth MAP")
        return {}
    if not depth.is_dir():
        if len(jobs) > 1:
            raise OptionError(
                f"--depth {depth}: one map for {len(jobs)} images; pass a folder of "
                "<stem>_depth.* maps"
            )
        return {job.input: DepthMapFile(depth, metres) for job in jobs}
    suffixes = sorted(DEPTH_SUFFIXES, key=lambda ext: ext == ".png") if metres else DEPTH_SUFFIXES
    maps: dict[str, DepthMapFile | None] = {}
    for job in jobs:
        stem = "stdin" if job.input == STDIO else Path(job.input).stem
        candidates = [depth / f"{stem}{tag}{ext}" for tag in ("_depth", "") for ext in suffixes]
        found = next((p for p in candidates if p.is_file()), None)
        maps[job.input] = None if found is None else DepthMapFile(found, metres)
    return maps


def same_shot_twins(paths: list[str], prefer: str) -> dict[str, str]:
    """The files not to run because a RAW + developed pair of the same shot (same folder
    and stem) is there and the other one is preferred: {path: why}."""
    shots: dict[tuple[str, str], list[str]] = {}
    for path in paths:
        if path != STDIO:
            shots.setdefault((str(Path(path).parent), Path(path).stem), []).append(path)
    skipped = {}
    for files in shots.values():
        raws = [f for f in files if is_raw(f)]
        developed = [f for f in files if not is_raw(f)]
        if raws and developed:
            used, dropped = (raws, developed) if prefer == "raw" else (developed, raws)
            other = "jpeg" if prefer == "raw" else "raw"
            for f in dropped:
                skipped[f] = f"{Path(used[0]).name} of the same shot is used (--prefer {other})"
    return skipped


def report_failures(outcomes: list[Outcome], console) -> bool:
    """Print the failed inputs on `console` (one line for a lone input); True if any."""
    failed = [o for o in outcomes if o.status == "error"]
    if len(outcomes) == 1 and failed:
        console.print(f"prodepth: error: {failed[0].error}", markup=False, soft_wrap=True)
    elif failed:
        console.print(
            f"prodepth: error: {len(failed)} of {len(outcomes)} inputs failed:", markup=False
        )
        for o in failed:
            console.print(f"  {o.error}", markup=False, soft_wrap=True)
    return bool(failed)


def read_stdin() -> bytes:
    data = sys.stdin.buffer.read()
    if not data:
        raise InputError("stdin: empty input")
    return data
