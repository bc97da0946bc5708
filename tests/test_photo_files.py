"""Photographers' files: camera RAW and HEIC in, depth embedded in JPEG (GDepth), the
photograph's metadata carried to every output that can hold it, bad files in one line."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest
import pyvips
import tifffile
from PIL import Image
from typer.testing import CliRunner

from prodepth_cli.cli import app
from prodepth_cli.io.gdepth import GDEPTH, XMP_NOTE, read_embedded_depth
from prodepth_cli.io.jpeg_xmp import EXTENDED_HEADER, XMP_HEADER, extended_guid, read_xmp, segments
from prodepth_cli.io.read import open_image, open_stream
from tests.conftest import scene_image
from tests.photo_files import TAGS, write_dng, write_heic, write_jpeg

runner = CliRunner()
RGB = scene_image(96, 128, seed=3)  # (H, W) = (96, 128), landscape
ROTATED_CW = np.rot90(RGB, k=-1)  # how EXIF orientation 6 shows a landscape sensor image


def _run(*args: str):
    return runner.invoke(app, list(args))


def _records(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def _levels01(path: Path) -> np.ndarray:
    """A depth PNG normalised to [0, 1] (near = 1)."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.float64)
    return (data - data.min()) / (data.max() - data.min())


def _exif_of(path: Path) -> Image.Exif:
    with Image.open(path) as image:
        return image.getexif()


# --- RAW -----------------------------------------------------------------------------------


def test_a_dng_is_developed_upright_with_the_cameras_white_balance(tmp_path):
    dng = write_dng(tmp_path / "shot.dng", RGB, orientation=6)
    source = open_image(dng)
    pixels = source.rows(0, source.height).astype(np.float64)
    assert pixels.shape == ROTATED_CW.shape, "turned upright by the RAW's own flip"
    # LibRaw's rendering (auto-brightness, its tone curve) is not our JPEG's, but the picture
    # is: the same structure, and neutral where the sensor's green-heavy response was undone.
    grey, expected = pixels.mean(axis=2), ROTATED_CW.astype(np.float64).mean(axis=2)
    assert np.corrcoef(grey.ravel(), expected.ravel())[0, 1] > 0.97
    balance = pixels.reshape(-1, 3).mean(axis=0) / ROTATED_CW.reshape(-1, 3).mean(axis=0)
    # without white balance the red and blue channels would come out at 0.5x and 0.7x green
    assert balance.max() / balance.min() < 1.15, balance
    assert source.camera_tags() == TAGS


def test_a_raw_goes_through_the_pipeline_as_its_developed_pixels(tmp_path, pointwise_exact):
    dng = write_dng(tmp_path / "shot.dng", RGB, orientation=6)
    developed = open_image(dng)
    png = tmp_path / "developed.png"
    cv2.imwrite(str(png), developed.rows(0, developed.height)[:, :, ::-1])
    for src in (dng, png):
        result = _run("depth", str(src), "-m", str(pointwise_exact), "--tile", "64", "-q")
        assert result.exit_code == 0, result.stderr
    raw_map, png_map = tmp_path / "shot_depth.png", tmp_path / "developed_depth.png"
    assert cv2.imread(str(raw_map), cv2.IMREAD_UNCHANGED).shape == ROTATED_CW.shape[:2]
    np.testing.assert_allclose(_levels01(raw_map), _levels01(png_map), atol=1 / 65535)


def test_folder_mode_takes_the_raw_of_a_raw_and_jpeg_pair_and_reports_the_other(
    tmp_path, pointwise_exact
):
    write_dng(tmp_path / "IMG_1.dng", RGB)
    write_jpeg(tmp_path / "IMG_1.jpg", RGB)
    write_jpeg(tmp_path / "IMG_2.jpg", RGB)
    out = tmp_path / "out"
    for prefer, used, skipped in (
        ("raw", "IMG_1.dng", "IMG_1.jpg"),
        ("jpeg", "IMG_1.jpg", "IMG_1.dng"),
    ):
        args = ["depth", str(tmp_path), "-o", str(out), "-m", str(pointwise_exact), "--json"]
        result = _run(*args, "--prefer", prefer, "--overwrite")
        assert result.exit_code == 0, result.stderr
        status = {Path(r["input"]).name: r for r in _records(result)}
        assert status[used]["status"] == "ok" and status["IMG_2.jpg"]["status"] == "ok"
        assert status[skipped]["status"] == "skipped"
        assert used in status[skipped]["reason"], "the skip names the file that was used"
        assert sorted(p.name for p in out.iterdir()) == ["IMG_1_depth.png", "IMG_2_depth.png"]


