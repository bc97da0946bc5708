"""The model catalog: the shipped table's facts, names and variants, extra catalogs, and files
recognised by content whatever they are called."""

from __future__ import annotations

import io
import json
import re
import shutil

import pytest

from prodepth_cli.errors import ModelError
from prodepth_cli.models import catalog
from prodepth_cli.models.runtime import load_model, resolve_model
from tests.onnx_models import luminance_depth_nhwc, pointwise_model
from tests.standins import catalog_entry

SHA256 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")


def test_every_shipped_entry_is_pinned_licensed_and_specified():
    models = catalog.all_models()
    names = {m.name for m in models}
    # the minimum: these models, with these variants
    assert {
        "depth-anything-v2-small",
        "depth-anything-v2-base",
        "depth-anything-v2-large",
        "midas-v21-small",
        "depth-pro",
        "metric3d-vit-small",
    } <= names
    for model in models:
        assert model.licence and model.title
        if model.url is None:
            assert COMMIT.match(model.revision), model.ref  # a commit, never a branch
        for f in model.files:
            assert f.sha256 is None or SHA256.match(f.sha256), (model.ref, f.path)
        assert model.bytes > 0, model.ref
        for key in ("input", "output", "layout", "kind", "units", "align", "working_size"):
            assert key in model.spec, (model.ref, key)
    for name in ("depth-anything-v2-small", "depth-anything-v2-base", "depth-anything-v2-large"):
        assert {"fp32", "fp16", "uint8"} <= set(catalog.catalog()[name])


def test_shipped_entries_carry_the_public_exports_contracts():
    small = catalog.lookup("depth-anything-v2-small")
    assert small.repo == "onnx-community/depth-anything-v2-small"
    assert small.files[0].path == "onnx/model.onnx" and small.files[0].bytes == 99_060_839
    assert small.files[0].sha256.startswith("afb6a5c28f3b")
    assert small.licence == "Apache-2.0"
    assert small.spec["mean"] == [0.485, 0.456, 0.406] and small.spec["multiple"] == 14
    assert small.spec["working_size"] == 518 and small.spec["input"] == "pixel_values"
    for name in ("depth-anything-v2-base", "depth-anything-v2-large"):
        assert catalog.lookup(name).licence == "CC-BY-NC-4.0"

    midas = catalog.lookup("midas-v21-small")
    assert midas.url.startswith("https://github.com/isl-org/MiDaS/releases/download/v2_1")
    assert (midas.spec["input"], midas.spec["output"]) == ("0", "797")
    # normalisation is inside the graph: fed rgb / 255 only
    assert midas.spec["mean"] == [0.0] * 3 and midas.spec["std"] == [1.0] * 3

    pro = catalog.lookup("depth-pro")
    assert [f.path for f in pro.files] == ["onnx/model.onnx", "onnx/model.onnx_data"]
    assert pro.spec["units"] == "m" and pro.spec["align"] == "scale"
    assert pro.spec["size"] == [1536, 1536] and pro.spec["mean"] == [0.5] * 3

    m3d = catalog.lookup("metric3d-vit-small")
    assert m3d.spec["pixel_scale"] == 255.0 and m3d.spec["std"] == [1.0] * 3
    assert m3d.spec["units"] == "m" and m3d.spec["multiple"] == 14


def test_names_and_variants():
    assert catalog.find("depth-anything-v2-small").variant == "fp32"
    fp16 = catalog.find("depth-anything-v2-small:fp16")
    assert fp16.variant == "fp16" and fp16.ref == "depth-anything-v2-small:fp16"
    assert fp16.files[0].path == "onnx/model_fp16.onnx"
    assert catalog.find("no-such-model") is None
    with pytest.raises(ModelError, match="no variant 'fp64'"):
        catalog.find("depth-anything-v2-small:fp64")
    with pytest.raises(ModelError, match="not in the model catalog"):
        catalog.lookup("no-such-model")


def _extra_catalog(tmp_path, model_file, monkeypatch, name="studio-model"):
    """A one-entry catalog describing `model_file` (served from a URL that is never asked)."""
    spec = {"input": "image", "output": "disparity", "working_size": 64, "kind": "depth"}
    entry = {**catalog_entry([model_file], spec=spec), "licence": "proprietary"}
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({name: entry}))
    monkeypatch.setenv(catalog.CATALOG_ENV, str(path))
    return path


def test_an_extra_catalog_adds_models(tmp_path, monkeypatch):
    model_file = pointwise_model(tmp_path / "studio.onnx")
    _extra_catalog(tmp_path, model_file, monkeypatch)
    assert catalog.lookup("studio-model").licence == "proprietary"
    assert catalog.lookup("depth-anything-v2-small")  # the shipped table is still there
    with pytest.raises(ModelError, match="not installed, and offline; .*models pull studio-model"):
        load_model("studio-model", "cpu", pull=False)


