"""Clip in, depth out: read the frames, settle the intrinsics and masks, fit, write every
output. `video_depth` is what the `prodepth video` command, tests and benchmarks call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prodepth_cli.errors import OptionError
from prodepth_cli.metrics import spearman
from prodepth_cli.models.runtime import DepthModel, load_model
from prodepth_cli.torch_device import choose_torch_device, onnx_device
from prodepth_cli.video.cache import FrameReader, read_by_frame
from prodepth_cli.video.coarse_weights import default_coarse_onnx
from prodepth_cli.video.consistency import frame_jitters, unit_levels
from prodepth_cli.video.cuts import Shots
from prodepth_cli.video.fast import FastOptions, FastReport, fast_video_depth
from prodepth_cli.video.fit import (
    COLD_STEPS,
    MASKS_FILE,
    TAUGHT_STEPS,
    FitConfig,
    StepCallback,
    VideoFit,
    default_config,
    fit_video,
)
from prodepth_cli.video.frames import Clip, parse_size, read_clip
from prodepth_cli.video.geometry import chain_poses
from prodepth_cli.video.intrinsics import (
    Intrinsics,
    default_intrinsics,
    parse_intrinsics,
    read_calib,
)
from prodepth_cli.video.masks import read_mask_folder
from prodepth_cli.video.outputs import shot_ranges, write_depth_frames, write_poses, write_preview
from prodepth_cli.video.shots import write_fit_shots
from prodepth_cli.video.teacher import clip_and_teacher

CHECKPOINT_NAME = "checkpoint.pt"
POSES_NAME = "poses.txt"


@dataclass(frozen=True)
class VideoOptions:
    """Everything `prodepth video` takes besides input and output folder."""

    steps: int | None = None  # None: TAUGHT_STEPS with a teacher model, else COLD_STEPS
    intrinsics: str | None = None  # "fx,fy,cx,cy" in pixels of the original frames
    calib: str | None = None  # KITTI-style calibration file
    masks: str | None = None  # folder: one dynamic-object mask per frame
    size: str | None = None  # "WxH" fitting size; default: long side 416, multiples of 32
    device: str = "auto"
    preview: str | None = None  # colour-mapped mp4
    coarse_model: str | None = None  # ONNX coarse network to start from (default: shipped)
    fast: bool = False  # no fit: the model's per-frame maps aligned along optical flow
    fmt: str = "png16"  # per-frame maps: png16 | tiff | npy


@dataclass
class VideoReport:
    """What `video_depth` wrote and how the fit went (the JSON record of the command)."""

    input: str
    output: str
    frames: int
    width: int
    height: int
    fit_size: tuple[int, int]
    intrinsics: str  # where they came from: flag, calib file, default
    device: str
    fit: VideoFit
    depth_files: list[str] = field(default_factory=list)
    poses: str = ""
    checkpoint: str = ""
    preview: str | None = None
    shots: list[dict] = field(default_factory=list)  # `shot_records`, printed before the run's

    @property
    def record(self) -> dict:
        return {
            "record": "run",
            "input": self.input,
            "output": self.output,
            "status": "ok",
            "frames": self.frames,
            "width": self.width,
            "height": self.height,
            "fit_size": list(self.fit_size),
            "intrinsics": self.intrinsics,
            "device": self.device,
            "steps_run": self.fit.steps_run,
            "resumed_from": self.fit.resumed_from,
            "final_loss": round(float(np.mean(self.fit.losses[-20:])), 5)
            if self.fit.losses
            else None,
            "masks": self.fit.mask_source,
            "shots": len(self.shots),
            "seconds": round(self.fit.seconds, 2),
            "poses": self.poses,
            "checkpoint": self.checkpoint,
            "preview": self.preview,
        }


def clip_intrinsics(clip: Clip, options: VideoOptions) -> tuple[Intrinsics, str]:
    """Intrinsics at the clip's fitting size and a word on where they came from."""
    if options.intrinsics and options.calib:
        raise OptionError("--intrinsics and --calib both given; choose one")
    if options.intrinsics:
        k, origin = parse_intrinsics(options.intrinsics, clip.width, clip.height), "flag"
    elif options.calib:
        k, origin = read_calib(options.calib, clip.width, clip.height), options.calib
    else:
        k, origin = default_intrinsics(clip.width, clip.height), "default (fx = 0.58 W)"
    return k.scaled_to(*clip.size), origin


# A fit whose maps rank the pixels this little like the model's own (median rank
# correlation over a shot) is flagged: on KITTI the fit and the shipped model agree at
# 0.76; on the DAVIS roller coaster (default intrinsics, a spinning camera) a fit went its
# own way at 0.44, its maps wrong where the model's are right (docs/video.md).
AGREEMENT_NOTE = 0.5
_AGREEMENT_FRAMES = 16  # frames of a shot compared with the model's maps, evenly spread


