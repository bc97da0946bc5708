"""The package's Python API, `from prodepth_cli import depth, load_model, DepthOptions`: every
input kind gives the same upright map, `output=` writes what is returned, bad inputs are one
project error, and the examples of docs/python-api.md and examples/python_api.py run."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

import prodepth_cli
from prodepth_cli import DepthOptions, depth, load_model
from prodepth_cli import api as api_module
from prodepth_cli.errors import InputError, OptionError, OutputError
from prodepth_cli.models.catalog import CATALOG_ENV
from prodepth_cli.pipeline import depth_array
from tests.conftest import scene_image
from tests.fake_hub import FakeHub, hf_env
from tests.onnx_models import pointwise_model
from tests.photo_files import write_jpeg
from tests.standins import catalog_entry

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "python-api.md"
# Smaller than the self-normalising model's working size (256): the coarse pass sees the
# same pixels whether they came from a file or an array, so the maps must agree exactly.
H, W = 120, 200
TILED = DepthOptions(tile=64)  # 3 x 5 tiles, each fitted to the coarse pass


@pytest.fixture
def photo_png(tmp_path) -> tuple[Path, np.ndarray]:
    rgb = scene_image(H, W, seed=3)
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    return path, rgb


def test_a_path_an_array_and_a_pil_image_give_the_same_map(photo_png, selfnorm_model):
    path, rgb = photo_png
    model = load_model(selfnorm_model, "cpu")
    from_path = depth(path, model, options=TILED)
    assert from_path.shape == (H, W) and from_path.dtype == np.float32
    np.testing.assert_array_equal(depth(str(path), model, options=TILED), from_path)
    np.testing.assert_array_equal(depth(rgb, model, options=TILED), from_path)
    np.testing.assert_array_equal(depth(Image.open(path), model, options=TILED), from_path)
    grey = Image.open(path).convert("L")  # converted to RGB, grey replicated
    np.testing.assert_array_equal(
        depth(grey, model, options=TILED),
        depth(np.asarray(grey.convert("RGB")), model, options=TILED),
    )


def test_tile_keywords_and_options_are_the_same_call(photo_png, selfnorm_model):
    _, rgb = photo_png
    model = load_model(selfnorm_model, "cpu")
    by_options = depth(rgb, model, options=DepthOptions(tile=64, overlap=16, batch=3))
    np.testing.assert_array_equal(depth(rgb, model, tile=64, overlap=16, batch=3), by_options)
    np.testing.assert_array_equal(
        depth_array(rgb, model, DepthOptions(tile=64, overlap=16, batch=3)), by_options
    )
    with pytest.raises(OptionError, match="not both"):
        depth(rgb, model, options=DepthOptions(), tile=64)


def test_an_exif_rotated_jpeg_comes_back_upright(tmp_path, pointwise_exact):
    stored = scene_image(H, W, seed=5)  # landscape pixels, shown portrait (orientation 6)
    path = write_jpeg(tmp_path / "portrait.jpg", stored, orientation=6)
    model = load_model(pointwise_exact, "cpu")
    upright = depth(path, model)
    assert upright.shape == (W, H)
    shown = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    assert shown.shape[:2] == (W, H)
    # The same JPEG decoded by libvips and by PIL may differ by a level or two; the
    # pointwise model's slope is at most 0.25 * (1.5 + 2 + 0.7) / 255 = 0.004 a level.
    np.testing.assert_allclose(upright, depth(shown, model), atol=0.01)
    assert depth(Image.open(path), model).shape == (H, W)  # a PIL image: its pixels as stored


@pytest.mark.parametrize("suffix", [".npy", ".tif", ".png"])
def test_output_writes_the_map_that_is_returned(photo_png, selfnorm_model, tmp_path, suffix):
    path, rgb = photo_png
    model = load_model(selfnorm_model, "cpu")
    for name, image in (("from_path", path), ("from_array", rgb)):
        out = tmp_path / f"{name}{suffix}"
        returned = depth(image, model, options=TILED, output=out)
        np.testing.assert_array_equal(returned, depth(image, model, options=TILED))
        if suffix == ".npy":
            np.testing.assert_array_equal(np.load(out), returned)
        elif suffix == ".tif":
            np.testing.assert_array_equal(tifffile.imread(out), returned)
        else:  # 16-bit levels of the map's own range, near = bright
            levels = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
            assert levels.dtype == np.uint16 and levels.shape == (H, W)
            near = np.unravel_index(np.argmax(returned), returned.shape)
            assert levels[near] == 65535


def test_output_formats_are_checked_before_any_work(photo_png, selfnorm_model, tmp_path):
    path, rgb = photo_png
    model = load_model(selfnorm_model, "cpu")
    with pytest.raises(OutputError, match="not a depth map format"):
        depth(path, model, output=tmp_path / "map.bmp")
    with pytest.raises(OutputError, match="no photograph file: pass its path"):
        depth(rgb, model, output=tmp_path / "map.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photo.png"]
    embedded = depth(path, model, output=tmp_path / "photo_depth.jpg")  # a path: embedded
    assert embedded.shape == (H, W) and (tmp_path / "photo_depth.jpg").is_file()


@pytest.mark.parametrize(
    ("image", "says"),
    [
        (np.zeros((H, W), np.uint8), r"\(H, W, 3\) RGB, not \(120, 200\) \(grey"),
        (np.zeros((H, W, 4), np.uint8), r"not \(120, 200, 4\) \(RGBA: rgb\[..., :3\]\)"),
        (np.zeros((H, W, 3), np.int64), "int64 pixels: give uint8"),
        (np.full((H, W, 3), 200.0, np.float32), r"float pixels are in \[0, 1\], found up to 200"),
        (np.zeros((0, W, 3), np.uint8), "has no pixels"),
        ([[0, 0, 0]], "a file path, a numpy .* or a PIL image, not list"),
        (b"\xff\xd8", "not bytes"),
        ("no-such-photo.jpg", "no-such-photo.jpg: no such file"),
    ],
)
def test_a_bad_image_is_one_input_error(image, says, pointwise_exact):
    with pytest.raises(InputError, match=says):
        depth(image, load_model(pointwise_exact, "cpu"))


def test_arguments_of_the_wrong_kind_fail_at_the_call(photo_png, pointwise_exact):
    _, rgb = photo_png
    model = load_model(pointwise_exact, "cpu")
    with pytest.raises(TypeError, match=r"such as DepthOptions\(tile=512\), not int"):
        depth_array(rgb, model, 512)
    with pytest.raises(TypeError, match="model must be a loaded model"):
        depth_array(rgb, str(pointwise_exact))
    with pytest.raises(TypeError, match="options must be a DepthOptions"):
        depth(rgb, model, options={"tile": 512})
    with pytest.raises(TypeError, match="a catalog name or a path, not int"):
        depth(rgb, 3)
    with pytest.raises(OptionError, match="loaded already"):
        depth(rgb, model, device="cpu")


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"tile": 8}, "at least 16 pixels"),
        ({"tile": 256, "overlap": 200}, "between 0 and half the tile"),
        ({"tile": "512"}, "tile='512': a whole number of pixels"),
        ({"batch": 0}, "at least one tile"),
        ({"tile_resolution": "half"}, "native or full"),
    ],
)
def test_nonsense_options_are_refused_when_made(fields, says):
    with pytest.raises(OptionError, match=says):
        DepthOptions(**fields)


def test_a_model_named_by_path_is_loaded_once(photo_png, pointwise_exact, monkeypatch):
    _, rgb = photo_png
    loads = []

    def counting(ref, device):
        loads.append((ref, device))
        return load_model(ref, device)

    monkeypatch.setattr(api_module, "load_model", counting)
    api_module._load_once.cache_clear()
    first = depth(rgb, pointwise_exact, device="cpu")
    np.testing.assert_array_equal(depth(rgb, str(pointwise_exact), device="cpu"), first)
    assert loads == [(str(pointwise_exact), "cpu")]
    depth(rgb, device="cpu")
    depth(rgb, device="cpu")  # the default too
    assert loads[1:] == [(None, "cpu")]
    api_module._load_once.cache_clear()


def test_importing_the_package_stays_cheap():
    code = (
        "import sys, prodepth_cli; "
        "print(sorted(m for m in ('onnxruntime', 'cv2', 'pyvips', 'numpy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert {"depth", "load_model", "DepthOptions"} <= set(dir(prodepth_cli))


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", markdown, re.M | re.S)


def test_the_examples_of_python_api_md_run(tmp_path):
    """Every ```python block of the page, in order in one namespace, as a reader would run
    them: in a folder holding photo.jpg, with depth-anything-v2-small a tiny stand-in pulled
    from a fake hub on first use."""
    blocks = python_blocks(DOC.read_text())
    assert len(blocks) >= 3
    write_jpeg(tmp_path / "photo.jpg", scene_image(H, W, seed=9))
    graph = pointwise_model(tmp_path / "standin.onnx")
    repo, commit = "prodepth-tests/da2-standin", "0123456789abcdef0123456789abcdef01234567"
    spec = {"input": "image", "output": "disparity", "multiple": 1, "working_size": 64}
    entry = {**catalog_entry([graph], spec=spec), "url": None, "repo": repo, "revision": commit}
    entry["variants"]["fp32"]["files"][0]["path"] = "onnx/model.onnx"
    extra = tmp_path / "catalog.json"
    extra.write_text(json.dumps({"depth-anything-v2-small": entry}))
    runner = tmp_path / "run_doc.py"
    runner.write_text(
        "import json, sys\n"
        "import numpy\n"
        "namespace = {}\n"
        "for block in json.loads(sys.argv[1]):\n"
        "    exec(block, namespace)\n"
        "arrays = {k: v for k, v in namespace.items() if isinstance(v, numpy.ndarray)}\n"
        "shapes = {k: list(v.shape) for k, v in arrays.items()}\n"
        "print(json.dumps(shapes))\n"
    )
    with FakeHub() as hub:
        hub.add(repo, commit, "onnx/model.onnx", graph.read_bytes())
        env = {**hf_env(hub, tmp_path / "hf"), CATALOG_ENV: str(extra), "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, str(runner), json.dumps(blocks)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert sum(method == "GET" for method, *_ in hub.requests) == 1  # pulled once
    *printed, shapes = done.stdout.splitlines()
    assert json.loads(shapes) == {"disparity": [H, W], "rgb": [H, W, 3]}
    assert "missing.jpg: no such file" in printed
    assert any(line.startswith("an image array is (H, W, 3) RGB") for line in printed)
    for written in ("photo_depth.png", "photo_depth.tif"):
        assert (tmp_path / written).is_file(), written


def test_examples_python_api_runs(tmp_path):
    photo = write_jpeg(tmp_path / "photo.jpg", scene_image(H, W, seed=11))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python_api.py"), str(photo), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert f"({H}, {W})" in done.stdout
    assert (tmp_path / "depth.png").is_file() and (tmp_path / "depth.tif").is_file()
