"""Training samples as numpy arrays: random crops of real pairs and synthetic renders.

A sample is (rgb `(H, W, 3)` float32 [0, 1], disparity `(H, W)` float32 larger = nearer,
loss mask `(H, W)` bool). Every function draws from the `rng` it is given, so a step's data
depend only on (seed, step) and a resumed run sees the same stream.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.training.realdata import cached_pair
from prodepth_cli.training.synthetic import render_scene

Sample = tuple[np.ndarray, np.ndarray, np.ndarray]
# a synthetic crop that is nearly all sky (disparity 0) has no depth to learn, and the affine-
# invariant losses blow up on it (the spread they normalise by is ~0): draw another
MIN_SOLID = 0.25


def resize_sample(sample: Sample, hw: tuple[int, int]) -> Sample:
    """Image by area averaging, disparity and mask by nearest neighbour (no mixed depths)."""
    rgb, disp, mask = sample
    size = (hw[1], hw[0])
    rgb = cv2.resize(
        rgb, size, interpolation=cv2.INTER_AREA if hw[0] < rgb.shape[0] else cv2.INTER_LINEAR
    )
    disp = cv2.resize(disp, size, interpolation=cv2.INTER_NEAREST)
    mask = cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
    return rgb, disp, mask


def random_crop(
    sample: Sample, hw: tuple[int, int], rng: np.random.Generator, min_scale: float = 0.5
) -> Sample:
    """A crop with the aspect of `hw` covering `min_scale`..1 of the largest such crop, resized
    to `hw`, flipped left-right half the time."""
    rgb, disp, mask = sample
    h, w = disp.shape
    aspect = hw[1] / hw[0]
    ch = min(h, int(w / aspect))
    scale = rng.uniform(min_scale, 1.0)
    ch = max(8, int(ch * scale))
    cw = min(w, int(ch * aspect))
    y = rng.integers(0, h - ch + 1)
    x = rng.integers(0, w - cw + 1)
    out = tuple(a[y : y + ch, x : x + cw] for a in (rgb, disp, mask))
    out = resize_sample(out, hw)
    if rng.random() < 0.5:
        out = tuple(np.ascontiguousarray(a[:, ::-1]) for a in out)
    return out


def jitter_colour(rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    """Brightness, contrast, per-channel gain and gamma jitter for real photographs, drawn
    now and applied to the crop it returns a function for: on the whole frame it was a
    fifth of a batch's data time."""
    gain = (rng.uniform(0.9, 1.1, 3) * rng.uniform(0.8, 1.2)).astype(np.float32)
    contrast, gamma = rng.uniform(0.8, 1.2), rng.uniform(0.85, 1.15)

    def jitter(rgb: np.ndarray) -> np.ndarray:
        rgb = rgb * gain
        mean = rgb.mean()
        return np.clip((rgb - mean) * np.float32(contrast) + mean, 0, 1) ** np.float32(gamma)

    return jitter


def real_crop(
    pairs: list[Path],
    weights: np.ndarray,
    rng: np.random.Generator,
    hw: tuple[int, int],
    min_scale: float,
) -> Sample:
    """A random crop of a real pair (see `random_crop`), its colours jittered."""
    pair = cached_pair(pairs[rng.choice(len(pairs), p=weights)])
    jitter = jitter_colour(rng)
    rgb, disp, mask = random_crop((pair.rgb, pair.disparity, pair.loss_mask), hw, rng, min_scale)
    return jitter(rgb), disp, mask


def synthetic_sample(seed: int, hw: tuple[int, int]) -> Sample:
    s = render_scene(seed, hw[0], hw[1])
    return s.rgb, s.disparity, s.valid


def mixed_sample(
    hw: tuple[int, int],
    rng: np.random.Generator,
    pairs: list[Path],
    weights: np.ndarray,
    real_fraction: float,
    min_scale: float = 0.5,
) -> Sample:
    """A real crop (probability `real_fraction`, when pairs exist) or a synthetic scene."""
    if pairs and rng.random() < real_fraction:
        return real_crop(pairs, weights, rng, hw, min_scale)
    while True:
        # render a little larger, then crop: varied field of view and object scale
        big = (
            int(hw[0] * rng.uniform(1.0, 1.4)) // 8 * 8,
            int(hw[1] * rng.uniform(1.0, 1.4)) // 8 * 8,
        )
        sample = random_crop(synthetic_sample(int(rng.integers(2**31)), big), hw, rng, 0.7)
        if (sample[1] > 0).mean() >= MIN_SOLID:
            return sample
