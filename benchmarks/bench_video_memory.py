"""Peak RSS of `prodepth video` on 1080p clips of 150, 600 and 2,400 frames: it should not grow
with the clip's length (before streaming, 150 frames peaked at 1.26 GB and 600 at 4.12 GB).

Three runs a length, each in its own process (peak RSS is per process):
- `--fast`: the model's maps aligned along optical flow, every map written (16-bit PNG);
- the fit's streaming stages alone (`video.teacher.clip_and_teacher`): decoding, the frame
  cache at the fitting size and the teacher's map of every frame, both written to disk as
  the frames stream;
- the whole fit, `prodepth video --steps 2`: the same, then two fitting steps and every
  output (the fit's memory is its caches', not its steps': a few steps show it).

The depth model is a stand-in: a pointwise ONNX model built on the fly (`tests/onnx_models.py`)
that `prodepth depth` still runs tile by tile at full size (tiles taken as they are, no
coarse pass to fit them to). What is measured is the
pipeline's memory (decoder, caches, flow, outputs), not a network's, and on the 2-core
machine a real model would make 2,400 frames of 1080p take hours. The fit runs at
`--size 96x64` for the same reason; its caches grow as N x 96 x 64 (frames, maps), which is
the fit's design: it samples its batches from the whole clip.

The clips (a textured pattern panning 2 px a frame, libx264 `ultrafast`) are made in a
temporary folder and deleted afterwards.

    nice -n 10 python benchmarks/bench_video_memory.py [--frames 150 600 2400] [--no-fit]
        [--runs fast streaming fit] [--fit-frames 2400]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.onnx_models import pointwise_model  # noqa: E402
from tests.test_memory import PEAK_RSS  # noqa: E402

WIDTH, HEIGHT, FPS = 1920, 1080, 30
PAN = 2  # pixels a frame
FIT_SIZE = "96x64"

STREAMING = """
import resource, sys
from prodepth_cli.models.runtime import load_model
from prodepth_cli.video.teacher import clip_and_teacher
try:
    model = load_model(sys.argv[3], "cpu")
    clip, maps = clip_and_teacher(sys.argv[1], (96, 64), sys.argv[2], model)
    assert len(clip) == len(maps)
finally:
    print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def make_clip(path: Path, frames: int) -> Path:
    """`frames` frames of 1080p H.264: a blurred random texture panning sideways."""
    rng = np.random.default_rng(0)
    wide = WIDTH + PAN * frames
    texture = cv2.resize(rng.random((HEIGHT // 8, wide // 8, 3)).astype(np.float32), (wide, HEIGHT))
    texture = (texture * 255).astype(np.uint8)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=FPS, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        for i in range(frames):
            rgb = np.ascontiguousarray(texture[:, PAN * i : PAN * i + WIDTH])
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def peak_rss(script: str, args: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, wall seconds) of `script` run with `args` in a new process."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{args}: {done.stderr.strip()[-2000:]}")
    kb = next(int(ln.split()[1]) for ln in done.stderr.splitlines() if ln.startswith("PEAK_KB"))
    return kb / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[150, 600, 2400])
    parser.add_argument("--no-fit", action="store_true", help="measure --fast only")
    parser.add_argument(
        "--runs", nargs="+", choices=("fast", "streaming", "fit"), help="which (default: all)"
    )
    parser.add_argument(
        "--fit-frames", type=int, nargs="+", help="lengths for the whole fit (default: all)"
    )
    args = parser.parse_args()
    fit_frames = set(args.fit_frames or args.frames)
    everything = ("fast",) if args.no_fit else ("fast", "streaming", "fit")
    chosen = set(args.runs or everything)
    runs: dict[str, dict[int, tuple[float, float]]] = {"fast": {}, "streaming": {}, "fit": {}}
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        model = str(pointwise_model(tmp / "tiny.onnx", {"multiple": 1, "align": "none"}))
        for n in args.frames:
            t0 = time.perf_counter()
            clip = str(make_clip(tmp / f"clip{n}.mp4", n))
            print(f"{n} frames: clip made in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
            common = ["--model", model, "--device", "cpu", "--quiet"]
            fast = ["video", clip, "-o", str(tmp / f"fast{n}"), "--fast", *common]
            if "fast" in chosen:
                runs["fast"][n] = peak_rss(PEAK_RSS, fast)
                print(f"  --fast {runs['fast'][n]}", file=sys.stderr, flush=True)
            if "streaming" in chosen:
                stream_args = [clip, str(tmp / f"stream{n}"), model]
                runs["streaming"][n] = peak_rss(STREAMING, stream_args)
                print(f"  streaming {runs['streaming'][n]}", file=sys.stderr, flush=True)
            if "fit" in chosen and n in fit_frames:
                out = str(tmp / f"fit{n}")
                fit = ["video", clip, "-o", out, "--steps", "2", "--size", FIT_SIZE, *common]
                runs["fit"][n] = peak_rss(PEAK_RSS, fit)
                print(f"  fit {runs['fit'][n]}", file=sys.stderr, flush=True)
            for folder in tmp.glob(f"*{n}"):  # free the disk before the next length
                if folder.is_dir():
                    subprocess.run(["rm", "-rf", str(folder)], check=True)
            Path(clip).unlink()
    first, last = min(args.frames), max(args.frames)
    print(f"{'run':32} " + " ".join(f"{n:>13}" for n in args.frames) + f" {'ratio':>7}")
    labels = {
        "fast": "--fast",
        "streaming": f"fit: decode + caches ({FIT_SIZE})",
        "fit": f"fit: --steps 2 ({FIT_SIZE})",
    }
    for name, label in labels.items():
        row = runs[name]
        if not row:
            continue
        cells = [
            f"{row[n][0]:7.0f} MB {row[n][1]:3.0f}s" if n in row else " " * 13 for n in args.frames
        ]
        lo, hi = min(row), max(row)
        ratio = f"{row[hi][0] / row[lo][0]:7.2f}" if hi > lo else ""
        print(f"{label:32} " + " ".join(f"{c:>13}" for c in cells) + f" {ratio}")
    print(
        f"(peak RSS and wall seconds; ratio: the longest clip's peak over the shortest's, "
        f"{last} vs {first} frames where both ran)"
    )


if __name__ == "__main__":
    main()
