"""The cameras a spatial photo describes (Apple's visionOS/iOS stereo HEIC): their field of
view, the baseline between them and the pair's disparity adjustment, from the photograph's
EXIF and `--divergence`/`--convergence`.

A spatial photo holds its eyes as two parallel cameras see them: a point at infinity is at the
same column in both, nearer points further left in the right eye. The viewer then shifts the
eyes apart by the disparity adjustment (a fraction of the width, x 1e4, positive = apart) to
put the screen plane where the file says. So the eyes are rendered with convergence 0 (the
map's farthest level at zero disparity, its nearest at S = divergence % of the width) and the
convergence goes into the adjustment: level C is at zero disparity once the viewer shifts the
eyes by S·C, so the adjustment is divergence / 100 · C · 1e4 = 100 · divergence · C.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from prodepth_cli.camera import focal_from_35mm, focal_from_fov
from prodepth_cli.io.metadata import exif_lens_tags
from prodepth_cli.stereo.shift import StereoOptions

# Without a focal length in the EXIF: a phone's main camera (26 mm equivalent), where most
# photographs now come from (Apple's own sample pair is rendered at 80 degrees across).
ASSUMED_FOCAL_35MM = 26.0
# The distance assumed for the depth map's nearest level: the baseline is what puts it there.
# 2 m (a person across a room) gives 53 mm at a phone's field of view and the default 2 %,
# near the 64 mm between human eyes that Apple's sample pair uses.
NEAREST_M = 2.0


@dataclass(frozen=True)
class SpatialCamera:
    """Both eyes' camera: `hfov_deg` the horizontal field of view, `fov_from` "exif"
    (FocalLengthIn35mmFilm) or "assumed" (ASSUMED_FOCAL_35MM); `baseline_m` the distance from
    the left camera to the right one (metres, along +x); `disparity_adjustment` the pair's
    horizontal shift, a fraction of the width x 1e4, positive = eyes apart (the scene
    further back)."""

    hfov_deg: float
    fov_from: str
    baseline_m: float
    disparity_adjustment: int

    def intrinsics(self, width: int, height: int) -> tuple[float, float, float]:
        """(fx, cx, cy) in pixels of a `width` x `height` eye as Apple's sample writes them:
        fx = fy = 0.5·W / tan(hfov / 2), the principal point at the image's centre
        (W/2, H/2, pixel-corner coordinates), no skew."""
        return focal_from_fov(self.hfov_deg, width), 0.5 * width, 0.5 * height


def spatial_camera(
    width: int, height: int, exif: bytes | None, options: StereoOptions
) -> SpatialCamera:
    """The cameras of the spatial photo of an upright `width` x `height` photograph with
    EXIF block `exif` (or none), its pair made with `options`."""
    focal = focal_35mm(exif)
    fov_from = "exif" if focal else "assumed"
    hfov = horizontal_fov_deg(width, height, focal or ASSUMED_FOCAL_35MM)
    return SpatialCamera(
        hfov, fov_from, baseline_m(hfov, options.divergence), disparity_adjustment(options)
    )


def focal_35mm(exif: bytes | None) -> float | None:
    """FocalLengthIn35mmFilm from an EXIF block (mm), or None: absent, 0 (unknown) or
    unreadable."""
    return exif_lens_tags(exif).get("FocalLengthIn35mmFilm")


def horizontal_fov_deg(width: int, height: int, focal_35mm_mm: float) -> float:
    """The horizontal field of view (degrees) of a `width` x `height` image taken at a 35 mm
    equivalent focal length (`camera.focal_from_35mm`)."""
    focal = focal_from_35mm(focal_35mm_mm, width, height)
    return math.degrees(2.0 * math.atan(0.5 * width / focal))


def baseline_m(hfov_deg: float, divergence: float) -> float:
    """The baseline (metres) of two parallel cameras seeing the map's nearest level, at
    NEAREST_M, with the divergence's disparity and its farthest at infinity: disparity
    d = fx·B / Z, so B = S·Z / fx with S = divergence / 100 · W and fx = W / (2 tan(hfov/2)),
    which is 2·tan(hfov/2)·divergence / 100·NEAREST_M, whatever the width."""
    return 2.0 * math.tan(math.radians(hfov_deg) / 2.0) * divergence / 100.0 * NEAREST_M


def disparity_adjustment(options: StereoOptions) -> int:
    """The pair's disparity adjustment (a fraction of the width x 1e4) that puts the map level
    `options.convergence` at zero disparity, the eyes being rendered at convergence 0
    (`parallel_options`): S·C / W x 1e4 = 100 · divergence · convergence."""
    return round(100.0 * options.divergence * options.convergence)


def parallel_options(options: StereoOptions) -> StereoOptions:
    """The options the eyes of a spatial photo are rendered with: side by side (the two
    halves are the two images) and convergence 0 (as parallel cameras see a scene whose
    farthest level is at infinity); the convergence goes into `disparity_adjustment`."""
    return dataclasses.replace(options, layout="sbs", convergence=0.0)
