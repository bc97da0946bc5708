"""The camera's pinhole intrinsics for a photograph: focal length in pixels, principal point.

In order: the photograph's EXIF (FocalLengthIn35mmFilm through the diagonal, as Depth Pro's
`load_rgb` does, or FocalLength with the sensor's pixel pitch), else the focal length the
depth model predicts (Depth Pro's `focallength_px` output), else a horizontal field of view
(`--fov`, or `DEFAULT_FOV_DEG` assumed). The principal point is the image centre; pixels are
square (fx = fy).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from prodepth_cli.camera import (
    ASSUMED,
    Intrinsics,
    focal_from_35mm,
    focal_from_fov,
)

if TYPE_CHECKING:
    from prodepth_cli.io.read import ImageSource
    from prodepth_cli.models.runtime import DepthModel

DEFAULT_FOV_DEG = 60.0  # horizontal; a phone's main camera sees 65-75, a 50 mm lens 40
MM_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}  # EXIF FocalPlaneResolutionUnit
FOCAL_OUTPUTS = ("focallength_px",)  # a model's output giving the focal length, in pixels
_SANE_FOV_DEG = (0.5, 175.0)  # outside this an EXIF focal length is a broken tag

# Where a focal length came from, as `--json` reports it.
EXIF_35MM = "exif:FocalLengthIn35mmFilm"
EXIF_SENSOR = "exif:FocalLength+FocalPlaneXResolution"
MODEL = "model"
FOV_OPTION = "--fov"


def centred(focal_px: float, width: int, height: int, source: str) -> Intrinsics:
    """Square pixels of `focal_px`, principal point at the image centre."""
    return Intrinsics(focal_px, focal_px, width / 2.0, height / 2.0, width, height, source)


def focal_from_exif(tags: dict[str, float], width: int, height: int) -> tuple[float, str] | None:
    """(focal length in pixels, source) from EXIF `tags` (`io.metadata.lens_tags`) for the
    `width` x `height` image they belong to (upright or not: the diagonal and square pixels
    do not care), or None when they do not say, or say something impossible.

    35 mm equivalent: f_px = f35 * diagonal_px / diagonal of the 36 x 24 mm frame. Else the
    real focal length over the sensor's pixel pitch (FocalPlaneXResolution), rescaled when
    the photograph was resized after the camera wrote PixelXDimension."""
    found = None
    if "FocalLengthIn35mmFilm" in tags:
        found = focal_from_35mm(tags["FocalLengthIn35mmFilm"], width, height), EXIF_35MM
    elif {"FocalLength", "FocalPlaneXResolution"} <= tags.keys():
        unit = MM_PER_UNIT.get(int(tags.get("FocalPlaneResolutionUnit", 2)))
        if unit is not None:
            focal = tags["FocalLength"] * tags["FocalPlaneXResolution"] / unit
            written = max(tags.get("PixelXDimension", 0), tags.get("PixelYDimension", 0))
            if written:  # long side to long side: the stored image may be turned
                focal *= max(width, height) / written
            found = focal, EXIF_SENSOR
    if found is None:
        return None
    fov = math.degrees(2.0 * math.atan(max(width, height) / (2.0 * found[0])))
    return found if _SANE_FOV_DEG[0] <= fov <= _SANE_FOV_DEG[1] else None


def model_focal_px(model: DepthModel, image: ImageSource) -> float | None:
    """The focal length in pixels of `image` that `model` predicts, or None when it does not
    predict one: a model whose spec lists an output in FOCAL_OUTPUTS (`extra.outputs`, as
    Depth Pro's catalog entry does) and whose graph has it. One more run of the coarse
    network on the whole image; its answer, in pixels of the network's input, is scaled to
    the image's width (Depth Pro squeezes the image to its square input and predicts the
    horizontal field of view)."""
    from prodepth_cli.pipeline import resize_to

    net = model.coarse_net
    listed = (net.spec.extra or {}).get("outputs", {})
    in_graph = {o.name for o in net.session.get_outputs()}
    name = next((n for n in FOCAL_OUTPUTS if n in listed and n in in_graph), None)
    if name is None:
        return None
    in_hw = net.coarse_hw(image.height, image.width)
    small = resize_to(image.thumbnail(max(in_hw)), in_hw)
    feeds = {net.spec.input: net.prepare([small])}
    (focal,) = net.session_for(feeds).run([name], feeds)
    focal = float(np.asarray(focal, np.float64).ravel()[0])
    if not math.isfinite(focal) or focal <= 0:
        return None
    return focal * image.width / in_hw[1]


def camera_intrinsics(
    image: ImageSource, fov_deg: float | None = None, model: DepthModel | None = None
) -> Intrinsics:
    """The intrinsics of the upright `image`: from its EXIF, else `model`'s prediction,
    else `fov_deg` (horizontal), else DEFAULT_FOV_DEG (source ASSUMED)."""
    from prodepth_cli.io.metadata import lens_tags

    w, h = image.width, image.height
    from_exif = focal_from_exif(lens_tags(image.image), w, h)
    if from_exif is not None:
        return centred(from_exif[0], w, h, from_exif[1])
    focal = model_focal_px(model, image) if model is not None else None
    if focal is not None:
        return centred(focal, w, h, MODEL)
    if fov_deg is not None:
        return centred(focal_from_fov(fov_deg, w), w, h, FOV_OPTION)
    return centred(focal_from_fov(DEFAULT_FOV_DEG, w), w, h, ASSUMED)
