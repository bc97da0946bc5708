"""`prodepth models pull/list/rm` and `--model NAME` against a fake hub on 127.0.0.1.

Every command runs in a subprocess whose huggingface_hub talks to tests/fake_hub.py (HF_ENDPOINT
must be set before huggingface_hub is imported) and caches under a temporary HF_HOME; an extra
catalog ($PRODEPTH_CATALOG) describes the test's models, built by the test itself.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import pytest

from prodepth_cli.errors import ModelError
from prodepth_cli.models import catalog, hub
from tests.conftest import scene_image
from tests.fake_hub import FakeHub, hf_env
from tests.onnx_models import pointwise_model
from tests.standins import depth_pro_like

ROOT = Path(__file__).resolve().parents[1]
REPO = "prodepth-tests/tiny-depth"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SPEC = {"input": "image", "output": "disparity", "multiple": 1, "working_size": 64}


@pytest.fixture
def setup(tmp_path):
    """A started fake hub serving a tiny depth model and a two-file (external data) model,
    an extra catalog naming them, and an empty HF_HOME. Yields a namespace of those."""
    models = tmp_path / "built"
    (models / "pro").mkdir(parents=True)
    tiny = pointwise_model(models / "model.onnx").read_bytes()
    pro = depth_pro_like(models / "pro" / "model.onnx")
    pro_files = {"onnx/model.onnx": pro.read_bytes(), "onnx/model.onnx_data": _data(pro)}
    fake = FakeHub().start()
    fake.add(REPO, COMMIT, "onnx/model.onnx", tiny)
    for path, data in pro_files.items():
        fake.add("prodepth-tests/pro-like", COMMIT, path, data)
    table = {
        "tiny": _entry(REPO, {"onnx/model.onnx": tiny}),
        "tiny-unhashed": _entry(REPO, {"onnx/model.onnx": tiny}, hashed=False),
        "missing": _entry(REPO, {"onnx/absent.onnx": tiny}),
        "pro-like": _entry(
            "prodepth-tests/pro-like", pro_files, spec=catalog.lookup("depth-pro").spec
        ),
        "release": {
            **_entry(REPO, {"onnx/model.onnx": tiny}),
            "default_rank": 0,  # once pulled, a plain run's default
            "repo": None,
            "revision": None,
            "url": f"{fake.url}/{REPO}/resolve/{COMMIT}/",
        },
    }
    extra = tmp_path / "catalog.json"
    extra.write_text(json.dumps(table))
    home = tmp_path / "hf"
    env = {**hf_env(fake, home), catalog.CATALOG_ENV: str(extra), "PYTHONPATH": str(ROOT)}
    yield _Setup(fake, home, env, tiny, tmp_path)
    fake.stop()


class _Setup:
    def __init__(self, fake, home, env, tiny, tmp):
        self.hub, self.home, self.env, self.tiny, self.tmp = fake, home, env, tiny, tmp

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "prodepth_cli", *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def files(self) -> list[Path]:
        """Every file and folder left in the caches (partial downloads included), not
        counting huggingface_hub's lock files and cache tags."""
        content = [*(self.home / "hub").glob("models--*"), self.home / "assets"]
        return sorted(p for folder in content for p in folder.rglob("*"))


def _data(model: Path) -> bytes:
    return model.with_name(model.name + "_data").read_bytes()


def _entry(repo: str, files: dict[str, bytes], hashed: bool = True, spec=None) -> dict:
    return {
        "title": "test model",
        "licence": "test-licence",
        "repo": repo,
        "revision": COMMIT,
        "spec": spec or SPEC,
        "default_variant": "fp32",
        "variants": {
            "fp32": {
                "files": [
                    {
                        "path": path,
                        "bytes": len(data) if hashed else None,
                        "sha256": hashlib.sha256(data).hexdigest() if hashed else None,
                    }
                    for path, data in files.items()
                ],
                "about_bytes": sum(len(d) for d in files.values()),
            }
        },
    }


def _one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_pull_verify_use_by_name_offline_and_remove(setup):
    pulled = setup.run("models", "pull", "tiny", "--json")
    assert pulled.returncode == 0, pulled.stderr
    record = json.loads(pulled.stdout)
    path = Path(record["installed"])
    assert path.read_bytes() == setup.tiny
    assert str(path).startswith(str(setup.home / "hub"))  # huggingface_hub's own cache
    assert COMMIT in str(path)  # the pinned revision, not a branch
    asked = len(setup.hub.requests)
    assert asked > 0

    setup.hub.stop()  # from now on the network is gone
    again = setup.run("models", "pull", "tiny")
    assert again.returncode == 0 and "already installed" in again.stderr
    assert len(setup.hub.requests) == asked

    photo = setup.tmp / "photo.png"
    cv2.imwrite(str(photo), scene_image(80, 120)[:, :, ::-1])
    out = setup.tmp / "photo_depth.png"
    depth = setup.run("depth", str(photo), "-m", "tiny", "-o", str(out), "--json")
    assert depth.returncode == 0, depth.stderr
    assert json.loads(depth.stdout)["model"] == "tiny" and out.is_file()
    offline = setup.run("depth", str(photo), "-m", "tiny", "-o", str(out), "--overwrite",
                        HF_HUB_OFFLINE="1")  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    by_env = setup.run("depth", str(photo), "-o", str(out), "--overwrite", "--json",
                       PRODEPTH_MODEL="tiny")  # fmt: skip
    assert json.loads(by_env.stdout)["model"] == "tiny"

    listed = [
        json.loads(line) for line in setup.run("models", "list", "--json").stdout.splitlines()
    ]
    assert next(r for r in listed if r["ref"] == "tiny")["installed"] == str(path)
    assert next(r for r in listed if r["ref"] == "pro-like")["installed"] is None

    removed = setup.run("models", "rm", "tiny")
    assert removed.returncode == 0, removed.stderr
    assert setup.files() == []  # the snapshot link and its blob
    _one_line_error(setup.run("models", "rm", "tiny"), "tiny: not installed")
    _one_line_error(
        setup.run("depth", str(photo), "-m", "tiny", "-o", str(out), "--overwrite", "--offline"),
        "tiny: not installed, and offline", "prodepth models pull tiny",
    )  # fmt: skip


