"""Export the bokeh network to TFLite (fp32 and dynamic-range int8) with litert-torch.

Needs the `bokeh-train` extra (litert-torch, ai-edge-quantizer: heavy, pulls jax); the
runtime needs only `ai-edge-litert`. The model takes and gives NHWC (`to_channel_last_io`:
no transposes on the phone) at the fixed frame size `FRAME_HW`. Writes
`<out>/prodepth-bokeh.tflite`, `<out>/prodepth-bokeh-int8.tflite` and the torch weights
`<out>/prodepth-bokeh.pt` (for parity tests), and reports parity with torch.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from prodepth_cli.nets.bokeh import FRAME_HW, BokehArch, BokehNet

STEM = "prodepth-bokeh"


def load_bokeh_weights(path: Path) -> BokehNet:
    """The torch network saved by `save_bokeh_weights` (or a training checkpoint)."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    arch = BokehArch(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in state["arch"].items()}
    )
    net = BokehNet(arch)
    net.load_state_dict(state["model"])
    return net.eval()


def save_bokeh_weights(net: BokehNet, arch: BokehArch, path: Path) -> None:
    torch.save({"arch": asdict(arch), "model": net.state_dict()}, path)


def convert_tflite(net: BokehNet, path: Path, frame_hw: tuple[int, int] = FRAME_HW) -> None:
    """Write `net` as an NHWC fp32 .tflite of input `(1, fh, fw, 4)` at `path`."""
    import litert_torch  # the training extra: imported only here

    sample = (torch.zeros(1, frame_hw[0], frame_hw[1], 4),)
    wrapped = litert_torch.to_channel_last_io(net.eval(), args=[0], outputs=[0])
    litert_torch.convert(wrapped.eval(), sample).export(str(path))


def quantize_int8(src: Path, dst: Path) -> None:
    """Dynamic-range int8 weights (activations float): ~4x smaller, CPU/GPU friendly."""
    from ai_edge_quantizer import quantizer, recipe

    qt = quantizer.Quantizer(str(src), recipe.dynamic_wi8_afp32())
    qt.quantize().export_model(str(dst), overwrite=True)


def tflite_parity(net: BokehNet, path: Path, seed: int = 0) -> float:
    """Max |torch - TFLite| on one random frame-size input (sRGB in [0, 1], CoC +-2)."""
    from prodepth_cli.bokeh.tflite import TFLiteBokehNet

    rng = np.random.default_rng(seed)
    x = rng.random((1, *FRAME_HW, 4), dtype=np.float32)
    x[..., 3] = (x[..., 3] - 0.5) * 4
    with torch.no_grad():
        ref = net(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    got = TFLiteBokehNet(path).predict(x)
    return float(np.abs(ref - got).max())


def export_bokeh(checkpoint: Path, out: Path) -> dict[str, float]:
    """Export the checkpoint's network into `out`; returns parity and sizes."""
    net = load_bokeh_weights(checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    fp32, int8 = out / f"{STEM}.tflite", out / f"{STEM}-int8.tflite"
    save_bokeh_weights(net, net.arch, out / f"{STEM}.pt")
    convert_tflite(net, fp32)
    quantize_int8(fp32, int8)
    report = {
        "parity_fp32_max_abs": tflite_parity(net, fp32),
        "parity_int8_max_abs": tflite_parity(net, int8),
        "fp32_mb": fp32.stat().st_size / 2**20,
        "int8_mb": int8.stat().st_size / 2**20,
    }
    print(json.dumps(report, indent=1))
    return report


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, default=Path("models"))
    args = p.parse_args()
    export_bokeh(args.checkpoint, args.out)


if __name__ == "__main__":
    main()
