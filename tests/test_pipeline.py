"""The depth pipeline through its Python API: tiling, alignment, formats, odd images."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
import pyvips
import tifffile

from prodepth_cli.io.pfm import read_pfm
from prodepth_cli.metrics import seam_ratio, spearman
from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import DepthOptions, depth_array, depth_file
from prodepth_cli.tiling.plan import plan_tiles
from tests.conftest import MOTORCYCLE, PYDNET, require, scene_image


def test_local_filter_gives_the_same_map_tiled_and_untiled(pointwise_exact):
    model = load_model(pointwise_exact, "cpu")
    rgb = scene_image(300, 500)
    whole = depth_array(rgb, model, DepthOptions(tile=1024))
    tiled = depth_array(rgb, model, DepthOptions(tile=96, overlap=24, batch=3))
    assert len(plan_tiles(300, 500, 96, 24).tiles) > 20
    # Weights sum to one in float64 and the map is accumulated in float32 (eps ~6e-8).
    np.testing.assert_allclose(tiled, whole, atol=1e-5)


def test_alignment_joins_tiles_that_each_come_back_in_their_own_frame(
    selfnorm_model, selfnorm_unaligned
):
    rgb = scene_image(400, 600, seed=3)
    plan = plan_tiles(400, 600, 160, 40)
    boxes = [t.box for t in plan.tiles]
    reference = depth_array(rgb, load_model(selfnorm_model, "cpu"), DepthOptions(tile=1024))
    aligned = depth_array(
        rgb, load_model(selfnorm_model, "cpu"), DepthOptions(tile=160, overlap=40)
    )
    raw = depth_array(
        rgb, load_model(selfnorm_unaligned, "cpu"), DepthOptions(tile=160, overlap=40)
    )
    # Aligned tiles reproduce the one-pass map up to a global affine map (the coarse frame),
    # within 2 % of the map's [0, 1] range; tiles left in their own frames do not.
    assert np.percentile(_affine_residual(aligned, reference), 99) < 0.02
    assert np.percentile(_affine_residual(raw, reference), 99) > 0.1
    # Seams: compare the gradient across tile edges with the one-pass map's on the same lines.
    assert seam_ratio(aligned, boxes) < 1.05 * seam_ratio(reference, boxes)


def _affine_residual(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    a = np.stack([pred.ravel(), np.ones(pred.size)], 1)
    fit, *_ = np.linalg.lstsq(a, target.ravel(), rcond=None)
    return np.abs(a @ fit - target.ravel())


def test_fixed_size_nhwc_depth_model_is_read_as_inverse_depth(nhwc_depth):
    model = load_model(nhwc_depth, "cpu", kind="depth")
    assert model.tile_net.spec.layout == "NHWC" and model.tile_net.spec.size == (64, 96)
    rgb = np.zeros((50, 80, 3), np.uint8)
    rgb[:, 40:] = 255  # right half bright = far for this model
    disp = depth_array(rgb, model)
    assert disp[:, :30].mean() > disp[:, 50:].mean()


@pytest.mark.parametrize("fmt", ["png16", "tiff", "pfm", "npy"])
def test_each_format_holds_the_map(tmp_path, pointwise_exact, fmt):
    model = load_model(pointwise_exact, "cpu")
    rgb = scene_image(130, 170)
    src = tmp_path / "in.png"
    cv2.imwrite(str(src), rgb[:, :, ::-1])
    expected = depth_array(rgb, model, DepthOptions(tile=64, overlap=16))
    dst = tmp_path / f"out.{fmt}"
    depth_file(src, dst, model, DepthOptions(64, 16), fmt=fmt)
    if fmt == "png16":
        got = cv2.imread(str(dst), cv2.IMREAD_UNCHANGED)
        assert got.dtype == np.uint16 and got.min() == 0 and got.max() == 65535
        norm = (expected - expected.min()) / (expected.max() - expected.min()) * 65535
        np.testing.assert_allclose(got, norm, atol=1.0)  # rounding to integers
    else:
        got = {"tiff": tifffile.imread, "pfm": read_pfm, "npy": np.load}[fmt](dst)
        np.testing.assert_array_equal(got, expected)
    assert [p.name for p in tmp_path.iterdir() if ".part" in p.name] == []


def _write(tmp_path, name, array, **save):
    path = tmp_path / name
    pyvips.Image.new_from_array(array).write_to_file(str(path), **save)
    return path


@pytest.mark.parametrize(
    "name,array,hw",
    [
        ("grey.png", np.linspace(0, 255, 60 * 90).reshape(60, 90).astype(np.uint8), (60, 90)),
        ("rgba.png", np.full((40, 50, 4), 200, np.uint8), (40, 50)),
        ("deep.png", (np.arange(30 * 40 * 3).reshape(30, 40, 3) * 50).astype(np.uint16), (30, 40)),
        ("dot.png", np.full((1, 1, 3), 9, np.uint8), (1, 1)),
        ("strip.png", np.full((3, 4000, 3), 120, np.uint8), (3, 4000)),
    ],
)
def test_odd_but_valid_images_work(tmp_path, pointwise_exact, name, array, hw):
    src = _write(tmp_path, name, array)
    report = depth_file(
        src, tmp_path / "d.npy", load_model(pointwise_exact, "cpu"), DepthOptions(256), fmt="npy"
    )
    assert (report.height, report.width) == hw
    assert np.isfinite(np.load(tmp_path / "d.npy")).all()


def test_exif_rotation_is_applied(tmp_path, pointwise_exact):
    image = pyvips.Image.new_from_array(np.full((40, 100, 3), 90, np.uint8)).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)  # 90 degrees clockwise
    src = tmp_path / "rotated.jpg"
    image.jpegsave(str(src))
    report = depth_file(src, tmp_path / "d.npy", load_model(pointwise_exact, "cpu"), fmt="npy")
    assert (report.width, report.height) == (40, 100)


def test_pydnet_tiled_keeps_rank_correlation_on_motorcycle():
    require(PYDNET)
    rgb = cv2.imread(str(require(MOTORCYCLE / "im0.png")))[:, :, ::-1]
    gt = read_pfm(MOTORCYCLE / "disp0GT.pfm")
    valid = np.isfinite(gt)
    model = load_model(PYDNET, "cpu", kind="depth")
    disp = depth_array(rgb, model, DepthOptions(tile=512))
    assert len(plan_tiles(*rgb.shape[:2], 512).tiles) > 1
    # The bar: >= 0.70 tiled (the model alone, untiled: 0.78).
    assert spearman(disp, gt, valid) >= 0.70


@pytest.mark.parametrize("which", ["self-normalising", "shipped refiner pair"])
def test_stages_side_by_side_give_the_same_map_as_one_after_another(
    tmp_path, selfnorm_model, monkeypatch, which
):
    """On a GPU, reading, the network and blending run on three threads (the coarse pass
    beside the first reads; a refiner's tiles wait for it); the map must be
    bit for bit the one the CPU's sequential order gives (tiles add up in any order only up
    to float rounding, so the order itself must not change)."""
    import prodepth_cli.pipeline as pipeline

    rgb = scene_image(400, 600, seed=5)
    src = tmp_path / "p.png"
    cv2.imwrite(str(src), rgb[:, :, ::-1])
    model = load_model(selfnorm_model if which == "self-normalising" else None, "cpu")
    options = DepthOptions(160, 40, batch=3)
    maps = {}
    for threaded in (False, True):
        monkeypatch.setattr(pipeline, "_network_leaves_cpu_idle", lambda net, t=threaded: t)
        maps[threaded, "array"] = depth_array(
            rgb, model, DepthOptions(tile=160, overlap=40, batch=3)
        )
        depth_file(src, tmp_path / f"{threaded}.npy", model, options, fmt="npy")
        maps[threaded, "file"] = np.load(tmp_path / f"{threaded}.npy")
    assert len(plan_tiles(400, 600, 160, 40).tiles) > 3 * 3  # several batches in flight
    np.testing.assert_array_equal(maps[True, "array"], maps[False, "array"])
    np.testing.assert_array_equal(maps[True, "file"], maps[False, "file"])


@pytest.mark.parametrize("fixture", ["pointwise_affine", "nhwc_depth"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, "grey"])
def test_network_input_is_the_spec_formula_into_a_reused_batch(request, fixture, dtype):
    """`prepare` writes `(rgb01 * pixel_scale - mean) / std`, channels in the spec's order,
    into the batch it is given (OpenCV for float32 NCHW, numpy for the rest)."""
    spec = {"mean": (0.4, 0.5, 0.6), "std": (0.2, 0.25, 0.3), "color": "BGR", "pixel_scale": 2}
    net = load_model(request.getfixturevalue(fixture), "cpu", **spec).tile_net
    rng = np.random.default_rng(0)
    full_scale = {np.uint8: 255.0, np.uint16: 65535.0}.get(dtype, 1.0)
    if dtype == "grey":
        images = [rng.integers(0, 256, (48, 64), np.uint8) for _ in range(2)]
        full_scale, unit = 255.0, [np.repeat(i[..., None] / 255.0, 3, axis=2) for i in images]
    elif dtype == np.float32:
        images = [rng.uniform(0, 1, (48, 64, 3)).astype(np.float32) for _ in range(2)]
        unit = images
    else:
        images = [rng.integers(0, int(full_scale) + 1, (48, 64, 3)).astype(dtype) for _ in "ab"]
        unit = [i / full_scale for i in images]
    shape, batch_dtype = net.batch_for(2, images[0], full_scale)
    batch = np.full(shape, np.nan, batch_dtype)
    assert net.prepare(images, full_scale, batch) is batch
    mean, std = np.array(spec["mean"]), np.array(spec["std"])
    expected = np.stack([(u[..., ::-1] * 2 - mean) / std for u in unit])  # BGR
    got = batch if net.spec.layout == "NHWC" else batch.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_batch_buffers_take_turns_so_none_is_refilled_while_in_flight():
    from prodepth_cli.pipeline import _BatchBuffers

    buffers = _BatchBuffers(in_flight=3)
    f32 = np.dtype(np.float32)
    taken = [buffers.take((4, 3, 32, 32), f32) for _ in range(3)]
    assert not any(np.shares_memory(a, b) for a, b in itertools.combinations(taken, 2))
    for i in range(3, 8):  # then the same three in turn; a row's shorter batch is a front
        again = buffers.take((4 if i % 2 else 3, 3, 32, 32), f32)
        assert np.shares_memory(again, taken[i % 3]) and len(again) == (4 if i % 2 else 3)
