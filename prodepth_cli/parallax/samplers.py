"""Where a parallax video's frames are rendered: numpy and OpenCV on the CPU (`CpuSampler`),
or torch on a GPU (`torch_sampler.TorchSampler`); `frame_device` picks from `--device`.

torch is an optional extra (`train`, `dev`), imported here only to ask it for a GPU (any
--device but cpu). On the CPU, OpenCV's resampling is some 20x faster than torch's
(benchmarks/bench_parallax.py), so `auto` renders there unless torch sees a GPU.
"""

from __future__ import annotations

import cv2
import numpy as np

from prodepth_cli.errors import OptionError
from prodepth_cli.parallax.raymarch import Sampler, View
from prodepth_cli.torch_device import TORCH_DEVICES, choose_torch_device

GPUS = ("cuda", "mps")
_POINT_ROW = 1024  # points laid out in rows this long: OpenCV's maps are under 32767 a side


def frame_device(device: str) -> str | None:
    """`--device` -> the torch device frames are rendered on, or None: numpy and OpenCV on
    the CPU. auto: torch's GPU (cuda, then mps) when torch is installed and sees one, else
    None; cpu: None; cuda or mps: that, or one line saying why it cannot be."""
    device = device.lower()
    if device not in TORCH_DEVICES:
        raise OptionError(f"--device {device}: choose one of {', '.join(TORCH_DEVICES)}")
    if device == "cpu":
        return None
    try:
        import torch  # noqa: F401  (only whether it is there)
    except ImportError:
        if device == "auto":
            return None
        raise OptionError(
            f"--device {device}: frames render on a GPU through torch, which is not installed "
            "(pip install '.[train]'), or take --device cpu"
        ) from None
    chosen = choose_torch_device(device)
    return chosen if chosen in GPUS else None


def make_sampler(
    rgb: np.ndarray, level: np.ndarray, view: View, torch_device: str | None = None
) -> Sampler:
    """`rgb` `(Hs, Ws, 3)` uint8 and its `level` `(Hs, Ws)` float32 placed for the frames of
    `view`: on the CPU (`torch_device` None) or uploaded once to torch's `torch_device`
    (cuda, mps, or cpu: torch on the CPU, for tests and benchmarks)."""
    if torch_device is None:
        return CpuSampler(rgb, level, view)
    from prodepth_cli.parallax.torch_sampler import TorchSampler

    return TorchSampler(rgb, level, view, torch_device)


class CpuSampler:
    """A photograph and its levels for frames made with numpy and OpenCV (`raymarch.Sampler`):
    bilinear resampling with edges extended (OpenCV's weights are in 1/32 px steps)."""

    xp = np

    def __init__(self, rgb: np.ndarray, level: np.ndarray, view: View):
        self.rgb, self.level, self.view = rgb, level, view
        self.u, self.v = view.grid()

    def look(self, matrix: np.ndarray) -> np.ndarray:
        h, w = self.view.out_hw
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        return cv2.warpAffine(
            self.level, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE
        )

    def put(self, dst: np.ndarray, mask: np.ndarray, src: np.ndarray | float) -> None:
        np.copyto(dst, src, where=mask)

    def levels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _sample(self.level, x, y)

    def colours(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return _sample(self.rgb, x, y)


def _sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """`image` at (x, y) (float32, one 2-D shape, or points `(M,)` laid out as rows for
    OpenCV), bilinear, edges extended."""
    if x.ndim == 2:
        return cv2.remap(image, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = len(x)
    rows = -(-m // _POINT_ROW)
    pad = rows * _POINT_ROW - m
    grid = [np.pad(c, (0, pad), mode="edge").reshape(rows, _POINT_ROW) for c in (x, y)]
    return _sample(image, *grid).reshape(rows * _POINT_ROW, *image.shape[2:])[:m]
