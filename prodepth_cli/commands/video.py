"""`prodepth video`: a clip -> per-frame depth, fitted self-supervised to the clip itself."""

from __future__ import annotations

from typing import Annotated

import typer

from prodepth_cli.commands.common import (
    JsonOption,
    QuietOption,
    TorchDeviceOption,
    emit_json,
    guarded,
    note,
    progress_bar,
)


@guarded
def video(
    input_path: Annotated[
        str,
        typer.Argument(
            metavar="INPUT", help="A video file (OpenCV decoding) or a folder of frames."
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Output folder: `<frame>.png` per frame (16-bit, near = bright), "
            "`poses.txt`, `checkpoint.pt` (a rerun resumes from it).",
        ),
    ],
    steps: Annotated[
        int,
        typer.Option(min=1, help="Training steps (two frame triplets each); CPU: ~0.7 s a step."),
    ] = 1500,
    intrinsics: Annotated[
        str | None,
        typer.Option(
            help="Camera intrinsics `fx,fy,cx,cy` in pixels of the original frames. "
            "Default: fx = fy = 0.58 x width, centred.",
            show_default=False,
        ),
    ] = None,
    calib: Annotated[
        str | None,
        typer.Option(
            help="KITTI-style calibration file (3x4 projection matrices, e.g. `P0:`).",
            show_default=False,
        ),
    ] = None,
    masks: Annotated[
        str | None,
        typer.Option(
            help="Folder with one dynamic-object mask per frame (sorted; nonzero = moving). "
            "Default: found where the fitted rigid motion fails.",
            show_default=False,
        ),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            help="Fitting size WxH, multiples of 32. Default: long side 416.",
            show_default=False,
        ),
    ] = None,
    device: TorchDeviceOption = "auto",
    preview: Annotated[
        str | None,
        typer.Option(
            help="Also write a colour-mapped depth video here (.mp4).", show_default=False
        ),
    ] = None,
    json_out: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Depth for every frame of a video, consistent over time.

    Fits a self-supervised depth network (started from the default coarse network) and a
    pose network to the clip itself, first on the static scene, then with the
    ground-contact prior on moving objects; writes depth for every frame and the camera path.
    """
    from prodepth_cli.video.pipeline import VideoOptions, video_depth  # imports torch

    options = VideoOptions(steps, intrinsics, calib, masks, size, device, preview)
    with progress_bar(quiet) as bar:
        frames = bar.add_task("frames", total=None)
        fitting = bar.add_task("fitting", total=steps, visible=False)

        def on_step(step: int, total: int, loss: float, stage: str) -> None:
            bar.update(
                fitting, completed=step, visible=True, description=f"fitting ({stage}) {loss:.4f}"
            )

        report = video_depth(
            input_path,
            output,
            options,
            on_frames=lambda n: bar.update(frames, total=n, completed=n),
            on_frame=lambda: bar.advance(frames),
            on_step=on_step,
        )
    if json_out:
        emit_json(report.record)
        return
    fit = report.fit
    resumed = f", resumed at step {fit.resumed_from}" if fit.resumed_from else ""
    note(
        f"{report.input} -> {report.output}: {report.frames} depth maps "
        f"({report.width}x{report.height}), {fit.steps_run} steps{resumed} "
        f"at {report.fit_size[0]}x{report.fit_size[1]} on {report.device}, "
        f"masks: {fit.mask_source}, {fit.seconds:.0f} s",
        quiet,
    )
