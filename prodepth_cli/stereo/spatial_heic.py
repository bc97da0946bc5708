"""Apple spatial photos: a stereo pair as one HEIC that visionOS and iOS show in 3D.

The two eyes are encoded as two HEVC images by pillow-heif (libheif + x265), the left first
and primary, each with the photograph's EXIF, XMP and ICC profile; libheif writes no entity
groups and no camera properties, so the boxes that make the pair spatial are then added to
the file's `meta` (io/heif_items.py):

- a `grpl` box with a `ster` entity group [left, right] (ISO/IEC 23008-12; libheif's
  `Box_ster` reads it: exactly two entities, the left first);
- per eye, `cmin` (intrinsics) and `cmex` (extrinsics) properties as libheif's `Box_cmin` and
  `Box_cmex` parse them (HEIF's camera properties, from MPEG's draft w22940, which Apple
  contributed conformance files to), and the same payloads in the `uuid` properties that
  Apple's files carry (libheif parses those two uuids with the same classes);
- per eye, Apple's disparity-adjustment `uuid` property: a 32-bit signed integer (reported,
  not confirmed; see docs/stereo.md#spatial-photos for what is confirmed and by what).
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyvips
import tifffile

from prodepth_cli.errors import OutputError, write_error
from prodepth_cli.io.heif_items import (
    EntityGroup,
    HeifTables,
    free_id,
    read_tables,
    with_properties,
)
from prodepth_cli.io.isobmff import BoxError, full_box, uuid_box
from prodepth_cli.io.photo_stream import PhotoMeta
from prodepth_cli.io.scratch import rows_per_strip
from prodepth_cli.io.write import atomic_output
from prodepth_cli.stereo.spatial_camera import SpatialCamera

SPATIAL_SUFFIXES = (".heic", ".heif")
SPATIAL_TAG = "_spatial"  # default output names: <stem>_spatial.heic
# Each eye's longest side at most: HEVC encoding needs each eye whole in memory (3 bytes a
# pixel, and pillow-heif's copy), and Apple's own spatial photos are at most about 4K a
# side. A larger photograph's eyes are rendered at full size and scaled down (libvips,
# Lanczos 3) from a scratch file on disk, so memory stays two eyes of this size.
MAX_EYE_SIDE = 4096
QUALITY = 90  # x265 through libheif: 0..100
X265_PRESET = "medium"  # libheif's default ("slow") takes twice as long for 0.1 dB
# Apple's uuid properties (libheif issue 1164; libheif box.cc parses the first two as cmin
# and cmex); the third holds kCGImagePropertyGroupImageDisparityAdjustment.
UUID_INTRINSICS = bytes.fromhex("22cc04c7d6d94e079d904eb6ecbaf3a3")
UUID_EXTRINSICS = bytes.fromhex("4363e9145b7d4aab97aebea69803b434")
UUID_DISPARITY = bytes.fromhex("de22508536cb436587432f8705e7c78a")
_POSITION_FLAGS = (0x01, 0x02, 0x04)  # cmex: pos_x, pos_y, pos_z present
_IMAGE_TYPES = (b"hvc1", b"grid", b"iden", b"iovl")


def is_spatial_output(dst: str | Path) -> bool:
    """Whether an output path asks for a spatial photo (.heic, .heif)."""
    return str(dst) != "-" and Path(dst).suffix.lower() in SPATIAL_SUFFIXES


def eye_size(width: int, height: int, max_side: int = MAX_EYE_SIDE) -> tuple[int, int]:
    """The (width, height) each eye of a `width` x `height` pair is stored at: scaled down so
    that its longest side is at most `max_side`, and even (an odd side loses its last pixel).
    HEVC's 4:2:0 codes even sizes only; an odd one is coded larger and cropped by a `clap`
    box, and readers then disagree on where `cmin`'s principal point is (libheif 1.23 moves
    it by the crop's offset from the centre measured on the cropped size)."""
    scale = min(1.0, max_side / max(width, height))
    return _even(round(width * scale)), _even(round(height * scale))


def _even(n: int) -> int:
    return max(2, n - n % 2)


