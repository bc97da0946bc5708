"""Render examples/scene.jpg with prodepth's own synthetic scene generator (seed 3).

python examples/make_scene.py
"""

from pathlib import Path

import cv2
import numpy as np

from prodepth_cli.training.synthetic import render_scene

if __name__ == "__main__":
    sample = render_scene(seed=3, height=1080, width=1620)
    bgr = (np.clip(sample.rgb, 0, 1) * 255 + 0.5).astype(np.uint8)[:, :, ::-1]
    out = Path(__file__).with_name("scene.jpg")
    cv2.imwrite(str(out), bgr, [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(out)