def test_checksum_mismatch_exits_1_and_keeps_nothing(setup):
    setup.hub.corrupt("onnx/model.onnx", bytes(reversed(setup.tiny)))  # same size, other bytes
    _one_line_error(setup.run("models", "pull", "tiny"), "tiny", "checksum mismatch")
    assert setup.files() == []


def test_without_a_catalog_hash_the_hubs_own_sha256_is_checked(setup):
    setup.hub.corrupt("onnx/model.onnx", bytes(reversed(setup.tiny)))
    _one_line_error(setup.run("models", "pull", "tiny-unhashed"), "checksum mismatch")
    assert setup.files() == []
    setup.hub.clear_faults()
    assert setup.run("models", "pull", "tiny-unhashed").returncode == 0


def test_a_file_missing_on_the_hub_is_one_line(setup):
    _one_line_error(
        setup.run("models", "pull", "missing"), "missing", "onnx/absent.onnx", "not found"
    )
    assert not any(p.is_file() for p in setup.files())


def test_offline_says_how_to_place_the_file_by_hand(setup):
    line = _one_line_error(setup.run("models", "pull", "tiny", HF_HUB_OFFLINE="1"), "offline")
    assert f"/{REPO}/resolve/{COMMIT}/onnx/model.onnx" in line and "--model PATH" in line
    assert setup.files() == []
    # (a hub that does not answer at all gives "cannot be reached" and the same hint, after
    # huggingface_hub's own retries: 23 s, too slow to test here)


