"""A few training steps, export to ONNX, and onnxruntime agreeing with torch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prodepth_cli.data_root import SHARED_DATA

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from prodepth_cli.training.coarse_input import CoarsePass  # noqa: E402
from prodepth_cli.training.config import make_config, read_config_file  # noqa: E402
from prodepth_cli.training.export import export_checkpoint  # noqa: E402
from prodepth_cli.training.loop import run_training  # noqa: E402

needs_data = pytest.mark.skipif(
    not (SHARED_DATA / "train").is_dir(), reason=f"{SHARED_DATA} absent: real training pairs needed"
)

TINY_REFINER = dict(
    steps=2,
    val_every=2,
    batch=1,
    size=64,
    patch=64,
    overlap=16,
    image_side=128,
    val_synthetic=1,
    threads=1,
)
TINY = {
    "coarse": dict(steps=2, val_every=2, batch=2, size=64, val_synthetic=1, threads=1),
    "refiner_convex": {**TINY_REFINER, "arch": {"convex": True}},
    "refiner": TINY_REFINER,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for kind, overrides in TINY.items():
        folder = tmp_path_factory.mktemp(kind)
        result = run_training(make_config(kind.split("_")[0], overrides), folder)
        assert result.step == 2
        out[kind] = folder
    return out


@needs_data
@pytest.mark.parametrize("kind", list(TINY))
def test_train_writes_last_and_best_checkpoints(runs, kind):
    assert (runs[kind] / "last.pt").is_file()
    assert (runs[kind] / "best.pt").is_file()


@needs_data
def test_resume_continues_from_last_step(runs):
    cfg = make_config("coarse", {**TINY["coarse"], "steps": 3})
    result = run_training(cfg, runs["coarse"], resume=True)
    assert result.step == 3  # one more step, not three


@needs_data
def test_weights_average_is_kept_resumed_and_exported(tmp_path):
    """With `ema`, checkpoints carry the moving average beside the weights; a resumed run
    goes on averaging (not restarting from the weights), and export takes the average."""
    from prodepth_cli.training.checkpoint import load_checkpoint, net_from_checkpoint

    overrides = {**TINY["coarse"], "ema": 0.5, "steps": 3, "val_every": 3}
    run_training(make_config("coarse", overrides), tmp_path)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["ema_count"] == 3
    trained, averaged = state["model"], state["ema_model"]
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained if "weight" in k)
    exported = net_from_checkpoint(state).state_dict()
    assert all(torch.equal(exported[k], averaged[k]) for k in averaged)

    run_training(make_config("coarse", {**overrides, "steps": 4}), tmp_path, resume=True)
    resumed = load_checkpoint(tmp_path / "last.pt")
    assert resumed["ema_count"] == 4
    # 0.5 * old average + 0.5 * new weights for every float tensor (BatchNorm's step
    # counter aside): the average went on from where it was.
    for k, old in averaged.items():
        if old.is_floating_point():
            expected = 0.5 * old + 0.5 * resumed["model"][k]
            torch.testing.assert_close(resumed["ema_model"][k], expected)


def test_the_refiners_coarse_input_is_the_coarse_pass_at_its_training_size():
    """The refiner learns on what the pipeline will give it: the coarse network run with the
    image's short side at the size that network trained at, in the [0, 1] frame."""
    shapes = []

    class Ramp(torch.nn.Module):
        def forward(self, x):
            shapes.append(tuple(x.shape[2:]))
            return torch.linspace(0, 3, x.shape[-1]).expand(len(x), 1, *x.shape[2:])

    rgb = np.random.default_rng(0).random((384, 512, 3), dtype=np.float32)
    coarse = CoarsePass(Ramp(), side=128).disparity(rgb, "cpu")
    assert shapes == [(128, 160)]  # short side 128; 512 * 128 / 384 = 171 -> multiple of 32
    assert coarse.shape == (384, 512)
    assert coarse.min() == 0 and coarse.max() == 1
    assert np.all(np.diff(coarse[0]) >= 0)  # the network's left-to-right ramp, upsampled


