"""A parallax video's file: H.264 MP4 (yuv420p, +faststart: phones and browsers play it) through
PyAV, or an animated GIF or WebP for web pages through Pillow; atomic either way.

The MP4 is `video.outputs.PreviewWriter`'s (FFmpeg writes it by path, then it is renamed). An
animation is encoded once all frames are in (Pillow writes a whole animation): frames are
kept in memory, which is why animations default to a small size. `quality` (1 .. 100, higher
is better and bigger) is x264's CRF for an MP4 (`mp4_crf`) and libwebp's quality for a WebP;
a GIF's 256 colours and dithering are what they are, so it does not apply there.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from prodepth_cli.errors import OutputError
from prodepth_cli.io.write import atomic_output
from prodepth_cli.video.outputs import PreviewWriter

SUFFIXES = (".mp4", ".gif", ".webp")
ANIMATED = (".gif", ".webp")
MAX_QUALITY = 100
MP4_QUALITY = 80  # CRF 18: visually lossless for a photograph's motion
# Lossy WebP for a web page: a 3 s, 480 px, 20 fps loop of examples/bartender.jpg is about
# 600 KB (quality 50: 940 KB, 80: 1.6 MB); the softening it costs hides in the motion.
WEBP_QUALITY = 25
# libwebp's effort, 0 .. 6: Pillow's default 0 makes files 1.5x as big; 6 takes 30x as long
# on an animation as 5 for 5 % less.
WEBP_METHOD = 5
_PALETTE_FRAMES = 8  # frames, evenly spread, whose colours make a GIF's one palette


def video_suffix(dst: str | Path) -> str:
    """The output's suffix, which chooses its format; OutputError for one we cannot write."""
    suffix = Path(dst).suffix.lower()
    if suffix not in SUFFIXES:
        raise OutputError(
            f"{dst}: cannot write {suffix or 'files without a suffix'} as a video "
            f"(choose {', '.join(SUFFIXES)})"
        )
    return suffix


def mp4_crf(quality: int | None) -> int:
    """x264's constant rate factor for `quality` 1 .. 100 (None: MP4_QUALITY): 51 - 0.41 q,
    so 80 is CRF 18 (the previews' default), 100 CRF 10, 50 CRF 30."""
    return round(51 - 0.41 * (MP4_QUALITY if quality is None else quality))


@contextlib.contextmanager
def video_writer(
    dst: str | Path, fps: float, size: tuple[int, int], quality: int | None = None
) -> Iterator[Callable[[np.ndarray], None]]:
    """A function taking the frames of the video at `dst` (`(H, W, 3)` uint8 RGB, `size`
    (W, H), even), one call each, in order; the file appears, complete, on a clean exit
    (nothing on an error: one line naming `dst`, a DiskFullError when the disk filled up).
    `quality`: see the module's notes (None: the format's default)."""
    if video_suffix(dst) == ".mp4":
        with PreviewWriter(Path(dst), fps, size, mp4_crf(quality)) as writer:
            yield writer.add_image
        return
    frames: list[np.ndarray] = []
    yield frames.append
    write_animation(dst, frames, fps, quality)


def write_animation(
    dst: str | Path, frames: list[np.ndarray], fps: float, quality: int | None = None
) -> None:
    """`frames` (`(H, W, 3)` uint8 RGB each) as an endlessly looping GIF or WebP at `dst`
    (by suffix), `fps` frames per second (a GIF's delays are whole hundredths of a second:
    20, 25, 50 fps are exact). One palette for all of a GIF's frames, so colours do not
    flicker between them. `quality`: a WebP's (None: WEBP_QUALITY); a GIF has none."""
    suffix = video_suffix(dst)
    delay_ms = 1000.0 / fps
    if suffix == ".gif":
        palette = _shared_palette(frames)
        images = [
            Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG)
            for f in frames
        ]
        options = {"format": "GIF", "duration": max(20, round(delay_ms / 10) * 10)}
    else:
        images = [Image.fromarray(f) for f in frames]
        options = {
            "format": "WEBP",
            "duration": round(delay_ms),
            "quality": WEBP_QUALITY if quality is None else quality,
            "method": WEBP_METHOD,
        }
    with atomic_output(dst) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], loop=0, **options)


def _shared_palette(frames: list[np.ndarray]) -> Image.Image:
    """A 256-colour palette image for all `frames`, from a few of them side by side."""
    step = max(1, len(frames) // _PALETTE_FRAMES)
    montage = np.concatenate(frames[::step][:_PALETTE_FRAMES], axis=1)
    return Image.fromarray(montage).quantize(256, method=Image.Quantize.MEDIANCUT)
