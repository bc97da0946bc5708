"""Photographers' files built by the tests: a minimal DNG that LibRaw develops, HEICs written
by the installed HEVC encoder, JPEGs with EXIF, ICC and XMP, depth maps as `prodepth depth`
writes them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvips
import tifffile
from PIL import Image

from tests.conftest import scene_image

# XYZ (D65) -> linear sRGB: as the DNG's ColorMatrix1, the sensor "sees" linear sRGB.
_XYZ_TO_SRGB = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]
# The sensor's response to white, per channel (AsShotNeutral): LibRaw's camera white balance
# must undo it.
SENSOR_GAINS = (0.5, 1.0, 0.7)
TAGS = {"Make": "Acme", "Model": "Reflex 9", "DateTime": "2026:05:04 03:02:01"}


def write_dng(path: Path, rgb: np.ndarray, orientation: int = 1) -> Path:
    """`rgb` `(H, W, 3)` uint8 sRGB as a 12-bit RGGB Bayer DNG, the sensor's channels scaled
    by SENSOR_GAINS, with Make/Model/DateTime and EXIF `orientation`."""
    linear = (rgb.astype(np.float64) / 255.0) ** 2.2 * 4095.0
    gains = np.array(SENSOR_GAINS)
    mosaic = np.empty(rgb.shape[:2], np.uint16)
    for (dy, dx), channel in {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 2}.items():
        mosaic[dy::2, dx::2] = linear[dy::2, dx::2, channel] * gains[channel]
    matrix = [v for x in _XYZ_TO_SRGB for v in (round(x * 10000), 10000)]
    neutral = [v for g in SENSOR_GAINS for v in (round(g * 1000), 1000)]
    tifffile.imwrite(
        path,
        mosaic,
        photometric=32803,  # CFA
        subfiletype=0,
        extratags=[
            (33421, "H", 2, (2, 2), False),  # CFARepeatPatternDim
            (33422, "B", 4, (0, 1, 1, 2), False),  # CFAPattern: RGGB
            (50706, "B", 4, (1, 4, 0, 0), False),  # DNGVersion
            (50707, "B", 4, (1, 1, 0, 0), False),
            (50708, "s", 0, "Acme Reflex 9", False),  # UniqueCameraModel
            (50714, "H", 1, 0, False),  # BlackLevel
            (50717, "H", 1, 4095, False),  # WhiteLevel
            (50721, "2i", 9, matrix, False),  # ColorMatrix1
            (50778, "H", 1, 21, False),  # CalibrationIlluminant1: D65
            (50728, "2I", 3, neutral, False),  # AsShotNeutral
            (271, "s", 0, TAGS["Make"], False),
            (272, "s", 0, TAGS["Model"], False),
            (306, "s", 0, TAGS["DateTime"], False),
            (274, "H", 1, orientation, False),
        ],
    )
    return path


def exif_bytes(orientation: int = 1, **tags: str) -> bytes:
    """An EXIF block (with its `Exif\\0\\0` header) holding `tags` and `orientation`."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    for name, value in (TAGS | tags).items():
        exif[{"Make": 0x010F, "Model": 0x0110, "DateTime": 0x0132}[name]] = value
    blob = exif.tobytes()
    return blob if blob.startswith(b"Exif\x00\x00") else b"Exif\x00\x00" + blob


def write_heic(
    path: Path, rgb: np.ndarray, orientation: int = 1, matte_first: bool = False
) -> Path:
    """`rgb` as an HEVC HEIC with EXIF `orientation` (pillow-heif writes it as HEIF's own
    rotation, as iPhones do); with `matte_first`, a grey image comes first in the file and
    the photograph is marked primary."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    photo = Image.fromarray(rgb)
    if not matte_first:
        photo.save(path, format="HEIF", exif=exif_bytes(orientation), quality=92)
        return path
    heif = pillow_heif.from_pillow(Image.fromarray(np.full_like(rgb, 128)))
    heif.add_from_pillow(photo).info["exif"] = exif_bytes(orientation)
    heif.save(path, quality=92, primary_index=1)
    return path


def write_jpeg(path: Path, rgb: np.ndarray, orientation: int = 1, xmp: bytes | None = None) -> Path:
    """`rgb` as a JPEG (quality 92) with camera EXIF, `orientation`, libvips' sRGB ICC
    profile and optionally an XMP packet."""
    image = pyvips.Image.new_from_array(np.ascontiguousarray(rgb)).copy(interpretation="srgb")
    image = image.icc_transform("srgb", embedded=False, input_profile="srgb")
    image.set_type(pyvips.GValue.blob_type, "exif-data", exif_bytes(orientation))
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    if xmp is not None:
        image.set_type(pyvips.GValue.blob_type, "xmp-data", xmp)
    image.jpegsave(str(path), Q=92, keep="all")
    return path


def write_png16(path: Path, disparity: np.ndarray) -> Path:
    """`disparity` (larger = nearer) as `prodepth depth`'s 16-bit PNG: its range stretched
    to 0..65535, near = bright."""
    lo, hi = disparity.min(), disparity.max()
    cv2.imwrite(str(path), ((disparity - lo) / (hi - lo) * 65535 + 0.5).astype(np.uint16))
    return path


def write_depth_folder(folder: Path, stems: tuple[str, ...], disparity: np.ndarray) -> Path:
    """A --depth folder: `<stem>_depth.png` (write_png16 of `disparity`) for each of `stems`."""
    folder.mkdir()
    for stem in stems:
        write_png16(folder / f"{stem}_depth.png", disparity)
    return folder


def write_scene(path: Path, h: int = 120, w: int = 160, seed: int = 0) -> Path:
    """`conftest.scene_image(h, w, seed)` written to `path` (its suffix picks the format)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), scene_image(h, w, seed)[:, :, ::-1])
    return path


def near_left_ramp(h: int, w: int) -> np.ndarray:
    """`(h, w)` float32 disparity: near (1) on the left, far (0) on the right."""
    return np.tile(np.linspace(1.0, 0.0, w, dtype=np.float32), (h, 1))


# `--depth-metres` misused, as each command that takes it is tried: (its arguments, MAP the
# PNG map's path; what the one line of error says)
depth_metres_misuse = pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--depth", "MAP", "--depth-metres"], ("d.png", "not metres")),
        (["--depth-metres"], ("--depth-metres", "pass --depth MAP")),
    ],
    ids=["png-map", "no-map"],
)


def near_square_metres(h: int, w: int) -> np.ndarray:
    """`(h, w)` float32 depth in metres (larger = farther), as a metric model's .tif, .pfm
    and .npy hold it: a near square (1.2 m) in front of a far wall (3.5 m), and pixels with
    no depth (0, negative, NaN)."""
    metres = np.full((h, w), 3.5, np.float32)
    metres[h // 4 : h // 2, w // 4 : w // 2] = 1.2
    metres[0, 0], metres[h // 3, 2], metres[h - 1, w // 2] = 0.0, -1.0, np.nan
    return metres


def metres_to_disparity(metres: np.ndarray) -> np.ndarray:
    """The disparity map of the same scene: 1/metres (larger = nearer), float32, NaN
    (invalid, filled by the readers) where `metres` holds no depth."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(metres > 0, np.float32(1.0) / metres, np.nan).astype(np.float32)
