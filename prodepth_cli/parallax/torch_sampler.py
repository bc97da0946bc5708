"""Parallax frames on a GPU: `raymarch.Sampler` in torch (`grid_sample`), on any torch device.
Imported only where torch is installed (`samplers.make_sampler`)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from prodepth_cli.parallax.raymarch import View


class TorchSampler:
    """A photograph and its levels uploaded once to `device` (float32); every look is one
    `grid_sample` (bilinear, edges extended, pixel centres: align_corners) on the whole
    frame, and only each finished frame comes back, as uint8."""

    xp = torch

    def __init__(self, rgb: np.ndarray, level: np.ndarray, view: View, device: str):
        self.view, self.device = view, torch.device(device)
        hs, ws = view.src_hw
        h, w = view.out_hw
        # (1, C, Hs, Ws): grid_sample's layout; colours as float, rounded when they come back
        self._rgb = self._upload(rgb).permute(2, 0, 1)[None].float()
        self._level = self._upload(level)[None, None]
        self.u, self.v = (self._upload(g) for g in view.grid())
        self._cols = torch.arange(w, dtype=torch.float32, device=self.device)
        self._rows = torch.arange(h, dtype=torch.float32, device=self.device)[:, None]
        self._to_unit = (2.0 / max(1, ws - 1), 2.0 / max(1, hs - 1))  # pixels -> [-1, 1]

    def _upload(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array)).to(self.device)

    def look(self, matrix: np.ndarray) -> torch.Tensor:
        (a, b, c), (d, e, f) = matrix.tolist()
        x = self._cols * a + self._rows * b + c
        y = self._cols * d + self._rows * e + f
        return self.levels(x, y)

    def put(self, dst: torch.Tensor, mask: torch.Tensor, src: torch.Tensor | float) -> None:
        dst.copy_(torch.where(mask, src, dst))

    def levels(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self._sample(self._level, x, y)[0]

    def colours(self, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        rgb = self._sample(self._rgb, x, y).add_(0.5).clamp_(0.0, 255.0).to(torch.uint8)
        return rgb.permute(1, 2, 0).contiguous().cpu().numpy()

    def _sample(self, image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """`image` `(1, C, Hs, Ws)` at (x, y) (one shape S): `(C, *S)`."""
        sx, sy = self._to_unit
        grid = torch.stack((x * sx - 1.0, y * sy - 1.0), dim=-1).reshape(1, 1, -1, 2)
        out = F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out.reshape(image.shape[1], *x.shape)
