"""Peak RSS of `prodepth depth` on 45 and 60 MP camera RAW files, side by side with the
74 MP JPEG of the memory table in docs/benchmarks.md and with a JPEG of the same
pixels as each RAW.

LibRaw develops a RAW whole (sensor data, its 4-channel working image and the 8-bit output:
about 13 bytes a pixel at its peak), so a RAW cannot stream like a JPEG; the issue's bound is
1.5x the JPEG figures. The RAWs are DNGs made from the 74 MP photograph (12-bit RGGB, as
tests/photo_files.py writes them) in a temporary folder; a tiny model keeps the run about
the pipeline's memory.

    python benchmarks/bench_raw_memory.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from prodepth_cli.data_root import SHARED_DATA  # noqa: E402
from tests.onnx_models import pointwise_model  # noqa: E402
from tests.photo_files import write_dng  # noqa: E402
from tests.test_memory import peak_rss_mb  # noqa: E402

JPEG_74MP = SHARED_DATA / "large" / "hubble_sombrero_m104_11472x6429.jpg"
SIZES = {"45 MP": (8256, 5504), "60 MP": (9504, 6336)}  # (width, height), 3:2 sensors


def input_paths(folder: Path, label: str) -> tuple[Path, Path]:
    """The DNG and the JPEG of one size, named alike by the maker and the measurer."""
    stem = folder / f"{label[:2]}mp"
    return stem.with_suffix(".dng"), stem.with_suffix(".jpg")


def make_inputs(folder: Path) -> None:
    """The DNG and JPEG of each size (run in its own process: a child's peak RSS starts
    from its parent's size at the fork, so the measuring process must stay small)."""
    photo = cv2.imread(str(JPEG_74MP))[:, :, ::-1]
    for label, (w, h) in SIZES.items():
        rgb = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
        dng, jpeg = input_paths(folder, label)
        write_dng(dng, rgb)
        cv2.imwrite(str(jpeg), rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--make":
        make_inputs(Path(sys.argv[2]))
        return
    if not JPEG_74MP.is_file():
        raise SystemExit(f"skipped: reference photograph not found at {JPEG_74MP}")
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        subprocess.run([sys.executable, __file__, "--make", str(tmp)], check=True)
        model = pointwise_model(tmp / "tiny.onnx", {"multiple": 1})
        reference, _ = peak_rss_mb(JPEG_74MP, model, tmp / "d.png")
        print(f"{'input':34} {'peak RSS MB':>12} {'seconds':>8} {'/ 74MP JPEG':>12} {'/ same':>7}")
        print(f"{'74 MP JPEG (docs/benchmarks.md)':34} {reference:12.0f}")
        for label, (w, h) in SIZES.items():
            dng, jpeg = input_paths(tmp, label)
            same, _ = peak_rss_mb(jpeg, model, tmp / "d.png")
            raw, wall = peak_rss_mb(dng, model, tmp / "d.png")
            name = f"{label} DNG ({w}x{h})"
            print(f"{name:34} {raw:12.0f} {wall:8.1f} {raw / reference:12.2f} {raw / same:7.2f}")
            print(f"{label + ' JPEG, same pixels':34} {same:12.0f}", flush=True)


if __name__ == "__main__":
    main()
