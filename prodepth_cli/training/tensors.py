"""Numpy samples to network tensors (ImageNet normalisation, NCHW)."""

from __future__ import annotations

import numpy as np
import torch

from prodepth_cli.models.spec import IMAGENET_MEAN, IMAGENET_STD

_MEAN = np.array(IMAGENET_MEAN, np.float32)
_STD = np.array(IMAGENET_STD, np.float32)


def image_tensor(rgbs: list[np.ndarray]) -> torch.Tensor:
    """RGB `(H, W, 3)` float [0, 1] images -> `(B, 3, H, W)` ImageNet-normalised."""
    x = np.stack([(r - _MEAN) / _STD for r in rgbs]).transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def map_tensor(maps: list[np.ndarray]) -> torch.Tensor:
    """`(H, W)` maps -> `(B, 1, H, W)` (float32, or bool for masks)."""
    x = np.stack(maps)[:, None]
    if x.dtype != bool:
        x = x.astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(x))