def test_raw_files_are_picked_up_by_folder_mode(tmp_path):
    from prodepth_cli.batch import expand_inputs

    for name in ("a.DNG", "b.cr3", "c.nef", "d.arw", "e.raf", "f.orf", "g.cr2", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found, _ = expand_inputs([str(tmp_path)], recursive=False)
    assert [Path(f).name for f, _ in found] == [
        "a.DNG",
        "b.cr3",
        "c.nef",
        "d.arw",
        "e.raf",
        "f.orf",
        "g.cr2",
    ]


# --- HEIC ----------------------------------------------------------------------------------


def test_an_iphone_style_heic_is_read_upright(tmp_path):
    heic = write_heic(tmp_path / "IMG_0001.HEIC", RGB, orientation=6)
    source = open_stream(heic)
    pixels = source.rows(0, source.height)
    assert pixels.shape == ROTATED_CW.shape, "HEIF's rotation applied once, not twice"
    # HEVC at quality 92 on a smooth image: a few levels of error on average
    assert np.abs(pixels.astype(int) - ROTATED_CW).mean() < 4
    assert source.camera_tags()["Make"] == TAGS["Make"]


def test_the_primary_image_of_a_heic_is_the_photograph_not_a_matte(tmp_path):
    heic = write_heic(tmp_path / "portrait.heic", RGB, matte_first=True)
    source = open_image(heic)
    pixels = source.rows(0, source.height)
    assert pixels.shape == RGB.shape
    assert np.abs(pixels.astype(int) - RGB).mean() < 4  # the grey matte would be ~40 off


def test_heic_depth_and_bokeh_run_end_to_end(tmp_path, pointwise_exact):
    heic = write_heic(tmp_path / "IMG_0002.heic", RGB)
    result = _run("depth", str(heic), "-m", str(pointwise_exact), "-q")
    assert result.exit_code == 0, result.stderr
    assert cv2.imread(str(tmp_path / "IMG_0002_depth.png"), -1).shape == RGB.shape[:2]
    result = _run("bokeh", str(heic), "--depth", str(tmp_path / "IMG_0002_depth.png"), "-q")
    assert result.exit_code == 0, result.stderr
    assert _exif_of(tmp_path / "IMG_0002_bokeh.png").get(0x010F) == TAGS["Make"]


# --- Depth embedded in JPEG (GDepth) ---------------------------------------------------------


def _embedded(tmp_path: Path, model: Path, orientation: int = 1) -> tuple[Path, Path, Path]:
    """(photo, its depth PNG, the photo with the map embedded)."""
    photo = write_jpeg(tmp_path / "photo.jpg", RGB, orientation, xmp=_LIGHTROOM_XMP)
    for extra in ([], ["--embed"]):
        result = _run("depth", str(photo), "-m", str(model), "-q", *extra)
        assert result.exit_code == 0, result.stderr
    return photo, tmp_path / "photo_depth.png", tmp_path / "photo_depth.jpg"


_LIGHTROOM_XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
    b'22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
    b' xmp:Rating="4" xmp:CreatorTool="Lightroom"/></rdf:RDF></x:xmpmeta>'
)


def _without_xmp(jpeg: bytes) -> bytes:
    """A JPEG's bytes with its XMP segments cut out."""
    found, _ = segments(jpeg)
    cut, pos = [], 0
    for _, start, end in found:
        payload = jpeg[start + 4 : end]
        if payload.startswith(XMP_HEADER) or payload.startswith(EXTENDED_HEADER):
            cut.append(jpeg[pos:start])
            pos = end
    return b"".join(cut) + jpeg[pos:]


def test_embedding_keeps_every_byte_of_the_photograph_but_its_xmp(tmp_path, pointwise_exact):
    photo, _, embedded = _embedded(tmp_path, pointwise_exact)
    original, out = photo.read_bytes(), embedded.read_bytes()
    assert _without_xmp(out) == _without_xmp(original), "pixels, EXIF and ICC byte for byte"
    assert len(out) > len(original)
    standard, _ = read_xmp(out)
    assert b'xmp:Rating="4"' in standard, "the photograph's own XMP stays"


