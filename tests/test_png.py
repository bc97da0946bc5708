"""The PNG encoder: strips deflated on threads must make one valid PNG, pixel for pixel."""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
import pyvips

from prodepth_cli.io.png import adler32_combine, read_text, text_chunk, write_png


def _encode(image: np.ndarray, strip_rows: int, threads: int) -> bytes:
    h, w = image.shape[:2]
    channels = 1 if image.ndim == 2 else image.shape[2]
    flat = image.reshape(h, w * channels)
    if flat.dtype == np.uint16:
        flat = flat.astype(">u2")  # PNG stores 16-bit samples big-endian
    strips = (flat[y : y + strip_rows] for y in range(0, h, strip_rows))
    f = io.BytesIO()
    write_png(f, w, h, strips, 8 * flat.dtype.itemsize, channels=channels, threads=threads)
    return f.getvalue()


@pytest.mark.parametrize(
    ("shape", "dtype", "strip_rows", "threads"),
    [
        ((257, 301), np.uint16, 16, 4),  # 17 strips, more than the 8 kept in flight
        ((257, 301), np.uint16, 257, 2),  # one strip
        ((1, 5), np.uint16, 1, 1),  # a single row
        ((64, 70, 3), np.uint8, 7, 3),  # RGB, 8-bit
    ],
)
def test_threaded_deflate_decodes_to_the_same_pixels(shape, dtype, strip_rows, threads):
    rng = np.random.default_rng(0)
    # smooth rows with noise, like a depth map: compressible but not trivially
    base = np.cumsum(rng.integers(-3, 4, size=shape), axis=1)
    image = (base - base.min()).astype(dtype)
    data = _encode(image, strip_rows, threads)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    expected = image if image.ndim == 2 else image[:, :, ::-1]  # OpenCV decodes to BGR
    np.testing.assert_array_equal(decoded, expected)
    # libvips (libspng) is strict about checksums: a wrong Adler-32 or CRC fails here
    vips = pyvips.Image.new_from_buffer(data, "", fail=True).numpy()
    np.testing.assert_array_equal(vips.reshape(image.shape), image)


def test_a_short_strip_stream_is_an_error():
    f = io.BytesIO()
    with pytest.raises(ValueError, match="2 rows written, 3 announced"):
        write_png(f, 4, 3, [np.zeros((2, 4), np.uint8)], 8)


def test_samples_are_made_on_the_workers_from_the_strips_as_given():
    """`samples` turns float strips into levels on the worker threads; the row above each
    strip goes through it too (the Up filter needs it), and the strips are not changed."""
    rng = np.random.default_rng(2)
    depth = np.cumsum(rng.uniform(0, 1, (90, 40)), axis=0).astype(np.float32)
    strips = [depth[y : y + 13].copy() for y in range(0, 90, 13)]
    kept = [s.copy() for s in strips]

    def levels(strip: np.ndarray) -> np.ndarray:
        return (strip / depth.max() * 65535 + 0.5).astype(">u2")

    f = io.BytesIO()
    write_png(f, 40, 90, iter(strips), 16, threads=3, samples=levels)
    decoded = cv2.imdecode(np.frombuffer(f.getvalue(), np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(decoded, levels(depth).astype(np.uint16))
    for strip, before in zip(strips, kept, strict=True):
        np.testing.assert_array_equal(strip, before)


@pytest.mark.parametrize("sizes", [(0, 5), (1, 1), (70000, 3), (5, 140000), (65521, 65521)])
def test_adler32_of_segments_combines_to_the_whole(sizes):
    """The writer combines its workers' checksums: the result must be the whole's, also
    past the modulus 65521 where the sums wrap."""
    rng = np.random.default_rng(sum(sizes))
    a, b = (rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes)
    combined = adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b))
    assert combined == zlib.adler32(a + b)


def test_text_entries_are_read_back_without_the_pixels_and_other_readers_see_them():
    image = np.arange(12 * 10, dtype=">u2").reshape(12, 10)
    f = io.BytesIO()
    chunks = [text_chunk("prodepth disparity range", "0.25 1.5"), text_chunk("note", "é")]
    write_png(f, 10, 12, [image], 16, chunks=chunks)
    data = f.getvalue()
    idat = data.index(b"IDAT")
    # only the bytes before the pixels are needed: the rest is cut off here
    head = io.BytesIO(data[: idat + 4])
    assert read_text(head) == {"prodepth disparity range": "0.25 1.5", "note": "é"}
    assert pyvips.Image.new_from_buffer(data, "").get("png-comment-0-prodepth disparity range")
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), -1), image.astype(np.uint16))
    with pytest.raises(ValueError):
        read_text(io.BytesIO(b"GIF89a"))
