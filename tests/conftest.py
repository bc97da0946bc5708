"""Shared fixtures: reference data locations (skipped when absent) and tiny ONNX models."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from prodepth_cli.data_root import SHARED_DATA
from tests.onnx_models import (
    luminance_depth_nhwc,
    not_an_image_model,
    pointwise_model,
    self_normalising_model,
)

# A plain run's default is the best catalog model installed: the tests see an empty model
# cache, never the developer's own (set before huggingface_hub is first imported).
# Removed when the run ends: every pytest run (and xdist worker) makes one.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="prodepth-tests-hf-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)
os.environ.pop("PRODEPTH_MODEL", None)

MOTORCYCLE = SHARED_DATA / "gt" / "middlebury2014_Q" / "Motorcycle"
PYDNET = SHARED_DATA / "models" / "pydnet_pp_448x640.onnx"
LARGE = SHARED_DATA / "large"


def require(path: Path) -> Path:
    """`path`, or skip the test with the reason when the reference data is absent."""
    if not path.exists():
        pytest.skip(f"reference data not found: {path}")
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def pointwise_exact(model_dir) -> Path:
    """Pointwise model run at any size, tiles taken as they are (no coarse fit)."""
    return pointwise_model(model_dir / "pointwise_exact.onnx", {"align": "none", "multiple": 1})


@pytest.fixture(scope="session")
def pointwise_affine(model_dir) -> Path:
    """Pointwise model treated as affine-invariant: tiles are fitted to the coarse pass."""
    return pointwise_model(model_dir / "pointwise_affine.onnx", {"multiple": 1})


@pytest.fixture(scope="session")
def nhwc_depth(model_dir) -> Path:
    return luminance_depth_nhwc(model_dir / "lum_depth.onnx")


@pytest.fixture(scope="session")
def vector_model(model_dir) -> Path:
    return not_an_image_model(model_dir / "vector.onnx")


@pytest.fixture(scope="session")
def selfnorm_model(model_dir) -> Path:
    return self_normalising_model(model_dir / "selfnorm.onnx", {"multiple": 1, "working_size": 256})


@pytest.fixture(scope="session")
def selfnorm_unaligned(model_dir) -> Path:
    return self_normalising_model(model_dir / "selfnorm_raw.onnx", {"multiple": 1, "align": "none"})


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test: the CI machine has 2 cores, shared with the rest of
    the suite."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scene_image(h: int = 360, w: int = 520, seed: int = 0):
    """A smooth synthetic photo-like image: colour gradients plus soft blobs, uint8 RGB."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.3 + 0.5 * yy, 0.6 - 0.4 * xx, 0.5 + 0.2 * np.sin(6 * xx * yy)], axis=2)
    for _ in range(12):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(10, 60)
        cv2.circle(img, (int(cx), int(cy)), int(r), rng.uniform(0, 1, 3).tolist(), -1)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)
