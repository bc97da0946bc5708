"""`prodepth stereo -o x.heic`: Apple spatial photos. The boxes as written (ISO BMFF framing,
HEIF's item tables patched, the camera properties' bit layouts), read back by libheif
(pillow-heif) and by our own parser, the camera geometry, and the command end to end."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import pyvips
from PIL import Image
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.io.depth_map import DepthMapFile
from prodepth_cli.io.heif_items import EntityGroup, read_tables, with_properties
from prodepth_cli.io.isobmff import box, boxes, full_box, full_header, uuid_box
from prodepth_cli.io.photo_stream import PhotoMeta
from prodepth_cli.stereo.render import stereo_file
from prodepth_cli.stereo.shift import StereoOptions, shift_range_px
from prodepth_cli.stereo.spatial_camera import (
    SpatialCamera,
    baseline_m,
    disparity_adjustment,
    focal_35mm,
    horizontal_fov_deg,
    parallel_options,
    spatial_camera,
)
from prodepth_cli.stereo.spatial_heic import (
    UUID_DISPARITY,
    UUID_EXTRINSICS,
    UUID_INTRINSICS,
    add_spatial_boxes,
    cmex_payload,
    cmin_payload,
    encode_pair,
    eye_items,
    eye_size,
    parse_cmex,
    parse_cmin,
    read_spatial_photo,
)
from tests.conftest import SHARED_DATA, require, scene_image
from tests.photo_files import write_png16

pillow_heif = pytest.importorskip("pillow_heif")
runner = CliRunner()
ROOFTOP = SHARED_DATA / "photos" / "landscape_city_rooftop_sunset_4032x3024.jpg"


def _eyes(h: int = 64, w: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """Two different photo-like uint8 eyes (smooth: HEVC's 4:2:0 keeps them close)."""
    return scene_image(h, w, seed=1), scene_image(h, w, seed=2)


def _srgb_icc() -> bytes:
    image = pyvips.Image.black(8, 8, bands=3).copy(interpretation="srgb")
    image = image.icc_transform("srgb", embedded=False, input_profile="srgb")
    return bytes(image.get("icc-profile-data"))


def _exif(focal_35mm_mm: int | None = None, make: str = "TestCam") -> bytes:
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0112] = 1
    if focal_35mm_mm is not None:
        exif.get_ifd(0x8769)[0xA405] = focal_35mm_mm
    return b"Exif\x00\x00" + exif.tobytes()


def _camera(adjustment: int = 100) -> SpatialCamera:
    return SpatialCamera(80.0, "assumed", 0.064, adjustment)


def _write_jpeg(path: Path, rgb: np.ndarray, exif: bytes, icc: bytes | None = None) -> Path:
    """A JPEG written by Pillow, which keeps an EXIF block as given (libvips drops the tags
    its own fields do not name)."""
    Image.fromarray(rgb).save(path, quality=95, exif=exif, icc_profile=icc)
    return path


# --- the property layouts -------------------------------------------------------------------


@pytest.mark.parametrize(
    "values, expected",
    [  # Apple files' bytes for a 1000x1000 image (libheif issue 1164, bradh's analysis)
        ((1.0, 0.0, 0.0), "00001e00 0010624e 00000000 00000000"),
        ((2.0, 2.0, 2.0), "00001e00 0020c49c 0020c49c 0020c49c"),
        ((100.0, 100.0, 100.0), "00001e00 06666666 06666666 06666666"),
    ],
)
def test_cmin_bytes_match_apples_for_the_same_intrinsics(values, expected):
    assert cmin_payload(*values, (1000, 1000)) == bytes.fromhex(expected.replace(" ", ""))


def test_cmin_keeps_apples_precision_for_a_larger_focal_length():
    """Issue 1191's 1280x720 spatial photo: fx 2.29 widths needs shift 28 (under 2^30)."""
    payload = cmin_payload(2925.7, 640.0, 360.0, (1280, 720))
    assert payload[:4] == bytes.fromhex("00001c00")
    assert payload[8:16] == bytes.fromhex("08000000 08000000".replace(" ", ""))
    fx, fy, cx, cy = parse_cmin(payload, (1280, 720))
    assert (cx, cy) == (640.0, 360.0)
    assert fx == fy == pytest.approx(2925.7, abs=1e-5), "28 bits of fraction: 1e-8 widths"


def test_cmex_codes_only_the_axes_off_the_origin_as_apples_conformance_files():
    """MPEG conformance (m62054, Apple): 0 m coded as flags 0 and no values; 0.02 m along y
    as flags 2 and [20000] (micrometres)."""
    assert cmex_payload((0, 0, 0)) == bytes(4)
    assert cmex_payload((0, 20000, 0)) == bytes.fromhex("00000002") + struct.pack(">i", 20000)
    assert parse_cmex(cmex_payload((64000, 0, -5))) == (64000, 0, -5)


def test_box_framing_reads_back_what_it_writes():
    data = box(b"free", b"abc") + full_box(b"pitm", 0, 0, b"\x00\x07") + uuid_box(b"u" * 16, b"x")
    spans = boxes(data)
    assert [s.type for s in spans] == [b"free", b"pitm", b"uuid"]
    assert spans[0].payload(data) == b"abc"
    assert full_header(data, spans[1]) == (0, 0, spans[1].body + 4)
    assert spans[2].usertype == b"u" * 16 and spans[2].payload(data) == b"x"


# --- patching a HEIF's tables ---------------------------------------------------------------


def _container(version: int, offset_size: int, base_size: int) -> bytes:
    """A minimal HEIF-shaped file (no codec data): items 1 and 2 ('hvc1') whose bytes are in
    `mdat` (construction method 0), item 3 ('Exif') in `idat` (method 1, versions 1-2), its
    `iloc` of `version` with `offset_size`- and `base_size`-byte offsets."""
    payloads = {1: b"LEFT-EYE-BYTES", 2: b"RIGHT-EYE-BYTES", 3: b"EXIF-IN-IDAT"}
    idat_item = version > 0

    def infe(item: int, kind: bytes) -> bytes:
        return full_box(b"infe", 2, 0, struct.pack(">HH", item, 0) + kind + b"\0")

    def iloc(mdat_start: int) -> bytes:
        idw = ">H" if version < 2 else ">I"
        items = [1, 2, 3] if idat_item else [1, 2]
        out = struct.pack(">BB", (offset_size << 4) | 4, base_size << 4)
        out += struct.pack(idw, len(items))
        at = mdat_start
        for item in items:
            out += struct.pack(idw, item)
            method = 1 if item == 3 else 0
            if version > 0:
                out += struct.pack(">H", method)
            out += struct.pack(">H", 0)
            absolute = 0 if method == 1 else at
            base, offset = (absolute, 0) if base_size else (0, absolute)
            out += base.to_bytes(base_size, "big") + struct.pack(">H", 1)
            out += offset.to_bytes(offset_size, "big") + struct.pack(">I", len(payloads[item]))
            if method == 0:
                at += len(payloads[item])
        return full_box(b"iloc", version, 0, out)

    def ipma() -> bytes:
        return full_box(b"ipma", 0, 0, struct.pack(">I", 2) + b"\x00\x01\x01\x81\x00\x02\x01\x81")

    ispe = full_box(b"ispe", 0, 0, struct.pack(">II", 96, 64))
    iinf = full_box(
        b"iinf",
        0,
        0,
        struct.pack(">H", 3) + infe(1, b"hvc1") + infe(2, b"hvc1") + infe(3, b"Exif"),
    )
    ftyp = box(b"ftyp", b"heic\0\0\0\0mif1heic")

    def meta(mdat_start: int) -> bytes:
        parts = [
            full_box(b"hdlr", 0, 0, bytes(4) + b"pict" + bytes(13)),
            full_box(b"pitm", 0, 0, struct.pack(">H", 1)),
            iinf,
            iloc(mdat_start),
            box(b"iprp", box(b"ipco", ispe) + ipma()),
        ]
        if idat_item:
            parts.append(box(b"idat", payloads[3]))
        return full_box(b"meta", 0, 0, b"".join(parts))

    mdat_start = len(ftyp) + len(meta(0)) + 8
    return ftyp + meta(mdat_start) + box(b"mdat", payloads[1] + payloads[2])


