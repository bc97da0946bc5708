"""`prodepth video`: a clip -> per-frame depth, consistent over time: fitted self-supervised
to the clip itself, or with `--fast` the model's own maps aligned along optical flow."""

from __future__ import annotations

from typing import Annotated

import typer

from prodepth_cli.commands.common import (
    JsonOption,
    QuietOption,
    emit_json,
    fail,
    guarded,
    note,
    progress_bar,
)
from prodepth_cli.commands.model_options import (
    KindOption,
    LayoutOption,
    MeanOption,
    ModelOption,
    ModelSizeOption,
    OfflineOption,
    StdOption,
    load_for_run,
    spec_overrides,
    suggest_better_model,
)
from prodepth_cli.models.runtime import DepthModel
from prodepth_cli.torch_device import TORCH_DEVICES, onnx_device

VideoDeviceOption = Annotated[
    str,
    typer.Option(
        "--device",
        help="Where the model and the fit run: auto (CUDA, then Apple's GPU, then the CPU), "
        "cpu, cuda or mps (the model runs on CoreML there). With --fast, any device "
        "`prodepth depth` takes (tensorrt, coreml and directml too).",
        case_sensitive=False,
    ),
]


@guarded
def video(
    input_path: Annotated[
        str,
        typer.Argument(
            metavar="INPUT", help="A video file (FFmpeg decoding) or a folder of frames."
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output folder: one depth map per frame (`<frame>.png`, near = bright), and "
            "`poses.txt`, `checkpoint.pt` (the fit) or `shots.json` (--fast). A rerun "
            "resumes.",
        ),
    ],
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="No training: the model's own map of every frame, scaled and shifted into "
            "its shot's first frame's values (fitted along optical flow onto the frame before, "
            "held to the first map's median and spread), filtered over time where the flow "
            "holds; each shot (scene cuts are found) on its own. About the model's own time a "
            "frame. With --json: a record per shot (frames, seconds, jitter), then the run's.",
        ),
    ] = False,
    model: ModelOption = None,
    offline: OfflineOption = False,
    kind: KindOption = None,
    layout: LayoutOption = None,
    model_size: ModelSizeOption = None,
    mean: MeanOption = None,
    std: StdOption = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="Per-frame maps: png16 (16-bit levels, near = bright, one range a shot: with "
            "--fast rewritten as the shot ends over the smallest range holding every frame's "
            "own 0.5th-99.5th percentiles, beyond which values clip; `shots.json` and each "
            "PNG hold the range), tiff or npy (float32 disparity, in the shot's first frame's "
            "values).",
        ),
    ] = "png16",
    steps: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Training steps (two frame triplets each; CPU: ~0.7 s a step), from the "
            "model's map of every frame (the best installed, or --model). Default: 500 "
            "(video/fit.py's TAUGHT_STEPS). Fit only.",
            show_default=False,
        ),
    ] = None,
    intrinsics: Annotated[
        str | None,
        typer.Option(
            help="Camera intrinsics `fx,fy,cx,cy` in pixels of the original frames. "
            "Default: fx = fy = 0.58 x width, centred. Fit only.",
            show_default=False,
        ),
    ] = None,
    calib: Annotated[
        str | None,
        typer.Option(
            help="KITTI-style calibration file (3x4 projection matrices, e.g. `P0:`). Fit only.",
            show_default=False,
        ),
    ] = None,
    masks: Annotated[
        str | None,
        typer.Option(
            help="Folder with one dynamic-object mask per frame (sorted; nonzero = moving). "
            "Default: found where the fitted rigid motion fails. Fit only.",
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            help="Fitting size WxH, multiples of 32. Default: long side 416. Fit only.",
            show_default=False,
        ),
    ] = None,
    device: VideoDeviceOption = "auto",
    preview: Annotated[
        str | None,
        typer.Option(
            help="Also write a colour-mapped H.264 depth video here (.mp4), at the input's "
            "frame rate (a variable-rate video: the average rate its header gives) and frame "
            "count.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Depth for every frame of a video, consistent over time.

    By default, fits a self-supervised depth network (started from the default coarse
    network, guided by the model's maps) and a pose network to the clip itself, first on the
    static scene, then with the ground-contact prior on moving objects; writes depth for
    every frame and the camera path.

    With --fast, trains nothing: the model's maps, aligned frame to frame along optical flow
    and filtered over time, streamed from the decoder (memory does not grow with the clip).

    A frame that cannot be decoded (a corrupt or truncated image or video) stops the run,
    naming it, after the maps (--fast) or the fit's caches of the frames before it are
    written; a rerun resumes there.
    """
    overrides = spec_overrides(kind, layout, model_size, mean, std)
    if fast:
        given = {"--intrinsics": intrinsics, "--calib": calib, "--masks": masks, "--size": size}
        for flag, value in given.items():
            if value is not None:
                fail(f"{flag} is for the fit; --fast fits nothing")
    elif device.lower() not in TORCH_DEVICES:  # before a model is pulled for nothing
        fail(f"--device {device}: the fit runs in torch; choose one of {', '.join(TORCH_DEVICES)}")
    depth_model = load_for_run(model, onnx_device(device), overrides, offline, quiet or json_out)
    suggest_better_model(depth_model, model, quiet or json_out)
    if fast:
        _fast(input_path, output, depth_model, fmt, preview, json_out, quiet)
        return
    from prodepth_cli.video.pipeline import AGREEMENT_NOTE, VideoOptions, video_depth  # torch

    options = VideoOptions(
        steps=steps,
        intrinsics=intrinsics,
        calib=calib,
        masks=masks,
        size=size,
        device=device,
        preview=preview,
        fmt=fmt,
    )
    with progress_bar(quiet) as bar:
        frames = bar.add_task("frames", total=None)
        fitting = bar.add_task("fitting", total=steps, visible=False)

        def on_step(step: int, total: int, loss: float, stage: str) -> None:
            description = f"fitting ({stage}) {loss:.4f}"
            bar.update(fitting, completed=step, total=total, visible=True, description=description)

        report = video_depth(
            input_path,
            output,
            options,
            on_frames=lambda n: bar.update(frames, total=n, completed=n),
            on_frame=lambda: bar.advance(frames),
            on_step=on_step,
            model=depth_model,
        )
    if json_out:
        for shot in report.shots:
            emit_json(shot)
        emit_json(report.record)
        return
    fit = report.fit
    for shot in report.shots:
        agreement = shot["agreement_with_model"]
        if agreement is not None and agreement < AGREEMENT_NOTE:
            note(
                f"note: frames {shot['first']}-{shot['last']}: the fit ranks depth unlike the "
                f"model (rank correlation {agreement:.2f}); its camera motion may be wrong "
                "(check --intrinsics); compare with --fast",
                quiet,
            )
    resumed = f", resumed at step {fit.resumed_from}" if fit.resumed_from else ""
    shots = f" in {len(fit.shots.starts)} shots" if len(fit.shots.starts) > 1 else ""
    note(
        f"{report.input} -> {report.output}: {report.frames} depth maps{shots} "
        f"({report.width}x{report.height}), {fit.steps_run} steps{resumed} "
        f"at {report.fit_size[0]}x{report.fit_size[1]} on {report.device}, "
        f"masks: {fit.mask_source}, {fit.seconds:.0f} s",
        quiet,
    )


def _fast(
    input_path: str,
    output: str,
    depth_model: DepthModel,
    fmt: str,
    preview: str | None,
    json_out: bool,
    quiet: bool,
) -> None:
    """`--fast`: no torch on this path (`video.fast` is torch-free)."""
    from prodepth_cli.video.fast import FastOptions, ShotReport, fast_video_depth

    def on_shot(shot: ShotReport) -> None:
        if json_out:
            emit_json(shot.record)

    with progress_bar(quiet) as bar:
        frames = bar.add_task("frames", total=None)
        report = fast_video_depth(
            input_path,
            output,
            depth_model,
            FastOptions(fmt, preview),
            on_start=lambda n: bar.update(frames, total=n),
            on_frame=lambda: bar.advance(frames),
            on_shot=on_shot,
        )
    record = report.record
    if json_out:
        emit_json(record)
        return
    resumed = f", {report.resumed} found written" if report.resumed else ""
    pace = record["seconds_per_frame"]
    jitter = record["jitter"]
    note(
        f"{report.input} -> {report.output}: {report.frames} depth maps "
        f"({report.width}x{report.height}){resumed}, {len(report.shots)} shot(s), "
        + (f"{pace:.2f} s a frame" if pace is not None else "nothing to run")
        + (
            f", jitter {jitter:.4f} (frame by frame {record['jitter_frame_by_frame']:.4f})"
            if jitter is not None
            else ""
        ),
        quiet,
    )
