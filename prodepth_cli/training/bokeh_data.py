"""Training pairs for the bokeh network: real photographs rendered by the classical engine.

Sources (../shared/data, read in place): the frames of sequences/davis_rollercoaster, crops
of the very large photographs in large/, and the RGB images of train/ (7-Scenes frames
thinned out: they are one sequence). Never gt/ (the evaluation scenes) nor sequences/kitti_*.
Each photo is fitted into the network frame (1024x1536, landscape), its depth comes from a
depth model (`prodepth_cli.pipeline.depth_array`), and it is rendered at several random
focal planes and f-numbers. Held-back photos (`split="val"`) measure PSNR/SSIM.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyvips

from prodepth_cli.bokeh.focus import default_focus
from prodepth_cli.bokeh.lens import blur_scale, disparity_range, normalise_disparity, signed_coc
from prodepth_cli.bokeh.net_frame import FRAME_HW, fit_to_frame
from prodepth_cli.bokeh.render import render_bokeh
from prodepth_cli.data_root import SHARED_DATA
from prodepth_cli.errors import InputError

F_NUMBERS = (1.4, 2.0, 2.8, 4.0)


@dataclass(frozen=True)
class Photo:
    """One source photograph: where it comes from and its RGB uint8 pixels `(H, W, 3)`."""

    name: str
    rgb: np.ndarray


def _is_val(name: str) -> bool:
    """A stable ~12 % of the photos are held back for validation (by name hash)."""
    return zlib.crc32(name.encode()) % 8 == 0


def iter_photos(shared: Path = SHARED_DATA, split: str = "train") -> Iterator[Photo]:
    """Photos of `split` ("train" or "val") from the shared data, never gt/ or kitti;
    the three sources interleaved, so that any prefix of the stream mixes them."""
    sources = [_davis(shared, split), _large(shared, split), _train_images(shared, split)]
    while sources:
        for source in list(sources):
            photo = next(source, None)
            if photo is None:
                sources.remove(source)
            else:
                yield photo


def _davis(shared: Path, split: str) -> Iterator[Photo]:
    want_val = split == "val"
    video = shared / "sequences" / "davis_rollercoaster" / "davis_rollercoaster.mp4"
    cap = cv2.VideoCapture(str(video))
    i = 0
    while cap.isOpened():
        ok, frame = cap.read()
        if not ok:
            break
        name = f"davis_rollercoaster/{i:03d}"
        if i % 2 == 0 and _is_val(name) == want_val:
            yield Photo(name, frame[:, :, ::-1].copy())
        i += 1
    cap.release()


def _large(shared: Path, split: str) -> Iterator[Photo]:
    want_val = split == "val"
    rng = np.random.default_rng(0)
    for path in sorted((shared / "large").glob("*.jpg")):
        # crops at a few zoom levels of a shrink-on-load thumbnail (never decoded whole)
        for side in (2048, 4096):
            thumb = pyvips.Image.thumbnail(str(path), side, height=side, size="down").numpy()
            for k in range(3):
                name = f"large/{path.stem}/{side}/{k}"
                if _is_val(name) != want_val:
                    continue
                h, w = thumb.shape[:2]
                ch, cw = min(h, FRAME_HW[0]), min(w, FRAME_HW[1])
                y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
                yield Photo(name, np.ascontiguousarray(thumb[y : y + ch, x : x + cw, :3]))


def _train_images(shared: Path, split: str) -> Iterator[Photo]:
    want_val = split == "val"
    for j, path in enumerate(sorted((shared / "train").glob("*/*/rgb.*"))):
        source = path.parent.parent.name
        if source.startswith("7scenes") and j % 4:
            continue  # one sequence: thinned so that it does not dominate
        name = f"train/{source}/{path.parent.name}"
        if _is_val(name) == want_val:
            img = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if img is not None:
                yield Photo(name, img[:, :, ::-1].copy())


@dataclass
class Pair:
    """One training pair in the network frame: input `(h, w, 4)` float32 (sRGB + CoC /
    COC_SCALE) and target `(h, w, 3)` float32 sRGB rendered by the classical engine."""

    name: str
    x: np.ndarray
    y: np.ndarray


def render_pairs(photo: Photo, depth_fn, renders: int, seed: int) -> list[Pair]:
    """`renders` random focus / f-number renders of `photo` fitted into the network frame."""
    rng = np.random.default_rng(seed)
    fitted = fit_to_frame(photo.rgb.astype(np.float32) / 255.0)
    rgb = fitted.rgb
    disparity = depth_fn((rgb * 255 + 0.5).astype(np.uint8))
    lo, hi = disparity_range(disparity)
    d01 = normalise_disparity(disparity, lo, hi)
    subject = (default_focus(disparity) - lo) / (hi - lo)
    pairs = []
    for r in range(renders):
        focus01 = subject if r == 0 else float(rng.uniform(0.0, 1.0))
        k = blur_scale(float(rng.choice(F_NUMBERS)), *fitted.hw)  # as at inference
        coc = signed_coc(d01, focus01, k)
        target = render_bokeh(rgb, coc)
        pairs.append(Pair(f"{photo.name}#{r}", fitted.network_input(coc), target))
    return pairs


def random_crops(pair: Pair, hw: tuple[int, int], crop: int, n: int, seed: int):
    """`n` random `crop`x`crop` windows inside the photo's part `hw` of the frame:
    (x uint8 RGB, CoC float16 in frame px / COC_SCALE, y uint8 RGB), each `(n, crop, crop, c)`."""
    rng = np.random.default_rng(seed)
    ys = rng.integers(0, max(1, hw[0] - crop + 1), n)
    xs = rng.integers(0, max(1, hw[1] - crop + 1), n)
    win = [(slice(y, y + crop), slice(x, x + crop)) for y, x in zip(ys, xs, strict=True)]
    rgb = np.stack([pair.x[w][:, :, :3] for w in win])
    coc = np.stack([pair.x[w][:, :, 3] for w in win])
    y = np.stack([pair.y[w] for w in win])
    return _u8(rgb), coc.astype(np.float16), _u8(y)


def _u8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def build_dataset(
    out: Path, renders: int = 2, crops: int = 8, crop: int = 256, depth_model: Path | None = None
) -> int:
    """Render every training photo and keep `crops` random windows of each render in
    `out/train/NNNN.npz` (one file per photo); returns the number of windows."""
    from prodepth_cli.models.runtime import load_model
    from prodepth_cli.pipeline import depth_array

    model = load_model(depth_model, "cpu", **({"kind": "depth"} if depth_model else {}))
    folder = out / "train"
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, photo in enumerate(iter_photos(split="train")):
        hw = fit_to_frame(photo.rgb).hw
        parts = [
            random_crops(pair, hw, crop, crops, seed=1000 * i + j)
            for j, pair in enumerate(
                render_pairs(photo, lambda rgb: depth_array(rgb, model), renders, i)
            )
        ]
        x, c, y = (np.concatenate(z) for z in zip(*parts, strict=True))
        np.savez(folder / f"{i:04d}.npz", x=x, coc=c, y=y)
        n += len(x)
    if not n:
        raise InputError(f"{SHARED_DATA}: no photographs to render training windows from")
    return n