def _description(packet: bytes) -> ET.Element:
    """The rdf:Description of an XMP packet, parsed by plain xml.etree."""
    xml = packet.split(b"?>", 1)[1].rsplit(b"<?xpacket", 1)[0]
    return ET.fromstring(xml).find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")


def _embedded_levels(jpeg: bytes) -> tuple[ET.Element, np.ndarray]:
    """(the standard packet's rdf:Description, the embedded map's bytes) read with xml.etree,
    base64 and OpenCV only, as another tool would."""
    standard, extended = read_xmp(jpeg)
    description = _description(standard)
    guid = description.get(f"{{{XMP_NOTE}}}HasExtendedXMP")
    assert guid == extended_guid(extended[guid]), "extended XMP named by its MD5"
    data = _description(extended[guid]).get(f"{{{GDEPTH}}}Data")
    levels = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_UNCHANGED)
    return description, levels


def test_a_third_party_xml_parser_reads_the_gdepth_fields(tmp_path, pointwise_exact):
    _, depth_png, embedded = _embedded(tmp_path, pointwise_exact)
    description, levels = _embedded_levels(embedded.read_bytes())
    field = lambda name: description.get(f"{{{GDEPTH}}}{name}")  # noqa: E731
    assert field("Format") == "RangeInverse" and field("Mime") == "image/png"
    assert 0 < float(field("Near")) < float(field("Far"))
    assert levels.dtype == np.uint8 and levels.shape == RGB.shape[:2]
    # RangeInverse: 0 at Near, 255 at Far; the depth PNG is near = bright
    np.testing.assert_allclose(levels / 255.0, 1.0 - _levels01(depth_png), atol=1 / 255)


@pytest.mark.parametrize("orientation", [1, 6])
def test_an_embedded_map_round_trips_to_one_level(tmp_path, pointwise_exact, orientation):
    _, depth_png, embedded = _embedded(tmp_path, pointwise_exact, orientation)
    jpeg = embedded.read_bytes()
    read = read_embedded_depth(jpeg)
    expected = _levels01(depth_png)
    assert read.disparity.shape == expected.shape, "upright, as the photograph shows"
    d = read.disparity.astype(np.float64)
    np.testing.assert_allclose((d - d.min()) / (d.max() - d.min()), expected, atol=1 / 255)
    # stored in the frame of the JPEG's stored pixels (sideways under orientation 6)
    assert _embedded_levels(jpeg)[1].shape == RGB.shape[:2]


def test_bokeh_uses_the_depth_a_photograph_carries_and_says_so(tmp_path, pointwise_exact):
    _, depth_png, embedded = _embedded(tmp_path, pointwise_exact)
    result = _run("bokeh", str(embedded), "--depth-model", str(pointwise_exact), "--json")
    assert result.exit_code == 0, result.stderr
    (record,) = _records(result)
    assert record["depth"] == "embedded"
    result = _run(
        "bokeh", str(embedded), "-o", str(tmp_path / "b.jpg"), "--depth-model", str(pointwise_exact)
    )
    assert "embedded depth map" in result.stderr


def test_a_raw_embeds_into_a_new_jpeg_with_its_metadata(tmp_path, pointwise_exact):
    dng = write_dng(tmp_path / "shot.dng", RGB, orientation=6)
    out = tmp_path / "shot.jpg"
    result = _run("depth", str(dng), "-o", str(out), "-m", str(pointwise_exact), "-q")
    assert result.exit_code == 0, result.stderr
    image = pyvips.Image.new_from_file(str(out))
    assert (image.height, image.width) == ROTATED_CW.shape[:2]
    assert _exif_of(out).get(0x0110) == TAGS["Model"] and _exif_of(out).get(0x0112) == 1
    assert read_embedded_depth(out.read_bytes()).disparity.shape == ROTATED_CW.shape[:2]


# --- Metadata kept -----------------------------------------------------------------------------