@pytest.mark.parametrize("version, offset_size, base_size", [(0, 4, 4), (1, 8, 0), (2, 4, 8)])
def test_every_iloc_extent_still_points_at_its_bytes_after_meta_grows(
    version, offset_size, base_size
):
    data = _container(version, offset_size, base_size)
    before = read_tables(data).extents
    grown = with_properties(
        data,
        [full_box(b"cmin", 0, 0, bytes(12)), uuid_box(UUID_DISPARITY, bytes(4))],
        {1: [0, 1], 2: [0, 1]},
        [EntityGroup(b"ster", 4, (1, 2))],
    )
    tables = read_tables(grown)
    assert len(grown) > len(data)
    for item, extents in before.items():
        (old_at, n), (new_at, m) = extents[0], tables.extents[item][0]
        assert m == n and grown[new_at : new_at + n] == data[old_at : old_at + n], item
    assert tables.groups == (EntityGroup(b"ster", 4, (1, 2)),)
    assert [p.type for p in tables.item_properties(1)] == [b"ispe", b"cmin", b"uuid"]


def test_ipma_takes_15_bit_indexes_past_127_properties():
    data = _container(1, 4, 0)
    many = [full_box(b"free", 0, 0, struct.pack(">I", i)) for i in range(140)]
    grown = with_properties(data, many, {1: [139], 2: [0]})
    ipma = read_tables(grown).associations
    assert ipma[1] == [(1, True), (141, False)], "index 140 + 1 needs the wide form"
    assert ipma[2] == [(1, True), (2, False)]


# --- a spatial photo's file -----------------------------------------------------------------


@pytest.fixture(scope="module")
def spatial_bytes() -> tuple[bytes, bytes, np.ndarray, np.ndarray]:
    """(plain two-image HEIF, the same made spatial, left eye, right eye)."""
    left, right = _eyes()
    meta = PhotoMeta(8, _srgb_icc(), _exif(35), b"<x:xmpmeta/>")
    plain = encode_pair(left, right, meta)
    return plain, add_spatial_boxes(plain, _camera(), (96, 64)), left, right


def test_libheif_decodes_both_eyes_from_the_patched_file(spatial_bytes):
    plain, spatial, left, right = spatial_bytes
    before = [np.asarray(im) for im in pillow_heif.open_heif(plain)]
    heif = pillow_heif.open_heif(spatial)
    after = [np.asarray(im) for im in heif]
    assert len(after) == 2 and heif.primary_index == 0
    assert all(a.shape == (64, 96, 3) for a in after)
    assert all(np.array_equal(a, b) for a, b in zip(after, before, strict=True)), (
        "the same HEVC bytes found where iloc now says"
    )
    # HEVC at quality 90 on smooth images: within 3 levels on average of what went in,
    # and the left eye is the left image, not the right one (tens of levels away)
    assert np.abs(after[0].astype(int) - left).mean() < 3
    assert np.abs(after[1].astype(int) - right).mean() < 3
    assert np.abs(after[0].astype(int) - right).mean() > 20


def test_both_eyes_carry_the_photographs_exif_xmp_and_icc(spatial_bytes):
    heif = pillow_heif.open_heif(spatial_bytes[1])
    for image in heif:
        exif = Image.Exif()
        exif.load(image.info["exif"])
        assert exif[0x010F] == "TestCam"
        assert image.info["icc_profile"] == _srgb_icc()
        assert image.info["xmp"] == b"<x:xmpmeta/>"


