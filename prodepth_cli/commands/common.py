"""What every command shares: error reporting, progress bars, JSON lines, device option."""

from __future__ import annotations

import errno
import functools
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from prodepth_cli.batch import STDIO, Job, Missing, Outcome, read_stdin, report_failures
from prodepth_cli.errors import DISK_FULL, ProdepthError, write_error
from prodepth_cli.io.depth_map import EMBEDDED, DepthMapFile

err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])
_WRITE_ONLY_ERRNOS = DISK_FULL | {errno.EROFS}  # reading a file never fails so

DeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="auto: the first of CUDA, CoreML (Apple), DirectML (Windows) that loads and "
        "runs a probe tile, else the CPU; or one of cpu, cuda, tensorrt (opt-in: an engine "
        "build per tile shape, cached), coreml, directml. `prodepth doctor` lists what "
        "this machine has.",
        case_sensitive=False,
    ),
]
TorchDeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="The torch device: auto (cuda, then mps on Apple Silicon, then cpu), cpu, cuda "
        "or mps.",
        case_sensitive=False,
    ),
]
InputsArgument = Annotated[
    list[str],
    typer.Argument(
        help="Image files, folders, globs, or - for image bytes on stdin.", show_default=False
    ),
]
RecursiveOption = Annotated[bool, typer.Option("--recursive", "-r", help="Look into sub-folders.")]
OverwriteOption = Annotated[
    bool,
    typer.Option(help="Redo outputs that already exist (default: skip them, so a batch resumes)."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or notes.")]
RayOption = Annotated[
    bool,
    typer.Option(
        "--ray",
        help="Run the images on a Ray cluster, one task per image (a local Ray for the run "
        "unless --ray-address); needs the ray extra.",
    ),
]
RayAddressOption = Annotated[
    str,
    typer.Option("--ray-address", help="With --ray: local, auto, or ray://HOST:PORT."),
]
WorkersOption = Annotated[
    int, typer.Option("--workers", min=1, help="With --ray: workers, each holding one model.")
]
GpusPerWorkerOption = Annotated[
    float, typer.Option("--gpus-per-worker", min=0.0, help="With --ray: GPUs for each worker.")
]
PreferOption = Annotated[
    str,
    typer.Option(
        "--prefer",
        help="A RAW and a JPEG (or HEIC) of one shot side by side make one output: from the "
        "raw, or the jpeg; the other is reported as skipped.",
        case_sensitive=False,
    ),
]
DepthMapOption = Annotated[
    Path | None,
    typer.Option(
        "--depth",
        help="Depth map as `prodepth depth` writes it (16-bit PNG near = bright, TIFF, "
        "PFM, NPY; relative disparity unless --depth-metres), or a folder of "
        "`<stem>_depth.*` maps for a batch. Default: the map a JPEG carries (GDepth: "
        "`prodepth depth --embed`, Google camera portraits), else run the depth model first.",
        show_default=False,
    ),
]
# The file cannot say whether it holds disparity or a metric model's metres: the user does.
DepthMetresOption = Annotated[
    bool,
    typer.Option(
        "--depth-metres",
        help="With --depth: the map holds depth in metres, larger = farther (a metric "
        "model's .tif, .pfm or .npy), not disparity.",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="One JSON object per result on stdout, for scripts.")
]


def output_option(default: str, stdout: bool = True) -> Any:
    """The `--output/-o` of a command writing one output per input (str | None, default None),
    as an `Annotated` alias; `default` ends its help: where the outputs go without it.
    `stdout`: whether - (PNG on stdout) is offered."""
    to_stdout = ", or - for PNG on stdout" if stdout else ""
    return Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help=f"Output file (one input), folder (several){to_stdout}. " + default,
        ),
    ]


