"""`prodepth parallax`: photographs (+ depth maps) -> short 3D-photo videos (MP4, GIF, WebP)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import Progress

from prodepth_cli.batch import STDIO, Job, Outcome, depth_maps_for, plan_jobs
from prodepth_cli.commands.common import (
    DepthMapOption,
    DepthMetresOption,
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
    LayoutOption,
    MeanOption,
    ModelOption,
    ModelSizeOption,
    OfflineOption,
    StdOption,
    load_model_from_options,
    suggest_better_model,
)
from prodepth_cli.depth_source import ModelDepth
from prodepth_cli.errors import OptionError
from prodepth_cli.io.depth_map import DepthMapFile
from prodepth_cli.parallax.encode import (
    MAX_QUALITY,
    MP4_QUALITY,
    SUFFIXES,
    WEBP_QUALITY,
    mp4_crf,
    video_suffix,
)
from prodepth_cli.parallax.render import (
    ANIMATION_FPS,
    ANIMATION_LONG_SIDE,
    FPS,
    LONG_SIDE,
    ParallaxOptions,
    parallax_file,
)
from prodepth_cli.parallax.samplers import frame_device
from prodepth_cli.torch_device import onnx_device

# One --device for the frames and the depth model, in torch's words, as `prodepth video`'s.
ParallaxDeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where frames render and the depth model runs: auto (frames on a GPU through "
        "torch when torch is installed and sees one: CUDA, then Apple's; else on the CPU "
        "with OpenCV, which is faster there), cpu, cuda or mps (the model runs on CoreML "
        "there).",
        case_sensitive=False,
    ),
]
OutputOption = output_option(
    "Default: `<stem>_parallax.mp4` beside each input (`--format` for .gif or .webp).",
    stdout=False,
)


@guarded
def parallax(
    inputs: InputsArgument,
    output: OutputOption = None,
    depth: DepthMapOption = None,
    depth_metres: DepthMetresOption = False,
    path: Annotated[
        str,
        typer.Option(
            "--path",
            help="The camera's path: circle (round a small circle in the image plane), swing "
            "(left and right), dolly (forward and back, zooming to keep the --convergence "
            "level's size: a vertigo shot), zoom (moving in). circle, swing and dolly loop "
            "seamlessly.",
            case_sensitive=False,
        ),
    ] = "circle",
    seconds: Annotated[float, typer.Option(help="Length of the video.")] = 4.0,
    fps: Annotated[
        float | None,
        typer.Option(
            help=f"Frames per second. Default: {FPS:g}; {ANIMATION_FPS:g} for .gif/.webp.",
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            help="The video's longest side in pixels (the photograph's aspect; sides made "
            f"even). Default: the photograph's, at most {LONG_SIDE}; at most "
            f"{ANIMATION_LONG_SIDE} for .gif/.webp (every frame of an animation is kept "
            "until it is written, and big GIFs are huge).",
            show_default=False,
        ),
    ] = None,
    amount: Annotated[
        float,
        typer.Option(
            help="Strength: where the path reaches furthest, the map's nearest and farthest "
            "points differ in shift by this % of the width (dolly and zoom: at the left and "
            "right edges).",
        ),
    ] = 3.0,
    convergence: Annotated[
        float,
        typer.Option(
            help="The depth that stays in place (the focus plane): 0 the farthest, 1 the "
            "nearest (the camera turns round the subject). zoom keeps the farthest's size.",
        ),
    ] = 0.5,
    quality: Annotated[
        int | None,
        typer.Option(
            help=f"1 (smallest) to {MAX_QUALITY} (best). mp4: x264's CRF = 51 - 0.41 x this "
            f"(default {MP4_QUALITY}: CRF {mp4_crf(None)}); webp: libwebp's quality (default "
            f"{WEBP_QUALITY}: a 3 s 480 px loop of a photograph is about 600 KB); gif: not "
            "used (256 colours).",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="mp4 (H.264, plays on phones and in browsers), gif or webp (animations for "
            "web pages), where -o is a folder or absent; a file's suffix decides otherwise.",
            case_sensitive=False,
        ),
    ] = "mp4",
    model: ModelOption = None,
    offline: OfflineOption = False,
    kind: KindOption = None,
    layout: LayoutOption = None,
    model_size: ModelSizeOption = None,
    mean: MeanOption = None,
    std: StdOption = None,
    recursive: RecursiveOption = False,
    prefer: PreferOption = "raw",
    overwrite: OverwriteOption = False,
    device: ParallaxDeviceOption = "auto",
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """3D-photo videos from photographs: a camera moving over the photograph's depth.

    Each frame ray-marches the depth as a height field, near over far; what the photograph
    does not show (behind a near object's edge) is filled from the background. Loops
    (circle, swing, dolly) end where they begin.
    """
    options = ParallaxOptions(
        path.lower(), seconds, fps, size, amount, convergence, device.lower(), quality
    )
    frame_device(options.device)  # a GPU we cannot use is refused before any work
    suffix = f".{fmt.lower().lstrip('.')}"
    if suffix not in SUFFIXES:
        raise OptionError(f"--format {fmt}: choose one of mp4, gif, webp")
    if output == STDIO:
        raise OptionError("-o -: a video cannot go to stdout; give -o FILE")
    jobs, missing = plan_jobs(inputs, output, recursive, suffix, "_parallax", prefer.lower())
    for job in jobs:  # an output we cannot write is refused before any work
        video_suffix(job.output)
    depth_maps = depth_maps_for(jobs, depth, depth_metres)
    model_depth = None
    if depth is None:
        loaded = load_model_from_options(
            model,
            onnx_device(device),
            kind,
            layout,
            model_size,
            mean,
            std,
            offline,
            quiet or json_out,
        )
        model_depth = ModelDepth(loaded)
        suggest_better_model(loaded, model, quiet or json_out)
    run_batch(
        jobs,
        missing,
        lambda job, bar: _run_job(job, bar, options, depth_maps, model_depth),
        _summary,
        {"path": options.path, "amount": options.amount, "convergence": options.convergence},
        overwrite,
        json_out,
        quiet,
    )


def _run_job(
    job: Job,
    bar: Progress,
    options: ParallaxOptions,
    depth_maps: dict[str, DepthMapFile | None],
    model_depth: ModelDepth | None,
) -> Outcome:
    task = None

    def started(frames: int) -> None:
        nonlocal task
        task = bar.add_task("frames", total=frames)

    def render(depth_map: DepthMapFile | None, data: bytes | None):
        try:
            return parallax_file(
                job.input,
                job.output,
                options,
                depth_map,
                model_depth,
                data,
                started,
                lambda: bar.advance(task),
            )
        finally:
            if task is not None:
                bar.remove_task(task)

    return run_render_job(
        job,
        depth_maps,
        render,
        lambda report: {
            "out_width": report.out_width,
            "out_height": report.out_height,
            "frames": report.frames,
            "fps": report.fps,
            "video_seconds": round(report.video_seconds, 3),
            "overscan": round(report.overscan, 4),
            "renderer": report.renderer,
        },
    )


def _summary(outcome: Outcome) -> str:
    info = outcome.info
    return (
        f"{embedded_prefix(info)}{info['path']} {info['out_width']}x{info['out_height']}, "
        f"{info['frames']} frames at {info['fps']:g} fps, {info['seconds']:.1f} s "
        f"({info['renderer']})"
    )