def shot_records(
    rgb: np.ndarray,
    disparity: FrameReader,
    shots: Shots,
    ranges: list[tuple[float, float]],
    clipped: bool,
    teacher: np.ndarray | None = None,
) -> list[dict]:
    """Each shot's record for `--json`, as `--fast` gives them: its frames and range, and
    the jitter of its maps as written (`consistency.jitter`, in fractions of its range;
    clipped to it for 16-bit maps), measured at the fitting size along the flow between
    the cached frames `rgb`, a frame at a time; with the model's maps (`teacher`), how much
    the fit agrees with them: the median rank correlation over up to 16 of its frames."""
    records = []
    for index, (frames, (lo, hi)) in enumerate(zip(shots.ranges, ranges, strict=True)):
        levels = (unit_levels(disparity[i], lo, hi, clipped) for i in frames)
        known = [v for v in frame_jitters(levels, (rgb[i] for i in frames)) if v is not None]
        agreement = None
        if teacher is not None:
            chosen = frames[:: max(1, len(frames) // _AGREEMENT_FRAMES)]
            ranks = [spearman(disparity[i], np.asarray(teacher[i], np.float32)) for i in chosen]
            agreement = round(float(np.median(ranks)), 3)
        records.append(
            {
                "record": "shot",
                "shot": index,
                "first": frames.start,
                "last": frames.stop - 1,
                "frames": len(frames),
                "range": [lo, hi],
                "jitter": round(float(np.mean(known)), 5) if known else None,
                "agreement_with_model": agreement,
            }
        )
    return records


def video_depth(
    src: str | Path,
    out_dir: str | Path,
    options: VideoOptions = VideoOptions(),
    config: FitConfig | None = None,
    on_frames: Callable[[int], None] | None = None,
    on_frame: Callable[[], None] | None = None,
    on_step: StepCallback | None = None,
    model: DepthModel | None = None,
) -> VideoReport | FastReport:
    """Fit depth to the clip `src` (video file or folder of frames) and write, into
    `out_dir`: `<frame>.png` per frame (16-bit, near = bright, one range for each shot: the
    shots are fitted apart, each on its own scale), `shots.json` (each shot's first frame
    and range, `shots.write_fit_shots`), `poses.txt` (KITTI 3x4 camera-to-world, the fit's
    scale, each shot's first frame at the origin: no motion joins two shots),
    `checkpoint.pt` (resumed when present), and `options.preview` when asked.

    `config` overrides the fitting settings (its `steps` wins over `options.steps`).
    `model`: the depth model whose map of every frame starts and guides the fit (the
    teacher; the command passes the best installed, the shipped model included), or None:
    the fit starts cold from the shipped coarse network, as it did before teachers (three
    times the steps, and on KITTI more jitter and less accuracy: docs/video.md). The
    frames at the fitting size and the teacher's maps are cached in `out_dir` (`frames.u8`,
    `teacher.f16`): a rerun reads neither the clip nor the model again.

    With `options.fast`, nothing is fitted: `fast.fast_video_depth` aligns the model's own
    maps over time (its report is returned; torch is not needed on that path).
    """
    if options.fast:
        model = model or load_model(device=onnx_device(options.device))
        fast = FastOptions(options.fmt, options.preview)
        start = (lambda n: on_frames(n) if n is not None else None) if on_frames else None
        return fast_video_depth(src, out_dir, model, fast, start, on_frame)
    if options.intrinsics:  # reject a malformed string before any decoding
        parse_intrinsics(options.intrinsics, 1, 1)
    steps = options.steps or (TAUGHT_STEPS if model is not None else COLD_STEPS)
    if steps < 1:
        raise OptionError(f"--steps {steps}: must be at least 1")
    size = parse_size(options.size) if options.size else None
    device = choose_torch_device(options.device)
    out = Path(out_dir)
    if model is not None:
        clip, teacher = clip_and_teacher(src, size, out, model, on_frame)
    else:
        clip, teacher = read_clip(src, size, on_frame, out), None
    if on_frames:
        on_frames(len(clip))
    k, origin = clip_intrinsics(clip, options)
    masks = None
    if options.masks:  # memory-mapped from the output folder, never whole in memory
        masks = read_mask_folder(options.masks, len(clip), clip.size, out / MASKS_FILE)
    checkpoint = out / CHECKPOINT_NAME
    config = config or default_config(model is not None, steps)
    coarse = options.coarse_model or default_coarse_onnx()
    fit = fit_video(clip, k, checkpoint, coarse, config, masks, device, on_step, teacher)
    original, shots = (clip.width, clip.height), fit.shots
    disparity = FrameReader(fit.disparity)  # a frame at a time: read again, never held
    # a range for each shot: one for the clip would let one shot's scale set another's levels
    ranges = shot_ranges(disparity, shots)
    files = write_depth_frames(disparity, clip.names, out, original, options.fmt, shots, ranges)
    write_fit_shots(out, options.fmt, len(clip), shots.starts, ranges)
    poses = out / POSES_NAME
    write_poses(poses, chain_poses(list(fit.steps), shots.starts))
    preview = None
    if options.preview:
        write_preview(Path(options.preview), disparity, clip.fps, original, shots, ranges)
        preview = str(options.preview)
    rgb, maps = read_by_frame(clip.rgb), teacher if teacher is None else read_by_frame(teacher)
    records = shot_records(rgb, disparity, shots, ranges, options.fmt == "png16", maps)
    return VideoReport(
        str(src),
        str(out),
        len(clip),
        clip.width,
        clip.height,
        clip.size,
        origin,
        device,
        fit,
        [str(f) for f in files],
        str(poses),
        str(checkpoint),
        preview,
        records,
    )
