"""The Python API: `depth()` on a path, an array and a PIL image; the pipeline underneath.

python examples/python_api.py [PHOTO] [OUT_FOLDER]
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from prodepth_cli import DepthOptions, depth, load_model
from prodepth_cli.pipeline import depth_array, depth_file

if __name__ == "__main__":
    photo = sys.argv[1] if len(sys.argv) > 1 else "examples/scene.jpg"
    out = Path(sys.argv[2] if len(sys.argv) > 2 else tempfile.mkdtemp(prefix="prodepth-"))
    disparity = depth(photo)  # (H, W) float32, larger = nearer, upright; the default model
    print(f"{photo}: {disparity.shape}, disparity {disparity.min():.3f}..{disparity.max():.3f}")

    model = load_model()  # the default (best installed, else shipped): load once, reuse
    pixels = np.asarray(Image.open(photo).convert("RGB"))  # as stored: no EXIF rotation
    from_pixels = depth(pixels, model=model, tile=512)
    png = out / "depth.png"
    depth(photo, model=model, options=DepthOptions(tile=512), output=png)  # also writes it
    print(f"from its pixels: {from_pixels.shape}; wrote {png}")

    # underneath: the pipeline's two functions, a loaded model and a DepthOptions each
    tiled = depth_array(pixels, model, DepthOptions(tile=512))
    report = depth_file(photo, out / "depth.tif", model, DepthOptions(tile=512), fmt="tiff")
    print(
        f"depth_array: {tiled.shape}; depth_file wrote {report.output}: "
        f"{len(report.tiles)} tiles in {report.seconds:.1f} s"
    )
