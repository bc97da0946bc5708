"""Fitting the depth and pose networks to one clip, coarse to fine, resumable.

Stage 1 (static): monodepth2's objective on frame triplets (t-1, t, t+1) with the pixels of
known dynamic objects (`--masks`) left out of the photometric loss. Stage 2 (ground contact):
dynamic objects (given, else found from the stage-1 residual) stay out of the photometric
loss and the ground-contact smoothness (GDS) replaces the edge-aware one, so their disparity
follows the ground where they stand, and each frame's depth is pulled towards its
neighbours' (geometric consistency, SC-SfMLearner), which the photometric loss alone leaves
free to flicker. One depth network throughout; no cost volume (so no cost-volume
weighting): a single clip on a CPU leaves no room for a second network.

Once fitted, each camera motion is refined against the fitted depth (`motion_refine.py`)
and each frame's depth fused with its neighbours' along the motions (`temporal.py`).

A clip with scene cuts (`cuts.find_shots`, `--fast`'s criteria) is fitted as one, its shots
kept apart inside the fit: triplets, first motions, the teacher's scale, the smoothed
levels, the automatic masks' residuals and the temporal fusion each stay within a shot. A
shot under 3 frames has no triplet: its frames are not fitted on, nor fused, and keep the
net's own map.

With a teacher (the user's depth model's map of every frame, `video/teacher.py`) the fit
starts from the teacher's maps, first put on one scale for each shot along optical flow
(`steady_teacher.py`): the net's output plus a per-frame offset that makes it each teacher
map brought by one affine for its shot to the net's values there at step 0, an offset that
fades out over the first half of the steps; the camera motion starts from tracked corners
(`first_motion.py`) in the units of that depth. It keeps a scale-and-shift-invariant L1 to
the teacher over the first half, stronger where the photometric loss says little (pixels the
auto-mask drops, dynamic objects, what no neighbour sees), and each frame's mean disparity
near its start's, smoothed over time within its shot. Measured on KITTI with the shipped
model as teacher (docs/video.md): 500 steps give the cold start's temporal alignment after
1500 and most of its accuracy, not yet its smoothness.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from prodepth_cli.errors import InputError, ModelError, OptionError
from prodepth_cli.training.checkpoint import save_checkpoint
from prodepth_cli.video.cache import (
    FrameReader,
    read_by_frame,
    remove_frame_array,
    write_frame_array,
)
from prodepth_cli.video.coarse_weights import coarse_net_from_onnx
from prodepth_cli.video.cuts import Shots, find_shots
from prodepth_cli.video.first_motion import first_motions, steadied_steps
from prodepth_cli.video.frames import Clip
from prodepth_cli.video.geometry import (
    invert_rigid,
    lands_inside,
    pose_matrix,
    project,
    sample_view,
)
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
    teacher_loss,
)
from prodepth_cli.video.masks import residual_mask
from prodepth_cli.video.motion_refine import REFINE_STEPS, refined_motions
from prodepth_cli.video.nets import PoseNet, VideoDepthNet, sigmoid_to_depth, upsample_to
from prodepth_cli.video.steady_teacher import clip_statistics, steady_affines
from prodepth_cli.video.temporal import fused_frames

StepCallback = Callable[[int, int, float, str], None]  # step, total, loss, stage
COLD_STEPS = 1500  # the default without a teacher: from the coarse network alone
TAUGHT_STEPS = 500  # the default with one: a third of COLD_STEPS
START_CACHE = "start.f16"  # per-frame logit offsets that start the fit at the teacher
# The fit's per-frame arrays at the fitting size, beside the checkpoint and memory-mapped,
# so that the fit's memory does not grow with the clip: dynamic masks (given or found),
# the fused disparity the outputs are written from, and the net's depth before fusion (a
# scratch file, removed once fused).
MASKS_FILE = "masks.u8"
DISPARITY_FILE = "disparity.f32"
_DEPTH_SCRATCH = "depth.f32"
_FUSED_SCRATCH = "fused.f32"  # the depth fused along a round's motions, for the next round
# Sigmoid range the aligned teacher is clipped to before its logit (depth 100 to 0.1).
_SIGMOID_RANGE = (1e-12, 1 - 1e-6)
_EASE = 0.05  # the start's softplus knee, as a fraction of the frame's median sigmoid


@dataclass(frozen=True)
class FitConfig:
    """How long and how hard to fit. `fine_fraction` of the steps run the GDS stage. The
    defaults are the cold start's but for `steps`; `default_config` gives each start its own.
    The teacher's settings are ignored without a teacher."""

    steps: int = TAUGHT_STEPS
    batch: int = 2
    lr: float = 1e-4
    pose_lr: float = 2e-4
    fine_fraction: float = 0.3
    decay_at: float = 0.8  # learning rates drop tenfold for the last 20 % of the steps
    mask_dilation: int = 10  # 3x3 steps, as in the paper (at 640 px wide; scaled to width)
    seed: int = 0
    checkpoint_every: int = 100
    # Neighbours each side fused into each frame's output depth. 16, not 8: on KITTI (from
    # the model, seeds 0 / 1) jitter 0.0084 / 0.0090 -> 0.0082 / 0.0087, TAE 0.029 / 0.031
    # -> 0.026 / 0.029, rho 0.767 / 0.751 -> 0.784 / 0.766; DAVIS 0.0261 -> 0.0251; the cold
    # start unchanged (0.0070 / 0.028 / 0.771 -> 0.0071 / 0.027 / 0.772). Beyond, the
    # cold start loses it again (32, with the edges faded: 0.0068 -> 0.0072); the fit from
    # the model gains more (`default_config`).
    temporal_radius: int = 16
    consistency: float = 0.5  # weight of the neighbours' depth consistency (SC-SfMLearner)
    teacher: float = 0.1  # weight of the scale-and-shift-invariant L1 to the teacher
    # ...which fades to nothing over this fraction of the steps (0: kept throughout): the
    # teacher is as good as the shipped model, and the clip soon teaches better (KITTI, 500
    # steps: rank correlation 0.714 kept, 0.741 faded; docs/video.md)
    teacher_fade: float = 0.5
    teacher_weak: float = 4.0  # extra teacher weight where the photometric signal is weak
    # The teacher's loss leaves each frame's scale free, and the photometric loss alone
    # drifts to the far bound (nothing moves; measured: every KITTI depth at 95-100 after
    # 300 steps): each frame's log mean disparity is held to its start's, in the units of
    # the first motions.
    scale_anchor: float = 1.0
    # ...which fades to nothing over this fraction of the steps (0: kept throughout): needed
    # while the motion is being found (faded over the first half, KITTI collapsed: rho
    # 0.34), it then holds each frame to the teacher's level against its neighbours'.
    anchor_fade: float = 0.0
    # The first motions' step lengths smoothed over time within a shot (a Gaussian of this
    # many steps, in log; 0: as tracked): a camera's speed changes smoothly, the step length
    # measured from 416-px corners and one frame's depth does not.
    step_smooth: float = 0.0
    # The levels held to are the start's smoothed over time (a Gaussian of this many frames):
    # what is left of the teacher's frame-to-frame flicker after `steady_teacher` stays out.
    level_smooth: float = 4.0
    depth_warmup: float = 0.15  # with a teacher: depth frozen this fraction, then ramped
    # The start offsets carry the teacher's own flicker: they fade to nothing over this
    # fraction of the steps (0: kept), leaving the net's maps, steady from frame to frame.
    start_fade: float = 0.5
    # Adam steps refining each camera motion against the fitted depth before the temporal
    # fusion (`motion_refine.py`; 0: the pose net's motions as they are)
    refine_steps: int = REFINE_STEPS
    # Rounds of that refinement: the first against the net's depth, each next one against
    # the depth fused along the last round's motions (steadier, so the motions that carry it
    # best are nearer the clip's). Two: jitter 0.0082 / 0.0087 -> 0.0079 / 0.0085 (KITTI,
    # seeds 0 / 1; TAE and rho the same), DAVIS 0.0251 -> 0.0245, for 15 % / 30 % more
    # time; a third changes nothing.
    refine_rounds: int = 2

    def depth_ramp(self, step: int) -> float:
        """The depth net's learning-rate factor at `step` when starting from a teacher: the
        depth is already sensible there, the fresh pose net is not, so the depth waits
        (`depth_warmup` of the steps) while the first motions are found rather than bend
        to fit random ones, then its rate ramps up over as many steps (Adam's first steps
        move every weight by the full rate and would wipe the start out)."""
        wait = self.depth_warmup * self.steps
        return min(1.0, max(0.0, (step - wait) / max(wait, 1.0)))

    def start_weight(self, step: int) -> float:
        """How much of the start offsets the depth carries at `step`."""
        return _fading(step, self.start_fade * self.steps)

    def anchor_weight(self, step: int) -> float:
        """The scale hold's weight at `step`."""
        return self.scale_anchor * _fading(step, self.anchor_fade * self.steps)

    def teacher_weight(self, step: int) -> float:
        """The teacher loss's weight at `step`."""
        return self.teacher * _fading(step, self.teacher_fade * self.steps)

    @property
    def fine_start(self) -> int:
        return int(round(self.steps * (1 - self.fine_fraction)))


@dataclass
class VideoFit:
    """What a fit produced, at the fitting size.

    disparity: `(N, h, w)` float32 inverse depth (units of the fit's arbitrary scale, larger
    = nearer), temporally fused (`temporal.fused_frames`), memory-mapped read-only from
    `DISPARITY_FILE` beside the checkpoint; each shot on a scale of its own. steps:
    `(N-1, 4, 4)` camera motions `T_i_to_i+1`, the identity across a cut. masks: `(N, h, w)`
    uint8 dynamic-object masks used by the GDS stage (None when none were found or given),
    memory-mapped when found (`MASKS_FILE`). shots: the clip's shots, fitted apart.
    """

    disparity: np.ndarray
    steps: np.ndarray
    masks: np.ndarray | None
    mask_source: str  # "given", "automatic" or "none"
    steps_run: int
    resumed_from: int
    seconds: float
    shots: Shots
    losses: list[float] = field(default_factory=list)


@dataclass
class _Fitter:
    """A clip's frames and the two networks: the loss the loop minimises and what the
    outputs read back (disparity, camera motions, residuals for automatic masks)."""

    frames: np.ndarray  # (N, h, w, 3) uint8, in memory or memory-mapped
    k: torch.Tensor  # (1, 3, 3)
    depth: VideoDepthNet
    pose: PoseNet
    device: torch.device
    teacher: np.ndarray | None = None  # (N, h, w) the teacher's disparity (any affine)
    start: np.ndarray | None = None  # (N, h, w) logit offsets: net + offset = teacher at 0
    start_weight: float = 1.0  # how much of the offsets is added (they may fade out)
    prior: torch.Tensor | None = None  # (N-1, 4, 4) first guess of T_i_to_i+1
    start_level: torch.Tensor | None = None  # (N,) log mean sigmoid of each frame's start
    scale_anchor: float = 0.0
    teacher_weight: float = 0.0
    teacher_weak: float = 0.0
    shots: Shots | None = None  # None: the clip is one shot

    @property
    def clip_shots(self) -> Shots:
        return self.shots or Shots(len(self.frames))

    def images(self, idx: torch.Tensor) -> torch.Tensor:
        rgb = torch.from_numpy(np.stack([self.frames[i] for i in idx.tolist()]))
        return rgb.permute(0, 3, 1, 2).to(self.device, torch.float32) / 255.0

    def motion(self, idx: torch.Tensor, first: torch.Tensor, second: torch.Tensor):
        """`(B, 4, 4)` T_i_to_i+1 for frames `idx` (images `first`) and the next (`second`):
        the pose net's, applied after the first guess when there is one."""
        move = pose_matrix(*self.pose(first, second))
        return move if self.prior is None else move @ self.prior[idx]

    @torch.no_grad()
    def start_depth(self, i: int) -> np.ndarray:
        """`(h, w)` depth of frame `i` as the net gives it now (the start, before fitting)."""
        self.depth.eval()
        idx = torch.tensor([i])
        full = self.sigmoids(idx, self.images(idx), finest=True)[0][1]
        return sigmoid_to_depth(full)[0, 0].cpu().numpy()

    def _maps(self, maps: np.ndarray, idx: torch.Tensor) -> torch.Tensor:
        chosen = np.stack([maps[i] for i in idx.tolist()]).astype(np.float32)
        return torch.from_numpy(chosen)[:, None].to(self.device)

    def sigmoids(
        self, idx: torch.Tensor, img: torch.Tensor, finest: bool = False
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each scale's sigmoid disparity, at its own size and upsampled to the frames'
        (`(B, 1, h, w)` each), finest first; only the finest when `finest`. With a start,
        its offsets are added to the logits (at full size; area-shrunk for the small one)."""
        logits = self.depth.logits(img)[: 1 if finest else None]
        hw = img.shape[-2:]
        if self.start is None or not self.start_weight:
            return [(d, upsample_to(d, hw)) for d in map(torch.sigmoid, logits)]
        offset = self.start_weight * self._maps(self.start, idx)
        return [
            (
                torch.sigmoid(logit + F.interpolate(offset, size=logit.shape[-2:], mode="area")),
                torch.sigmoid(upsample_to(logit, hw) + offset),
            )
            for logit in logits
        ]

    def loss(
        self,
        target: int | torch.Tensor,
        exclude: torch.Tensor | None,
        objects: torch.Tensor | None,
        consistency: float = 0.0,
    ) -> tuple[torch.Tensor, Reprojection]:
        """Multi-scale loss for target frames `target` (indices with both neighbours):
        exclude = dynamic pixels out of the photometric loss, objects = GDS mask (None:
        edge-aware smoothness), consistency = weight of the neighbours' depth agreement;
        plus the teacher's term when there is one."""
        idx = torch.as_tensor(target).view(-1)
        img = self.images(idx)
        prev, nxt = self.images(idx - 1), self.images(idx + 1)
        t_prev = invert_rigid(self.motion(idx - 1, prev, img))  # t -> t-1
        t_next = self.motion(idx, img, nxt)  # t -> t+1
        k = self.k.expand(len(idx), 3, 3)
        identity = identity_error(img, [prev, nxt])
        total, first = img.new_zeros(()), None
        disps = self.sigmoids(idx, img)
        if consistency:
            with torch.no_grad():  # the neighbours' current depth, a target to agree with
                near = [
                    sigmoid_to_depth(self.sigmoids(i, self.images(i), finest=True)[0][1])
                    for i in (idx - 1, idx + 1)
                ]
        for s, (disp, full) in enumerate(disps):
            depth = sigmoid_to_depth(full)
            landed = [project(depth, k, t) for t in (t_prev, t_next)]  # (grid, depth there)
            warped = [sample_view(v, g) for v, (g, _) in zip((prev, nxt), landed, strict=True)]
            rep = reprojection_loss(img, warped, identity, exclude)
            if consistency:
                gaps = [
                    depth_consistency(z, g, d, exclude)
                    for (g, z), d in zip(landed, near, strict=True)
                ]
                total = total + consistency * sum(gaps) / len(gaps)
            if first is None:
                first = rep
                if self.teacher is not None and self.teacher_weight:
                    seen = torch.maximum(*(lands_inside(g).float() for g, _ in landed))
                    weak = torch.maximum(1 - rep.kept, 1 - seen)
                    if exclude is not None:
                        weak = torch.maximum(weak, exclude)
                    weight = 1 + self.teacher_weak * weak
                    taught = teacher_loss(full, self._maps(self.teacher, idx), weight)
                    total = total + len(disps) * self.teacher_weight * taught
                if self.start_level is not None and self.scale_anchor:
                    level = full.mean((1, 2, 3)).log()
                    drift = (level - self.start_level[idx]).abs().mean()
                    total = total + len(disps) * self.scale_anchor * drift
            small = torch.nn.functional.interpolate(img, size=disp.shape[-2:], mode="area")
            if objects is None:
                smooth = edge_aware_smoothness(disp, small)
            else:
                obj = torch.nn.functional.adaptive_max_pool2d(objects, disp.shape[-2:])
                smooth = ground_contact_smoothness(disp, small, obj)
            total = total + rep.loss + SMOOTH_WEIGHT / 2**s * smooth
        return total / len(disps), first

    @torch.no_grad()
    def disparities(self, batch: int = 4) -> Iterator[np.ndarray]:
        """Each frame's `(h, w)` float32 inverse depth (finest scale, upsampled), in order,
        `batch` frames computed at a time."""
        self.depth.eval()
        for i in range(0, len(self.frames), batch):
            idx = torch.arange(i, min(i + batch, len(self.frames)))
            full = self.sigmoids(idx, self.images(idx), finest=True)[0][1]
            yield from (1 / sigmoid_to_depth(full))[:, 0].cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def motions(self, batch: int = 4) -> np.ndarray:
        """`(N-1, 4, 4)` camera motions T_i_to_i+1; the identity across a cut (the frames
        are unrelated: nothing was fitted there)."""
        self.pose.eval()
        out = []
        for i in range(0, len(self.frames) - 1, batch):
            idx = torch.arange(i, min(i + batch, len(self.frames) - 1))
            out.append(self.motion(idx, self.images(idx), self.images(idx + 1)).cpu())
        motions = torch.cat(out).double().numpy()
        motions[[s - 1 for s in self.clip_shots.starts[1:]]] = np.eye(4)
        return motions

    @torch.no_grad()
    def residuals(self) -> Iterator[np.ndarray]:
        """Each frame's `(h, w)` minimum-reprojection error of the static model, in order
        (a shot's first and last frames borrow their neighbour's map: they have one source
        in the shot only; a shot under 3 frames, never a triplet's target, gets zeros)."""
        self.depth.eval()
        self.pose.eval()
        for frames in self.clip_shots.ranges:
            if len(frames) < 3:
                yield from (np.zeros(self.frames.shape[1:3], np.float32) for _ in frames)
                continue
            for t in frames[1:-1]:
                error = self.loss(t, None, None)[1].error[0, 0].cpu().numpy()
                if t == frames.start + 1:
                    yield error
                yield error
            yield error

    @torch.no_grad()
    def _net_statistics(self, frames: range, batch: int) -> tuple[float, float]:
        """The depth net's sigmoid disparity as it is now: the median over `frames` (a
        shot's) of each frame's median and of its mean absolute deviation from it."""
        centres, spreads = [], []
        for i in range(frames.start, frames.stop, batch):
            idx = torch.arange(i, min(i + batch, frames.stop))
            own = torch.sigmoid(self.depth.logits(self.images(idx))[0]).flatten(1)
            centre = own.median(1, keepdim=True).values
            centres.append(centre[:, 0])
            spreads.append((own - centre).abs().mean(1))
        return float(torch.cat(centres).median()), float(torch.cat(spreads).median())

    @torch.no_grad()
    def start_offsets(self, path: Path, steady: np.ndarray, batch: int = 4) -> np.memmap:
        """`(N, h, w)` float16 logit offsets (memory-mapped at `path`) that make the depth
        net's finest output, as it is now, each frame's teacher map: on its shot's scale
        (`steady`: `(N, 2)` scale and shift, `steady_teacher.steady_affines`) and brought by
        one affine for the shot to the net's median and spread over the shot (a shot's
        start depends on its own frames and maps only). The fit's start. What falls below
        zero disparity (the teacher's far end is only known up to a shift) is eased onto
        (0, `_EASE` x the median) by a softplus, so the start keeps every difference of the
        teacher's."""
        self.depth.eval()
        n, (h, w) = len(self.frames), self.frames.shape[1:3]
        path.parent.mkdir(parents=True, exist_ok=True)
        offsets = np.memmap(path, np.float16, "w+", shape=(n, h, w))
        levels = []
        for frames in self.clip_shots.ranges:
            levels.append(self._shot_offsets(offsets, frames, steady, batch))
        offsets.flush()
        self.start_level = torch.cat(levels)
        return offsets

    def _shot_offsets(
        self, offsets: np.memmap, frames: range, steady: np.ndarray, batch: int
    ) -> torch.Tensor:
        """Write one shot's `frames` of `start_offsets` into `offsets`; their `(len,)` start
        levels (log mean sigmoid)."""
        lo, hi = _SIGMOID_RANGE
        levels = []
        net_centre, net_spread = self._net_statistics(frames, batch)
        centre, spread = clip_statistics(self.teacher, steady, frames)
        gain = net_spread / spread
        for i in range(frames.start, frames.stop, batch):
            idx = torch.arange(i, min(i + batch, frames.stop))
            img = self.images(idx)
            logit = upsample_to(self.depth.logits(img)[0], img.shape[-2:])
            own = torch.sigmoid(logit)
            scale, shift = torch.from_numpy(steady[idx.numpy()]).float().T
            teacher = self._maps(self.teacher, idx)
            steadied = teacher * scale.view(-1, 1, 1, 1) + shift.view(-1, 1, 1, 1)
            aligned = (steadied - centre) * gain + net_centre
            ease = _EASE * own.flatten(1).median(1).values.view(-1, 1, 1, 1)
            aligned = ease * F.softplus(aligned / ease)
            offset = torch.logit(aligned.clamp(lo, hi)) - logit
            offsets[i : i + len(idx)] = offset[:, 0].cpu().numpy().astype(np.float16)
            levels.append(aligned.clamp(lo, hi).mean((1, 2, 3)).log())
        return torch.cat(levels)


def default_config(taught: bool, steps: int | None = None) -> FitConfig:
    """The measured defaults (docs/video.md), for a fit from a teacher (`taught`) or cold;
    `steps` (None: TAUGHT_STEPS or COLD_STEPS) overrides the length.

    From a teacher the depth and motion are sensible from the start, so the neighbours'
    depth consistency, which cuts jitter, can come in early and strong: over the last 60 %
    of the steps at weight 4 (KITTI, 500 steps: jitter 0.0154 at weight 1, 0.0115 at 4 with
    rank correlation 0.760 and 0.756; at 8 the maps flatten, 0.713). A cold start meets it
    by shrinking the camera's motion instead: the last 30 % at 0.5. With the scale hold
    faded out over the fit and the first step lengths smoothed over 3 steps, KITTI's jitter
    falls from 0.0139 to 0.0100 (TAE 0.031 and 0.032, rho 0.773 and 0.775; the fit is
    deterministic on one thread: two runs of each gave the same figures), 0.0091 with the
    motions refined before the fusion (`refine_steps`), 0.0084 fused within a factor of 2
    (`temporal.AGREEMENT`), 0.0082 fused over 16 frames each side, not 8 (TAE 0.026, rho
    0.784), 0.0079 with a second round of refinement (`refine_rounds`), 0.0068 with the
    neighbours' word faded in from their frames' edges and a band of 4 (`temporal`).
    Another seed moves these by as much as most settings do (seed 1: 0.0085, 0.0073):
    compare settings over the same seeds. With the edges faded, a wider fusion pays: 24 /
    32 frames each side, seeds 0 / 1, jitter 0.0065 / 0.0069 and 0.0063 / 0.0065, TAE 0.027 /
    0.031 and 0.030 / 0.035 (the chained motions drift), rho 0.789 / 0.776 and 0.787 /
    0.771; DAVIS 0.0228 (16) -> 0.0214 -> 0.0201; 40 takes TAE past 0.038."""
    if taught:
        return FitConfig(
            steps=steps or TAUGHT_STEPS,
            fine_fraction=0.6,
            consistency=4.0,
            anchor_fade=1.0,
            step_smooth=3.0,
            temporal_radius=32,
        )
    return FitConfig(steps=steps or COLD_STEPS)


def _fading(step: int, over: float) -> float:
    """1 at step 0, falling linearly to 0 at step `over` (`over` <= 0: always 1)."""
    return 1.0 if over <= 0 else max(0.0, 1.0 - step / over)


def _smoothed(values: torch.Tensor, sigma: float, shots: Shots | None = None) -> torch.Tensor:
    """`(N,)` values smoothed over their index by a Gaussian of `sigma` (0: as they are),
    within each shot of `shots` (None: one), weights renormalised at a shot's ends."""
    if sigma <= 0:
        return values
    parts = []
    for frames in (shots or Shots(len(values))).ranges:
        t = torch.arange(len(frames), dtype=torch.float64)
        weights = torch.exp(-0.5 * ((t[:, None] - t[None]) / sigma) ** 2)
        part = values[frames.start : frames.stop].double().cpu()
        parts.append(weights @ part / weights.sum(1))
    return torch.cat(parts).to(values)


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
    teacher: np.ndarray | None = None,
) -> VideoFit:
    """Fit depth and pose to `clip` (intrinsics at the clip's fitting size), saving
    `checkpoint` every `config.checkpoint_every` steps and at the end; a checkpoint of the
    same clip and size found there is resumed. `masks`: `(N, h, w)` given dynamic masks.

    teacher: `(N, h, w)` a depth model's disparity of every frame at the fitting size (any
    scale and shift per frame; e.g. memory-mapped from `teacher.clip_and_teacher`): the
    fit starts from it and keeps close to it (`config.teacher`). None: the cold start, from
    the coarse network alone (use `COLD_STEPS`).

    The clip's shots (`cuts.find_shots`) are fitted apart; a resumed fit keeps those its
    checkpoint was fitted with. InputError when no shot has 3 frames (no triplet to fit)."""
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    dev = torch.device(device)
    depth_net, pose_net = build_nets(coarse_onnx)
    k = torch.from_numpy(intrinsics.matrix())[None].to(dev)
    frames = read_by_frame(clip.rgb)  # the caches read by frame, never mapped whole
    fitter = _Fitter(frames, k, depth_net.to(dev), pose_net.to(dev), dev)
    if teacher is not None:
        if teacher.shape != clip.rgb.shape[:3]:
            raise OptionError(
                f"teacher maps of shape {teacher.shape} for a clip of {clip.rgb.shape[:3]}"
            )
        fitter.teacher = read_by_frame(teacher)
        fitter.teacher_weak = config.teacher_weak
        fitter.scale_anchor = config.scale_anchor
    optimizer = torch.optim.Adam(
        [
            {"params": depth_net.parameters(), "lr": config.lr},
            {"params": pose_net.parameters(), "lr": config.pose_lr},
        ]
    )
    state = _load_state(Path(checkpoint), clip, intrinsics, teacher is not None)
    fitter.shots = shots = _clip_shots(Path(checkpoint), state, clip)
    targets = torch.from_numpy(shots.targets())  # the frames a triplet may centre on
    if not len(targets):
        raise InputError(
            f"{clip.source}: every shot is under 3 frames (scene cuts before frames "
            f"{', '.join(map(str, shots.starts[1:]))}): nothing to fit; --fast takes them"
        )
    folder = Path(checkpoint).parent
    arrays_key = {"source": clip.source, "frames": len(clip), "size": list(clip.size)}
    mask_source = "given" if masks is not None else "none"
    # The start is the net as calibrated here, made the teacher by per-frame offsets: the
    # same on every run of the same clip, so a resumed fit finds the offsets it was fitted on.
    depth_net.calibrate(fitter.images(torch.arange(0, len(clip), max(1, len(clip) // 8))))
    if teacher is not None:
        start_cache = Path(checkpoint).with_name(START_CACHE)
        steady = steady_affines(frames, fitter.teacher, shots)
        fitter.start = read_by_frame(fitter.start_offsets(start_cache, steady))
        fitter.start_level = _smoothed(fitter.start_level, config.level_smooth, shots)
        guess = first_motions(frames, fitter.start_depth, intrinsics.matrix(), shots)
        guess = steadied_steps(guess, config.step_smooth, shots)
        fitter.prior = torch.from_numpy(guess).float().to(dev)
        # the pose net now learns corrections to the guess: it starts with none (a fresh
        # net's random 0.01-scaled output turns the camera by half a degree)
        torch.nn.init.zeros_(pose_net.out.weight)
        torch.nn.init.zeros_(pose_net.out.bias)
    if state is not None:
        depth_net.load_state_dict(state["depth"])
        pose_net.load_state_dict(state["pose"])
        optimizer.load_state_dict(state["optimizer"])
        if masks is None and state["masks"] is not None:
            masks = _unpack(state["masks"], clip, folder / MASKS_FILE, arrays_key)
            mask_source = "automatic"
        start = int(state["step"])
    else:
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
                "teacher": teacher is not None,
                "shots": list(shots.starts),
                "masks": None if mask_source != "automatic" else np.packbits(masks),
            },
        )

    for step in range(start, config.steps):
        fitter.start_weight = config.start_weight(step)
        fitter.teacher_weight = config.teacher_weight(step)
        if teacher is not None:
            fitter.scale_anchor = config.anchor_weight(step)
        fine = step >= config.fine_start
        if fine and masks is None:
            found = map(residual_mask, fitter.residuals())
            masks = write_frame_array(folder / MASKS_FILE, found, np.uint8, arrays_key)
            mask_source = "automatic"
        scale = 0.1 if step >= config.decay_at * config.steps else 1.0
        lrs = (
            config.lr * (config.depth_ramp(step) if teacher is not None else 1.0),
            config.pose_lr,
        )
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr * scale
        depth_net.train()
        pose_net.train()
        # triplets (t-1, t, t+1) within a shot only: across a cut no motion explains them
        idx = targets[torch.randint(0, len(targets), (config.batch,), generator=generator)]
        exclude = objects = None
        if masks is not None:
            reader = read_by_frame(masks)
            chosen = np.stack([reader[i] for i in idx.tolist()])
            exclude = torch.from_numpy(chosen)[:, None].float().to(dev)
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
    fitter.start_weight = config.start_weight(config.steps)
    disparity, motions = _fused_disparity(
        fitter,
        intrinsics,
        config,
        masks,
        folder,
        {**arrays_key, "steps": config.steps},
        on_step,
    )
    return VideoFit(
        disparity,
        motions,
        masks,
        mask_source if masks is not None else "none",
        max(0, config.steps - start),
        start,
        time.perf_counter() - t0,
        shots,
        losses,
    )


def _load_state(path: Path, clip: Clip, intrinsics: Intrinsics, taught: bool) -> dict | None:
    """The checkpoint at `path` when it belongs to this clip at this size and was fitted
    with a teacher or without as `taught` says, else None (no file) or OptionError (someone
    else's checkpoint: never overwrite it silently)."""
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
    if bool(state.get("teacher", False)) != taught:
        was = "with" if state.get("teacher") else "without"
        raise OptionError(
            f"{path}: fitted {was} a teacher model, this run is not; remove it or choose "
            "another output folder"
        )
    fitted = Intrinsics(**state["intrinsics"])
    if not np.allclose(fitted.matrix(), intrinsics.matrix(), rtol=1e-4):
        raise OptionError(
            f"{path}: fitted with other intrinsics (fx {fitted.fx:.1f}, fy {fitted.fy:.1f} at "
            f"{fitted.width}x{fitted.height}); give the same --intrinsics/--calib to resume"
        )
    return state


def _clip_shots(path: Path, state: dict | None, clip: Clip) -> Shots:
    """The shots the fit of `clip` takes: those its checkpoint `state` (from `path`) was
    fitted with, whatever the cut finder says today (the start, first motions and nets were
    made for them), else those found in its frames. OptionError for a checkpoint from before
    shots (fitted as one) of a clip that has cuts: resumed, its shots would drag each other."""
    if state is not None and "shots" in state:
        try:
            return Shots(len(clip), tuple(int(s) for s in state["shots"]))
        except (TypeError, ValueError):
            raise OptionError(f"{path}: its shots are unreadable; remove it to fit again") from None
    shots = find_shots(read_by_frame(clip.rgb))
    if state is not None and len(shots.starts) > 1:
        cuts = ", ".join(str(s) for s in shots.starts[1:])
        raise OptionError(
            f"{path}: fitted as one shot, before scene cuts were looked for, and this clip has "
            f"cuts (before frames {cuts}); remove it to fit each shot apart"
        )
    return shots


def _fused_disparity(
    fitter: _Fitter,
    intrinsics: Intrinsics,
    config: FitConfig,
    masks: np.ndarray | None,
    folder: Path,
    key: dict,
    on_step: StepCallback | None,
) -> tuple[np.memmap, np.ndarray]:
    """`(N, h, w)` float32 disparity of the fitted net, fused over `config.temporal_radius`
    frames each side, memory-mapped from `folder / DISPARITY_FILE`, and the `(N-1, 4, 4)`
    camera motions it was fused along (the pose net's, refined against the net's depth, then
    against that depth fused along them: `config.refine_rounds`, `motion_refine.py`). The
    net's depth (and each round's fused depth) goes to a scratch file frame by frame, and
    the fusion reads it a window at a time, within each shot. A shot under 3 frames is not
    fused: no triplet fitted the motion inside it."""
    # read back by plain reads (`FrameReader`): no map is left open on the scratch files
    depth = FrameReader(
        write_frame_array(
            folder / _DEPTH_SCRATCH, (1 / d for d in fitter.disparities()), np.float32, key
        )
    )
    shots = fitter.clip_shots
    alone = {f for frames in shots.ranges if len(frames) < 3 for f in frames}
    fused_apart = Shots(shots.frames, tuple(sorted({*shots.starts, *alone})))
    k = intrinsics.matrix()

    def fused(motions: np.ndarray) -> Iterator[np.ndarray]:
        return fused_frames(depth, motions, k, config.temporal_radius, fused_apart)

    def on_chunk(stage: str) -> Callable[[int, int, float], None] | None:
        """The progress callback of a refinement round: the bar counts motions meanwhile."""
        if on_step is None:
            return None
        return lambda done, total, loss: on_step(done, total, loss, stage)

    motions = fitter.motions()
    rounds = config.refine_rounds if config.refine_steps else 0
    moving = None if masks is None else read_by_frame(masks)
    carried = depth  # the depth the motions are refined to carry
    for n in range(1, rounds + 1):
        motions = refined_motions(
            motions,
            carried,
            fitter.frames,
            k,
            shots,
            moving,
            config.refine_steps,
            on_chunk(f"refining motions {n}/{rounds}"),
            fitter.device,
        )
        if n < rounds:
            scratch = write_frame_array(folder / _FUSED_SCRATCH, fused(motions), np.float32, key)
            carried = FrameReader(scratch)
    disparity = write_frame_array(
        folder / DISPARITY_FILE, (1 / d for d in fused(motions)), np.float32, key
    )
    remove_frame_array(folder / _DEPTH_SCRATCH)
    remove_frame_array(folder / _FUSED_SCRATCH)
    return disparity, motions


def _unpack(bits: np.ndarray, clip: Clip, path: Path, key: dict) -> np.memmap:
    """The `(N, h, w)` masks `np.packbits` packed whole into `bits`, memory-mapped from
    `path`, unpacked 8 frames at a time (8 frames' bits are whole bytes)."""
    n, (w, h) = len(clip), clip.size

    def frames() -> Iterator[np.ndarray]:
        for i in range(0, n, 8):
            chunk = np.unpackbits(bits[i * h * w // 8 : (i + 8) * h * w // 8])
            yield from chunk[: min(8, n - i) * h * w].reshape(-1, h, w)

    return write_frame_array(path, frames(), np.uint8, key)
