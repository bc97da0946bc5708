"""`prodepth depth`: images, folders, globs or stdin -> depth maps."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from prodepth_cli.batch import STDIO, Job, Outcome, plan_jobs, read_stdin
from prodepth_cli.cluster import LOCAL, WORKER_THREADS, ray_map
from prodepth_cli.commands.common import (
    DeviceOption,
    GpusPerWorkerOption,
    InputsArgument,
    JsonOption,
    OverwriteOption,
    PreferOption,
    QuietOption,
    RayAddressOption,
    RayOption,
    RecursiveOption,
    WorkersOption,
    fail,
    guarded,
    output_option,
    run_batch,
)
from prodepth_cli.commands.model_options import (
    KindOption,
    LayoutOption,
    MeanOption,
    ModelOption,
    OfflineOption,
    SizeOption,
    StdOption,
    TileResOption,
    check_tile_resolution,
    load_for_run,
    spec_overrides,
    suggest_better_model,
)
from prodepth_cli.errors import ProdepthError
from prodepth_cli.io.write import FORMATS, format_for_output
from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import DepthOptions, depth_file
from prodepth_cli.tiling.plan import default_overlap, plan_tiles

OutputOption = output_option(
    "Default: `<stem>_depth.<ext>` beside each input.",
)


@guarded
def depth(
    inputs: InputsArgument,
    output: OutputOption = None,
    tile: Annotated[int, typer.Option(help="Tile size in full-resolution pixels.")] = 1024,
    overlap: Annotated[
        int | None,
        typer.Option(
            help="Overlap between neighbouring tiles in pixels (default: tile/4, at most tile/2).",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Tiles per model call.")] = 4,
    tile_res: TileResOption = "native",
    model: ModelOption = None,
    offline: OfflineOption = False,
    kind: KindOption = None,
    layout: LayoutOption = None,
    size: SizeOption = None,
    mean: MeanOption = None,
    std: StdOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="png16 (normalised, near = bright), tiff (float32), pfm, npy, or jpeg (the "
            "photograph with the map embedded, as --embed). Default: the output file's suffix "
            "(.png .tif .tiff .pfm .npy .jpg), else png16.",
            show_default=False,
        ),
    ] = None,
    embed: Annotated[
        bool,
        typer.Option(
            help="Write the photograph as `<stem>_depth.jpg` with the map inside, as Google's "
            "depth photos carry it (GDepth XMP), for depth-aware viewers and editors; a JPEG "
            "keeps its pixels, EXIF and ICC byte for byte.",
        ),
    ] = False,
    colormap: Annotated[
        bool, typer.Option(help="Also write an 8-bit colour preview `<stem>_depth_color.png`.")
    ] = False,
    recursive: RecursiveOption = False,
    prefer: PreferOption = "raw",
    overwrite: OverwriteOption = False,
    device: DeviceOption = "auto",
    ray: RayOption = False,
    ray_address: RayAddressOption = LOCAL,
    workers: WorkersOption = 2,
    gpus_per_worker: GpusPerWorkerOption = 0.0,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Depth maps for photographs of any size.

    A coarse pass over the whole image, then overlapping full-resolution tiles anchored to it
    and blended without seams. Output: relative inverse depth, near = bright (the float
    formats of a metric model, such as depth-pro: depth in metres).
    """
    if fmt is not None and fmt not in FORMATS:
        fail(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    if embed:
        if fmt not in (None, "jpeg"):
            fail(f"--embed writes a JPEG: it contradicts --format {fmt}")
        fmt = "jpeg"
    plan_tiles(tile, tile, tile, overlap)  # rejects nonsense tile/overlap before any work
    suffix = FORMATS[fmt or "png16"]
    jobs, missing = plan_jobs(inputs, output, recursive, suffix, "_depth", prefer.lower())
    if len(jobs) == 1 and jobs[0].output == output and output != STDIO:
        fmt = format_for_output(output, fmt)  # one output file: its suffix decides
    fmt = fmt or "png16"
    options = DepthOptions(tile, overlap, batch, check_tile_resolution(tile_res))
    overrides = spec_overrides(kind, layout, size, mean, std)
    # here too: bad models fail early, and a catalog model is pulled before any output
    depth_model = load_for_run(model, device, overrides, offline, quiet or json_out)
    suggest_better_model(depth_model, model, quiet or json_out)
    mapper = None
    if ray:
        runner = functools.partial(_runner, model, device, overrides, options, fmt, colormap)
        mapper = ray_map(jobs, runner, ray_address, workers, gpus_per_worker)
    common = {
        "model": depth_model.name,
        "provider": depth_model.provider,
        "tile": tile,
        "overlap": default_overlap(tile) if overlap is None else overlap,
        "tile_res": tile_res,
    }
    run_batch(
        jobs,
        missing,
        lambda job, bar: _run_job(job, depth_model, options, fmt, colormap, bar),
        _summary,
        common,
        overwrite,
        json_out,
        quiet,
        mapper,
    )


def _runner(
    model: str | None,
    device: str,
    overrides: dict,
    options: DepthOptions,
    fmt: str,
    colormap: bool,
) -> Callable[[Job], Outcome]:
    """The job runner a cluster worker builds once: its own copy of the model (onnxruntime
    on the one CPU Ray gives the worker), no bars."""
    loaded = load_model(model, device, threads=WORKER_THREADS, **overrides)
    return functools.partial(
        _run_job, model=loaded, options=options, fmt=fmt, colormap=colormap, bar=None
    )


def _run_job(
    job: Job, model, options: DepthOptions, fmt: str, colormap: bool, bar: Progress | None
) -> Outcome:
    out = Path(job.output)
    color = out.with_name(f"{out.stem}_color.png") if colormap and job.output != STDIO else None
    bar = bar or Progress(disable=True)  # a cluster worker draws nothing
    tiles = bar.add_task(f"  {Path(job.input).name}", total=None)
    try:
        data = read_stdin() if job.input == STDIO else None
        report = depth_file(
            job.input,
            job.output,
            model,
            options,
            fmt,
            color,
            data,
            on_start=lambda n: bar.update(tiles, total=n),
            on_tiles=lambda n: bar.advance(tiles, n),
        )
    except ProdepthError as exc:
        return Outcome.failed(job, exc)
    finally:
        bar.remove_task(tiles)
    return Outcome(
        job,
        "ok",
        info={
            "width": report.width,
            "height": report.height,
            "tiles": report.tiles,
            "seconds": round(report.seconds, 3),
            "colormap": report.colormap,
            "units": report.units,
            "provider": model.provider,
        },
    )


def _summary(outcome: Outcome) -> str:
    info = outcome.info
    return f"{info['width']}x{info['height']}, {len(info['tiles'])} tiles, {info['seconds']:.1f} s"