def write_spatial_photo(
    dst: str | Path,
    width: int,
    height: int,
    rows: Iterable[np.ndarray],
    meta: PhotoMeta,
    camera: SpatialCamera,
    max_side: int = MAX_EYE_SIDE,
) -> tuple[int, int]:
    """Write the pair whose side-by-side rows are `rows` (float32 sRGB `(n, 2·width, 3)` in
    [0, 1], left eye | right eye, `height` in all) as a spatial photo at `dst`, atomically,
    with `meta`'s EXIF, XMP and ICC profile and `camera`'s geometry. Returns each eye's
    stored (width, height) (`eye_size`)."""
    left, right = _eyes(rows, width, height, eye_size(width, height, max_side))
    size = (left.shape[1], left.shape[0])
    data = add_spatial_boxes(encode_pair(left, right, meta), camera, size)
    with atomic_output(dst) as tmp:
        tmp.write_bytes(data)
    return size


def encode_pair(left: np.ndarray, right: np.ndarray, meta: PhotoMeta) -> bytes:
    """Two eyes, uint8 `(H, W, 3)` each, as a HEIF of two HEVC images: left first and
    primary, each carrying `meta`'s EXIF, XMP and ICC profile."""
    import pillow_heif

    if left.shape != right.shape:
        raise ValueError("a spatial photo's eyes must have the same size")
    h, w = left.shape[:2]
    heif = pillow_heif.from_bytes("RGB", (w, h), _buffer(left))
    heif.add_frombytes("RGB", (w, h), _buffer(right))
    for image in heif:
        for key, blob in (("exif", meta.exif), ("xmp", meta.xmp), ("icc_profile", meta.icc)):
            if blob:
                image.info[key] = blob
    out = _Bytes()
    try:
        heif.save(out, quality=QUALITY, primary_index=0, enc_params={"preset": X265_PRESET})
    except (RuntimeError, ValueError) as exc:
        raise OutputError(f"cannot encode the spatial photo's HEVC images ({exc})") from None
    return out.getvalue()


def add_spatial_boxes(data: bytes, camera: SpatialCamera, size: tuple[int, int]) -> bytes:
    """The two-image HEIF `data` (left first; each eye `size` (w, h) as shown) made a spatial
    photo: its `ster` group, and per eye the camera's `cmin`/`cmex`, their Apple `uuid` twins
    and the disparity adjustment."""
    tables = read_tables(data)
    left, right = eye_items(tables)
    properties: list[bytes] = []
    associations: dict[int, list[int]] = {}
    positions = {left: (0, 0, 0), right: (round(camera.baseline_m * 1e6), 0, 0)}
    fx, cx, cy = camera.intrinsics(*size)
    for item in (left, right):
        extent = image_extent(data, tables, item)
        x0, y0 = crop_origin(data, tables, item, extent)
        intrinsics = cmin_payload(fx, cx + x0, cy + y0, extent)
        extrinsics = cmex_payload(positions[item])
        boxes_of_eye = [
            full_box(b"cmin", 0, *_split_header(intrinsics)),
            full_box(b"cmex", 0, *_split_header(extrinsics)),
            uuid_box(UUID_INTRINSICS, intrinsics),
            uuid_box(UUID_EXTRINSICS, extrinsics),
            uuid_box(UUID_DISPARITY, struct.pack(">i", camera.disparity_adjustment)),
        ]
        associations[item] = [_index_of(properties, b) for b in boxes_of_eye]
    group = EntityGroup(b"ster", free_id(tables), (left, right))
    return with_properties(data, properties, associations, [group])


def eye_items(tables: HeifTables) -> tuple[int, int]:
    """The item ids of a two-image HEIF's images as written: the first the primary (left)."""
    shown = [i.id for i in tables.items if i.type in _IMAGE_TYPES and not i.hidden]
    if len(shown) != 2 or shown[0] != tables.primary:
        raise BoxError(f"expected two images, the first primary; found items {shown}")
    return shown[0], shown[1]


def image_extent(data: bytes, tables: HeifTables, item: int) -> tuple[int, int]:
    """An image item's `ispe` (width, height): its coded size, which `cmin` is relative to
    (libheif codes a height that is not a multiple of its block size larger, and crops)."""
    for prop in tables.item_properties(item):
        if prop.type == b"ispe":
            return struct.unpack_from(">II", data, prop.body + 4)
    raise BoxError(f"image item {item} has no 'ispe' property")


def crop_origin(
    data: bytes, tables: HeifTables, item: int, extent: tuple[int, int]
) -> tuple[float, float]:
    """Where the shown image starts in the coded one, (left, top) pixels, from its `clap`
    (clean aperture: centre offset from the coded image's centre, as fractions); (0, 0)
    without one. libheif moves `cmin`'s principal point by it when it crops."""
    for prop in tables.item_properties(item):
        if prop.type == b"clap":
            wn, wd, hn, hd, xn, xd, yn, yd = struct.unpack_from(">IIIIiIiI", data, prop.body)
            left = xn / xd + (extent[0] - 1) / 2 - (wn / wd - 1) / 2
            top = yn / yd + (extent[1] - 1) / 2 - (hn / hd - 1) / 2
            return left, top
    return 0.0, 0.0


# --- the property payloads: version and flags (4 bytes), then the fields ---------------------


def cmin_payload(fx: float, cx: float, cy: float, extent: tuple[int, int]) -> bytes:
    """An isotropic `cmin` payload (flags bit 0 clear: fy = fx, no skew): fx and cx as
    fractions of the coded width, cy of the coded height, signed 32-bit over 2^shift, the
    shift in flags bits 8-12. The shift is the largest up to 30 that keeps every value under
    2^30, as Apple's files do (libheif issues 1164 and 1191: shifts 30, 29, 28)."""
    w, h = extent
    values = (fx / w, cx / w, cy / h)
    shift = _denominator_shift(values)
    fields = struct.pack(">3i", *(round(v * (1 << shift)) for v in values))
    return _header(0, shift << 8) + fields


def cmex_payload(position_um: tuple[int, int, int]) -> bytes:
    """A `cmex` payload with the position (micrometres, signed 32-bit; an axis only where
    it is not 0, its flag bit set) and no rotation field (identity); Apple's conformance
    files code the origin as flags 0 and no fields."""
    flags = 0
    fields = b""
    for bit, value in zip(_POSITION_FLAGS, position_um, strict=True):
        if value:
            flags |= bit
            fields += struct.pack(">i", value)
    return _header(0, flags) + fields