def test_an_onnx_coarse_model_gives_the_refiner_its_map_of_the_image(tmp_path):
    """An ONNX coarse model's input to the refiner is that model's map of the whole image, in
    the [0, 1] frame: for a pointwise model on a smooth photo-like image, the model applied to
    each pixel, up to the coarse pass's downsampling (1 % of the frame)."""
    from prodepth_cli.training.coarse_input import OnnxCoarsePass, minmax_frame
    from tests.conftest import scene_image
    from tests.onnx_models import pointwise_model

    path = pointwise_model(tmp_path / "p.onnx", {"multiple": 1, "working_size": 96})
    rgb = scene_image(192, 256).astype(np.float32) / 255
    coarse = CoarsePass.load(path, "cpu").disparity(rgb, "cpu")
    assert isinstance(CoarsePass.load(path, "cpu"), OnnxCoarsePass)
    z = rgb @ np.array([1.5, -2.0, 0.7], np.float32) + 0.1
    expected = minmax_frame(1 / (1 + np.exp(-z)))
    assert coarse.shape == (192, 256) and coarse.min() == 0 and coarse.max() == 1
    assert np.abs(coarse - expected)[8:-8, 8:-8].mean() < 0.01


@needs_data
@pytest.mark.parametrize("source", ["checkpoint", "onnx"])
def test_refiner_fed_by_a_coarse_net_is_also_validated_on_its_outputs(runs, tmp_path, source):
    """The ledger's refiner figures on the coarse inputs it meets in the pipeline: for each
    group, refined and coarse MAE / edge F1 with the coarse network's outputs as inputs. The
    coarse network may be a checkpoint or an ONNX model (the shipped ensemble has no
    checkpoint)."""
    coarse = str(runs["coarse"] / "last.pt")
    if source == "onnx":
        coarse = str(export_checkpoint(Path(coarse), tmp_path / "coarse.onnx").onnx_path)
    cfg = make_config("refiner", {**TINY_REFINER, "coarse_checkpoint": coarse})
    metrics = run_training(cfg, tmp_path).last_metrics
    for group in ("syn", "real"):
        for key in ("mae", "mae_coarse", "edge_f1", "edge_f1_coarse"):
            assert np.isfinite(metrics[f"{group}_{key}"])
            assert np.isfinite(metrics[f"{group}_net_{key}"])
        # the net's map is not the simulated one: the two inputs score differently
        assert metrics[f"{group}_net_mae_coarse"] != metrics[f"{group}_mae_coarse"]
    assert (
        "syn_net_mae"
        not in run_training(make_config("refiner", TINY_REFINER), tmp_path / "alone").last_metrics
    )


@needs_data
@pytest.mark.parametrize("kind", ["coarse", "refiner"])
def test_batches_built_by_workers_train_the_same_net(runs, tmp_path, kind):
    """A step's batch depends only on (seed, step): workers change the speed, not the run.
    The refiner takes half its coarse inputs from a coarse net, in the training process."""
    extra = {}
    if kind == "refiner":
        extra = dict(coarse_checkpoint=str(runs["coarse"] / "last.pt"), coarse_from_net=0.5)

    def weights(workers: int) -> dict:
        cfg = make_config(kind, {**TINY[kind], **extra, "batch": 2, "workers": workers})
        run_training(cfg, tmp_path / str(workers))
        return torch.load(tmp_path / str(workers) / "last.pt", weights_only=False)["model"]

    alone, helped = weights(0), weights(2)
    assert all(torch.equal(alone[k], helped[k]) for k in alone)


@needs_data
@pytest.mark.parametrize("run", list(TINY))
def test_export_round_trip_matches_torch(runs, run, tmp_path):
    kind = run.split("_")[0]
    onnx_path = tmp_path / f"prodepth-{kind}.onnx"
    result = export_checkpoint(runs[run] / "last.pt", onnx_path)
    assert result.max_abs_diff <= 1e-3  # the contract the export enforces
    spec = json.loads(onnx_path.with_suffix(".json").read_text())
    assert spec["input"] == "image" and spec["output"] == "disparity"
    assert spec["multiple"] == 32
    assert spec["align"] == ("affine" if kind == "coarse" else "none")
    if kind == "refiner":
        assert spec["coarse_input"] == "coarse"
        assert spec["coarse_model"] == "prodepth-coarse.onnx"
    import onnx

    assert onnx.load(str(onnx_path)).ir_version <= 13  # onnxruntime 1.31 reads IR <= 13
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = {"image": np.zeros((2, 3, 96, 160), np.float32)}  # dynamic batch, H and W
    if kind == "refiner":
        feed["coarse"] = np.full((2, 1, 96, 160), 0.5, np.float32)
    (out,) = sess.run(["disparity"], feed)
    assert out.shape == (2, 1, 96, 160)


