"""Depth maps embedded in JPEG photographs as Google's depth-photo metadata (GDepth).

The map rides in the photograph's XMP (namespace http://ns.google.com/photos/1.0/depthmap/):
GDepth:Format, Near, Far and Mime in the standard packet, GDepth:Data (the map as a base64
PNG) in extended XMP, as Google Camera's portrait and lens-blur photos carry it, so that
depth-aware viewers and editors find it. It is stored in the frame of the JPEG's stored
pixels (a photograph with an EXIF rotation gets its map turned the same way) and stretched
to fit them.

RangeInverse, the spec's format for 8-bit maps, spaces the levels evenly in inverse depth:
dn = Far (d - Near) / (d (Far - Near)), 0 at Near and 1 at Far, the byte round(255 dn). That is
exactly the disparity `prodepth depth` computes, so a map goes in and out linearly. A metric
model's Near and Far are metres; a relative map has no scale, and is written with Near 1 and
Far 10 (no units).
"""

from __future__ import annotations

import base64
import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import cv2
import numpy as np
import pyvips

from prodepth_cli.io.jpeg_xmp import JpegError, extended_guid, read_xmp, with_xmp

GDEPTH = "http://ns.google.com/photos/1.0/depthmap/"
XMP_NOTE = "http://ns.adobe.com/xmp/note/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_X = "adobe:ns:meta/"
_PREFIXES = {"GDepth": GDEPTH, "xmpNote": XMP_NOTE, "rdf": _RDF, "x": _X}
RELATIVE_RANGE = (1.0, 10.0)
_INVERSE_ORIENTATION = {6: 8, 8: 6}  # the others undo themselves (flips, 180, transposes)


class EmbeddedDepthError(ValueError):
    """A photograph says it carries a depth map, but the map cannot be read."""


@dataclass(frozen=True)
class EmbeddedDepth:
    """A depth map read from a photograph: disparity `(h, w)` float32, 1 / the map's units
    (larger = nearer), turned upright as the photograph's EXIF orientation turns its pixels;
    `near`, `far` and `units` as written."""

    disparity: np.ndarray
    near: float
    far: float
    units: str | None


def embed_depth(
    jpeg: bytes, levels: np.ndarray, near: float, far: float, units: str | None = None
) -> bytes:
    """`jpeg` with the 8-bit RangeInverse map `levels` `(h, w)` uint8 (0 = Near, 255 = Far)
    embedded as GDepth; every other byte of `jpeg` is kept."""
    ok, png = cv2.imencode(".png", np.ascontiguousarray(levels, np.uint8))
    if not ok:
        raise ValueError("could not encode the depth map as PNG")
    extended = _packet({"Data": base64.b64encode(png.tobytes()).decode("ascii")})
    fields = {"Format": "RangeInverse", "Near": f"{near:.6g}", "Far": f"{far:.6g}"}
    fields |= {"Mime": "image/png", "ImageWidth": str(levels.shape[1])}
    fields |= {"ImageHeight": str(levels.shape[0])}
    if units:
        fields["Units"] = units
    standard, _ = read_xmp(jpeg)
    packet = _merged(standard, fields, extended_guid(extended))
    return with_xmp(jpeg, packet, extended)


