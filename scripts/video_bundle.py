"""A clip for the video fit on a GPU lease, in one .npz: the frames at the fitting size, the
shipped model's teacher maps, the intrinsics; what `gpu_session.py --video-fit` reads.

The device machine lacks PyAV and libvips, and a lease carries at most 64 MiB, the checkout
included: the clip is decoded and the teacher run here, on the CPU, and only the fit's inputs
travel, each frame and each map a lossless PNG (OpenCV, which the fit needs anyway, decodes
them): KITTI's clip 5 MiB, DAVIS's 14 (zlib over the raw arrays: 7 and 18).

    python3 scripts/video_bundle.py OUT_DIR [--data ../shared/data] [--cache DIR]

KITTI's clip is evaluation data: it travels only for the self-supervised fit, whose maps are
scored back here, never to train a model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodepth_cli.video.frames import Clip  # noqa: E402
from prodepth_cli.video.intrinsics import Intrinsics  # noqa: E402


@dataclass(frozen=True)
class BundledClip:
    """One clip as the lease fits it: `clip.rgb` `(N, h, w, 3)` uint8 at the fitting size,
    `teacher` `(N, h, w)` float16 (the model's disparity, normalised per frame), the
    intrinsics at the fitting size and where they came from."""

    clip: Clip
    teacher: np.ndarray
    intrinsics: Intrinsics
    intrinsics_origin: str


# name -> (frames, calibration file or None), under the reference data folder
CLIPS = {
    "kitti_odom_seqA": ("sequences/kitti_odom_seqA/image_l", "sequences/kitti_odom_seqA/calib.txt"),
    "davis_rollercoaster": ("sequences/davis_rollercoaster/davis_rollercoaster.mp4", None),
}


def save_bundle(path: Path, bundled: BundledClip) -> Path:
    """Write `bundled` to `path` (.npz; written beside and renamed into place)."""
    clip, k = bundled.clip, bundled.intrinsics
    if bundled.teacher.shape != clip.rgb.shape[:3]:
        raise ValueError(f"teacher maps {bundled.teacher.shape} for frames {clip.rgb.shape}")
    frames, frame_ends = _pngs(np.asarray(clip.rgb, np.uint8)[..., ::-1])  # OpenCV's BGR
    maps, map_ends = _pngs(np.asarray(bundled.teacher, np.float16).view(np.uint16))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.npz")
    np.savez(
        partial,
        frames_png=frames,
        frame_ends=frame_ends,
        teacher_png=maps,  # float16 bit patterns as 16-bit grey: exact
        teacher_ends=map_ends,
        names=np.array(clip.names),
        source=np.array(clip.source),
        original_wh=np.array([clip.width, clip.height]),
        fps=np.array(clip.fps),
        intrinsics=np.array([k.fx, k.fy, k.cx, k.cy]),  # pixels at the fitting size
        intrinsics_origin=np.array(bundled.intrinsics_origin),
    )
    partial.replace(path)
    return path


def load_bundle(path: Path) -> BundledClip:
    """The clip `save_bundle` wrote to `path`, all in memory (numpy and OpenCV read it):
    `rgb` `(N, h, w, 3)` uint8, `teacher` `(N, h, w)` float16."""
    with np.load(path) as z:
        rgb = _unpngs(z["frames_png"], z["frame_ends"], cv2.IMREAD_COLOR)[..., ::-1]
        teacher = _unpngs(z["teacher_png"], z["teacher_ends"], cv2.IMREAD_UNCHANGED)
        width, height = (int(v) for v in z["original_wh"])
        names = [str(n) for n in z["names"]]
        clip = Clip(
            str(z["source"]), np.ascontiguousarray(rgb), names, width, height, float(z["fps"])
        )
        fx, fy, cx, cy = (float(v) for v in z["intrinsics"])
        k = Intrinsics(fx, fy, cx, cy, *clip.size)
        return BundledClip(clip, teacher.view(np.float16), k, str(z["intrinsics_origin"]))


def _pngs(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`(N, h, w[, 3])` uint8 or uint16 images as lossless PNGs, end to end: the bytes `(B,)`
    uint8 and where each ends `(N,)`."""
    encoded = []
    for image in images:
        ok, png = cv2.imencode(
            ".png", np.ascontiguousarray(image), [cv2.IMWRITE_PNG_COMPRESSION, 9]
        )
        if not ok:
            raise ValueError(f"OpenCV could not encode a {image.shape} {image.dtype} PNG")
        encoded.append(png.ravel())
    return np.concatenate(encoded), np.cumsum([len(e) for e in encoded])


def _unpngs(data: np.ndarray, ends: np.ndarray, flags: int) -> np.ndarray:
    """The images `_pngs` encoded, stacked."""
    starts = np.concatenate([[0], ends[:-1]])
    images = [cv2.imdecode(data[a:b], flags) for a, b in zip(starts, ends, strict=True)]
    if any(image is None for image in images):
        raise ValueError("a bundled frame or map does not decode")
    return np.stack(images)


def bundle_clip(src: Path, calib: Path | None, cache: Path, model=None) -> BundledClip:
    """The clip at `src` (a video or a folder of frames) at the pipeline's fitting size, the
    teacher maps of `model` (None: the shipped default, on the CPU) made through `cache`
    (reused when it already holds them), and the intrinsics as `prodepth video` settles them
    (`--calib calib`, else its default)."""
    from prodepth_cli.video.pipeline import VideoOptions, clip_intrinsics
    from prodepth_cli.video.teacher import clip_and_teacher

    clip, teacher = clip_and_teacher(src, None, cache, model, device="cpu")
    k, origin = clip_intrinsics(clip, VideoOptions(calib=str(calib) if calib else None))
    if calib:
        origin = calib.name  # not this machine's path
    return BundledClip(clip, np.asarray(teacher), k, origin)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="Folder for <clip>.npz")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--cache", type=Path, help="Frame and teacher caches (default: a temp dir).")
    ap.add_argument("--clips", nargs="+", choices=sorted(CLIPS), default=list(CLIPS))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="video_bundle_") as tmp:
        cache = args.cache or Path(tmp)
        for name in args.clips:
            frames, calib = CLIPS[name]
            bundled = bundle_clip(
                args.data / frames, args.data / calib if calib else None, cache / name
            )
            path = save_bundle(args.out / f"{name}.npz", bundled)
            n, h, w = bundled.teacher.shape
            size = path.stat().st_size / 2**20
            print(f"{path}: {n} frames at {w}x{h}, {bundled.intrinsics_origin}, {size:.1f} MiB")


if __name__ == "__main__":
    main()