def test_the_ster_group_lists_left_then_right_and_left_is_primary(spatial_bytes):
    tables = read_tables(spatial_bytes[1])
    left, right = (i.id for i in tables.items if i.type == b"hvc1")
    (group,) = tables.groups
    assert group.type == b"ster" and group.entities == (left, right)
    assert tables.primary == left
    assert group.id not in {i.id for i in tables.items}, "group ids share the item id space"
    heif = pillow_heif.open_heif(spatial_bytes[1])
    if "entity_groups" in heif.info:  # recent pillow-heif (1.9 here) reports libheif's reading
        assert heif.info["entity_groups"][0]["type"] == "ster"
        assert heif.info["entity_groups"][0]["images"] == [0, 1]


def test_the_cameras_decode_to_what_was_written(spatial_bytes):
    left, right = read_spatial_photo(spatial_bytes[1])
    fx = 48.0 / math.tan(math.radians(40.0))  # 0.5 * 96 / tan(80 deg / 2)
    for eye in (left, right):
        assert eye.extent == (96, 64), "even sizes: coded as shown, no crop"
        got_fx, got_fy, cx, cy = eye.intrinsics
        assert got_fx == got_fy == pytest.approx(fx, rel=1e-8), "1e-8: 2^-26 fraction bits"
        assert (cx, cy) == (48.0, 32.0)
        assert eye.disparity_adjustment == 100
    assert left.position_um == (0, 0, 0)
    assert right.position_um == (64000, 0, 0), "the 64 mm baseline along +x"


def test_apples_uuid_twins_hold_the_same_payloads(spatial_bytes):
    data = spatial_bytes[1]
    tables = read_tables(data)
    for item in eye_items(tables):
        props = tables.item_properties(item)
        by_kind = {p.usertype or p.type: p.payload(data) for p in props}
        assert by_kind[UUID_INTRINSICS] == by_kind[b"cmin"]
        assert by_kind[UUID_EXTRINSICS] == by_kind[b"cmex"]
        assert by_kind[UUID_DISPARITY] == struct.pack(">i", 100)
        kinds = [p.type for p in props]
        assert kinds.index(b"ispe") < kinds.index(b"cmin"), "cmin after ispe (MPEG #102)"


def test_libheif_reads_the_intrinsics(spatial_bytes):
    matrix = pillow_heif.open_heif(spatial_bytes[1]).info["heif"]["camera_intrinsic_matrix"]
    fx = 48.0 / math.tan(math.radians(40.0))
    assert matrix["focal_length_x"] == pytest.approx(fx, rel=1e-8)
    assert (matrix["principal_point_x"], matrix["principal_point_y"]) == (48.0, 32.0)


def test_libvips_own_libheif_sees_two_images_the_first_primary(spatial_bytes, tmp_path):
    path = tmp_path / "x.heic"
    path.write_bytes(spatial_bytes[1])
    header = pyvips.Image.new_from_file(str(path))
    assert (header.get("n-pages"), header.get("heif-primary")) == (2, 0)


def test_odd_and_large_photographs_give_even_eyes_within_the_cap():
    assert eye_size(97, 65) == (96, 64), "odd sides lose their last pixel"
    assert eye_size(6000, 4000) == (4096, 2730)
    assert eye_size(6000, 4000, max_side=8192) == (6000, 4000)


# --- the camera geometry --------------------------------------------------------------------


def test_the_field_of_view_follows_the_35mm_equivalent_along_the_diagonal():
    # a 3:2 image is 35 mm film's own shape: 50 mm sees 2·atan(18 / 50) across
    assert horizontal_fov_deg(3600, 2400, 50.0) == pytest.approx(39.5978, abs=1e-4)
    # turning the photograph does not change the lens: its diagonal sees the same
    wide, tall = horizontal_fov_deg(4000, 3000, 26.0), horizontal_fov_deg(3000, 4000, 26.0)
    # 4:3: the width is 0.8 of the diagonal, which 26 mm sees as film's 43.27 mm diagonal
    assert wide == pytest.approx(2 * math.degrees(math.atan(0.8 * math.hypot(36, 24) / 52)))
    assert wide == pytest.approx(67.30, abs=0.01) and tall == pytest.approx(53.06, abs=0.01)