def parse_cmin(payload: bytes, extent: tuple[int, int]) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) in pixels of an image of coded size `extent` from a `cmin` payload."""
    flags = int.from_bytes(payload[1:4], "big")
    denominator = float(1 << ((flags >> 8) & 0x1F))
    fx, cx, cy = (v / denominator for v in struct.unpack_from(">3i", payload, 4))
    fy = struct.unpack_from(">i", payload, 16)[0] / denominator * extent[1] if flags & 1 else None
    w, h = extent
    return fx * w, fy if fy is not None else fx * w, cx * w, cy * h


def parse_cmex(payload: bytes) -> tuple[int, int, int]:
    """The position (x, y, z) in micrometres from a `cmex` payload."""
    flags = int.from_bytes(payload[1:4], "big")
    pos = 4
    out = []
    for bit in _POSITION_FLAGS:
        if flags & bit:
            out.append(struct.unpack_from(">i", payload, pos)[0])
            pos += 4
        else:
            out.append(0)
    return out[0], out[1], out[2]


@dataclass(frozen=True)
class SpatialEye:
    """One eye of a spatial photo as its file says: item id, coded size (`ispe`), the
    intrinsics (fx, fy, cx, cy: pixels of the shown image, as libheif reports them) and
    position (micrometres) of its `cmin`/`cmex` (else of Apple's uuid twins), and its
    disparity adjustment (None where absent)."""

    item: int
    extent: tuple[int, int]
    intrinsics: tuple[float, float, float, float] | None
    position_um: tuple[int, int, int] | None
    disparity_adjustment: int | None


def read_spatial_photo(data: bytes) -> tuple[SpatialEye, SpatialEye]:
    """The (left, right) eyes of a spatial photo from its `ster` group; BoxError without
    one."""
    tables = read_tables(data)
    groups = [g for g in tables.groups if g.type == b"ster"]
    if len(groups) != 1 or len(groups[0].entities) != 2:
        raise BoxError("no 'ster' group of two images")
    left, right = groups[0].entities
    return _eye(data, tables, left), _eye(data, tables, right)


def _eye(data: bytes, tables: HeifTables, item: int) -> SpatialEye:
    extent = image_extent(data, tables, item)
    found: dict[bytes, bytes] = {}
    for prop in tables.item_properties(item):
        key = prop.usertype if prop.type == b"uuid" else prop.type
        found.setdefault(key, prop.payload(data))
    intrinsics = found.get(b"cmin", found.get(UUID_INTRINSICS))
    extrinsics = found.get(b"cmex", found.get(UUID_EXTRINSICS))
    adjustment = found.get(UUID_DISPARITY)
    x0, y0 = crop_origin(data, tables, item, extent)
    fx, fy, cx, cy = parse_cmin(intrinsics, extent) if intrinsics else (0.0, 0.0, 0.0, 0.0)
    return SpatialEye(
        item,
        extent,
        (fx, fy, cx - x0, cy - y0) if intrinsics else None,
        parse_cmex(extrinsics) if extrinsics else None,
        struct.unpack(">i", adjustment[:4])[0] if adjustment else None,
    )


# --- helpers ------------------------------------------------------------------------------


def _eyes(
    rows: Iterable[np.ndarray], width: int, height: int, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The two eyes, uint8 `(h, w, 3)` at `size` (w, h; `eye_size`), from side-by-side float
    rows: kept as they come at full size, else through a scratch TIFF that libvips scales
    down."""
    w, h = size
    if max(width - w, height - h) <= 1:  # not scaled: at most an odd last pixel dropped
        left = np.empty((h, w, 3), np.uint8)
        right = np.empty_like(left)
        y = 0
        for band in rows:
            n = max(0, min(len(band), h - y))
            levels = _levels(band[:n])
            left[y : y + n] = levels[:, :w]
            right[y : y + n] = levels[:, width : width + w]
            y += n
        return left, right
    with tempfile.TemporaryDirectory(prefix="prodepth-") as scratch_dir:
        scratch = Path(scratch_dir) / "pair.tif"
        try:
            tifffile.imwrite(
                scratch,
                data=(_levels(band) for band in rows),
                shape=(height, 2 * width, 3),
                dtype=np.uint8,
                photometric="rgb",
                rowsperstrip=rows_per_strip(2 * width * 3),
                bigtiff=height * 2 * width * 3 >= 2**31,
            )
        except OSError as exc:
            hint = "a working file of the pair being made; set TMPDIR to a larger disk"
            raise write_error(scratch, exc, hint) from None
        pair = pyvips.Image.new_from_file(str(scratch))
        eyes = []
        for x0 in (0, width):
            eye = pair.crop(x0, 0, width, height)
            eye = eye.resize(w / width, vscale=h / height, kernel="lanczos3")
            eyes.append(np.ascontiguousarray(eye.numpy()[:h, :w]))
        return eyes[0], eyes[1]


def _levels(band: np.ndarray) -> np.ndarray:
    """Float rows in [0, 1] as 8-bit levels, rounded."""
    return (np.clip(band, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def _buffer(eye: np.ndarray) -> memoryview:
    """An eye's pixels for pillow-heif without a copy."""
    return memoryview(np.ascontiguousarray(eye).reshape(-1))


class _Bytes:
    """A write-only byte sink for pillow-heif's save."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def _header(version: int, flags: int) -> bytes:
    return bytes([version]) + flags.to_bytes(3, "big")


def _split_header(payload: bytes) -> tuple[int, bytes]:
    """(flags, fields) of a payload made by `_header` + fields, for `full_box`."""
    return int.from_bytes(payload[1:4], "big"), payload[4:]


def _index_of(properties: list[bytes], prop: bytes) -> int:
    """The index of `prop` in `properties`, appended when new (the eyes share equal ones)."""
    if prop not in properties:
        properties.append(prop)
    return properties.index(prop)


def _denominator_shift(values: tuple[float, ...]) -> int:
    largest = max(abs(v) for v in values)
    shift = 30
    while shift > 0 and largest * (1 << shift) >= 1 << 30:
        shift -= 1
    return shift
