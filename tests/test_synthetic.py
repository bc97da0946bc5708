"""The synthetic scene generator: determinism, exact depth, image/depth alignment."""

from __future__ import annotations

import numpy as np
import pytest

from prodepth_cli.training.samples import MIN_SOLID, mixed_sample
from prodepth_cli.training.synthetic import render_scene


def test_same_seed_gives_identical_arrays():
    a, b = render_scene(7, 96, 128), render_scene(7, 96, 128)
    assert np.array_equal(a.rgb, b.rgb)
    assert np.array_equal(a.disparity, b.disparity)
    assert np.array_equal(a.valid, b.valid)


def test_different_seeds_give_different_scenes():
    assert not np.array_equal(render_scene(1, 64, 64).disparity, render_scene(2, 64, 64).disparity)


@pytest.mark.parametrize("hw", [(64, 96), (200, 120)])
def test_shapes_dtypes_and_ranges(hw):
    s = render_scene(3, *hw)
    assert s.rgb.shape == (*hw, 3) and s.rgb.dtype == np.float32
    assert s.disparity.shape == hw and s.disparity.dtype == np.float32
    assert s.valid.shape == hw and s.valid.dtype == bool
    assert s.rgb.min() >= 0.0 and s.rgb.max() <= 1.0
    # disparity is 1/m: 0 for the sky, at most 1/0.05 m (the nearest hit allowed)
    assert s.disparity.min() >= 0.0 and s.disparity.max() <= 20.0


def test_depth_steps_coincide_with_image_edges():
    """Where the disparity jumps (an occlusion boundary) the image should have an edge too:
    the mean image gradient on depth steps must clearly exceed its mean elsewhere. A factor
    of 1.5 leaves room for steps between two surfaces of similar texture."""
    ratios = []
    for seed in range(6):
        s = render_scene(seed, 160, 160)
        d = s.disparity
        step = np.abs(np.diff(d, axis=1)) > 0.1 * np.maximum(d[:, 1:], d[:, :-1]) + 1e-3
        grad = np.abs(np.diff(s.rgb.mean(-1), axis=1))
        if step.sum() < 20:
            continue
        ratios.append(grad[step].mean() / max(grad[~step].mean(), 1e-6))
    assert len(ratios) >= 3
    assert np.median(ratios) > 1.5


def test_ground_plane_disparity_grows_towards_the_bottom():
    """On a ground plane seen by a level camera, disparity is affine in the row and rises
    towards the bottom; the bottom row should be nearer than the middle in most scenes."""
    nearer = [render_scene(s, 96, 96).disparity for s in range(8)]
    hits = sum(float(np.median(d[-1])) > float(np.median(d[48])) for d in nearer)
    assert hits >= 6


def test_layouts_keep_their_scale():
    """A tabletop is photographed from a metre or two, a street reaches tens of metres: the
    median depth of every tabletop scene is below that of every street scene (same seeds)."""

    def median_depth(layout: str, seed: int) -> float:
        d = render_scene(seed, 64, 96, layout).disparity
        return float(np.median(1.0 / d[d > 0]))

    table = [median_depth("tabletop", s) for s in range(4)]
    street = [median_depth("street", s) for s in range(4)]
    assert max(table) < 3.0 < min(street)
    with pytest.raises(KeyError):
        render_scene(0, 32, 32, "forest")


def test_training_crops_are_never_mostly_sky():
    """Crops that are nearly all sky have no depth to learn and make the affine-invariant
    loss explode; mixed_sample draws again instead of returning one."""
    rng = np.random.default_rng(0)  # about 1 in 150 raw crops is mostly sky
    solid = [(mixed_sample((32, 32), rng, [], np.zeros(0), 0.0)[1] > 0).mean() for _ in range(600)]
    assert min(solid) >= MIN_SOLID


def test_a_subject_stands_in_front_of_its_scene():
    """A scene with a subject is the same scene with a figure painted in front: every pixel
    it changed got nearer, and the figure covers a good part of the middle of the frame."""
    covered = []
    for seed in range(6):
        plain = render_scene(seed, 96, 128, subject=False).disparity
        posed = render_scene(seed, 96, 128, subject=True).disparity
        changed = posed != plain
        assert np.all(posed[changed] > plain[changed])
        covered.append(changed[:, 32:96].mean())
    assert np.median(covered) > 0.1


def test_subjects_leave_the_other_scenes_as_they_were():
    """The subject draws from its own random stream: without one, a seed renders the same
    scene whether the subject was left out by chance or on request."""
    for seed in range(20):
        drawn = render_scene(seed, 48, 64)
        plain = render_scene(seed, 48, 64, subject=False)
        if np.array_equal(drawn.disparity, plain.disparity):
            assert np.array_equal(drawn.rgb, plain.rgb)
            break
    else:
        raise AssertionError("every one of 20 seeds drew a subject")
