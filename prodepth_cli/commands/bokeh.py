"""`prodepth bokeh`: photographs (+ depth maps) -> synthetic shallow depth of field."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from prodepth_cli.batch import STDIO, Job, Outcome, depth_maps_for, plan_jobs
from prodepth_cli.bokeh.engine import (
    ENGINES,
    BokehOptions,
    Renderer,
    bokeh_file,
    classic_renderer,
)
from prodepth_cli.bokeh.focus import parse_point
from prodepth_cli.bokeh.lens import DEFAULT_F_NUMBER
from prodepth_cli.cluster import LOCAL, WORKER_THREADS, ray_map
from prodepth_cli.commands.common import (
    DepthMapOption,
    DepthMetresOption,
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
    embedded_prefix,
    fail,
    guarded,
    note,
    output_option,
    run_batch,
    run_render_job,
)
from prodepth_cli.commands.model_options import (
    KindOption,
    OfflineOption,
    load_model_from_options,
    spec_overrides,
    suggest_better_model,
)
from prodepth_cli.depth_source import ModelDepth
from prodepth_cli.errors import OptionError
from prodepth_cli.io.depth_map import DepthMapFile
from prodepth_cli.io.photo_stream import check_output_suffix, output_suffix
from prodepth_cli.models.runtime import load_model

OutputOption = output_option(
    "Default: `<stem>_bokeh.<ext>` beside each input, in the input's format.",
)


@guarded
def bokeh(
    inputs: InputsArgument,
    output: OutputOption = None,
    depth: DepthMapOption = None,
    depth_metres: DepthMetresOption = False,
    focus: Annotated[
        str | None,
        typer.Option(
            help="Focus on the surface at this pixel, X,Y (robust to a pixel on an edge). "
            "Default: the main subject (what stands out from its rows' depth, near the centre).",
            show_default=False,
        ),
    ] = None,
    focus_depth: Annotated[
        float | None,
        typer.Option(
            help="Focus at this value, in the depth map's units (with --depth-metres: "
            "1/metres, the disparity it is read as).",
            show_default=False,
        ),
    ] = None,
    f_number: Annotated[
        float,
        typer.Option(
            help="Aperture, as on a lens: smaller = more blur (f/2: the far background becomes "
            "discs of 2 % of the long side).",
        ),
    ] = DEFAULT_F_NUMBER,
    engine: Annotated[
        str,
        typer.Option(
            help="classic (layered scatter, the reference) or tflite (the phone network).",
        ),
    ] = "classic",
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="TFLite bokeh network for --engine tflite (default: the shipped one), or "
            "its ONNX export (.onnx, run by onnxruntime: what runs where LiteRT has no build).",
            show_default=False,
        ),
    ] = None,
    depth_model: Annotated[
        str | None,
        typer.Option(
            help="Depth model (ONNX file, catalog name pulled on first use, or prodepth) used "
            "when --depth is not given (default: $PRODEPTH_MODEL, else the best catalog model "
            "installed, else the shipped one).",
            show_default=False,
        ),
    ] = None,
    offline: OfflineOption = False,
    kind: KindOption = None,
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
    """Synthetic shallow depth of field: blur by depth like a fast lens.

    Circle of confusion from each pixel's disparity to the focal plane; far-to-near layers
    scattered with disc kernels in linear light, highlights as bright discs, no halos.
    """
    if engine not in ENGINES:
        fail(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    options = BokehOptions(f_number, parse_point(focus) if focus is not None else None, focus_depth)
    jobs, missing = plan_jobs(inputs, output, recursive, output_suffix, "_bokeh", prefer.lower())
    for job in jobs:  # an output we cannot write is refused before any work
        if job.output != STDIO:
            check_output_suffix(job.output)
    depth_maps = depth_maps_for(jobs, depth, depth_metres)
    renderer = _renderer(engine, model)
    if getattr(renderer, "note", ""):  # the tflite engine on its ONNX export (no LiteRT here)
        note(f"note: {renderer.note}", quiet or json_out)
    depth_source = None
    if depth is None:
        loaded = load_model_from_options(
            depth_model, device, kind, offline=offline, quiet=quiet or json_out
        )
        depth_source = ModelDepth(loaded)
        suggest_better_model(loaded, depth_model, quiet or json_out)
    mapper = None
    if ray:
        runner = functools.partial(
            _runner,
            engine,
            model,
            depth_model,
            device,
            kind,
            depth is None,
            options,
            depth_maps,
        )
        mapper = ray_map(jobs, runner, ray_address, workers, gpus_per_worker)
    run_batch(
        jobs,
        missing,
        lambda job, _: _run_job(job, options, depth_maps, depth_source, renderer),
        _summary,
        {
            "engine": engine,
            "f_number": f_number,
            "provider": depth_source.model.provider if depth_source else None,
        },
        overwrite,
        json_out,
        quiet,
        mapper,
    )


def _runner(
    engine: str,
    model: Path | None,
    depth_model: str | None,
    device: str,
    kind: str | None,
    model_depth: bool,
    options: BokehOptions,
    depth_maps: dict[str, DepthMapFile | None],
) -> Callable[[Job], Outcome]:
    """The job runner a cluster worker builds once: its renderer and depth model."""
    renderer = _renderer(engine, model)
    source = None
    if model_depth:
        loaded = load_model(depth_model, device, threads=WORKER_THREADS, **spec_overrides(kind))
        source = ModelDepth(loaded)
    return lambda job: _run_job(job, options, depth_maps, source, renderer)


def _renderer(engine: str, model: Path | None) -> Renderer:
    if engine == "classic":
        if model is not None:
            raise OptionError("--model is the TFLite network: use it with --engine tflite")
        return classic_renderer
    from prodepth_cli.bokeh.tflite import load_bokeh_net

    return load_bokeh_net(model)


def _run_job(
    job: Job,
    options: BokehOptions,
    depth_maps: dict[str, DepthMapFile | None],
    depth_source,
    renderer: Renderer,
) -> Outcome:
    return run_render_job(
        job,
        depth_maps,
        lambda depth_map, data: bokeh_file(
            job.input, job.output, options, depth_map, depth_source, renderer, data
        ),
        lambda report: {
            "focus": round(report.focus, 6),
            "blur_px": round(report.blur_px, 3),
            "max_radius_px": round(report.max_radius_px, 2),
        },
    )


def _summary(outcome: Outcome) -> str:
    info = outcome.info
    return (
        f"{embedded_prefix(info)}{info['width']}x{info['height']}, focus {info['focus']:.4g}, "
        f"discs up to {info['max_radius_px']:.0f} px, {info['seconds']:.1f} s"
    )
