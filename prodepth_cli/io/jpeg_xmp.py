"""XMP packets inside a JPEG: read them, and put new ones in without touching anything else.

A JPEG's metadata sits in APPn segments before its scan. XMP is one APP1 segment of at most
64 KB (the standard packet) plus, for more, "extended XMP": APP1 segments each holding a
piece of one more packet, with the MD5 (GUID) that the standard packet names under
`xmpNote:HasExtendedXMP`, the packet's full length and the piece's offset (Adobe's XMP
specification, part 3). Writing replaces the XMP segments and keeps every other byte (the
EXIF, the ICC profile, the compressed pixels) as it was.
"""

from __future__ import annotations

import hashlib
import struct

XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
EXTENDED_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
_APP1, _SOS, _EOI = 0xE1, 0xDA, 0xD9
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # markers without a length (TEM, RSTn)
_MAX_STANDARD = 65502  # 65535 - 2 (length) - 29 (header) - 2 (spare)
_CHUNK = 65400  # extended pieces (Adobe's recommendation, below the 65458 the segment allows)


JPEG_START = b"\xff\xd8\xff"  # start-of-image, then the first marker's 0xFF


class JpegError(ValueError):
    """Not a JPEG, or one whose segments are broken."""


def segments(jpeg: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """The marker segments before the scan: ([(marker, start, end)], where the scan's
    segment starts); `start:end` spans the segment's marker, length and payload."""
    if jpeg[:2] != JPEG_START[:2]:
        raise JpegError("not a JPEG (no start-of-image marker)")
    found, pos = [], 2
    while pos + 4 <= len(jpeg):
        if jpeg[pos] != 0xFF:
            raise JpegError(f"broken marker at byte {pos}")
        marker = jpeg[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (_SOS, _EOI):
            return found, pos
        (length,) = struct.unpack(">H", jpeg[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > len(jpeg):
            raise JpegError(f"segment at byte {pos} runs past the end of the file")
        found.append((marker, pos, end))
        pos = end
    raise JpegError("truncated before its image data")


def read_xmp(jpeg: bytes) -> tuple[bytes | None, dict[str, bytes]]:
    """(the standard XMP packet or None, {GUID: the extended packet reassembled})."""
    standard, pieces = None, {}
    for marker, start, end in segments(jpeg)[0]:
        payload = jpeg[start + 4 : end]
        if marker != _APP1:
            continue
        if payload.startswith(XMP_HEADER) and standard is None:
            standard = payload[len(XMP_HEADER) :]
        elif payload.startswith(EXTENDED_HEADER):
            body = payload[len(EXTENDED_HEADER) :]
            if len(body) < 40:
                raise JpegError("an extended XMP segment too short for its header")
            guid = body[:32].decode("ascii", "replace")
            total, offset = struct.unpack(">II", body[32:40])
            pieces.setdefault(guid, (total, {}))[1][offset] = body[40:]
    extended = {}
    for guid, (total, parts) in pieces.items():
        packet = b"".join(parts[o] for o in sorted(parts))
        if len(packet) == total:  # an incomplete packet is no packet
            extended[guid] = packet
    return standard, extended


def extended_guid(packet: bytes) -> str:
    """The GUID that names an extended packet: its MD5, 32 upper-case hex digits."""
    return hashlib.md5(packet).hexdigest().upper()


def with_xmp(jpeg: bytes, standard: bytes, extended: bytes | None = None) -> bytes:
    """`jpeg` with its XMP replaced by `standard` (and `extended`, named in `standard` by
    `extended_guid`): the new segments go where the old standard packet was, else after the
    leading APP0/APP1 segments (JFIF, EXIF); all other bytes are kept."""
    if len(standard) > _MAX_STANDARD:
        raise JpegError(f"standard XMP packet of {len(standard)} bytes (at most {_MAX_STANDARD})")
    found, _ = segments(jpeg)
    xmp = [(s, e) for m, s, e in found if m == _APP1 and _is_xmp(jpeg[s + 4 : e])]
    at = xmp[0][0] if xmp else _after_leading_app(found)
    new = [_segment(_APP1, XMP_HEADER + standard)]
    if extended is not None:
        guid = extended_guid(extended).encode("ascii")
        for offset in range(0, len(extended), _CHUNK):
            head = EXTENDED_HEADER + guid + struct.pack(">II", len(extended), offset)
            new.append(_segment(_APP1, head + extended[offset : offset + _CHUNK]))
    out, pos = [jpeg[:at]], at
    for s, e in xmp:
        out.append(jpeg[pos:s] if s > pos else b"")
        pos = e
        if s == at:
            out.append(b"".join(new))
    if not xmp:
        out.append(b"".join(new))
    out.append(jpeg[pos:])
    return b"".join(out)


def _is_xmp(payload: bytes) -> bool:
    return payload.startswith(XMP_HEADER) or payload.startswith(EXTENDED_HEADER)


def _after_leading_app(found: list[tuple[int, int, int]]) -> int:
    pos = 2
    for marker, start, end in found:
        if marker not in (0xE0, _APP1) or start != pos:
            break
        pos = end
    return pos


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload
