"""The fit of a clip with scene cuts: its shots found in the cached frames, triplets, first
motions, the teacher's scale and the temporal fusion kept within a shot, a range for each
shot's maps in `shots.json`, poses restarting at each shot, and a resume keeping the shots."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import prodepth_cli.video.fit as fit_module
from prodepth_cli.errors import InputError, OptionError
from prodepth_cli.video.cache import FrameReader
from prodepth_cli.video.coarse_weights import default_coarse_onnx
from prodepth_cli.video.consistency import clip_jitter
from prodepth_cli.video.cuts import Shots, find_shots
from prodepth_cli.video.first_motion import first_motions, steadied_steps
from prodepth_cli.video.fit import START_CACHE, FitConfig, fit_video
from prodepth_cli.video.frames import read_clip
from prodepth_cli.video.intrinsics import default_intrinsics
from prodepth_cli.video.outputs import FrameMapWriter, write_depth_frames
from prodepth_cli.video.pipeline import AGREEMENT_NOTE, VideoOptions, shot_records, video_depth
from prodepth_cli.video.shots import SHOTS_NAME
from prodepth_cli.video.temporal import fused_frames
from tests.test_video_fast import texture
from tests.test_video_teacher import _ramp_teacher

H, W = 64, 192
PAN = 4  # pixels a frame
# Two steps in each stage, as test_video.py's TINY_FIT: every code path (static fit,
# automatic masks, GDS, checkpoint) in a few seconds.
TINY_FIT = FitConfig(steps=4, fine_fraction=0.5, checkpoint_every=2)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _pan(seed: int, tint: tuple[float, float, float], n: int) -> list[np.ndarray]:
    """`n` frames `(H, W, 3)` RGB of a camera panning over its own tinted scenery."""
    scene = texture(seed, tint, W + PAN * n)
    return [np.ascontiguousarray(scene[40 : 40 + H, PAN * i : PAN * i + W]) for i in range(n)]


def _glued(folder: Path, *lengths: int) -> Path:
    """Unrelated shots glued end to end (`lengths` frames each, each its own scene and
    tint), as `f00.png`... in `folder`."""
    tints = [(0.4, 0.6, 1.0), (1.0, 0.5, 0.3), (0.6, 1.0, 0.5)]
    frames = [f for i, n in enumerate(lengths) for f in _pan(20 + i, tints[i % 3], n)]
    folder.mkdir(parents=True, exist_ok=True)
    for i, rgb in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), rgb[:, :, ::-1])
    return folder


def _fit(clip, out: Path, config: FitConfig, teacher: np.ndarray | None = None):
    k = default_intrinsics(clip.width, clip.height).scaled_to(*clip.size)
    checkpoint = out / "checkpoint.pt"
    return fit_video(clip, k, checkpoint, default_coarse_onnx(), config, None, "cpu", None, teacher)


# --- finding the shots ----------------------------------------------------------------------


def test_glued_clips_are_shots_and_a_pan_is_one(tmp_path):
    # `--fast`'s criteria at the fitting size: a pan of one scene keeps its colours and the
    # flow follows it (one shot); a change of scene changes both (a cut), a one-frame
    # insert gives a one-frame shot.
    pan = read_clip(_glued(tmp_path / "pan", 10)).rgb
    assert find_shots(pan).starts == (0,)
    assert find_shots(read_clip(_glued(tmp_path / "two", 5, 5)).rgb).starts == (0, 5)
    assert find_shots(read_clip(_glued(tmp_path / "three", 5, 1, 5)).rgb).starts == (0, 5, 6)


def test_shots_say_which_frames_a_triplet_may_centre_on():
    shots = Shots(12, (0, 5, 6))
    assert shots.ranges == [range(0, 5), range(5, 6), range(6, 12)]
    assert shots.targets().tolist() == [1, 2, 3, 7, 8, 9, 10], "none beside a cut"
    assert shots.shot(5) == range(5, 6) and shots.shot(11) == range(6, 12)
    assert [f for f in range(12) if shots.cut_before(f)] == [5, 6]
    for bad in ((1, 5), (0, 5, 5), (0, 12)):
        with pytest.raises(ValueError):
            Shots(12, bad)


# --- the fit keeps its shots apart ----------------------------------------------------------


def test_triplets_stay_inside_shots_and_a_short_shot_is_neither_fitted_nor_fused(
    tmp_path, monkeypatch
):
    """Shots of 5, 2 and 5 frames: every triplet the fit samples (training and automatic
    masks) is centred on a frame whose neighbours are in its shot. Sampled from the whole
    clip (as before shots), 4 of the 10 frames a triplet could centre on (4 to 7) lie
    beside a cut; the first step drew 5. The two-frame shot is never a target: its frames
    keep the net's own maps, fused with no neighbour (the motion between them was never
    fitted), and no dynamic pixel (no residual is measured for them)."""
    clip = read_clip(_glued(tmp_path / "clip", 5, 2, 5))
    centres: list[int] = []
    fused_in: list[tuple[int, ...]] = []
    loss, fused = fit_module._Fitter.loss, fit_module.fused_frames

    def recorded(self, target, *args, **kwargs):
        centres.extend(torch.as_tensor(target).view(-1).tolist())
        return loss(self, target, *args, **kwargs)

    def fused_recorded(depth, motions, k, radius, shots):
        fused_in.append(shots.starts)
        return fused(depth, motions, k, radius, shots)

    monkeypatch.setattr(fit_module._Fitter, "loss", recorded)
    monkeypatch.setattr(fit_module, "fused_frames", fused_recorded)
    fit = _fit(clip, tmp_path / "out", FitConfig(steps=6, fine_fraction=0.5, checkpoint_every=6))
    assert fit.shots.starts == (0, 5, 7)
    assert centres and set(centres) <= {1, 2, 3, 8, 9, 10}, sorted(set(centres))
    # fused once for the second round of motion refinement, once for the output
    assert fused_in == [(0, 5, 6, 7)] * 2, "frames 5 and 6 fused alone"
    assert np.isfinite(fit.disparity).all() and (fit.disparity > 0).all()
    assert fit.masks is not None and not fit.masks[5:7].any()
    assert np.allclose(fit.steps[[4, 6]], np.eye(4)), "no motion across a cut"


def test_second_shots_start_does_not_depend_on_the_first_shots_teacher(tmp_path, monkeypatch):
    """The same clip and teacher but for the first shot's maps (another layout, a gain and
    shift of their own each frame): the second shot's start offsets, the levels its frames
    are held to and its fused maps are the same to the bit. Before shots the teacher's scale
    was chained across the cut, one affine was fitted for the clip, the levels were smoothed
    across the cut and the fusion (8 frames each side) reached across it."""
    levels: list[torch.Tensor] = []
    smoothed = fit_module._smoothed
    monkeypatch.setattr(
        fit_module, "_smoothed", lambda *a: levels.append(smoothed(*a)) or levels[-1]
    )
    clip = read_clip(_glued(tmp_path / "clip", 5, 5))
    teacher = _ramp_teacher(10, H, W)
    other = teacher.copy()
    for i in range(5):
        other[i] = (3 + i) * teacher[i, ::-1] + 2 * i
    config = FitConfig(steps=0, checkpoint_every=2)
    fits = [_fit(clip, tmp_path / name, config, t) for name, t in (("a", teacher), ("b", other))]
    starts = [np.fromfile(tmp_path / name / START_CACHE, np.float16) for name in "ab"]
    second = slice(5 * H * W, None)
    assert np.array_equal(starts[0][second], starts[1][second])
    assert not np.array_equal(starts[0][: 5 * H * W], starts[1][: 5 * H * W]), "the premise"
    assert torch.equal(levels[0][5:], levels[1][5:])
    assert np.array_equal(fits[0].disparity[5:], fits[1].disparity[5:])
    assert np.allclose(fits[0].steps[4], np.eye(4)), "no first motion across the cut"


def test_first_motions_guess_nothing_across_a_cut(tmp_path):
    rgb = read_clip(_glued(tmp_path / "clip", 4, 4)).rgb
    asked: list[int] = []

    def depth_of(i: int) -> np.ndarray:
        asked.append(i)
        return np.full((H, W), 10.0)

    k = default_intrinsics(W, H).matrix()
    motions = first_motions(rgb, depth_of, k, Shots(8, (0, 4)))
    assert asked == [0, 1, 2, 4, 5, 6], "pair (3, 4) spans the cut"
    assert np.array_equal(motions[3], np.eye(4))


def test_step_lengths_are_steadied_within_each_shot_and_nothing_else_moves():
    rng = np.random.default_rng(0)
    n = 12  # frames: shots 0-5 and 6-11, the pair (5, 6) across the cut
    motions = np.tile(np.eye(4), (n - 1, 1, 1))
    directions = rng.normal(size=(n - 1, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    speeds = np.where(np.arange(n - 1) < 5, 1.0, 3.0) * rng.uniform(0.6, 1.4, n - 1)
    motions[:, :3, 3] = directions * speeds[:, None]
    motions[2] = np.eye(4)  # a pair without a guess
    motions[5] = np.eye(4)  # across the cut
    shots = Shots(n, (0, 6))
    steadied = steadied_steps(motions, 3.0, shots)
    lengths = np.linalg.norm(steadied[:, :3, 3], axis=1)
    assert np.array_equal(steadied[[2, 5]], motions[[2, 5]])
    assert np.allclose(steadied[:, :3, :3], motions[:, :3, :3])  # rotations untouched
    moved = [0, 1, 3, 4, 6, 7, 8, 9, 10]
    turned = np.einsum("ij,ij->i", steadied[moved, :3, 3] / lengths[moved, None], directions[moved])
    assert np.allclose(turned, 1)  # directions untouched
    first, second = lengths[[0, 1, 3, 4]], lengths[6:]
    assert np.std(np.log(first)) < 0.5 * np.std(np.log(speeds[[0, 1, 3, 4]]))
    assert np.std(np.log(second)) < 0.5 * np.std(np.log(speeds[6:]))
    assert second.min() > 2 * first.max()  # the second shot's speed is not pulled down
    assert steadied_steps(motions, 0.0, shots) is motions


def test_the_fit_refines_its_motions_within_each_shot_and_fuses_along_them(tmp_path, monkeypatch):
    calls = []
    refine = fit_module.refined_motions

    def spy(motions, depth, *args):
        refined = refine(motions, depth, *args)
        # the scratch files are gone once the fit returns: keep what each round was given
        calls.append((motions.copy(), np.stack(list(depth)), *args, refined))
        return refined

    monkeypatch.setattr(fit_module, "refined_motions", spy)
    clip = read_clip(_glued(tmp_path / "clip", 5, 5))
    fit = _fit(clip, tmp_path / "a", TINY_FIT)
    assert TINY_FIT.refine_rounds == 2
    (before, depth, rgb, k, shots, masks, steps, *_, first), second = calls
    assert shots == fit.shots and steps == TINY_FIT.refine_steps > 0
    assert len(depth) == len(rgb) == len(clip) and masks is not None
    # round 2 starts from round 1's motions and carries the depth fused along them
    assert np.array_equal(second[0], first)
    radius = TINY_FIT.temporal_radius
    assert np.allclose(second[1], np.stack(list(fused_frames(depth, first, k, radius, shots))))
    assert not np.allclose(second[1], depth)
    assert np.allclose(fit.steps, second[-1]), "the poses written are the last round's"
    assert not np.allclose(fit.steps, before)
    assert np.array_equal(fit.steps[4], np.eye(4)), "no motion across the cut"
    kept = sorted(f.name for f in (tmp_path / "a").glob("*.f32"))
    assert kept == [fit_module.DISPARITY_FILE], "the scratch arrays are removed"
    one = _fit(clip, tmp_path / "b", dataclasses.replace(TINY_FIT, refine_rounds=1))
    assert len(calls) == 3 and np.allclose(one.steps, first)
    plain = _fit(clip, tmp_path / "c", dataclasses.replace(TINY_FIT, refine_steps=0))
    assert len(calls) == 3
    assert np.allclose(plain.steps, before), "refine_steps=0: the pose net's motions"


def test_fused_frame_before_the_cut_ignores_the_frames_after_it():
    # Still camera, each frame a plane at its own depth, all within AGREEMENT of each other:
    # unbounded, every neighbour in the window would count. The frames after the cut are
    # changed: the frames before it come out the same, the mean of their shot's window.
    n, cut, radius, h, w = 10, 6, 3, 8, 10
    levels = 10 + np.sin(np.arange(n, dtype=np.float32))
    depth = np.repeat(levels, h * w).reshape(n, h, w).astype(np.float32)
    changed = depth.copy()
    changed[cut:] *= 1.3
    k, still = default_intrinsics(w, h).matrix(), np.tile(np.eye(4), (n - 1, 1, 1))
    shots = Shots(n, (0, cut))
    before = list(fused_frames(depth, still, k, radius, shots))
    after = list(fused_frames(changed, still, k, radius, shots))
    for t in range(cut):
        assert np.array_equal(before[t], after[t])
        window = levels[max(0, t - radius) : t + 1 + min(radius, cut - 1 - t)]
        harmonic = len(window) / (1 / window).sum()
        assert np.allclose(before[t][1:-1, 1:-1], harmonic, rtol=1e-5)  # the edges fade
    assert not np.allclose(before[cut], after[cut]), "the premise: the second shot changed"


# --- outputs --------------------------------------------------------------------------------


def test_each_shot_has_its_own_range(tmp_path):
    # A far shot (disparity 0.1-0.2) after a near one (1-2): on the clip's one range the far
    # shot's maps would sit in the bottom tenth of the levels; on its own range they span
    # them (its 0.5th-99.5th percentiles).
    ramp = np.linspace(1, 2, 24 * 40, dtype=np.float32).reshape(24, 40)
    clip = np.stack([ramp, ramp, 0.1 * ramp, 0.1 * ramp])
    write_depth_frames(clip, list("abcd"), tmp_path, (40, 24), "png16", Shots(4, (0, 2)))
    writer = FrameMapWriter(tmp_path, "png16", (40, 24))
    near, far = writer.written_range("a"), writer.written_range("c")
    assert writer.written_range("b") == near and writer.written_range("d") == far
    assert near == pytest.approx((1.005, 1.995), abs=1e-3)
    assert far == pytest.approx((0.1005, 0.1995), abs=1e-4)
    levels = cv2.imread(str(writer.path("c")), cv2.IMREAD_UNCHANGED)
    assert levels.min() == 0 and levels.max() == 65535


def _shots_json(out: Path) -> dict:
    return json.loads((out / SHOTS_NAME).read_text())


def test_shots_json_lists_each_shots_range_and_poses_restart_at_each_shot(tmp_path):
    clip_dir, out = _glued(tmp_path / "clip", 5, 5), tmp_path / "out"
    config = FitConfig(steps=2, fine_fraction=0.5, checkpoint_every=2)
    report = video_depth(clip_dir, out, VideoOptions(device="cpu"), config)
    logged = _shots_json(out)
    assert logged["kind"] == "prodepth video" and logged["frames"] == 10
    assert [s["first"] for s in logged["shots"]] == [0, 5]
    assert report.record["shots"] == 2
    writer = FrameMapWriter(out, "png16", (W, H))
    for i in range(10):
        shot = logged["shots"][i // 5]
        assert writer.written_range(f"f{i:02d}") == (shot["lo"], shot["hi"])
        # the shot's own range: its 0.5th-99.5th percentiles, which its levels then span
        levels = cv2.imread(str(writer.path(f"f{i:02d}")), cv2.IMREAD_UNCHANGED)
        assert levels.max() > 30000
    own = [np.percentile(report.fit.disparity[s : s + 5], (0.5, 99.5)) for s in (0, 5)]
    for shot, (lo, hi) in zip(logged["shots"], own, strict=True):
        assert (shot["lo"], shot["hi"]) == pytest.approx((lo, hi), rel=1e-5)
    poses = np.loadtxt(out / "poses.txt").reshape(10, 3, 4)
    assert np.allclose(poses[[0, 5]], np.eye(4)[:3]), "each shot's first frame at the origin"


def test_json_gives_each_shots_jitter_of_its_maps_as_written(tmp_path):
    clip_dir, out = _glued(tmp_path / "clip", 5, 5), tmp_path / "out"
    config = FitConfig(steps=2, fine_fraction=0.5, checkpoint_every=2)
    report = video_depth(clip_dir, out, VideoOptions(device="cpu"), config)
    assert [(s["first"], s["last"], s["frames"]) for s in report.shots] == [(0, 4, 5), (5, 9, 5)]
    frames = [cv2.imread(str(f))[:, :, ::-1] for f in sorted(clip_dir.glob("*.png"))]
    for shot in report.shots:
        names = [f"f{i:02d}" for i in range(shot["first"], shot["last"] + 1)]
        written = [cv2.imread(str(out / f"{n}.png"), cv2.IMREAD_UNCHANGED) / 65535.0 for n in names]
        own = clip_jitter(written, frames[shot["first"] : shot["last"] + 1])
        assert shot["jitter"] == pytest.approx(own, rel=0.02, abs=1e-5)


def test_shot_records_say_how_much_the_fit_agrees_with_the_model(tmp_path):
    """A fit that ranks depth as the model does agrees at 1; one that went its own way
    (here: the second shot's maps upside down against the model's) is flagged."""
    frames = np.stack(_pan(3, (1, 1, 1), 10))
    ramp = np.linspace(0.1, 1, H, dtype=np.float32)[:, None] * np.ones((1, W), np.float32)
    fitted = np.stack([ramp] * 5 + [ramp[::-1]] * 5)
    stored = np.memmap(tmp_path / "d.f32", np.float32, "w+", shape=fitted.shape)
    stored[:] = fitted
    teacher = np.stack([ramp * 3 + 1] * 10)  # any affine of the same ranks
    shots = Shots(10, (0, 5))
    ranges = [(0.1, 1.0), (0.1, 1.0)]
    records = shot_records(frames, FrameReader(stored), shots, ranges, True, teacher)
    assert [r["agreement_with_model"] for r in records] == [pytest.approx(1), pytest.approx(-1)]
    assert records[1]["agreement_with_model"] < AGREEMENT_NOTE <= records[0]["agreement_with_model"]
    cold = shot_records(frames, FrameReader(stored), shots, ranges, True)
    assert [r["agreement_with_model"] for r in cold] == [None, None]


def test_a_resume_keeps_the_shots_it_was_fitted_with(tmp_path, monkeypatch):
    clip_dir, out = _glued(tmp_path / "clip", 5, 5), tmp_path / "out"
    options = VideoOptions(device="cpu")
    video_depth(clip_dir, out, options, FitConfig(steps=2, fine_fraction=0.5, checkpoint_every=2))
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["shots"] == [0, 5]

    def no_finder(rgb):
        raise AssertionError("a resume takes its checkpoint's shots")

    monkeypatch.setattr(fit_module, "find_shots", no_finder)
    longer = FitConfig(steps=4, fine_fraction=0.5, checkpoint_every=2)
    again = video_depth(clip_dir, out, options, longer)
    assert again.fit.resumed_from == 2 and again.fit.shots.starts == (0, 5)
    assert [s["first"] for s in _shots_json(out)["shots"]] == [0, 5]
    # A checkpoint from before shots was fitted as one: resumed on a clip with a cut, its
    # shots would drag each other; refused (a clip without cuts resumes as it was).
    monkeypatch.undo()
    del state["shots"]
    torch.save(state, out / "checkpoint.pt")
    with pytest.raises(OptionError, match="fitted as one shot.*before frames 5"):
        video_depth(clip_dir, out, options, FitConfig(steps=6, fine_fraction=0.5))


def test_a_clip_of_shots_too_short_to_fit_is_an_input_error(tmp_path, monkeypatch):
    clip = read_clip(_glued(tmp_path / "clip", 4))
    monkeypatch.setattr(fit_module, "find_shots", lambda rgb: Shots(4, (0, 2)))
    with pytest.raises(InputError, match="every shot is under 3 frames .*before frames 2"):
        _fit(clip, tmp_path / "out", TINY_FIT)
