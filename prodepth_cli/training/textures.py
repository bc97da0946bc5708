"""Texture bank for the synthetic scenes: procedural patterns plus crops of real photographs.

Real textures come only from the folders the data README allows for this (`large/` Hubble
mosaics, the DAVIS roller-coaster video and the RGB images of `train/`, whose wood, fabric,
paper and carpet look like the surfaces of photographed scenes); without them the bank is
procedural only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

from prodepth_cli.data_root import SHARED_DATA
from prodepth_cli.training.realdata import list_pairs, pair_rgb

TEXTURE_SIZE = 512  # side of every bank texture, pixels
DAVIS_VIDEO = SHARED_DATA / "sequences" / "davis_rollercoaster" / "davis_rollercoaster.mp4"
LARGE_PHOTO = SHARED_DATA / "large" / "hubble_ngc1309_4637x4590.jpg"


def value_noise(rng: np.random.Generator, size: int, octaves: int = 5) -> np.ndarray:
    """Multi-octave value noise, `(size, size)` float32 in [0, 1]."""
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        cells = 2 ** (o + 2)
        grid = rng.random((cells, cells)).astype(np.float32)
        out += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= rng.uniform(0.4, 0.7)
    out /= total
    return np.clip((out - out.min()) / max(float(np.ptp(out)), 1e-6), 0, 1)


def procedural_texture(rng: np.random.Generator, size: int = TEXTURE_SIZE) -> np.ndarray:
    """One random procedural texture, `(size, size, 3)` float32 RGB in [0, 1]."""
    kind = rng.integers(0, 5)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 0:  # coloured noise
        g = value_noise(rng, size)
    elif kind == 1:  # stripes with noise
        freq = rng.uniform(4, 40)
        ang = rng.uniform(0, np.pi)
        g = 0.5 + 0.5 * np.sin(2 * np.pi * freq * (np.cos(ang) * xx + np.sin(ang) * yy))
        g = 0.7 * g + 0.3 * value_noise(rng, size)
    elif kind == 2:  # checker
        n = rng.integers(2, 16)
        g = ((np.floor(xx * n) + np.floor(yy * n)) % 2).astype(np.float32)
        g = 0.6 * g + 0.4 * value_noise(rng, size)
    elif kind == 3:  # bricks / tiles
        rows = rng.integers(3, 20)
        cols = rng.integers(2, 10)
        r = yy * rows
        shift = (np.floor(r) % 2) * 0.5
        c = xx * cols + shift
        mortar = (np.abs(r - np.round(r)) < 0.06) | (np.abs(c - np.round(c)) < 0.04)
        g = np.where(mortar, 0.15, 0.6 + 0.4 * value_noise(rng, size))
    else:  # smooth gradient blobs
        g = value_noise(rng, size, octaves=2)
    c0, c1 = rng.random(3), rng.random(3)
    tex = c0[None, None, :] * (1 - g[..., None]) + c1[None, None, :] * g[..., None]
    return tex.astype(np.float32)


def _davis_frames(step: int = 7) -> list[np.ndarray]:
    """Every `step`-th frame of the DAVIS video, RGB float32 in [0, 1]; [] when absent."""
    if not DAVIS_VIDEO.is_file():
        return []
    cap = cv2.VideoCapture(str(DAVIS_VIDEO))
    frames, i = [], 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i % step == 0:
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0)
        i += 1
    cap.release()
    return frames


def _large_photo() -> list[np.ndarray]:
    """The smallest Hubble mosaic shrunk to 1024 px, RGB float32; [] when absent."""
    if not LARGE_PHOTO.is_file():
        return []
    bgr = cv2.imread(str(LARGE_PHOTO), cv2.IMREAD_REDUCED_COLOR_4)
    if bgr is None:
        return []
    return [cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0]


class _TrainPhotos(Sequence[np.ndarray]):
    """The RGB images of the training pairs, each decoded when a crop picks it: all 200 held
    decoded at once took about 1 GB in every process that builds the bank."""

    def __init__(self) -> None:
        self.pairs = list_pairs()

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> np.ndarray:
        return pair_rgb(self.pairs[i])


def _crops(photos: Sequence[np.ndarray], rng: np.random.Generator, n: int) -> list[np.ndarray]:
    out = []
    for _ in range(n if photos else 0):
        img = photos[rng.integers(len(photos))]
        h, w = img.shape[:2]
        side = int(rng.uniform(0.25, 0.6) * min(h, w))
        y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = img[y : y + side, x : x + side]
        out.append(cv2.resize(crop, (TEXTURE_SIZE, TEXTURE_SIZE), interpolation=cv2.INTER_AREA))
    return out


@functools.lru_cache(maxsize=1)
def texture_bank(
    n_procedural: int = 48, n_real: int = 48, n_train: int = 96
) -> tuple[np.ndarray, ...]:
    """The bank: deterministic for a given data folder; RGB float32 `(512, 512, 3)` each."""
    rng = np.random.default_rng(12345)
    procedural = [procedural_texture(rng) for _ in range(n_procedural)]
    real = _crops(_davis_frames() + _large_photo(), rng, n_real)
    indoor = _crops(_TrainPhotos(), rng, n_train)
    return tuple(procedural + real + indoor)