def range_inverse_levels(disparity: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Disparity `(h, w)` (larger = nearer) with range `(lo, hi)` as RangeInverse bytes:
    the nearest (`hi`) 0, the farthest (`lo`) 255."""
    scale = 255.0 / (hi - lo) if hi > lo else 0.0
    return np.clip((hi - disparity) * scale + 0.5, 0, 255).astype(np.uint8)


def read_embedded_depth(jpeg: bytes) -> EmbeddedDepth | None:
    """The GDepth map of a JPEG, or None when it has none. EmbeddedDepthError when its XMP
    names one that cannot be read (corrupt packet, base64 or image)."""
    try:
        standard, extended = read_xmp(jpeg)
    except JpegError:
        return None  # not a JPEG with segments we can walk: no embedded map
    if standard is None or GDEPTH.encode() not in standard:
        return None
    fields = _gdepth_fields(standard, "standard")
    if "Data" not in fields:
        guid = fields.get("HasExtendedXMP", "")
        if guid not in extended:
            raise EmbeddedDepthError("its depth map's extended XMP is missing or incomplete")
        fields |= _gdepth_fields(extended[guid], "extended")
    try:
        near, far = float(fields["Near"]), float(fields["Far"])
        encoded = base64.b64decode(fields["Data"], validate=False)
    except (KeyError, ValueError) as exc:
        raise EmbeddedDepthError(f"its GDepth fields are incomplete ({exc})") from None
    image = cv2.imdecode(np.frombuffer(encoded, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or near <= 0 or far <= near:
        why = "its depth image does not decode" if image is None else f"Near {near}, Far {far}"
        raise EmbeddedDepthError(why)
    if image.ndim == 3:
        image = image[:, :, 0]
    dn = image.astype(np.float32) / float(np.iinfo(image.dtype).max)
    if fields.get("Format", "RangeInverse") == "RangeLinear":
        disparity = 1.0 / (near + dn * (far - near))
    else:
        disparity = (far - (far - near) * dn) / (far * near)
    upright = to_upright_frame(disparity.astype(np.float32), orientation_of(jpeg))
    return EmbeddedDepth(upright, near, far, fields.get("Units"))


def orientation_of(jpeg: bytes) -> int:
    """A JPEG's EXIF orientation (1-8; 1 when it has none), read from its header."""
    try:
        image = pyvips.Image.new_from_buffer(jpeg, "")
        value = int(image.get("orientation")) if "orientation" in image.get_fields() else 1
    except pyvips.Error:
        return 1
    return value if 1 <= value <= 8 else 1


def to_upright_frame(array: np.ndarray, orientation: int) -> np.ndarray:
    """A map `(h, w)` in the frame of pixels stored with EXIF `orientation`, turned upright."""
    return _oriented(array, orientation)


def to_stored_frame(array: np.ndarray, orientation: int) -> np.ndarray:
    """An upright map `(h, w)` turned back into the frame of pixels stored with `orientation`."""
    return _oriented(array, _INVERSE_ORIENTATION.get(orientation, orientation))


def _oriented(array: np.ndarray, orientation: int) -> np.ndarray:
    if orientation == 1:
        return array
    image = pyvips.Image.new_from_array(np.ascontiguousarray(array)).copy()
    image.set_type(pyvips.GValue.gint_type, "orientation", orientation)
    return image.autorot().numpy()


def _gdepth_fields(packet: bytes, which: str) -> dict[str, str]:
    """GDepth's and xmpNote's properties of an XMP packet, as attributes or elements."""
    try:
        root = ET.fromstring(_strip_xpacket(packet))
    except ET.ParseError as exc:
        raise EmbeddedDepthError(f"its {which} XMP packet is not XML ({exc})") from None
    fields = {}
    for node in root.iter():
        for key, value in node.attrib.items():
            ns, _, name = key[1:].partition("}")
            if ns in (GDEPTH, XMP_NOTE):
                fields[name] = value
        ns, _, name = node.tag[1:].partition("}")
        if ns in (GDEPTH, XMP_NOTE) and node.text:
            fields[name] = node.text.strip()
    return fields


def _packet(
    fields: dict[str, str], guid: str | None = None, root: ET.Element | None = None
) -> bytes:
    """An XMP packet with `fields` as GDepth attributes of its first rdf:Description."""
    if root is None:
        root = ET.Element(f"{{{_X}}}xmpmeta")
        ET.SubElement(
            ET.SubElement(root, f"{{{_RDF}}}RDF"),
            f"{{{_RDF}}}Description",
            {f"{{{_RDF}}}about": ""},
        )
    description = root.find(f".//{{{_RDF}}}Description")
    for name in [k for k in description.attrib if k.startswith(f"{{{GDEPTH}}}")]:
        del description.attrib[name]
    for child in [c for c in description if c.tag.startswith(f"{{{GDEPTH}}}")]:
        description.remove(child)
    for name, value in fields.items():
        description.set(f"{{{GDEPTH}}}{name}", value)
    if guid is not None:
        description.set(f"{{{XMP_NOTE}}}HasExtendedXMP", guid)
    body = ET.tostring(root, encoding="unicode")
    return (
        f'<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>{body}<?xpacket end="w"?>'
    ).encode()


def _merged(standard: bytes | None, fields: dict[str, str], guid: str) -> bytes:
    """The photograph's standard XMP packet (or a new one) with the GDepth fields set."""
    root = None
    if standard:
        try:
            _register_prefixes(standard)
            root = ET.fromstring(_strip_xpacket(standard))
        except ET.ParseError:
            root = None  # an unreadable packet is replaced
        if root is not None and root.find(f".//{{{_RDF}}}Description") is None:
            root = None
    return _packet(fields, guid, root)


def _register_prefixes(packet: bytes) -> None:
    """Keep a packet's own namespace prefixes when it is written back."""
    for _, (prefix, uri) in ET.iterparse(io.BytesIO(_strip_xpacket(packet)), events=("start-ns",)):
        if prefix and not prefix.startswith("ns"):
            ET.register_namespace(prefix, uri)


def _strip_xpacket(packet: bytes) -> bytes:
    """The XML inside `<?xpacket?>` processing instructions (ElementTree wants one root)."""
    text = packet.strip(b"\x00 \r\n\t")
    start, end = text.find(b"<x:xmpmeta"), text.rfind(b"</x:xmpmeta>")
    if start >= 0 and end > start:
        return text[start : end + len(b"</x:xmpmeta>")]
    start = text.find(b"<rdf:RDF")
    stop = text.rfind(b"</rdf:RDF>")
    if start >= 0 and stop > start:
        return text[start : stop + len(b"</rdf:RDF>")]
    return text


for _prefix, _uri in _PREFIXES.items():
    ET.register_namespace(_prefix, _uri)
