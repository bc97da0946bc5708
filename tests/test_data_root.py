"""The reference data location: beside the checkout, or wherever PRODEPTH_DATA says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prodepth_cli.data_root import shared_data


def test_default_is_shared_data_beside_the_checkout(monkeypatch):
    monkeypatch.delenv("PRODEPTH_DATA", raising=False)
    repo = Path(__file__).resolve().parents[1]
    assert shared_data() == repo.parent / "shared" / "data"


def test_environment_variable_moves_every_reader(tmp_path):
    """Set before the import, the variable moves the GT, training-pair and texture roots."""
    code = (
        "from prodepth_cli.gt import DEFAULT_GT_DIR; "
        "from prodepth_cli.training.realdata import TRAIN_ROOT; "
        "from prodepth_cli.training.textures import DAVIS_VIDEO; "
        "print(DEFAULT_GT_DIR, TRAIN_ROOT, DAVIS_VIDEO.parents[2], sep='\\n')"
    )
    env = {"PRODEPTH_DATA": str(tmp_path), "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    gt, train, davis_root = out.stdout.split()
    assert (Path(gt), Path(train), Path(davis_root)) == (
        tmp_path / "gt",
        tmp_path / "train",
        tmp_path,
    )
