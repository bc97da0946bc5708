"""Fitting the depth and pose networks to one clip, coarse to fine, resumable.

Stage 1 (static): monodepth2's objective on frame triplets (t-1, t, t+1) with the pixels of
known dynamic objects (`--masks`) left out of the photometric loss. Stage 2 (ground contact):
dynamic objects (given, else found from the stage-1 residual) stay out of the photometric
loss and the ground-contact smoothness (GDS) replaces the edge-aware one, so their disparity
follows the ground where they stand, and each frame's depth is pulled towards its
neighbours' (geometric consistency, SC-SfMLearner), which the photometric loss alone leaves
free to flicker. One depth network throughout; no cost volume (so no cost-volume
weighting): a single clip on a CPU leaves no room for a second network.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from prodepth_cli.errors import ModelError, OptionError
from prodepth_cli.training.checkpoint import save_checkpoint
from prodepth_cli.video.coarse_weights import coarse_net_from_onnx
from prodepth_cli.video.frames import Clip
from prodepth_cli.video.geometry import pose_matrix, project, sample_view
from prodepth_cli.video.intrinsics import Intrinsics
from prodepth_cli.video.losses import (
    SMOOTH_WEIGHT,
    Reprojection,
    depth_consistency,
    dilate,
    edge_aware_smoothness,
    ground_contact_smoothness,
    identity_error,
    reprojection_loss,
)
from prodepth_cli.video.masks import residual_masks
from prodepth_cli.video.nets import PoseNet, VideoDepthNet, sigmoid_to_depth, upsample_to
from prodepth_cli.video.temporal import fuse_depth

StepCallback = Callable[[int, int, float, str], None]  # step, total, loss, stage


@dataclass(frozen=True)
class FitConfig:
    """How long and how hard to fit. `fine_fraction` of the steps run the GDS stage."""

    steps: int = 1500
    batch: int = 2
    lr: float = 1e-4
    pose_lr: float = 2e-4
    fine_fraction: float = 0.3
    decay_at: float = 0.8  # learning rates drop tenfold for the last 20 % of the steps
    mask_dilation: int = 10  # 3x3 steps, as in the paper (at 640 px wide; scaled to width)
    seed: int = 0
    checkpoint_every: int = 100
    temporal_radius: int = 8  # neighbours each side fused into each frame's output depth
    consistency: float = 0.5  # weight of the neighbours' depth consistency (SC-SfMLearner)

    @property
    def fine_start(self) -> int:
        return int(round(self.steps * (1 - self.fine_fraction)))


@dataclass
class VideoFit:
    """What a fit produced, at the fitting size.

    disparity: `(N, h, w)` float32 inverse depth (units of the fit's arbitrary scale, larger
    = nearer), temporally fused (`temporal.fuse_depth`). steps: `(N-1, 4, 4)` camera motions
    `T_i_to_i+1`. masks: `(N, h, w)` uint8 dynamic-object masks used by the GDS stage (None
    when none were found or given).
    """

    disparity: np.ndarray
    steps: np.ndarray
    masks: np.ndarray | None
    mask_source: str  # "given", "automatic" or "none"
    steps_run: int
    resumed_from: int
    seconds: float
    losses: list[float] = field(default_factory=list)


@dataclass
class _Fitter:
    """A clip's frames and the two networks: the loss the loop minimises and what the
    outputs read back (disparity, camera motions, residuals for automatic masks)."""

    frames: torch.Tensor  # (N, 3, h, w) uint8
    k: torch.Tensor  # (1, 3, 3)
    depth: VideoDepthNet
    pose: PoseNet
    device: torch.device

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        return self.frames[idx].to(self.device, torch.float32) / 255.0

    def loss(
        self,
        target: int | torch.Tensor,
        exclude: torch.Tensor | None,
        objects: torch.Tensor | None,
        consistency: float = 0.0,
    ) -> tuple[torch.Tensor, Reprojection]:
        """Multi-scale loss for target frames `target` (indices with both neighbours):
        exclude = dynamic pixels out of the photometric loss, objects = GDS mask (None:
        edge-aware smoothness), consistency = weight of the neighbours' depth agreement."""
        idx = torch.as_tensor(target).view(-1)
        img = self.images(idx)
        prev, nxt = self.images(idx - 1), self.images(idx + 1)
        t_prev = pose_matrix(*self.pose(prev, img), invert=True)  # t -> t-1
        t_next = pose_matrix(*self.pose(img, nxt))  # t -> t+1
        k = self.k.expand(len(idx), 3, 3)
        hw = img.shape[-2:]
        identity = identity_error(img, [prev, nxt])
        total, first = img.new_zeros(()), None
        disps = self.depth(img)
        if consistency:
            with torch.no_grad():  # the neighbours' current depth, a target to agree with
                near = self.depth(torch.cat([prev, nxt]))[0]
                near = sigmoid_to_depth(upsample_to(near, hw)).chunk(2)
        for s, disp in enumerate(disps):
            depth = sigmoid_to_depth(upsample_to(disp, hw))
            landed = [project(depth, k, t) for t in (t_prev, t_next)]  # (grid, depth there)
            warped = [sample_view(v, g) for v, (g, _) in zip((prev, nxt), landed, strict=True)]
            rep = reprojection_loss(img, warped, identity, exclude)
            if consistency:
                gaps = [
                    depth_consistency(z, g, d, exclude)
                    for (g, z), d in zip(landed, near, strict=True)
                ]
                total = total + consistency * sum(gaps) / len(gaps)
            first = rep if first is None else first
            small = torch.nn.functional.interpolate(img, size=disp.shape[-2:], mode="area")
            if objects is None:
                smooth = edge_aware_smoothness(disp, small)
            else:
                obj = torch.nn.functional.adaptive_max_pool2d(objects, disp.shape[-2:])
                smooth = ground_contact_smoothness(disp, small, obj)
            total = total + rep.loss + SMOOTH_WEIGHT / 2**s * smooth
        return total / len(disps), first

    @torch.no_grad()
    def disparity(self, batch: int = 4) -> np.ndarray:
        """`(N, h, w)` inverse depth of every frame (finest scale, upsampled)."""
        self.depth.eval()
        out = []
        for i in range(0, len(self.frames), batch):
            img = self.images(torch.arange(i, min(i + batch, len(self.frames))))
            depth = sigmoid_to_depth(upsample_to(self.depth(img)[0], img.shape[-2:]))
            out.append((1 / depth)[:, 0].cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    @torch.no_grad()
    def motions(self, batch: int = 4) -> np.ndarray:
        """`(N-1, 4, 4)` camera motions T_i_to_i+1."""
        self.pose.eval()
        out = []
        for i in range(0, len(self.frames) - 1, batch):
            idx = torch.arange(i, min(i + batch, len(self.frames) - 1))
            out.append(pose_matrix(*self.pose(self.images(idx), self.images(idx + 1))).cpu())
        return torch.cat(out).double().numpy()

    @torch.no_grad()
    def residuals(self) -> np.ndarray:
        """`(N, h, w)` minimum-reprojection error of the static model per frame (the first
        and last frames borrow their neighbour's map: they have one source only)."""
        self.depth.eval()
        self.pose.eval()
        n = len(self.frames)
        errors = [self.loss(t, None, None)[1].error[0, 0].cpu().numpy() for t in range(1, n - 1)]
        return np.stack([errors[0], *errors, errors[-1]])


def build_nets(coarse_onnx: str | Path) -> tuple[VideoDepthNet, PoseNet]:
    """The depth net (grown from our coarse ONNX network) and a fresh pose net."""
    return VideoDepthNet(coarse_net_from_onnx(coarse_onnx)), PoseNet()


def fit_video(
    clip: Clip,
    intrinsics: Intrinsics,
    checkpoint: str | Path,
    coarse_onnx: str | Path,
    config: FitConfig = FitConfig(),
    masks: np.ndarray | None = None,
    device: str = "cpu",
    on_step: StepCallback | None = None,
) -> VideoFit:
    """Fit depth and pose to `clip` (intrinsics at the clip's fitting size), saving
    `checkpoint` every `config.checkpoint_every` steps and at the end; a checkpoint of the
    same clip and size found there is resumed. `masks`: `(N, h, w)` given dynamic masks."""
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    dev = torch.device(device)
    depth_net, pose_net = build_nets(coarse_onnx)
    frames = torch.from_numpy(clip.rgb).permute(0, 3, 1, 2).contiguous()
    k = torch.from_numpy(intrinsics.matrix())[None].to(dev)
    fitter = _Fitter(frames, k, depth_net.to(dev), pose_net.to(dev), dev)
    optimizer = torch.optim.Adam(
        [
            {"params": depth_net.parameters(), "lr": config.lr},
            {"params": pose_net.parameters(), "lr": config.pose_lr},
        ]
    )
    state = _load_state(Path(checkpoint), clip, intrinsics)
    mask_source = "given" if masks is not None else "none"
    if state is not None:
        depth_net.load_state_dict(state["depth"])
        pose_net.load_state_dict(state["pose"])
        optimizer.load_state_dict(state["optimizer"])
        if masks is None and state["masks"] is not None:
            masks, mask_source = _unpack(state["masks"], clip), "automatic"
        start = int(state["step"])
    else:
        depth_net.calibrate(fitter.images(torch.arange(0, len(clip), max(1, len(clip) // 8))))
        start = 0
    generator = torch.Generator().manual_seed(config.seed + start)
    dilation = max(1, round(config.mask_dilation * clip.size[0] / 640))
    losses = []

    def save(step: int) -> None:
        save_checkpoint(
            Path(checkpoint),
            {
                "kind": "video",
                "source": clip.source,
                "frames": len(clip),
                "size": list(clip.size),
                "config": asdict(config),
                "intrinsics": asdict(intrinsics),
                "depth": depth_net.state_dict(),
                "pose": pose_net.state_dict(),
                "optimizer": optimizer.state_dict(),
                "step": step,
                "masks": None if mask_source != "automatic" else np.packbits(masks),
            },
        )

    for step in range(start, config.steps):
        fine = step >= config.fine_start
        if fine and masks is None:
            masks = residual_masks(fitter.residuals())
            mask_source = "automatic"
        scale = 0.1 if step >= config.decay_at * config.steps else 1.0
        for group, lr in zip(optimizer.param_groups, (config.lr, config.pose_lr), strict=True):
            group["lr"] = lr * scale
        depth_net.train()
        pose_net.train()
        idx = torch.randint(1, len(clip) - 1, (config.batch,), generator=generator)
        exclude = objects = None
        if masks is not None:
            exclude = torch.from_numpy(masks[idx.numpy()])[:, None].float().to(dev)
            objects = dilate(exclude, dilation) if fine else None
        # consistency only once depth and motion are fitted: from scratch it is met most
        # cheaply by shrinking the camera's motion, and the fit collapses
        loss, _ = fitter.loss(idx, exclude, objects, config.consistency if fine else 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if on_step:
            on_step(step + 1, config.steps, losses[-1], "ground-contact" if fine else "static")
        if (step + 1) % config.checkpoint_every == 0:
            save(step + 1)
    if state is None or start < config.steps:
        save(max(start, config.steps))
    motions = fitter.motions()
    depth = fuse_depth(1 / fitter.disparity(), motions, intrinsics.matrix(), config.temporal_radius)
    return VideoFit(
        1 / depth,
        motions,
        masks,
        mask_source if masks is not None else "none",
        max(0, config.steps - start),
        start,
        time.perf_counter() - t0,
        losses,
    )


def _load_state(path: Path, clip: Clip, intrinsics: Intrinsics) -> dict | None:
    """The checkpoint at `path` when it belongs to this clip at this size, else None (no
    file) or OptionError (someone else's checkpoint: never overwrite it silently)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ModelError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(state, dict) or state.get("kind") != "video":
        raise OptionError(f"{path}: not a video checkpoint; choose another output folder")
    if state["frames"] != len(clip) or tuple(state["size"]) != tuple(clip.size):
        raise OptionError(
            f"{path}: checkpoint of {state['frames']} frames at "
            f"{state['size'][0]}x{state['size'][1]}, this clip has {len(clip)} at "
            f"{clip.size[0]}x{clip.size[1]}; remove it or choose another output folder"
        )
    fitted = Intrinsics(**state["intrinsics"])
    if not np.allclose(fitted.matrix(), intrinsics.matrix(), rtol=1e-4):
        raise OptionError(
            f"{path}: fitted with other intrinsics (fx {fitted.fx:.1f}, fy {fitted.fy:.1f} at "
            f"{fitted.width}x{fitted.height}); give the same --intrinsics/--calib to resume"
        )
    return state


def _unpack(bits: np.ndarray, clip: Clip) -> np.ndarray:
    n, (w, h) = len(clip), clip.size
    return np.unpackbits(bits)[: n * h * w].reshape(n, h, w)