def test_the_focal_length_comes_from_exif_and_zero_means_unknown():
    assert focal_35mm(_exif(26)) == 26.0
    assert focal_35mm(_exif(0)) is None and focal_35mm(_exif()) is None
    assert focal_35mm(b"not exif") is None
    camera = spatial_camera(4000, 3000, _exif(26), StereoOptions())
    assert camera.fov_from == "exif" and camera.hfov_deg == pytest.approx(67.30, abs=0.01)
    assert spatial_camera(4000, 3000, None, StereoOptions()).fov_from == "assumed"


def test_the_disparity_adjustment_moves_the_convergence_level_to_zero():
    """Eyes rendered as parallel cameras (convergence 0), shifted apart by the adjustment,
    give exactly the disparities of the pair rendered at the convergence."""
    width = 1000
    for divergence, convergence in ((2.0, 0.5), (3.0, 0.25), (5.0, 1.0), (2.0, 0.0)):
        options = StereoOptions(divergence=divergence, convergence=convergence)
        parallel = shift_range_px(width, parallel_options(options))
        shift = disparity_adjustment(options) / 1e4 * width
        shown = tuple(d - shift for d in parallel)
        assert shown == pytest.approx(shift_range_px(width, options), abs=1e-9)
    assert disparity_adjustment(StereoOptions()) == 100, "2 % x 0.5: 1 % of the width"


def test_the_baseline_puts_the_nearest_level_at_the_assumed_distance():
    hfov, divergence = 67.30, 2.0
    b = baseline_m(hfov, divergence)
    width = 4000
    fx = 0.5 * width / math.tan(math.radians(hfov) / 2)
    nearest_disparity = divergence / 100 * width
    assert fx * b / nearest_disparity == pytest.approx(2.0), "Z = fx·B / d: 2 m"
    assert 0.050 < b < 0.056


# --- the command ----------------------------------------------------------------------------


def _photo_and_map(tmp_path: Path, exif: bytes, w: int = 96, h: int = 64) -> tuple[Path, Path]:
    photo = _write_jpeg(tmp_path / "photo.jpg", scene_image(h, w), exif, _srgb_icc())
    disparity = np.tile(np.linspace(0.0, 1.0, w, dtype=np.float32), (h, 1))
    return photo, write_png16(tmp_path / "photo_depth.png", disparity)


def test_a_heic_output_is_a_spatial_photo_with_its_record(tmp_path):
    photo, depth = _photo_and_map(tmp_path, _exif(35))
    out = tmp_path / "pair.heic"
    result = runner.invoke(
        app, ["stereo", str(photo), "--depth", str(depth), "-o", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    (record,) = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert record["layout"] == "spatial" and record["status"] == "ok"
    assert (record["out_width"], record["out_height"]) == (96, 64)
    assert record["fov_from"] == "exif"
    assert record["hfov_deg"] == pytest.approx(horizontal_fov_deg(96, 64, 35.0), abs=0.01)
    assert record["disparity_adjustment"] == 100
    assert record["shift_px"] == [0.0, pytest.approx(1.92)], "stored as parallel: 0..2 %"
    assert record["baseline_mm"] == pytest.approx(
        baseline_m(record["hfov_deg"], 2.0) * 1000, abs=0.01
    )
    left, right = read_spatial_photo(out.read_bytes())
    # the record rounds to 0.01 mm, the file holds micrometres
    assert right.position_um[0] == pytest.approx(record["baseline_mm"] * 1000, abs=5)
    heif = pillow_heif.open_heif(out)
    assert len(heif) == 2 and heif.primary_index == 0
    eyes = [np.asarray(im).astype(int) for im in heif]
    assert np.abs(eyes[0] - eyes[1]).mean() > 1, "the eyes differ (a synthesised pair)"
    assert not list(tmp_path.glob(".*part*")), "no temporary file left"


def test_a_batch_with_format_heic_names_its_outputs_spatial(tmp_path, pointwise_exact):
    folder = tmp_path / "in"
    folder.mkdir()
    for stem in ("a", "b"):
        _write_jpeg(folder / f"{stem}.jpg", scene_image(64, 80), _exif())
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["stereo", str(folder), "-o", str(out), "-f", "heic", "-m", str(pointwise_exact)]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a_spatial.heic", "b_spatial.heic"]
    assert result.output.count("(assumed: no focal length in its EXIF)") == 2
    for path in out.iterdir():
        assert read_spatial_photo(path.read_bytes())[1].position_um[0] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--layout", "anaglyph", "-o", "x.heic"], "--layout anaglyph: a spatial photo"),
        (["-f", "heic", "-o", "x.jpg"], "--format heic contradicts"),
        (["-f", "heic", "-o", "-"], "standard output takes PNG"),
        (["-f", "gif", "-o", "x.gif"], "--format gif: choose one of"),
    ],
)
def test_what_a_spatial_photo_cannot_be_is_refused_in_one_line(tmp_path, args, message):
    photo, depth = _photo_and_map(tmp_path, _exif())
    args = [a if a not in ("x.heic", "x.jpg", "x.gif") else str(tmp_path / a) for a in args]
    result = runner.invoke(app, ["stereo", str(photo), "--depth", str(depth), *args])
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("x.*"))


