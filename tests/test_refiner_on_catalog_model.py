"""PRO on a catalog model: a refiner trained on Depth Anything V2's coarse outputs, exported
naming it, and run as a pair by `prodepth depth -m refiner.onnx`.

The catalog model is the Depth Anything V2 stand-in (the real architecture, tiny config,
random weights), installed by hand where `prodepth models pull` would put it; nothing is
downloaded.
"""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("torch")

from prodepth_cli.errors import ModelError  # noqa: E402
from prodepth_cli.metrics import seam_ratio  # noqa: E402
from prodepth_cli.models import catalog, hub  # noqa: E402
from prodepth_cli.models.runtime import load_model  # noqa: E402
from prodepth_cli.pipeline import DepthOptions, depth_array  # noqa: E402
from prodepth_cli.tiling.plan import plan_tiles  # noqa: E402
from prodepth_cli.training.config import make_config  # noqa: E402
from prodepth_cli.training.export import export_checkpoint  # noqa: E402
from prodepth_cli.training.loop import run_training  # noqa: E402
from tests.conftest import scene_image  # noqa: E402
from tests.standins import catalog_entry, depth_anything_v2  # noqa: E402
from tests.test_train_export import TINY_REFINER  # noqa: E402

NAME = "da2-standin"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(refiner.onnx, the stand-in's installed path): a short refiner run on the catalog
    model's coarse outputs only (synthetic scenes: no reference data needed), exported."""
    folder = tmp_path_factory.mktemp("pro-on-da2")
    graph = depth_anything_v2(folder / "model.onnx", "tiny")
    extra = folder / "catalog.json"
    extra.write_text(json.dumps({NAME: catalog_entry([graph], like="depth-anything-v2-small")}))
    with pytest.MonkeyPatch.context() as env:
        env.setenv(catalog.CATALOG_ENV, str(extra))
        installed = hub._assets_dir(catalog.lookup(NAME)) / graph.name  # where a pull puts it
        installed.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(graph, installed)
        overrides = {**TINY_REFINER, "coarse_checkpoint": NAME, "coarse_from_net": 1.0}
        run = run_training(make_config("refiner", {**overrides, "real_fraction": 0.0}), folder)
        assert run.step == TINY_REFINER["steps"]
        refiner = export_checkpoint(folder / "last.pt", folder / "refiner.onnx").onnx_path
        yield refiner, installed
    installed.unlink(missing_ok=True)


def test_the_exported_refiner_names_its_catalog_coarse_model(pair):
    refiner, _ = pair
    spec = json.loads(refiner.with_suffix(".json").read_text())
    assert spec["coarse_model"] == NAME and spec["coarse_input"] == "coarse"


def test_the_pair_runs_tiled_without_seams(pair, monkeypatch):
    """The refiner runs on tiles, the catalog model (with its catalog spec: 518 px, multiple
    14) on the whole image; the tiled map carries no more gradient on tile edges than the
    untiled map on the same lines (rel <= 1.3: bench_seams' prodepth rows are 0.8-1.14)."""
    refiner, installed = pair
    monkeypatch.setenv(catalog.CATALOG_ENV, str(refiner.parent / "catalog.json"))
    model = load_model(refiner, "cpu")
    assert model.is_refiner and model.coarse_net.path == installed
    assert model.coarse_net.spec.working_size == 518 and model.coarse_net.spec.multiple == 14
    rgb = scene_image(384, 512)
    boxes = [t.box for t in plan_tiles(384, 512, 256).tiles]
    assert len(boxes) > 1
    tiled = depth_array(rgb, model, DepthOptions(tile=256))
    whole = depth_array(rgb, model, DepthOptions(tile=512))  # one tile: no seam can be made
    assert tiled.shape == (384, 512) and tiled.std() > 0
    rel = seam_ratio(tiled, boxes) / seam_ratio(whole, boxes)
    assert rel <= 1.3, rel


def test_a_refiner_whose_coarse_model_cannot_be_had_is_one_line(pair, tmp_path, monkeypatch):
    refiner, installed = pair
    monkeypatch.setenv(catalog.CATALOG_ENV, str(refiner.parent / "catalog.json"))
    stray = tmp_path / "stray.onnx"
    shutil.copy(refiner, stray)
    spec = json.loads(refiner.with_suffix(".json").read_text())
    stray.with_suffix(".json").write_text(json.dumps({**spec, "coarse_model": "nowhere"}))
    with pytest.raises(ModelError, match="coarse model nowhere is neither beside it nor"):
        load_model(stray, "cpu")
    moved = installed.rename(tmp_path / "away.onnx")  # a refiner file downloads nothing
    try:
        with pytest.raises(ModelError, match=f"refines {NAME}, which is not installed; run"):
            load_model(refiner, "cpu")
    finally:
        moved.rename(installed)
