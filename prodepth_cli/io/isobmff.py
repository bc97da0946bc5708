"""ISO base media file format boxes (ISO/IEC 14496-12): a byte string's boxes found, new
boxes framed. HEIF files are trees of them; io/heif_items.py patches a HEIF's item tables.

Only framing lives here: a box is its size, its four-character type, a 16-byte extended type
for `uuid` boxes, and its payload; a "full box" payload opens with a version byte and 24 bits
of flags. What a payload means is for the module that owns that box.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from prodepth_cli.errors import InputError

_HEADER = 8  # 32-bit size + type
_LARGE = 16  # with a 64-bit size


class BoxError(InputError):
    """A box that does not parse: a size past its container's end, a table cut short."""


@dataclass(frozen=True)
class BoxSpan:
    """Where one box lies in a buffer: `start` its size field, `body` the first byte after
    its header (and after a `uuid` box's extended type), `end` one past its last byte."""

    type: bytes  # four characters, e.g. b"meta"
    start: int
    body: int
    end: int
    usertype: bytes | None = None  # a `uuid` box's 16-byte extended type

    def payload(self, data: bytes) -> bytes:
        return bytes(data[self.body : self.end])


def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[BoxSpan]:
    """The boxes one after another in `data[start:end]` (a file, or a container's payload).
    A size of 0 runs to `end`; 1 means a 64-bit size follows the type."""
    end = len(data) if end is None else end
    found = []
    pos = start
    while pos < end:
        if end - pos < _HEADER:
            raise BoxError(f"a box header cut short at byte {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = _HEADER
        if size == 1:
            if end - pos < _LARGE:
                raise BoxError(f"a box header cut short at byte {pos}")
            (size,) = struct.unpack_from(">Q", data, pos + _HEADER)
            header = _LARGE
        elif size == 0:
            size = end - pos
        usertype = None
        if kind == b"uuid":
            usertype = bytes(data[pos + header : pos + header + 16])
            header += 16
        if size < header or pos + size > end:
            name = kind.decode("latin-1")
            raise BoxError(f"'{name}' box at byte {pos}: size {size} does not fit")
        found.append(BoxSpan(kind, pos, pos + header, pos + size, usertype))
        pos += size
    return found


def only(spans: list[BoxSpan], kind: bytes) -> BoxSpan:
    """The one box of type `kind` among `spans`; BoxError when there is none or several."""
    matches = [s for s in spans if s.type == kind]
    if len(matches) != 1:
        raise BoxError(f"expected one '{kind.decode()}' box, found {len(matches)}")
    return matches[0]


def full_header(data: bytes, span: BoxSpan) -> tuple[int, int, int]:
    """A full box's (version, flags, position of the first byte after them)."""
    if span.end - span.body < 4:
        raise BoxError(f"'{span.type.decode('latin-1')}' box too short for its version")
    version = data[span.body]
    flags = int.from_bytes(data[span.body + 1 : span.body + 4], "big")
    return version, flags, span.body + 4


def box(kind: bytes, payload: bytes) -> bytes:
    """A box of type `kind` around `payload` (a 64-bit size when 32 bits do not hold it)."""
    size = _HEADER + len(payload)
    if size < 2**32:
        return struct.pack(">I4s", size, kind) + payload
    return struct.pack(">I4sQ", 1, kind, size + 8) + payload


def full_box(kind: bytes, version: int, flags: int, payload: bytes) -> bytes:
    """A full box: `version` (8 bits) and `flags` (24 bits) before `payload`."""
    return box(kind, bytes([version]) + flags.to_bytes(3, "big") + payload)


def uuid_box(usertype: bytes, payload: bytes) -> bytes:
    """A `uuid` box: the 16-byte extended type `usertype`, then `payload`."""
    if len(usertype) != 16:
        raise ValueError("a uuid box's extended type is 16 bytes")
    return box(b"uuid", usertype + payload)