@needs_data
def test_export_fp16_keeps_float32_io(runs, tmp_path):
    onnx_path = tmp_path / "coarse16.onnx"
    result = export_checkpoint(runs["coarse"] / "last.pt", onnx_path, fp16=True)
    assert result.max_abs_diff <= 2e-2  # half precision: about 3 decimal digits
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].type == "tensor(float)"


@pytest.mark.parametrize("gain", [1.0, 200.0])
def test_a_half_precision_export_is_judged_on_its_output_range(tmp_path, gain):
    """Disparity's scale is arbitrary: a coarse network answering over a span of tens (as the
    HED-trunk one does) keeps fp16's three digits of it, and must export and be rebuilt for
    video as one answering over a span of one does."""
    from prodepth_cli.nets import build_net
    from prodepth_cli.training.checkpoint import save_checkpoint, trained_weights
    from prodepth_cli.video.coarse_weights import check_parity, coarse_net_from_onnx

    torch.manual_seed(0)
    net = build_net("coarse")
    head = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # weights unlike a fresh network's
        head.weight.mul_(gain)
        head.bias.mul_(gain)
    cfg = make_config("coarse", {"size": 64})
    save_checkpoint(
        tmp_path / "c.pt", {"config": cfg.to_json(), "model": trained_weights(net), "step": 1}
    )

    result = export_checkpoint(tmp_path / "c.pt", tmp_path / "c16.onnx", fp16=True)
    rebuilt = coarse_net_from_onnx(result.onnx_path)
    check_parity(rebuilt, result.onnx_path, (64, 96))  # raises above the tolerance
    with torch.no_grad():
        span = float(np.ptp(net.eval()(torch.randn(1, 3, 64, 96)).numpy()))
    assert gain == 1 or span > 20  # the large gain really spans tens
    assert result.max_abs_diff < 1e-2 * max(span, 1.0)


def test_refiner_starts_as_identity_of_coarse():
    """A fresh refiner returns its coarse input: training starts from 'trust the coarse'."""
    from prodepth_cli.nets import build_net

    net = build_net("refiner").eval()
    coarse = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 64), coarse)
    assert torch.equal(out, coarse)


def test_convex_refiner_starts_near_identity():
    """The convex head puts softmax weight ~0.9997 on the coarse map itself at first; the
    other 18 candidates are local averages of the same [0, 1] map, so the output moves by
    well under 0.01 (measured about 0.003)."""
    from prodepth_cli.nets import build_net

    net = build_net("refiner", {"convex": True}).eval()
    coarse = torch.rand(1, 1, 64, 96)
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 96), coarse)
    assert float((out - coarse).abs().max()) < 0.01


def test_convex_candidates_can_pick_the_far_side_of_an_edge():
    """A blurred step: the 32 px pooled neighbours offer both plateau values at the ramp."""
    from prodepth_cli.nets.refiner import convex_candidates

    coarse = torch.zeros(1, 1, 64, 128)
    coarse[..., 64:] = 1.0
    cands = convex_candidates(coarse, (8, 32))
    assert cands.shape == (1, 19, 64, 128)
    at_edge = cands[0, :, 10, 60]  # just left of the step
    assert float(at_edge.min()) == 0.0 and float(at_edge.max()) == 1.0


@pytest.mark.parametrize("path", sorted(Path(__file__).resolve().parents[1].glob("configs/*.json")))
def test_shipped_configs_are_valid(path):
    """Every config in configs/ names only known options, for the network its name says."""
    kind = path.stem.split("-")[0]
    cfg = make_config(kind, read_config_file(path))
    assert cfg.kind == kind


