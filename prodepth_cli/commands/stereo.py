"""`prodepth stereo`: photographs (+ depth maps) -> stereo pairs for 3D screens, VR, glasses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from prodepth_cli.batch import STDIO, Job, Outcome, depth_maps_for, plan_jobs
from prodepth_cli.commands.common import (
    DepthMapOption,
    DeviceOption,
    InputsArgument,
    JsonOption,
    OverwriteOption,
    PreferOption,
    QuietOption,
    RecursiveOption,
    embedded_prefix,
    guarded,
    output_option,
    run_batch,
    run_render_job,
)
from prodepth_cli.commands.model_options import (
    KindOption,
    MeanOption,
    ModelOption,
    OfflineOption,
    SizeOption,
    StdOption,
    load_model_from_options,
    suggest_better_model,
)
from prodepth_cli.depth_source import ModelDepth
from prodepth_cli.io.photo_stream import check_output_suffix, output_suffix
from prodepth_cli.stereo.layouts import LAYOUTS
from prodepth_cli.stereo.render import stereo_file
from prodepth_cli.stereo.shift import StereoOptions

# The model's input layout (depth's --layout) under another flag: --layout is the pair's here.
ModelLayoutOption = Annotated[
    str | None,
    typer.Option(
        "--model-layout",
        help="Model input layout: NCHW or NHWC (`prodepth depth --layout`).",
        show_default=False,
    ),
]


OutputOption = output_option(
    "Default: `<stem><tag>.<ext>` beside each input, in the input's format, the tag "
    "as players expect it: _LRF_Full_SBS, _LR (half-sbs), _TBF_fulltb, _TB (half-tb), "
    "_RLF_cross, _redcyan.",
)


@guarded
def stereo(
    inputs: InputsArgument,
    output: OutputOption = None,
    depth: DepthMapOption = None,
    layout: Annotated[
        str,
        typer.Option(
            "--layout",
            help="sbs (left eye | right eye), half-sbs (each squeezed to half width), tb (left "
            "above right), half-tb, cross (right | left: cross-eyed viewing), or anaglyph "
            "(red-cyan glasses, Dubois).",
            case_sensitive=False,
        ),
    ] = "sbs",
    divergence: Annotated[
        float,
        typer.Option(
            help="Strength: the map's nearest and farthest points differ in shift between the "
            "eyes by this % of the width.",
        ),
    ] = 2.0,
    convergence: Annotated[
        float,
        typer.Option(
            help="The depth that stays in place (the screen plane): 0 the farthest (all comes "
            "out of the screen), 1 the nearest (all behind it).",
        ),
    ] = 0.5,
    synthetic_view: Annotated[
        str,
        typer.Option(
            "--synthetic-view",
            help="Eyes synthesised: both (each shifted half), right (the photograph is the "
            "left eye), left (it is the right eye).",
            case_sensitive=False,
        ),
    ] = "both",
    model: ModelOption = None,
    offline: OfflineOption = False,
    kind: KindOption = None,
    model_layout: ModelLayoutOption = None,
    size: SizeOption = None,
    mean: MeanOption = None,
    std: StdOption = None,
    recursive: RecursiveOption = False,
    prefer: PreferOption = "raw",
    overwrite: OverwriteOption = False,
    device: DeviceOption = "auto",
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Stereo pairs from photographs: a second eye synthesised from depth.

    Each pixel moves by its depth (near over far, sub-pixel), what no eye of the photograph
    saw is filled from the background; rows go through in bands, so any size fits in memory.
    """
    options = StereoOptions(layout.lower(), divergence, convergence, synthetic_view.lower())
    tag = LAYOUTS[options.layout]
    jobs, missing = plan_jobs(inputs, output, recursive, output_suffix, tag, prefer.lower())
    for job in jobs:  # an output we cannot write is refused before any work
        if job.output != STDIO:
            check_output_suffix(job.output)
    depth_maps = depth_maps_for(jobs, depth)
    model_depth = None
    if depth is None:
        loaded = load_model_from_options(
            model, device, kind, model_layout, size, mean, std, offline, quiet or json_out
        )
        model_depth = ModelDepth(loaded)
        suggest_better_model(loaded, model, quiet or json_out)
    run_batch(
        jobs,
        missing,
        lambda job, _: _run_job(job, options, depth_maps.get(job.input), depth, model_depth),
        _summary,
        {
            "layout": options.layout,
            "divergence": options.divergence,
            "convergence": options.convergence,
            "synthetic_view": options.synthetic_view,
        },
        overwrite,
        json_out,
        quiet,
    )


def _run_job(
    job: Job,
    options: StereoOptions,
    depth_map: Path | None,
    depth_given: Path | None,
    model_depth: ModelDepth | None,
) -> Outcome:
    return run_render_job(
        job,
        depth_given is not None and depth_map is None,
        lambda data: stereo_file(job.input, job.output, options, depth_map, model_depth, data),
        lambda report: {
            "out_width": report.out_width,
            "out_height": report.out_height,
            "shift_px": [round(v, 2) for v in report.shift_px],
        },
    )


def _summary(outcome: Outcome) -> str:
    info = outcome.info
    far, near = info["shift_px"]
    return (
        f"{embedded_prefix(info)}{info['layout']} {info['out_width']}x{info['out_height']}, shift "
        f"{far:+.1f}..{near:+.1f} px, {info['seconds']:.1f} s"
    )
