"""Ensembles of ONNX depth models (`models/ensemble.py`, `prodepth models ensemble`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.errors import ModelError
from prodepth_cli.models.ensemble import ensemble_models, extract_member, standardise
from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import DepthOptions, depth_array
from tests.conftest import scene_image
from tests.onnx_models import pointwise_model, self_normalising_model
from tests.test_cli import _assert_one_line_error

SPEC = {"multiple": 1}


def _coarse_export(path: Path, seed: int) -> Path:
    """A real coarse network (random weights of its own) exported as training exports it."""
    from prodepth_cli.nets import build_net
    from prodepth_cli.training.checkpoint import save_checkpoint, trained_weights
    from prodepth_cli.training.config import make_config
    from prodepth_cli.training.export import export_checkpoint

    torch.manual_seed(seed)
    net = build_net("coarse")
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # unlike a fresh network, unlike each other
    cfg = make_config("coarse", {"size": 64})
    checkpoint = path.with_suffix(".pt")
    state = {"config": cfg.to_json(), "model": trained_weights(net), "step": seed}
    save_checkpoint(checkpoint, state)
    return export_checkpoint(checkpoint, path).onnx_path


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("members")
    return [
        pointwise_model(folder / "pointwise.onnx", SPEC),
        self_normalising_model(folder / "selfnorm.onnx", SPEC),
    ]


def test_an_ensemble_answers_the_mean_of_its_standardised_members(members, tmp_path):
    """On a photo-like image: the ensemble's map is each member's map, standardised per image,
    averaged (float32 sums over 12 k pixels inside, float64 here: 1e-4 of unit-variance maps)."""
    result = ensemble_models(members, tmp_path / "ens.onnx")
    image = scene_image(96, 128).astype(np.float32)[None] / 255.0
    ens = load_model(result.onnx_path, "cpu").tile_net
    got = ens.predict(image)
    maps = [load_model(m, "cpu").tile_net.predict(image) for m in members]
    stds = sorted(float(np.std(m)) for m in maps)
    assert stds[1] / stds[0] > 1.5  # members on different scales: standardising matters
    expected = np.mean([standardise(m) for m in maps], axis=0)
    assert got.shape == maps[0].shape
    assert np.abs(got - expected).max() < 1e-4
    assert result.max_abs_diff < 1e-4
    spec = json.loads(result.spec_path.read_text())
    assert [m["file"] for m in spec["extra"]["members"]] == ["pointwise.onnx", "selfnorm.onnx"]


def test_an_ensemble_of_coarse_networks_runs_the_pipeline_and_rebuilds_for_video(tmp_path):
    """Two exported coarse networks (opset 17): the ensemble tiles a photo like any model,
    and video's rebuild takes its first member, matching that member's own export."""
    from prodepth_cli.video.coarse_weights import check_parity, coarse_net_from_onnx

    a, b = _coarse_export(tmp_path / "a.onnx", 1), _coarse_export(tmp_path / "b.onnx", 2)
    ens = ensemble_models([a, b], tmp_path / "ens.onnx").onnx_path
    disparity = depth_array(scene_image(200, 300), load_model(ens, "cpu"), DepthOptions(tile=128))
    assert disparity.shape == (200, 300) and np.isfinite(disparity).all()
    assert disparity.std() > 0
    rebuilt = coarse_net_from_onnx(ens)
    check_parity(rebuilt, ens, (64, 96))  # against the ensemble's own m0 output
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        got = rebuilt.eval()(x).numpy()
    own = coarse_net_from_onnx(a).eval()
    with torch.no_grad():
        assert np.abs(got - own(x).numpy()).max() < 1e-5


def test_a_member_taken_out_of_an_ensemble_joins_a_new_one(tmp_path):
    """The first member, cut out of an ensemble's graph at its own map (`m0_disparity`: members
    may name their outputs differently), makes with a new second member the ensemble one would
    make from the original files: how a shipped member is swapped for a later step."""
    a, b = _coarse_export(tmp_path / "a.onnx", 1), _coarse_export(tmp_path / "b.onnx", 2)
    c = _coarse_export(tmp_path / "c.onnx", 3)
    first = ensemble_models([a, b], tmp_path / "ab.onnx").onnx_path
    cut = extract_member(first, 0, tmp_path / "a_cut.onnx")
    assert json.loads(cut.with_suffix(".json").read_text())["extra"]["trained_steps"] == 1
    with pytest.raises(ModelError, match="no member 2"):
        extract_member(first, 2, tmp_path / "none.onnx")
    swapped = ensemble_models([cut, c], tmp_path / "ac_cut.onnx").onnx_path
    direct = ensemble_models([a, c], tmp_path / "ac.onnx").onnx_path
    image = scene_image(64, 96).astype(np.float32)[None] / 255.0
    got, want = (load_model(p, "cpu").tile_net.predict(image) for p in (swapped, direct))
    assert np.abs(got - want).max() < 1e-5


def test_members_must_share_a_spec_and_not_be_refiners(members, tmp_path):
    other = pointwise_model(tmp_path / "other.onnx", {"multiple": 1, "working_size": 256})
    with pytest.raises(ModelError, match="other.onnx: its spec differs"):
        ensemble_models([members[0], other], tmp_path / "ens.onnx")
    refiner = pointwise_model(tmp_path / "refiner.onnx", {**SPEC, "coarse_input": "image"})
    with pytest.raises(ModelError, match="refiner.onnx: a refiner cannot"):
        ensemble_models([members[0], refiner], tmp_path / "ens.onnx")
    with pytest.raises(ModelError, match="at least two"):
        ensemble_models(members[:1], tmp_path / "ens.onnx")
    assert list(tmp_path.glob("ens*")) == []  # nothing half-written


def test_ensemble_command_writes_the_model_and_reports_errors_in_one_line(members, tmp_path):
    runner = CliRunner()
    out = tmp_path / "sub" / "ens.onnx"
    ok = runner.invoke(app, ["models", "ensemble", *map(str, members), "-o", str(out), "--json"])
    assert ok.exit_code == 0, ok.stderr
    record = json.loads(ok.stdout)
    assert record["onnx"] == str(out) and out.is_file() and out.with_suffix(".json").is_file()
    missing = tmp_path / "missing.onnx"
    bad = runner.invoke(
        app, ["models", "ensemble", str(members[0]), str(missing), "-o", str(tmp_path / "x.onnx")]
    )
    _assert_one_line_error(bad, "missing.onnx")
    assert not (tmp_path / "x.onnx").exists()