def guarded(fn: F) -> F:
    """Turn project errors into one line on stderr and exit code 1, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ProdepthError as exc:
            fail(str(exc))
        except OSError as exc:
            # a writer not yet behind `atomic_output`: a full or read-only disk is still one line
            if exc.errno not in _WRITE_ONLY_ERRNOS or exc.filename is None:
                raise
            fail(str(write_error(exc.filename, exc)))
        except KeyboardInterrupt:
            fail("interrupted", code=130)

    return wrapper  # type: ignore[return-value]


def fail(message: str, code: int = 1) -> None:
    err_console.print(f"prodepth: error: {message}", markup=False, soft_wrap=True)
    raise typer.Exit(code)


def note(message: str, quiet: bool = False) -> None:
    """A message for the person at the terminal (stderr), unless --quiet."""
    if not quiet:
        err_console.print(message, markup=False, soft_wrap=True)


def emit_json(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def progress_bar(quiet: bool, in_bytes: bool = False) -> Progress:
    """A rich progress bar on stderr; silent when stderr is not a terminal or with --quiet.
    Counts items, or with `in_bytes` bytes and their rate (downloads)."""
    counts = (
        (DownloadColumn(), TransferSpeedColumn())
        if in_bytes
        else (MofNCompleteColumn(), TimeElapsedColumn())
    )
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *counts,
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
        transient=False,
    )


def run_batch(
    jobs: list[Job],
    missing: Missing,
    run_job: Callable[[Job, Progress], Outcome],
    summary: Callable[[Outcome], str],
    common: dict[str, Any],
    overwrite: bool,
    json_out: bool,
    quiet: bool,
    mapper: Callable[[list[Job]], Iterable[Outcome]] | None = None,
) -> None:
    """Run every job under one progress bar: complete outputs are skipped (resume) unless
    `overwrite`, each outcome is reported as it comes (a JSON line, or a note ending in
    `summary`), and the failures are listed at the end with exit code 1. A full disk stops
    the batch at once (every later output would fail too), saying how far it got. With
    `mapper` (a cluster), the jobs left after skipping go to it and come back in any order."""

    def report(outcome: Outcome) -> None:
        if json_out:
            emit_json(outcome.record)
        elif outcome.status == "ok" and outcome.job.output != STDIO:
            note(f"{outcome.job.input} -> {outcome.job.output} ({summary(outcome)})", quiet)
        elif outcome.status == "skipped":
            note(f"{outcome.job.input}: skipped, {outcome.info['reason']}", quiet)

    outcomes = [Outcome.missing(item, why) for item, why in missing]
    for outcome in outcomes:
        report(outcome)
    with progress_bar(quiet) as bar:
        images = bar.add_task("images", total=len(jobs))

        def finish(outcome: Outcome) -> bool:
            """Record `outcome`; True when the batch must stop there."""
            outcome.info = {**common, **outcome.info}
            outcomes.append(outcome)
            bar.advance(images)
            report(outcome)
            return outcome.stops_batch

        todo = []
        for job in jobs:
            if job.skip:
                finish(Outcome(job, "skipped", info={"reason": job.skip}))
            elif job.output != STDIO and not overwrite and Path(job.output).exists():
                why = f"{job.output} exists (use --overwrite)"
                finish(Outcome(job, "skipped", info={"reason": why}))
            elif mapper is None:
                if finish(run_job(job, bar)):
                    break
            else:
                todo.append(job)
        # Leaving the loop drops a cluster's generator, whose `finally` stops its workers.
        for outcome in mapper(todo) if mapper is not None else ():
            if finish(outcome):
                break
    if outcomes and outcomes[-1].stops_batch:
        _stop_batch(outcomes, len(outcomes) - len(missing) - 1, len(jobs))
    if report_failures(outcomes, err_console):
        raise typer.Exit(1)


def no_map_outcome(job: Job) -> Outcome:
    """The error outcome of an image a --depth folder holds no map for."""
    return Outcome(job, "error", f"{job.input}: no depth map for it in the --depth folder")


def warn_map_resized(
    depth: str | Path, resized_from: tuple[int, int] | None, width: int, height: int
) -> None:
    """Say that the map `depth` was of another size (`resized_from`, (H, W)) than the image:
    a warning, not a note, so on stderr even with --json or --quiet."""
    if resized_from:
        h, w = resized_from
        note(f"warning: {depth} is {w}x{h}, the image {width}x{height}: depth map resized")


def run_render_job(
    job: Job,
    depth_maps: dict[str, DepthMapFile | None],
    render: Callable[[DepthMapFile | None, bytes | None], Any],
    fields: Callable[[Any], dict[str, Any]],
) -> Outcome:
    """One image of a render batch (bokeh, stereo, parallax). `render` gets the image's map
    from `depth_maps` (`batch.depth_maps_for`: None without --depth) and the encoded image for
    a stdin input (else None), and returns its report (width, height, bits, depth,
    depth_resized_from, seconds); `fields` gives the command's own entries of the outcome from
    it. An image a --depth folder holds no map for is an error outcome."""
    depth_map = depth_maps.get(job.input)
    if job.input in depth_maps and depth_map is None:  # with --depth, every input has a key
        return no_map_outcome(job)
    try:
        data = read_stdin() if job.input == STDIO else None
        report = render(depth_map, data)
    except ProdepthError as exc:
        return Outcome.failed(job, exc)
    warn_map_resized(report.depth, report.depth_resized_from, report.width, report.height)
    info = {
        "width": report.width,
        "height": report.height,
        "bits": report.bits,
        "depth": report.depth,
        "depth_resized_from": report.depth_resized_from,
        **fields(report),
        "seconds": round(report.seconds, 3),
    }
    return Outcome(job, "ok", info=info)


def embedded_prefix(info: dict[str, Any]) -> str:
    """A render summary's opening words where the depth was the map the photograph carries."""
    return "its embedded depth map, " if info["depth"] == EMBEDDED else ""


def _stop_batch(outcomes: list[Outcome], done: int, total: int) -> None:
    """End a batch that a full disk stopped (the last of `outcomes`), `done` of `total`
    inputs handled before it: the other failures, then one line on what to do."""
    stop = outcomes[-1]
    report_failures(outcomes[:-1], err_console)
    if total == 1:
        fail(str(stop.error))
    fail(f"{stop.error}; stopped after {done} of {total} inputs, free space and rerun to resume")
