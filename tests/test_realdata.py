"""Sampling the real training pairs: scenes, not files, set each source's share."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prodepth_cli.training.realdata import TRAIN_ROOT, list_pairs, sampling_weights, split_pairs
from tests.conftest import require


def _pair(root: Path, source: str, item: str, rgb_src: str) -> Path:
    folder = root / source / item
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"rgb_src": rgb_src}))
    return folder


def test_frames_of_one_sequence_count_as_one_scene(tmp_path):
    """Ten frames of one capture against four distinct scenes: the capture is one scene, so
    its source gets sqrt(1) : sqrt(4) of the draws, shared by its frames."""
    capture = [_pair(tmp_path, "shelf", f"{i:03d}", f"scene-0/frame-{i}.png") for i in range(10)]
    scenes = [_pair(tmp_path, "stereo", name, f"images/{name}/left.png") for name in "ABCD"]
    w = sampling_weights(capture + scenes)
    assert w.sum() == pytest.approx(1.0)
    assert w[:10].sum() == pytest.approx(1 / 3) and np.allclose(w[:10], w[0])
    assert np.allclose(w[10:], 2 / 3 / 4)


def test_a_pair_without_a_recorded_source_is_its_own_scene(tmp_path):
    a = tmp_path / "misc" / "a"
    a.mkdir(parents=True)  # no meta.json
    b = _pair(tmp_path, "misc", "b", "x/b.png")
    assert np.allclose(sampling_weights([a, b]), [0.5, 0.5])


def test_on_the_real_folder_no_one_capture_outweighs_the_stereo_scenes():
    """The shelf bin (15 frames of one scene) drew 14 % of the real samples when files set
    the shares, about as much as the 21 Middlebury scenes (17 %)."""
    require(TRAIN_ROOT)
    train, _ = split_pairs(list_pairs())
    w = sampling_weights(train)
    share = {}
    for pair, x in zip(train, w, strict=True):
        share[pair.parent.name] = share.get(pair.parent.name, 0.0) + x
    assert max(share, key=share.get) == "middlebury2006_third"
    assert share["middlebury2006_third"] > 4 * share["apc_shelf"]
    assert share["7scenes_tsdfpy"] == pytest.approx(share["apc_shelf"])  # 90 frames, 1 scene
