"""Tiled TIFFs are read tile by tile (io/tiff.py) and give what libvips gives."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import pyvips
import tifffile

from prodepth_cli.errors import InputError
from prodepth_cli.io.read import WindowReader, open_image, open_stream
from prodepth_cli.io.tiff import TiledTiff
from prodepth_cli.models.runtime import load_model
from prodepth_cli.pipeline import DepthOptions, depth_file
from tests.conftest import scene_image

RGB = scene_image(150, 230)  # not a multiple of the 64-pixel tiles: edge tiles are cropped
LAYOUTS = {
    "rgb-deflate": (RGB, {"compression": "zlib"}),
    "rgb-lzw": (RGB, {"compression": "lzw"}),
    "rgb-jpeg": (RGB, {"compression": "jpeg", "photometric": "ycbcr"}),
    "grey": (RGB[:, :, 1], {"compression": "zlib"}),
    "rgba": (np.dstack([RGB, np.full(RGB.shape[:2], 7, np.uint8)]), {"extrasamples": [2]}),
    "rgb16": (RGB.astype(np.uint16) * 257, {}),
}


def _tiled(path, array, **options):
    tifffile.imwrite(path, array, tile=(64, 64), **options)
    return path


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("store", ["band in memory", "ring on disk"])
def test_tiled_tiff_windows_match_libvips(tmp_path, layout, store, monkeypatch):
    if store == "ring on disk":
        monkeypatch.setattr("prodepth_cli.io.scratch.BAND_BYTES", 0)
    array, options = LAYOUTS[layout]
    src = _tiled(tmp_path / "in.tif", array, **options)
    source = open_stream(src)
    assert isinstance(source, TiledTiff), "a tiled TIFF should not go through libvips"
    expected = open_image(src)
    expected = expected.rows(0, expected.height).astype(np.float64)
    with WindowReader(source, keep_rows=100) as reader:
        # Windows that straddle tile edges, moving down as the pipeline's tiles do.
        for y0, x0 in [(0, 0), (30, 100), (50, 170), (90, 5)]:
            got = reader.window(y0, y0 + 60, x0, x0 + 60).astype(np.float64)
            want = expected[y0 : y0 + 60, x0 : x0 + 60]
            if layout == "rgb-jpeg":  # two JPEG decoders may round differently
                assert np.abs(got - want).mean() < 1.0
            else:
                np.testing.assert_array_equal(got, want)
    source.close()


def test_tiled_tiff_thumbnail_is_the_area_average(tmp_path):
    array = scene_image(256, 384)
    source = TiledTiff.open(_tiled(tmp_path / "in.tif", array, compression="zlib"))
    thumb = source.thumbnail(96)  # 4x smaller: every output pixel averages a 4x4 box
    box = cv2.resize(array.astype(np.float32) / 255.0, (96, 64), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(thumb, box, atol=1e-5)
    source.close()


def test_tiled_tiff_gives_the_same_depth_as_the_same_pixels_in_png(tmp_path, pointwise_exact):
    model = load_model(pointwise_exact, "cpu")
    array = scene_image(300, 410)
    png = tmp_path / "in.png"
    cv2.imwrite(str(png), array[:, :, ::-1])
    tif = _tiled(tmp_path / "in.tif", array, compression="zlib")
    options = DepthOptions(128, 32)
    depth_file(png, tmp_path / "png.npy", model, options, fmt="npy")
    depth_file(tif, tmp_path / "tif.npy", model, options, fmt="npy")
    np.testing.assert_array_equal(np.load(tmp_path / "tif.npy"), np.load(tmp_path / "png.npy"))


def test_other_tiffs_go_to_libvips(tmp_path):
    striped = tmp_path / "striped.tif"
    tifffile.imwrite(striped, RGB)
    rotated = tmp_path / "rotated.tif"
    image = pyvips.Image.new_from_array(RGB).copy(interpretation="srgb")
    image.set_type(pyvips.GValue.gint_type, "orientation", 6)
    image.tiffsave(str(rotated), tile=True)
    floats = _tiled(tmp_path / "float.tif", RGB.astype(np.float32), photometric="rgb")
    assert TiledTiff.open(striped) is None
    assert TiledTiff.open(rotated) is None
    assert TiledTiff.open(floats) is None  # libvips reads float RGB as linear light
    assert open_stream(rotated).width == RGB.shape[0]  # turned upright by libvips


def test_corrupt_tile_names_the_file_and_the_tile(tmp_path):
    src = _tiled(tmp_path / "in.tif", RGB, compression="jpeg")
    with tifffile.TiffFile(src) as tiff:
        page = tiff.pages[0]
        offset, size = page.dataoffsets[4], page.databytecounts[4]
    data = bytearray(src.read_bytes())
    data[offset : offset + size] = b"\0" * size
    src.write_bytes(bytes(data))
    source = open_stream(src)
    with pytest.raises(InputError, match=r"in\.tif: truncated or corrupt image \(tile 4"):
        list(source.blocks(64, 128))  # tile 4 opens the second row of four
    source.close()
