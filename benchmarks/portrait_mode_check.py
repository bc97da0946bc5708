"""Depth maps against an iPhone's own: the two Portrait-mode photos of ../shared/data/photos.

`stilllife_vase_portraitmode` and `portrait_person_indoor_portraitmode` (iPhone X) carry the
phone's dual-camera disparity (576 x 768, 8-bit, near = bright) after the main photo in the
same file. It is an estimate, not ground truth, and its 8 bits have no known scale or offset,
so the figure is the rank correlation (Spearman) of each model's map, taken at the photo's
upright size and shrunk to the phone's, with the phone's map. Neither photo is in any
training or selection data: a check on scenes the models never saw, of the kind (a subject
in front of a room) the GT scenes have few of.

    python benchmarks/portrait_mode_check.py [--model FILE_OR_NAME ...] [--side 1536]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from contact_sheet import upright_rgb  # noqa: E402

from prodepth_cli.data_root import SHARED_DATA  # noqa: E402

PHOTOS = (
    "stilllife_vase_portraitmode_3024x4032.jpg",
    "portrait_person_indoor_portraitmode_3024x4032.jpg",
)
PHONE_HW = (768, 576)


def phone_disparity(path: Path) -> np.ndarray:
    """The `(768, 576)` uint8 disparity image stored after the main photo (MPO), near = bright."""
    data = path.read_bytes()
    for start in (m.start() for m in re.finditer(b"\xff\xd8\xff", data) if m.start() > 0):
        image = cv2.imdecode(np.frombuffer(data[start:], np.uint8), cv2.IMREAD_GRAYSCALE)
        if image is not None and image.shape == PHONE_HW:
            return image
    raise SystemExit(f"{path}: no {PHONE_HW[1]}x{PHONE_HW[0]} depth image inside")


def main() -> None:
    from prodepth_cli.evaluation import rows_prior
    from prodepth_cli.metrics import spearman
    from prodepth_cli.models.runtime import load_model
    from prodepth_cli.pipeline import DepthOptions, depth_array

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", nargs="+", default=[None], help="files or catalog names")
    parser.add_argument("--side", type=int, default=1536, help="long side the maps are made at")
    args = parser.parse_args()
    paths = [SHARED_DATA / "photos" / name for name in PHOTOS]
    if not all(p.is_file() for p in paths):
        raise SystemExit(f"skipped: the Portrait-mode photos are not in {SHARED_DATA / 'photos'}")
    phone = [phone_disparity(p) for p in paths]

    def report(label: str, maps: list[np.ndarray]) -> None:
        scores = [
            spearman(m, t.astype(np.float32), t > 0) for m, t in zip(maps, phone, strict=True)
        ]
        print(f"{label} | " + " | ".join(f"{s:.3f}" for s in [*scores, np.mean(scores)]))

    print("model | vase | standing man | mean  (Spearman with the phone's disparity)")
    report("rows prior", [rows_prior(*PHONE_HW)] * len(paths))
    for ref in args.model:
        model = load_model(ref, "cpu")
        maps = [
            depth_array(upright_rgb(p, args.side), model, DepthOptions(tile=1024)) for p in paths
        ]
        small = [cv2.resize(m, PHONE_HW[::-1], interpolation=cv2.INTER_AREA) for m in maps]
        report(ref or "default", small)


if __name__ == "__main__":
    main()