def test_a_catalog_file_keeps_its_spec_whatever_it_is_called(tmp_path, monkeypatch):
    original = pointwise_model(tmp_path / "studio.onnx")
    _extra_catalog(tmp_path, original, monkeypatch)
    renamed = tmp_path / "elsewhere" / "model.onnx"
    renamed.parent.mkdir()
    shutil.copy(original, renamed)
    path, entry = resolve_model(renamed)
    assert entry is not None and entry.name == "studio-model"
    spec = load_model(renamed, "cpu").tile_net.spec
    assert spec.kind == "depth" and spec.working_size == 64  # from the catalog, not inferred
    # another graph is just a file
    assert resolve_model(luminance_depth_nhwc(tmp_path / "other.onnx"))[1] is None


def test_a_broken_catalog_is_one_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"x": {"title": "t", "licence": "l", "variants": {}}}))
    monkeypatch.setenv(catalog.CATALOG_ENV, str(bad))
    with pytest.raises(ModelError, match="not a valid model catalog"):
        catalog.catalog()


def test_runs_on_the_shipped_model_point_once_to_a_better_one_on_a_terminal(monkeypatch, tmp_path):
    from rich.console import Console

    from prodepth_cli.commands import common, model_options

    shipped = load_model("prodepth")
    other = load_model(pointwise_model(tmp_path / "other.onnx"))

    def said(loaded, model=None, quiet=False, terminal=True) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=terminal, width=300, highlight=False)
        monkeypatch.setattr(common, "err_console", console)
        monkeypatch.setattr(model_options, "err_console", console)
        model_options.suggest_better_model(loaded, model, quiet)
        return buffer.getvalue()

    monkeypatch.delenv("PRODEPTH_MODEL", raising=False)
    assert "--model depth-anything-v2-small (pulled on first use, 99 MB, Apache-2.0" in said(
        shipped
    )
    assert said(other) == ""  # a better model is installed and is the default
    assert said(shipped, model="prodepth") == ""  # the user chose the shipped model
    assert said(shipped, quiet=True) == ""  # --quiet / --json
    assert said(shipped, terminal=False) == ""  # a pipeline, a script, CI
    monkeypatch.setenv("PRODEPTH_MODEL", "depth-anything-v2-small")
    assert said(shipped) == ""


def test_the_default_order_is_catalog_data_relative_models_only():
    order = [m.ref for m in catalog.default_candidates()]
    assert order.index("depth-anything-v2-small") < order.index("midas-v21-small")
    assert order.index("depth-anything-v2-small") < order.index("depth-anything-v2-small:fp16")
    assert not any(m.startswith(("depth-pro", "metric3d")) for m in order)  # metric: never


def test_models_list_fits_an_80_column_terminal_one_row_per_variant():
    from typer.testing import CliRunner

    from prodepth_cli.cli import app

    result = CliRunner().invoke(app, ["models", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for model in catalog.all_models():  # every name whole on its row, with size and licence
        shown = model.ref if model.variant == model.default_variant else f":{model.variant}"
        assert any(
            shown in line and catalog.human_bytes(model.bytes) in line and model.licence in line
            for line in lines
        ), shown
    (shipped,) = [line for line in lines if line.startswith("prodepth ")]
    assert shipped.split()[-1] == "*"  # nothing pulled: a plain run uses the shipped model


def test_models_list_json_gives_each_files_sha256_and_the_pinned_revision():
    from typer.testing import CliRunner

    from prodepth_cli.cli import app

    result = CliRunner().invoke(app, ["models", "list", "--json"])
    assert result.exit_code == 0, result.output
    records = {r["ref"]: r for r in map(json.loads, result.stdout.splitlines())}
    shipped = json.loads(catalog.CATALOG_FILE.read_text())  # read here, not through catalog.py
    for name, entry in shipped.items():
        for variant, fields in entry["variants"].items():
            ref = name if variant == entry["default_variant"] else f"{name}:{variant}"
            record, merged = records[ref], {**entry, **fields}
            assert record["files"] == merged["files"], ref  # path, bytes, sha256, in order
            assert record["revision"] == merged.get("revision"), ref
            assert record["url"] == merged.get("url"), ref
            if record["url"] is None:
                assert COMMIT.match(record["revision"]) and record["repo"] == merged["repo"]
            else:
                assert record["revision"] is None and record["repo"] is None
            assert record["source"] and record["licence"] == merged["licence"]  # kept
