"""`prodepth stereo`: photographs (+ depth maps) -> stereo pairs for 3D screens, VR, glasses."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from prodepth_cli.batch import STDIO, Job, Outcome, depth_maps_for, plan_jobs
from prodepth_cli.commands.common import (
    DepthMapOption,
    DepthMetresOption,
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
from prodepth_cli.errors import OptionError
from prodepth_cli.io.depth_map import DepthMapFile
from prodepth_cli.io.photo_stream import check_output_suffix, output_suffix
from prodepth_cli.stereo.layouts import LAYOUTS
from prodepth_cli.stereo.render import StereoReport, stereo_file
from prodepth_cli.stereo.shift import StereoOptions
from prodepth_cli.stereo.spatial_heic import (
    MAX_EYE_SIDE,
    SPATIAL_SUFFIXES,
    SPATIAL_TAG,
    is_spatial_output,
)

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
    "_RLF_cross, _redcyan; _spatial for a spatial photo (.heic).",
)
# --format's names -> the suffix they write (aliases name one format)
FORMATS = {
    "jpg": ".jpg",
    "jpeg": ".jpg",
    "png": ".png",
    "tif": ".tif",
    "tiff": ".tif",
    "webp": ".webp",
    "heic": ".heic",
    "heif": ".heic",
}
_SAME = {".jpeg": ".jpg", ".tiff": ".tif", ".heif": ".heic"}


@guarded
def stereo(
    inputs: InputsArgument,
    output: OutputOption = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            help="jpg, png, tif, webp, or heic: an Apple spatial photo (Vision Pro, iPhone): "
            f"the two eyes as two HEVC images, each at most {MAX_EYE_SIDE} px on its longest "
            "side (a larger photograph's are scaled down), with the cameras' geometry; "
            "--layout does not apply. Default: -o FILE's suffix, else the input's format "
            "(else png).",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    depth: DepthMapOption = None,
    depth_metres: DepthMetresOption = False,
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
    `-o x.heic` (or `-f heic`) writes an Apple spatial photo.
    """
    options = StereoOptions(layout.lower(), divergence, convergence, synthetic_view.lower())
    suffix = _format_suffix(fmt)
    spatial = suffix == ".heic" or (output is not None and is_spatial_output(output))
    tag = SPATIAL_TAG if spatial else LAYOUTS[options.layout]
    jobs, missing = plan_jobs(
        inputs, output, recursive, suffix or output_suffix, tag, prefer.lower()
    )
    for job in jobs:  # an output we cannot write is refused before any work
        _check_output(job.output, suffix, options)
    depth_maps = depth_maps_for(jobs, depth, depth_metres)
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
        lambda job, _: _run_job(job, options, depth_maps, model_depth),
        _summary,
        {
            "layout": "spatial" if spatial else options.layout,
            "divergence": options.divergence,
            "convergence": options.convergence,
            "synthetic_view": options.synthetic_view,
        },
        overwrite,
        json_out,
        quiet,
    )


def _format_suffix(fmt: str | None) -> str | None:
    """The suffix `--format` asks for (None without it)."""
    if fmt is None:
        return None
    if fmt.lower() not in FORMATS:
        raise OptionError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    return FORMATS[fmt.lower()]


def _check_output(dst: str, suffix: str | None, options: StereoOptions) -> None:
    """Refuse, before any work, an output we cannot write, a --format its suffix contradicts,
    and a --layout for a spatial photo (its eyes are two images, not one packed)."""
    if dst == STDIO:
        if suffix not in (None, ".png"):
            raise OptionError("-o -: standard output takes PNG; name an output file")
        return
    own = check_output_suffix(dst, SPATIAL_SUFFIXES)
    if suffix is not None and _SAME.get(own, own) != suffix:
        raise OptionError(f"-o {dst}: --format {suffix[1:]} contradicts its suffix")
    if is_spatial_output(dst) and options.layout != "sbs":
        raise OptionError(
            f"--layout {options.layout}: a spatial photo holds the two eyes as two images; "
            "leave --layout out"
        )


def _run_job(
    job: Job,
    options: StereoOptions,
    depth_maps: dict[str, DepthMapFile | None],
    model_depth: ModelDepth | None,
) -> Outcome:
    return run_render_job(
        job,
        depth_maps,
        lambda depth_map, data: stereo_file(
            job.input, job.output, options, depth_map, model_depth, data
        ),
        _fields,
    )


def _fields(report: StereoReport) -> dict[str, Any]:
    """The stereo entries of a job's record; a spatial photo's cameras besides."""
    fields: dict[str, Any] = {
        "out_width": report.out_width,
        "out_height": report.out_height,
        "shift_px": [round(v, 2) + 0.0 for v in report.shift_px],  # no -0.0
    }
    camera = report.spatial
    if camera is not None:
        fields |= {
            "baseline_mm": round(camera.baseline_m * 1000.0, 2),
            "hfov_deg": round(camera.hfov_deg, 2),
            "fov_from": camera.fov_from,
            "disparity_adjustment": camera.disparity_adjustment,
        }
    return fields


def _summary(outcome: Outcome) -> str:
    info = outcome.info
    far, near = info["shift_px"]
    if "baseline_mm" in info:
        fov = "assumed: no focal length in its EXIF" if info["fov_from"] == "assumed" else "EXIF"
        return (
            f"{embedded_prefix(info)}spatial photo, two {info['out_width']}x"
            f"{info['out_height']} eyes, baseline {info['baseline_mm']:.0f} mm, "
            f"{info['hfov_deg']:.0f}° across ({fov}), disparity adjustment "
            f"{info['disparity_adjustment']:+d}, {info['seconds']:.1f} s"
        )
    return (
        f"{embedded_prefix(info)}{info['layout']} {info['out_width']}x{info['out_height']}, shift "
        f"{far:+.1f}..{near:+.1f} px, {info['seconds']:.1f} s"
    )
