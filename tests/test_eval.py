"""Evaluation protocol: the rows prior and PyDNet++ reproduce the reference figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prodepth_cli.evaluation import (
    Prediction,
    evaluate,
    mean_scores,
    rows_prior,
    rows_prior_predictor,
)
from prodepth_cli.gt import DEFAULT_GT_DIR, Scene, load_scenes

PYDNET = DEFAULT_GT_DIR.parent / "models" / "pydnet_pp_448x640.onnx"

needs_gt = pytest.mark.skipif(
    not DEFAULT_GT_DIR.is_dir(), reason=f"ground-truth data not found at {DEFAULT_GT_DIR}"
)
needs_pydnet = pytest.mark.skipif(not PYDNET.is_file(), reason=f"{PYDNET} not found")

# Reference delta1 figures (measured independently), per scene: (PyDNet++, rows prior).
REFERENCE_DELTA1 = {
    "Motorcycle": (0.647, 0.493),
    "Art": (0.428, 0.611),
    "Books": (0.652, 0.802),
    "Dolls": (0.718, 0.906),
    "Laundry": (0.731, 0.632),
    "Moebius": (0.805, 0.854),
    "Reindeer": (0.490, 0.652),
    "KITTI 000046_10": (0.324, 0.599),
}


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return load_scenes()


def _toy_scene(h: int = 40, w: int = 60) -> Scene:
    yy, xx = np.mgrid[0:h, 0:w]
    disp = (5.0 + yy + 0.1 * xx).astype(np.float32)
    rgb = np.zeros((h, w, 3), np.uint8)
    return Scene("toy", rgb, disp, np.ones((h, w), bool))


def test_rows_prior_grows_linearly_down_the_image():
    prior = rows_prior(5, 3)
    assert prior.shape == (5, 3) and prior.dtype == np.float32
    assert np.all(prior == prior[:, :1])  # constant along each row
    steps = np.diff(prior[:, 0])
    assert np.all(steps > 0) and np.allclose(steps, steps[0])


def test_evaluate_reports_seams_only_for_tiled_predictions():
    scene = _toy_scene()
    h, w = scene.valid.shape
    plain = evaluate(lambda rgb: scene.disparity, [scene])[0]
    assert "seam_ratio" not in plain
    assert plain["scene"] == "toy" and plain["delta1"] == 1.0
    tiles = ((0, 0, 40, h), (20, 0, w, h))
    tiled = evaluate(lambda rgb: Prediction(scene.disparity, tiles), [scene])[0]
    # A plane has the same gradient everywhere: 1 up to float32 round-off (~1e-6 of 0.1 px).
    assert tiled["seam_ratio"] == pytest.approx(1.0, rel=1e-4)


def test_evaluate_rejects_a_prediction_of_the_wrong_size():
    scene = _toy_scene()
    with pytest.raises(ValueError, match="toy"):
        evaluate(lambda rgb: np.zeros((10, 10), np.float32), [scene])


def test_mean_scores_skip_unknown_values():
    rows = [{"delta1": 0.5, "edge_f1": float("nan")}, {"delta1": 0.7, "edge_f1": 0.2}]
    assert mean_scores(rows) == pytest.approx({"delta1": 0.6, "edge_f1": 0.2})


@needs_gt
def test_rows_prior_reproduces_reference_delta1(scenes):
    rows = {r["scene"]: r for r in evaluate(rows_prior_predictor, scenes)}
    for name, (_, expected) in REFERENCE_DELTA1.items():
        # Reference figures are rounded to 3 decimals; the protocol matches them exactly.
        assert rows[name]["delta1"] == pytest.approx(expected, abs=6e-4), name


def pydnet_predictor(path: Path):
    """PyDNet++ run directly: RGB/255 NHWC at 640x448 (bilinear), disparity = 1 / output."""
    import cv2
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (640, 448), interpolation=cv2.INTER_LINEAR)
        depth = session.run(None, {name: x[None].astype(np.float32) / 255.0})[0][0, :, :, 0]
        return cv2.resize(1.0 / depth, (w, h), interpolation=cv2.INTER_LINEAR)

    return predict


@needs_gt
@needs_pydnet
def test_pydnet_reproduces_reference_delta1(scenes):
    rows = {r["scene"]: r for r in evaluate(pydnet_predictor(PYDNET), scenes)}
    for name, (expected, _) in REFERENCE_DELTA1.items():
        # 2e-3: onnxruntime versions differ in float round-off, and delta1 counts pixels
        # near the 1.25 threshold; measured here to match to the third decimal.
        assert rows[name]["delta1"] == pytest.approx(expected, abs=2e-3), name
        assert np.isfinite(rows[name]["absrel"]) and rows[name]["spearman"] > 0.3, name


# --- through the depth pipeline and the CLI (need prodepth_cli.pipeline) -------------------


def _small_gt(tmp_path: Path) -> Path:
    """A ground-truth folder with two scenes, linked (not copied) from the shared data."""
    root = tmp_path / "gt" / "middlebury2005_third"
    root.mkdir(parents=True)
    for name in ("Art", "Dolls"):
        (root / name).symlink_to(DEFAULT_GT_DIR / "middlebury2005_third" / name)
    motorcycle = tmp_path / "gt" / "middlebury2014_Q"
    motorcycle.mkdir()
    (motorcycle / "Motorcycle").symlink_to(DEFAULT_GT_DIR / "middlebury2014_Q" / "Motorcycle")
    return tmp_path / "gt"


@needs_gt
@needs_pydnet
def test_pipeline_predictor_scores_and_reports_seams(tmp_path):
    pytest.importorskip("prodepth_cli.pipeline", reason="depth pipeline not written yet")
    from prodepth_cli.evaluation import model_predictor
    from prodepth_cli.models.runtime import load_model

    model = load_model(PYDNET, device="cpu")
    scenes = load_scenes(_small_gt(tmp_path))
    rows = evaluate(model_predictor(model, tile=256), scenes)
    for row in rows:
        # 256 px tiles on 463-741 px scenes: several tiles, so seams are measured.
        assert "seam_ratio" in row, row["scene"]
        # A seam would push the ratio well above 1 (steps >> the mean gradient); a clean
        # blend stays near it. 1.5 leaves room for real depth edges crossing a tile edge.
        assert 0.5 < row["seam_ratio"] < 1.5, row
        assert row["spearman"] > 0.2, row  # the model still ranks depth (0.4-0.8 untiled)


@needs_gt
@needs_pydnet
def test_eval_command_prints_json_per_scene_and_model(tmp_path):
    pytest.importorskip("prodepth_cli.pipeline", reason="depth pipeline not written yet")
    import typer
    from typer.testing import CliRunner

    from prodepth_cli.commands.eval import eval_command

    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)  # two commands: `eval` stays a subcommand
    data = _small_gt(tmp_path)
    args = ["eval", "--model", str(PYDNET), "--data", str(data), "--json", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert {(r["scene"], r["model"]) for r in records} == {
        (s, m) for s in ("Motorcycle", "Art", "Dolls") for m in (PYDNET.stem, "rows prior")
    }
    prior = {r["scene"]: r for r in records if r["model"] == "rows prior"}
    assert prior["Dolls"]["delta1"] == pytest.approx(0.906, abs=6e-4)


def test_eval_command_names_a_missing_data_folder(tmp_path):
    import typer
    from typer.testing import CliRunner

    from prodepth_cli.commands.eval import eval_command

    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("noop")(lambda: None)
    result = CliRunner().invoke(app, ["eval", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "nowhere" in result.output and "Traceback" not in result.output