@needs_data
@pytest.mark.parametrize("kind", ["coarse", "refiner"])
def test_bfloat16_forward_trains_like_float32(tmp_path, kind):
    """The same two steps with the forward pass in bfloat16 and in float32: the losses
    agree to a few per cent, and the checkpoint's weights stay float32."""
    losses = {}
    for precision in ("bf16", "fp32"):
        cfg = make_config(kind, {**TINY[kind], "precision": precision})
        losses[precision] = run_training(cfg, tmp_path / precision).last_metrics["loss"]
        weights = torch.load(tmp_path / precision / "last.pt", weights_only=False)["model"]
        assert all(w.dtype != torch.bfloat16 for w in weights.values())
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)


def test_precision_is_checked_and_explicit_choices_hold():
    from prodepth_cli.errors import OptionError

    with pytest.raises(OptionError, match="precision 'fp8'"):
        make_config("coarse", {"precision": "fp8"})
    assert make_config("coarse", {"precision": "bf16"}).uses_bf16("cpu")
    assert not make_config("coarse", {"precision": "fp32"}).uses_bf16("cpu")


def test_coarse_batches_take_the_shapes_of_photos():
    """Short side `size`, long side `size` x an aspect, landscape and portrait: how the
    pipeline's coarse pass shows whole photos to the network."""
    from prodepth_cli.training.loop import _batch_hw

    cfg = make_config("coarse", {"size": 128, "aspects": [1.0, 1.5, 1.78]})
    shapes = {_batch_hw(cfg, step) for step in range(200)}
    assert shapes == {(128, 128), (128, 192), (192, 128), (128, 224), (224, 128)}
    square = make_config("coarse", {"size": 128})
    assert {_batch_hw(square, step) for step in range(50)} == {(128, 128)}


@needs_data
def test_coarse_trains_on_batches_of_several_shapes(tmp_path):
    cfg = make_config("coarse", {**TINY["coarse"], "steps": 4, "aspects": [1.0, 2.0]})
    assert np.isfinite(run_training(cfg, tmp_path).last_metrics["loss"])


def test_checkpoints_leave_out_frozen_weights_and_load_back():
    """A frozen pretrained trunk is not saved (its own weights file brings it back); every
    other weight is, and a checkpoint that lacks one is refused."""
    from prodepth_cli.errors import ModelError
    from prodepth_cli.nets import build_net
    from prodepth_cli.training.checkpoint import load_weights, trained_weights

    net = build_net("coarse")
    net.encoder.requires_grad_(False)  # stands in for a frozen trunk
    saved = trained_weights(net)
    assert saved and not any(k.startswith("encoder.") and "weight" in k for k in saved)
    fresh = build_net("coarse")
    fresh.encoder.load_state_dict(net.encoder.state_dict())  # the trunk, from "its file"
    fresh.encoder.requires_grad_(False)
    load_weights(fresh, saved)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), net.eval()(x))
    with pytest.raises(ModelError, match="missing"):
        load_weights(build_net("coarse"), saved)  # nothing frozen: the trunk is missing


def test_kill_stops_a_run_after_its_step_with_last_saved_and_no_workers_left(tmp_path):
    """A background run ignores Ctrl-C, so `kill` (SIGTERM) is how it is stopped: the step
    in progress ends, last.pt is saved, the command says `interrupted` and exits 130, and
    its batch-building workers do not outlive it (they used to, holding gigabytes)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    config = tmp_path / "tiny.json"
    tiny = {**TINY["coarse"], "size": 32, "val_every": 3, "workers": 1, "real_fraction": 0}
    config.write_text(json.dumps({k: v for k, v in tiny.items() if k != "steps"}))
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "prodepth_cli", "train", "coarse", "-o", str(out)]
    cmd += ["--config", str(config), "--steps", "100000"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint within two minutes"
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 130
    assert proc.stderr.read().strip().splitlines()[-1] == "prodepth: error: interrupted"
    assert torch.load(out / "last.pt", weights_only=False)["step"] >= 3
    deadline = time.monotonic() + 10
    while True:  # the run's process group empties once its helpers see it gone
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "processes of the killed run are still alive"
        time.sleep(0.1)
