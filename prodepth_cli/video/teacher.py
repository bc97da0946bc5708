"""The user's depth model as the video fit's teacher: its map of every frame, computed once
from the frame at full size and cached beside the frames (`teacher.f16`), reused on a rerun.

The model sees each frame as `prodepth depth` would show it to it (full size, its own
working size and tiles), not the fitting-size thumbnail: a catalog model working at 518 px
would otherwise see a 128-px frame blown up. Each map is then shrunk to the fitting size
and normalised (median 0, mean absolute deviation 1): the fit uses it only up to a scale and
shift per frame, and float16 then holds any model's range.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.models.runtime import DepthModel, default_model_path, load_model
from prodepth_cli.pipeline import depth_array
from prodepth_cli.video.cache import open_cached
from prodepth_cli.video.frames import Clip, cached_clip, clip_cache_writer, clip_key, read_clip
from prodepth_cli.video.stream import Frame, FrameError, FrameStream, stopped

TEACHER_CACHE = "teacher.f16"  # `(N, h, w)` float16 normalised disparity, header beside it


def teacher_map(rgb: np.ndarray, model: DepthModel, size: tuple[int, int]) -> np.ndarray:
    """`(h, w)` float16 disparity (larger = nearer) of one full-size `(H, W, 3)` RGB frame by
    `model`, at `size` (`(w, h)`), normalised to median 0 and mean absolute deviation 1."""
    disp = depth_array(rgb, model)
    small = cv2.resize(disp, size, interpolation=cv2.INTER_AREA).astype(np.float64)
    med = np.median(small)
    spread = max(float(np.mean(np.abs(small - med))), 1e-12)
    return ((small - med) / spread).astype(np.float16)


def model_identity(model: DepthModel | None) -> dict:
    """What names the teacher in its cache's header: the model's file(s), sizes and times
    (None: the default model, found without loading it)."""
    if model is None:
        files = [default_model_path()]
    else:
        files = list(dict.fromkeys([model.tile_net.path, model.coarse_net.path]))
    return {"model": [(str(Path(f).resolve()), Path(f).stat().st_size) for f in files]}


def clip_and_teacher(
    src: str | Path,
    size: tuple[int, int] | None,
    folder: str | Path,
    model: DepthModel | None = None,
    on_frame: Callable[[], None] | None = None,
    device: str = "auto",
) -> tuple[Clip, np.memmap]:
    """The clip at the fitting size and the teacher's `(N, h, w)` maps, both memory-mapped
    from `folder` (made there as the frames stream when missing, else reused unread).

    model: the teacher (None: `load_model()`'s default on `device`, an onnxruntime device
    name, loaded only if maps are missing).
    The frames are decoded once when neither cache is there, and again only when the
    teacher's maps are missing for frames already cached (another model, a run cut short).
    A run stopped at a frame that cannot be decoded keeps the maps before it, and the
    model is not run on those again.
    """
    target = Path(folder) / TEACHER_CACHE
    teacher = model_identity(model)
    clip = cached_clip(src, size, folder)
    if clip is not None:
        cached = open_cached(target, {"frames": clip_key(src, size), **teacher})
        if cached is not None:
            return clip, cached[0]
    stream = FrameStream(src)
    writer = clip_cache_writer(stream, target, np.float16, {"size": size, **teacher})
    loaded: list[DepthModel] = [model] if model is not None else []

    def on_full(frame: Frame, fit: tuple[int, int]) -> None:
        if not writer.needs(frame.index, frame.key):
            return  # a run before this one made it, from the same frame
        if not loaded:
            loaded.append(load_model(device=device))
        writer.append(teacher_map(frame.rgb, loaded[0], fit), frame.key)

    try:
        if clip is None:
            clip = read_clip(src, size, on_frame, folder, on_full)
        else:  # frames cached, maps not (another model, a run cut short): stream again
            for frame in stream:
                on_full(frame, clip.size)
    except BaseException as exc:
        writer.close()
        if isinstance(exc, FrameError):
            raise stopped(exc, "cached") from None
        raise
    return clip, writer.finish({"frames": clip_key(src, size), **teacher})