def test_depth_maps_carry_the_photographs_camera_exif_upright(tmp_path, pointwise_exact):
    photo = write_jpeg(tmp_path / "p.jpg", RGB, orientation=6)
    for name in ("p_depth.png", "p_depth.tif"):
        result = _run("depth", str(photo), "-o", str(tmp_path / name), "-m", str(pointwise_exact))
        assert result.exit_code == 0, result.stderr
    exif = _exif_of(tmp_path / "p_depth.png")
    assert {exif.get(0x010F), exif.get(0x0110), exif.get(0x0132)} == set(TAGS.values())
    assert exif.get(0x0112) == 1, "the map's pixels are already upright"
    assert cv2.imread(str(tmp_path / "p_depth.png"), -1).shape == ROTATED_CW.shape[:2]
    with tifffile.TiffFile(tmp_path / "p_depth.tif") as tiff:
        tags = tiff.pages[0].tags
        assert tags["Make"].value == TAGS["Make"] and tags["Model"].value == TAGS["Model"]
        assert tags["DateTime"].value == TAGS["DateTime"] and tags["Orientation"].value == 1


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif"])
def test_bokeh_keeps_exif_icc_and_xmp(tmp_path, pointwise_exact, suffix):
    photo = write_jpeg(tmp_path / "p.jpg", RGB, orientation=6, xmp=_LIGHTROOM_XMP)
    out = tmp_path / f"b{suffix}"
    result = _run("bokeh", str(photo), "-o", str(out), "--depth-model", str(pointwise_exact), "-q")
    assert result.exit_code == 0, result.stderr
    source, render = pyvips.Image.new_from_file(str(photo)), pyvips.Image.new_from_file(str(out))
    assert bytes(render.get("icc-profile-data")) == bytes(source.get("icc-profile-data"))
    assert b'xmp:Rating="4"' in bytes(render.get("xmp-data"))
    if suffix == ".tif":  # TIFF holds the camera tags as its own
        with tifffile.TiffFile(out) as tiff:
            tags = tiff.pages[0].tags
            assert tags["Make"].value == TAGS["Make"] and tags["Orientation"].value == 1
    else:  # the whole EXIF block, Orientation reset
        assert render.get("exif-ifd0-Make").startswith(TAGS["Make"])
        assert render.get("orientation") == 1
    assert render.height == ROTATED_CW.shape[0]


# --- Bad files ---------------------------------------------------------------------------------


def _assert_batch_reports(result, out: Path, bad: str, needle: str, good: list[str]) -> None:
    assert result.exit_code == 1
    failed = [ln for ln in result.stderr.splitlines() if bad in ln]
    assert len(failed) == 1 and needle in failed[0], result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in out.iterdir()) == good, "nothing half-written"


def test_a_truncated_raw_is_one_line_and_the_batch_goes_on(tmp_path, pointwise_exact):
    src = tmp_path / "in"
    src.mkdir()
    whole = write_dng(src / "good.dng", RGB).read_bytes()
    (src / "cut.dng").write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out"
    result = _run("depth", str(src), "-o", str(out), "-m", str(pointwise_exact), "-q")
    _assert_batch_reports(result, out, "cut.dng", "not a readable RAW file", ["good_depth.png"])


def test_a_heic_with_no_image_is_one_line(tmp_path, pointwise_exact):
    src = tmp_path / "in"
    src.mkdir()
    write_heic(src / "good.heic", RGB)
    (src / "empty.heic").write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic")
    out = tmp_path / "out"
    result = _run("depth", str(src), "-o", str(out), "-m", str(pointwise_exact), "-q")
    _assert_batch_reports(
        result, out, "empty.heic", "not a readable HEIC image", ["good_depth.png"]
    )


def test_a_jpeg_whose_embedded_depth_is_corrupt_is_one_line(tmp_path, pointwise_exact):
    _, _, embedded = _embedded(tmp_path, pointwise_exact)
    src = tmp_path / "in"
    src.mkdir()
    good = embedded.read_bytes()
    (src / "good.jpg").write_bytes(good)
    found, _ = segments(good)
    last = max(e for _, s, e in found if good[s + 4 : e].startswith(EXTENDED_HEADER))
    start = next(s for _, s, e in found if e == last)
    (src / "broken.jpg").write_bytes(good[:start] + good[last:])  # a piece of the map gone
    out = tmp_path / "out"
    args = ["bokeh", str(src), "-o", str(out), "--depth-model", str(pointwise_exact), "-q"]
    result = _run(*args)
    _assert_batch_reports(
        result, out, "broken.jpg", "embedded depth map unreadable", ["good_bokeh.jpg"]
    )
