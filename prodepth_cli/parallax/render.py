"""One call per image: photograph + depth -> a parallax video (a "3D photo").

`ParallaxOptions` are the command's knobs; `make_clip` prepares a photograph once (levels,
edges snapped, the camera's poses, the zoom that keeps frames inside the photograph, all
placed where frames render: `samplers`) and `Clip.frame` ray-marches each frame
(`raymarch`); `parallax_array` runs it in memory (tests,
the Python API), `parallax_file` from an image file to a video file (`encode`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from prodepth_cli.depth_source import DepthSource, photo_depth
from prodepth_cli.errors import OptionError
from prodepth_cli.io.depth_map import DepthMapFile
from prodepth_cli.io.photo_stream import photo_meta
from prodepth_cli.io.read import open_image
from prodepth_cli.parallax.encode import ANIMATED, MAX_QUALITY, video_suffix, video_writer
from prodepth_cli.parallax.levels import map_levels, snap_edges
from prodepth_cli.parallax.paths import PATHS, CameraPose, camera_path, overscan
from prodepth_cli.parallax.raymarch import Ray, Sampler, View, render_frame
from prodepth_cli.parallax.samplers import frame_device, make_sampler
from prodepth_cli.stereo.render import max_ramp_for
from prodepth_cli.stereo.shift import check_convergence

FPS = 30.0  # an MP4's frames per second
ANIMATION_FPS = 20.0  # a GIF's or WebP's: a GIF's delays are hundredths (5 exactly)
LONG_SIDE = 1920  # an MP4's longest side at most (a photograph's own when smaller)
ANIMATION_LONG_SIDE = 480  # a GIF's or WebP's: every frame is held until it is encoded
MAX_AMOUNT = 20.0  # % of the width: far past what looks like a photograph (2-5 %)
MAX_FRAMES = 36000  # 20 minutes at 30 fps: a typo, not a parallax video


@dataclass(frozen=True)
class ParallaxOptions:
    """How a parallax video is made. `path`: the camera's (`paths.PATHS`); `seconds` and
    `fps` (None: FPS, ANIMATION_FPS for .gif/.webp); `size` the longest side in pixels (None:
    the photograph's up to LONG_SIDE, ANIMATION_LONG_SIDE for .gif/.webp); `amount` the
    shift between the map's nearest and farthest levels, % of the width, where the path
    reaches furthest; `convergence` the level (0 farthest .. 1 nearest) that stays in place;
    `device` where frames render (`samplers.frame_device`: auto, cpu, cuda, mps); `quality`
    the file's, 1 .. 100 (None: the format's default, `encode.video_writer`)."""

    path: str = "circle"
    seconds: float = 4.0
    fps: float | None = None
    size: int | None = None
    amount: float = 3.0
    convergence: float = 0.5
    device: str = "auto"
    quality: int | None = None

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise OptionError(f"--path {self.path}: choose one of {', '.join(PATHS)}")
        if not 0.0 < self.seconds <= 3600.0:
            raise OptionError(f"--seconds {self.seconds:g}: a length from 0 to 3600 seconds")
        if self.fps is not None and not 1.0 <= self.fps <= 240.0:
            raise OptionError(f"--fps {self.fps:g}: from 1 to 240 frames per second")
        if self.size is not None and not 16 <= self.size <= 8192:
            raise OptionError(f"--size {self.size}: the longest side, from 16 to 8192 pixels")
        if not 0.0 <= self.amount <= MAX_AMOUNT:
            raise OptionError(
                f"--amount {self.amount:g}: a percentage of the width from 0 to "
                f"{MAX_AMOUNT:g} (3 looks natural)"
            )
        check_convergence(self.convergence)
        if self.quality is not None and not 1 <= self.quality <= MAX_QUALITY:
            raise OptionError(f"--quality {self.quality}: from 1 (smallest) to {MAX_QUALITY}")
        if self.frame_count(False) > MAX_FRAMES:
            raise OptionError(f"--seconds x --fps: more than {MAX_FRAMES} frames")

    def rate(self, animated: bool) -> float:
        """Frames per second of an MP4 (`animated` False) or a GIF/WebP."""
        return self.fps or (ANIMATION_FPS if animated else FPS)

    def frame_count(self, animated: bool) -> int:
        return max(1, round(self.seconds * self.rate(animated)))

    def out_hw(self, photo_hw: tuple[int, int], animated: bool) -> tuple[int, int]:
        """The frames' (H, W): the photograph's aspect, the longest side `size` (default
        above), each side even (4:2:0 video)."""
        h, w = photo_hw
        long_side = self.size or min(max(h, w), ANIMATION_LONG_SIDE if animated else LONG_SIDE)
        scale = long_side / max(h, w)
        return max(2, round(h * scale / 2) * 2), max(2, round(w * scale / 2) * 2)


@dataclass
class Clip:
    """A photograph made ready for its frames: `rgb` `(Hs, Ws, 3)` uint8, `level` `(Hs, Ws)`
    float32 (0 farthest .. 1 nearest, edges snapped), `view`, one pose a frame, and where
    frames render: `torch_device` (`samplers.make_sampler`; None: numpy and OpenCV), where
    the photograph and its levels are placed once."""

    rgb: np.ndarray
    level: np.ndarray
    view: View
    poses: list[CameraPose]
    torch_device: str | None = None
    sampler: Sampler = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.sampler = make_sampler(self.rgb, self.level, self.view, self.torch_device)

    @property
    def renderer(self) -> str:
        """Where frames render, in words for reports: opencv, or torch:<device>."""
        return f"torch:{self.torch_device}" if self.torch_device else "opencv"

    def frame(self, i: int) -> np.ndarray:
        """Frame `i`, `(H, W, 3)` uint8 RGB (numpy, on the host)."""
        return render_frame(self.sampler, self.poses[i])


def plan_view(
    options: ParallaxOptions, out_hw: tuple[int, int], frames: int
) -> tuple[list[CameraPose], float]:
    """The poses of `frames` frames and the overscan (zoom >= 1) that keeps them inside."""
    poses = camera_path(options.path, frames, options.amount, options.convergence)
    try:
        zoom = overscan(poses, options.convergence, out_hw[1] / out_hw[0])
    except ValueError:
        raise OptionError(
            f"--amount {options.amount:g}: this path would look past the photograph's edges; "
            "take less"
        ) from None
    return poses, zoom


def make_clip(
    rgb: np.ndarray,
    disparity: np.ndarray,
    options: ParallaxOptions,
    out_hw: tuple[int, int],
    frames: int,
    map_width: int | None = None,
    torch_device: str | None = None,
) -> Clip:
    """Prepare `rgb` `(Hs, Ws, 3)` uint8 and its `disparity` `(Hs, Ws)` (larger = nearer, any
    units; levels over its own range) for `frames` frames of `out_hw` (H, W). `map_width`:
    the width the map was made at (soft edges span more of an upsampled map's pixels);
    `torch_device`: where frames render (`samplers.frame_device(options.device)`)."""
    poses, zoom = plan_view(options, out_hw, frames)
    view = View(out_hw, rgb.shape[:2], zoom, options.convergence)
    lo, hi = float(np.min(disparity)), float(np.max(disparity))
    travel = max(Ray(view, pose).travel_px() for pose in poses)
    max_ramp = max_ramp_for(rgb.shape[1], map_width or rgb.shape[1])
    level = snap_edges(map_levels(disparity, lo, hi), travel, max_ramp)
    return Clip(rgb, level, view, poses, torch_device)


def parallax_array(
    rgb: np.ndarray,
    disparity: np.ndarray,
    options: ParallaxOptions,
    out_hw: tuple[int, int] | None = None,
) -> np.ndarray:
    """The frames `(N, H, W, 3)` uint8 of an in-memory photograph: `rgb` `(Hs, Ws, 3)` uint8
    or float in [0, 1], `disparity` `(Hs, Ws)` (larger = nearer). `out_hw` default: the
    photograph's size (even), as an MP4's."""
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    out_hw = out_hw or options.out_hw(rgb.shape[:2], False)
    frames = options.frame_count(False)
    disparity = np.asarray(disparity, np.float32)
    device = frame_device(options.device)
    clip = make_clip(rgb, disparity, options, out_hw, frames, torch_device=device)
    return np.stack([clip.frame(i) for i in range(frames)])


@dataclass
class ParallaxReport:
    """What `parallax_file` did, for progress lines and `--json`."""

    width: int  # the photograph's
    height: int
    bits: int
    out_width: int
    out_height: int
    frames: int
    fps: float
    overscan: float  # the zoom that keeps every frame inside the photograph
    renderer: str  # where frames rendered: opencv, or torch:<device>
    depth: str  # the depth map's path, "embedded", or "model:<name>"
    depth_resized_from: tuple[int, int] | None  # a given map's size, where not the photograph's
    seconds: float  # taken to make it

    @property
    def video_seconds(self) -> float:
        return self.frames / self.fps


def parallax_file(
    src: str | Path,
    dst: str | Path,
    options: ParallaxOptions,
    depth_map: DepthMapFile | None = None,
    model_depth: DepthSource | None = None,
    data: bytes | None = None,
    started: Callable[[int], None] | None = None,
    advance: Callable[[], None] | None = None,
) -> ParallaxReport:
    """Render the image file `src` (or encoded `data` named `src`) as a parallax video at `dst`
    (.mp4, .gif or .webp), with the depth map given, `depth_map`, or, without one, the map
    the photograph carries (GDepth), else the depth model's (`model_depth`, run on the
    photograph at the video's size). `started(frames)` and `advance()` follow the frames (a
    progress bar). Nothing appears at `dst` until it is complete."""
    t0 = time.perf_counter()
    animated = video_suffix(dst) in ANIMATED
    device = frame_device(options.device)
    source = open_image(src, data, raw_bits=16)
    photo_hw = (source.height, source.width)
    out_hw = options.out_hw(photo_hw, animated)
    frames, fps = options.frame_count(animated), options.rate(animated)
    _, zoom = plan_view(options, out_hw, frames)
    # the photograph at the frames' size times the overscan: frames sample it 1:1
    thumb = source.thumbnail(min(max(photo_hw), math.ceil(max(out_hw) * zoom)))
    rgb = (thumb * 255.0 + 0.5).astype(np.uint8)
    depth = photo_depth(src, data, rgb.shape[:2], depth_map, model_depth, lambda: rgb)
    map_width = depth.resized_from[1] if depth.resized_from else None
    clip = make_clip(rgb, depth.disparity, options, out_hw, frames, map_width, device)
    # a map is read at the video's size; one not of the photograph's size is worth a word
    mismatch = depth.resized_from if depth.resized_from not in (None, photo_hw) else None
    if started is not None:
        started(frames)
    with video_writer(dst, fps, (out_hw[1], out_hw[0]), options.quality) as write:
        for i in range(frames):
            write(clip.frame(i))
            if advance is not None:
                advance()
    return ParallaxReport(
        photo_hw[1],
        photo_hw[0],
        photo_meta(source).bits,
        out_hw[1],
        out_hw[0],
        frames,
        fps,
        clip.view.overscan,
        clip.renderer,
        depth.name,
        mismatch,
        time.perf_counter() - t0,
    )