def test_a_download_cut_halfway_leaves_nothing_and_a_retry_completes(setup):
    setup.hub.cut_after("onnx/model.onnx", len(setup.tiny) // 2, times=None)
    _one_line_error(setup.run("models", "pull", "tiny"), "tiny", "failed")
    assert setup.files() == []  # no partial blob, no .incomplete
    setup.hub.clear_faults()
    assert setup.run("models", "pull", "tiny").returncode == 0


def test_external_data_lands_beside_its_graph_and_loads(setup):
    pulled = setup.run("models", "pull", "pro-like", "--json")
    assert pulled.returncode == 0, pulled.stderr
    graph = Path(json.loads(pulled.stdout)["installed"])
    assert graph.with_name("model.onnx_data").is_file()
    shown = setup.run("models", "show", "pro-like", "--json")
    assert shown.returncode == 0, shown.stderr
    spec = json.loads(shown.stdout)["spec"]
    assert spec["units"] == "m" and spec["align"] == "scale"
    setup.run("models", "rm", "pro-like")
    assert setup.files() == []


def test_a_release_url_model_pulls_checks_and_removes(setup):
    pulled = setup.run("models", "pull", "release", "--json")
    assert pulled.returncode == 0, pulled.stderr
    path = Path(json.loads(pulled.stdout)["installed"])
    assert path.read_bytes() == setup.tiny and "assets" in path.parts
    setup.hub.corrupt("onnx/model.onnx", bytes(reversed(setup.tiny)))
    assert setup.run("models", "rm", "release").returncode == 0
    _one_line_error(setup.run("models", "pull", "release"), "checksum mismatch")
    assert setup.files() == []


def test_models_json_sha256_is_the_catalogs_and_the_pulled_files(setup):
    table = json.loads((setup.tmp / "catalog.json").read_text())
    pulled = setup.run("models", "pull", "pro-like", "--json")
    assert pulled.returncode == 0, pulled.stderr
    record = json.loads(pulled.stdout)
    graph = Path(record["installed"])
    assert record["revision"] == COMMIT and record["url"] is None
    assert record["files"] == table["pro-like"]["variants"]["fp32"]["files"]
    for file in record["files"]:  # external data included: it sits beside the graph
        installed = graph.parent / Path(file["path"]).name
        assert hashlib.sha256(installed.read_bytes()).hexdigest() == file["sha256"]
        assert installed.stat().st_size == file["bytes"]

    lines = setup.run("models", "list", "--json").stdout.splitlines()
    listed = {r["ref"]: r for r in map(json.loads, lines)}
    assert listed["pro-like"]["files"] == record["files"]
    assert listed["tiny"]["files"][0]["sha256"] == hashlib.sha256(setup.tiny).hexdigest()
    assert listed["tiny-unhashed"]["files"][0]["sha256"] is None  # the hub's own is checked
    release = listed["release"]
    assert release["revision"] is None and release["url"].endswith(f"/resolve/{COMMIT}/")
    shown = setup.run("models", "show", "pro-like", "--json")
    assert shown.returncode == 0, shown.stderr
    shown_record = json.loads(shown.stdout)
    assert shown_record["files"] == record["files"] and shown_record["revision"] == COMMIT


def test_a_full_disk_is_refused_before_downloading(monkeypatch, tmp_path):
    model = catalog.lookup("depth-anything-v2-small")
    monkeypatch.setattr(hub, "_repo_cache_dir", lambda m: tmp_path / "models--x")
    monkeypatch.setattr(hub, "_cached", lambda m, f: None)
    monkeypatch.setattr(hub.shutil, "disk_usage", lambda p: SimpleNamespace(free=0))
    with pytest.raises(ModelError, match="needs 99 MB but only 0 MB is free"):
        hub.pull(model)


def test_a_model_whose_second_file_fails_keeps_neither(setup):
    setup.hub.corrupt("onnx/model.onnx_data", b"not the weights")  # a different size, too
    _one_line_error(setup.run("models", "pull", "pro-like"), "pro-like", "model.onnx_data")
    assert setup.files() == []  # the graph downloaded first is gone with it


def _photo(setup) -> Path:
    photo = setup.tmp / "photo.png"
    cv2.imwrite(str(photo), scene_image(80, 120)[:, :, ::-1])
    return photo


def _gets(setup) -> int:
    return sum(method == "GET" for method, *_ in setup.hub.requests)


def test_a_catalog_name_is_pulled_on_first_use_then_run_from_the_cache(setup):
    photo, out = _photo(setup), setup.tmp / "first.png"
    first = setup.run("depth", str(photo), "-m", "tiny", "-o", str(out), "--json")
    assert first.returncode == 0, first.stderr
    (record,) = [json.loads(line) for line in first.stdout.splitlines()]  # stdout stays JSON
    assert record["model"] == "tiny" and record["status"] == "ok" and out.is_file()
    assert _gets(setup) == 1  # the one file, downloaded once
    asked = len(setup.hub.requests)
    again = setup.run("depth", str(photo), "-m", "tiny", "-o", str(out), "--overwrite", "--json")
    assert again.returncode == 0, again.stderr
    assert len(setup.hub.requests) == asked  # the second run asks the hub nothing
    bokeh = setup.run("bokeh", str(photo), "--depth-model", "tiny", "-o", str(setup.tmp / "b.png"))
    assert bokeh.returncode == 0, bokeh.stderr
    assert len(setup.hub.requests) == asked


@pytest.mark.parametrize("how", ["--offline", "HF_HUB_OFFLINE"])
def test_offline_first_use_is_one_line_before_any_output(setup, how):
    photo, out = _photo(setup), setup.tmp / "never.png"
    args, env = (["--offline"], {}) if how == "--offline" else ([], {"HF_HUB_OFFLINE": "1"})
    result = setup.run("depth", str(photo), "-m", "tiny", "-o", str(out), *args, **env)
    _one_line_error(result, "tiny: not installed, and offline", "--model PATH", "--model prodepth")
    assert not out.exists() and setup.files() == [] and setup.hub.requests == []


def test_a_first_use_download_cut_halfway_leaves_nothing(setup):
    setup.hub.cut_after("onnx/model.onnx", len(setup.tiny) // 2, times=None)
    photo, out = _photo(setup), setup.tmp / "never.png"
    result = setup.run("depth", str(photo), "-m", "tiny", "-o", str(out))
    _one_line_error(result, "tiny", "failed", "--model prodepth")
    assert not out.exists() and setup.files() == []


def test_the_best_installed_model_is_a_plain_runs_default(setup):
    photo, out = _photo(setup), setup.tmp / "plain.png"

    def plain_run(*extra: str, **env: str) -> str:
        args = ("depth", str(photo), "-o", str(out), "--overwrite", "--json", *extra)
        result = setup.run(*args, **env)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)["model"]

    def listed_default() -> str:
        records = setup.run("models", "list", "--json").stdout.splitlines()
        (default,) = [r["ref"] for r in map(json.loads, records) if r["default"]]
        return default

    assert plain_run() == "prodepth-refiner.onnx" and listed_default() == "prodepth"
    assert setup.run("models", "pull", "release").returncode == 0
    assert plain_run() == "release" and listed_default() == "release"  # ranked, now installed
    assert plain_run("-m", "prodepth") == "prodepth-refiner.onnx"  # the shipped one, by name
    assert setup.run("models", "pull", "tiny").returncode == 0  # installed, but has no rank
    assert plain_run(PRODEPTH_MODEL="tiny") == "tiny"  # the user's choice wins
    assert listed_default() == "release"
