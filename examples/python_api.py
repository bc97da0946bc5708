"""The Python API: depth for an in-memory image, and file to file.

python examples/python_api.py examples/scene.jpg
"""

import sys

import cv2

from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import DepthOptions, depth_array, depth_file

if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "examples/scene.jpg"
    model = load_model()  # the shipped default model
    rgb = cv2.imread(path, cv2.IMREAD_COLOR)[:, :, ::-1]
    disparity = depth_array(rgb, model, tile=512)  # (H, W) float32, larger = nearer
    print(f"{path}: {disparity.shape}, disparity {disparity.min():.3f}..{disparity.max():.3f}")
    report = depth_file(
        path, "/tmp/prodepth_example.tif", model, DepthOptions(tile=512), fmt="tiff"
    )
    print(f"wrote {report.output}: {len(report.tiles)} tiles in {report.seconds:.1f} s")