def test_a_photograph_past_the_cap_is_scaled_down_and_its_intrinsics_follow(tmp_path):
    photo, depth = _photo_and_map(tmp_path, _exif(26), w=201, h=131)
    out = tmp_path / "small.heic"
    report = stereo_file(photo, out, StereoOptions(), DepthMapFile(depth), max_eye_side=100)
    assert (report.out_width, report.out_height) == (100, 64), "201x131 -> 100x65 -> even"
    left, _ = read_spatial_photo(out.read_bytes())
    fx = 50.0 / math.tan(math.radians(report.spatial.hfov_deg) / 2)
    assert left.intrinsics[0] == pytest.approx(fx, rel=1e-8)
    assert [im.size for im in pillow_heif.open_heif(out)] == [(100, 64), (100, 64)]


def test_a_real_photograph_keeps_its_exif_fov_and_icc(tmp_path):
    src = require(ROOFTOP)
    depth = write_png16(tmp_path / "d.png", np.tile(np.linspace(0, 1, 64), (48, 1)))
    out = tmp_path / "rooftop.heic"
    report = stereo_file(src, out, StereoOptions(), DepthMapFile(depth), max_eye_side=512)
    assert report.spatial.fov_from == "exif", "Nexus 5X: 26 mm equivalent"
    assert report.spatial.hfov_deg == pytest.approx(horizontal_fov_deg(4032, 3024, 26.0))
    heif = pillow_heif.open_heif(out)
    assert [im.size for im in heif] == [(512, 384)] * 2
    source = pyvips.Image.new_from_file(str(src))
    for image in heif:
        assert image.info["icc_profile"] == bytes(source.get("icc-profile-data"))
        exif = Image.Exif()
        exif.load(image.info["exif"])
        assert exif[0x0110] == "Nexus 5X"


def test_a_rotated_photograph_gives_upright_eyes_and_no_rotation_property(tmp_path):
    """EXIF orientation 6 (turn 90° clockwise): the eyes are stored upright, the EXIF they
    carry says 1, and no `irot` asks a viewer to turn them again."""
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = tmp_path / "turned.jpg"
    Image.fromarray(scene_image(64, 96)).save(photo, quality=95, exif=exif.tobytes())
    depth = write_png16(tmp_path / "d.png", np.tile(np.linspace(0, 1, 64), (96, 1)))
    out = tmp_path / "turned.heic"
    report = stereo_file(photo, out, StereoOptions(), DepthMapFile(depth))
    assert (report.out_width, report.out_height) == (64, 96)
    tables = read_tables(out.read_bytes())
    for item in eye_items(tables):
        assert b"irot" not in [p.type for p in tables.item_properties(item)]
    for image in pillow_heif.open_heif(out):
        assert image.size == (64, 96)
        carried = Image.Exif()
        carried.load(image.info["exif"])
        assert carried.get(0x0112, 1) == 1
