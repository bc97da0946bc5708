"""A contact sheet to judge depth maps by eye: each photograph beside its map (turbo, near = warm).

Photos are read upright (EXIF orientation applied), downscaled to `--side` pixels on the long
side, and run through the tiled pipeline (`depth_array`); the sheet is one PNG. Only the
public-domain photos of ../shared/data/photos may ever be committed, even as thumbnails:
write the sheet outside the repository.

    python benchmarks/contact_sheet.py -o /tmp/sheet.png [--model NAME_OR_FILE] [--side 1536]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prodepth_cli.data_root import SHARED_DATA  # noqa: E402

CELL = 360  # long side of each picture on the sheet


def upright_rgb(path: Path, side: int) -> np.ndarray:
    """The photo as its camera meant it (EXIF orientation applied), long side `side`."""
    import pyvips

    image = pyvips.Image.thumbnail(str(path), side)  # autorotates by EXIF
    return image.numpy()[..., :3]


def depth_colour(rgb: np.ndarray, model) -> np.ndarray:
    from prodepth_cli.pipeline import DepthOptions, depth_array

    disparity = depth_array(rgb, model, DepthOptions(tile=1024))
    lo, hi = np.percentile(disparity, [1, 99])
    levels = np.clip((disparity - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(levels, cv2.COLORMAP_TURBO)[..., ::-1]


def cell(image: np.ndarray, label: str = "") -> np.ndarray:
    """`image` fitted into a CELL x CELL square on black, with `label` at the bottom."""
    h, w = image.shape[:2]
    scale = CELL / max(h, w)
    small = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    out = np.zeros((CELL, CELL, 3), np.uint8)
    y, x = (CELL - small.shape[0]) // 2, (CELL - small.shape[1]) // 2
    out[y : y + small.shape[0], x : x + small.shape[1]] = small
    if label:
        cv2.putText(out, label, (6, CELL - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1)
    return out


def main() -> None:
    from prodepth_cli.models.runtime import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--model", default=None, help="file or catalog name (default: shipped)")
    parser.add_argument("--photos", type=Path, default=SHARED_DATA / "photos")
    parser.add_argument("--side", type=int, default=1536, help="long side the maps are made at")
    parser.add_argument("--columns", type=int, default=2, help="photo/map pairs per row")
    args = parser.parse_args()
    photos = sorted(args.photos.glob("*.jpg"))
    if not photos:
        raise SystemExit(f"skipped: no photos in {args.photos}")
    model = load_model(args.model, "cpu")
    pairs = []
    for path in photos:
        rgb = upright_rgb(path, args.side)
        pairs.append(np.concatenate([cell(rgb, path.stem[:40]), cell(depth_colour(rgb, model))], 1))
        print(f"{path.name}: done", file=sys.stderr)
    blank = np.zeros_like(pairs[0])
    pairs += [blank] * (-len(pairs) % args.columns)
    rows = [
        np.concatenate(pairs[i : i + args.columns], 1) for i in range(0, len(pairs), args.columns)
    ]
    cv2.imwrite(str(args.output), np.concatenate(rows, 0)[..., ::-1])
    print(f"{args.output}: {len(photos)} photos, model {model.name}")


if __name__ == "__main__":
    main()
