"""HEIF's item tables (ISO/IEC 23008-12, inside ISO BMFF's `meta` box) read, and patched to add
item properties and entity groups, which libheif (and so pillow-heif) cannot write.

The tables: `iinf` lists the items (images, EXIF...), `pitm` names the primary one, `iprp`
holds the properties (`ipco`) and which item has which (`ipma`), `iloc` says where each
item's bytes are, `grpl` groups items (a stereo pair is a `ster` group). Adding boxes to
`meta` moves everything after it, so every `iloc` extent stored in the file past `meta`
(construction method 0) moves by the growth; extents in `idat` (method 1) are relative to it
and stay.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from prodepth_cli.io.isobmff import (
    BoxError,
    BoxSpan,
    box,
    boxes,
    full_box,
    full_header,
    only,
)

# Properties that change the pixels (ISO/IEC 23008-12 6.5.1): an item lists its descriptive
# properties before these, so new descriptive ones go in front of them.
TRANSFORMATIVE = (b"clap", b"irot", b"imir", b"iscl")


@dataclass(frozen=True)
class HeifItem:
    """An item of `iinf`: its id, its type (b"hvc1", b"grid", b"Exif"...), and whether it is
    hidden (a grid's tiles, a thumbnail's parts)."""

    id: int
    type: bytes
    hidden: bool


@dataclass(frozen=True)
class EntityGroup:
    """An entity group of `grpl`: its type (b"ster" a stereo pair, b"altr" alternatives),
    its id (unique among item and group ids) and its entities' ids, in order (`ster`: left
    first)."""

    type: bytes
    id: int
    entities: tuple[int, ...]


@dataclass(frozen=True)
class HeifTables:
    """What a HEIF's `meta` says. `properties`: `ipco`'s boxes, property index i + 1 at [i];
    `associations`: item (or group) id -> [(property index, essential)] in order; `extents`:
    item id -> [(offset in the file, length)]."""

    items: tuple[HeifItem, ...]
    primary: int
    properties: tuple[BoxSpan, ...]
    associations: dict[int, list[tuple[int, bool]]]
    groups: tuple[EntityGroup, ...]
    extents: dict[int, list[tuple[int, int]]]

    def item_properties(self, item_id: int) -> list[BoxSpan]:
        """The property boxes associated with an item, in association order."""
        return [self.properties[i - 1] for i, _ in self.associations.get(item_id, [])]


def read_tables(data: bytes) -> HeifTables:
    """The item tables of the HEIF file `data`; BoxError where they do not parse."""
    meta = only(boxes(data), b"meta")
    children = boxes(data, full_header(data, meta)[2], meta.end)
    ipco, ipma = _property_boxes(data, children)
    properties = tuple(boxes(data, ipco.body, ipco.end))
    idat = [c for c in children if c.type == b"idat"]
    return HeifTables(
        _items(data, only(children, b"iinf")),
        _primary(data, only(children, b"pitm")),
        properties,
        _associations(data, ipma),
        _groups(data, children),
        _extents(data, only(children, b"iloc"), idat[0] if idat else None),
    )


def entity_group_box(group: EntityGroup) -> bytes:
    """An EntityToGroupBox (ISO/IEC 14496-12 8.18.3): version 0, group id, entity count,
    entity ids, all 32-bit."""
    ids = (group.id, len(group.entities), *group.entities)
    return full_box(group.type, 0, 0, struct.pack(f">{len(ids)}I", *ids))


def free_id(tables: HeifTables) -> int:
    """An id no item or group has (group ids share the item ids' space)."""
    used = [i.id for i in tables.items] + [g.id for g in tables.groups]
    return max(used, default=0) + 1


def with_properties(
    data: bytes,
    properties: list[bytes],
    associations: dict[int, list[int]],
    groups: list[EntityGroup] | None = None,
) -> bytes:
    """The HEIF file `data` with `properties` (whole boxes) added to `ipco`, associated
    (not essential) with the items of `associations` (item id -> indexes into `properties`)
    in front of their transformative properties, and `groups` added to `grpl` (made when
    absent). Every `iloc` extent stored in the file after `meta` moves with it."""
    top = boxes(data)
    meta = only(top, b"meta")
    version_flags_end = full_header(data, meta)[2]
    children = boxes(data, version_flags_end, meta.end)
    iprp = only(children, b"iprp")
    ipco, ipma = _property_boxes(data, children)
    existing = boxes(data, ipco.body, ipco.end)
    first = len(existing) + 1
    kinds = [p.type for p in existing] + [_type_of(p) for p in properties]
    table = _associations(data, ipma)
    for item, indexes in associations.items():
        if item not in table:
            raise BoxError(f"item {item} has no properties to add to")
        table[item] = _insert_descriptive(table[item], [first + i for i in indexes], kinds)
    new_ipco = box(b"ipco", ipco.payload(data) + b"".join(properties))
    new_iprp_parts = []
    for child in boxes(data, iprp.body, iprp.end):
        if child.start == ipco.start:
            new_iprp_parts.append(new_ipco)
        elif child.start == ipma.start:
            new_iprp_parts.append(_ipma_box(table, data[ipma.body]))
        else:
            new_iprp_parts.append(data[child.start : child.end])
    replaced = {iprp.start: box(b"iprp", b"".join(new_iprp_parts))}
    grpl = [c for c in children if c.type == b"grpl"]
    groups = groups or []
    new_groups = b"".join(entity_group_box(g) for g in groups)
    if grpl:
        replaced[grpl[0].start] = box(b"grpl", grpl[0].payload(data) + new_groups)
    tail = b"" if grpl or not groups else box(b"grpl", new_groups)

    def meta_box(iloc_bytes: bytes | None) -> bytes:
        parts = [data[meta.body : version_flags_end]]
        for child in children:
            if child.type == b"iloc" and iloc_bytes is not None:
                parts.append(iloc_bytes)
            else:
                parts.append(replaced.get(child.start, data[child.start : child.end]))
        return box(b"meta", b"".join(parts) + tail)

    delta = len(meta_box(None)) - (meta.end - meta.start)
    iloc = only(children, b"iloc")
    moved = _shifted_iloc(data, iloc, (meta.start, meta.end), delta)
    return data[: meta.start] + meta_box(moved) + data[meta.end :]


# --- the tables, one function each ------------------------------------------------------------


def _property_boxes(data: bytes, meta_children: list[BoxSpan]) -> tuple[BoxSpan, BoxSpan]:
    iprp = only(meta_children, b"iprp")
    inside = boxes(data, iprp.body, iprp.end)
    return only(inside, b"ipco"), only(inside, b"ipma")


def _type_of(whole_box: bytes) -> bytes:
    return whole_box[4:8]


def _items(data: bytes, iinf: BoxSpan) -> tuple[HeifItem, ...]:
    version, _, pos = full_header(data, iinf)
    pos += 2 if version == 0 else 4
    items = []
    for infe in boxes(data, pos, iinf.end):
        if infe.type != b"infe":
            continue
        v, flags, p = full_header(data, infe)
        if v < 2:  # versions 0 and 1 name no item type
            (item_id,) = struct.unpack_from(">H", data, p)
            items.append(HeifItem(item_id, b"", bool(flags & 1)))
            continue
        item_id, p = (
            (struct.unpack_from(">H", data, p)[0], p + 2)
            if v == 2
            else (
                struct.unpack_from(">I", data, p)[0],
                p + 4,
            )
        )
        kind = bytes(data[p + 2 : p + 6])  # after the protection index
        items.append(HeifItem(item_id, kind, bool(flags & 1)))
    return tuple(items)


def _primary(data: bytes, pitm: BoxSpan) -> int:
    version, _, pos = full_header(data, pitm)
    return struct.unpack_from(">H" if version == 0 else ">I", data, pos)[0]


def _associations(data: bytes, ipma: BoxSpan) -> dict[int, list[tuple[int, bool]]]:
    version, flags, pos = full_header(data, ipma)
    (count,) = struct.unpack_from(">I", data, pos)
    pos += 4
    table: dict[int, list[tuple[int, bool]]] = {}
    wide = flags & 1
    for _ in range(count):
        if version == 0:
            (item,) = struct.unpack_from(">H", data, pos)
            pos += 2
        else:
            (item,) = struct.unpack_from(">I", data, pos)
            pos += 4
        n = data[pos]
        pos += 1
        entries = []
        for _ in range(n):
            if wide:
                (value,) = struct.unpack_from(">H", data, pos)
                entries.append((value & 0x7FFF, bool(value & 0x8000)))
                pos += 2
            else:
                entries.append((data[pos] & 0x7F, bool(data[pos] & 0x80)))
                pos += 1
        table[item] = entries
    if pos > ipma.end:
        raise BoxError("'ipma' box cut short")
    return table


def _ipma_box(table: dict[int, list[tuple[int, bool]]], version: int) -> bytes:
    """An `ipma` of `table`, entries by increasing item id; 15-bit property indexes where
    7 bits do not hold them, 32-bit ids where 16 do not."""
    wide = any(i > 0x7F for entries in table.values() for i, _ in entries)
    version = 1 if version or any(item > 0xFFFF for item in table) else 0
    out = [struct.pack(">I", len(table))]
    for item in sorted(table):
        entries = table[item]
        out.append(struct.pack(">H" if version == 0 else ">I", item) + bytes([len(entries)]))
        for index, essential in entries:
            if wide:
                out.append(struct.pack(">H", index | (0x8000 if essential else 0)))
            else:
                out.append(bytes([index | (0x80 if essential else 0)]))
    return full_box(b"ipma", version, 1 if wide else 0, b"".join(out))


def _insert_descriptive(
    entries: list[tuple[int, bool]], new: list[int], kinds: list[bytes]
) -> list[tuple[int, bool]]:
    """`entries` with `new` (not essential) in front of the first transformative property."""
    at = next(
        (k for k, (i, _) in enumerate(entries) if kinds[i - 1] in TRANSFORMATIVE), len(entries)
    )
    return entries[:at] + [(i, False) for i in new] + entries[at:]


def _groups(data: bytes, meta_children: list[BoxSpan]) -> tuple[EntityGroup, ...]:
    found = []
    for grpl in (c for c in meta_children if c.type == b"grpl"):
        for group in boxes(data, grpl.body, grpl.end):
            _, _, pos = full_header(data, group)
            group_id, n = struct.unpack_from(">II", data, pos)
            if pos + 8 + 4 * n > group.end:
                raise BoxError(f"'{group.type.decode('latin-1')}' group cut short")
            ids = struct.unpack_from(f">{n}I", data, pos + 8)
            found.append(EntityGroup(group.type, group_id, tuple(ids)))
    return tuple(found)


@dataclass
class _Field:
    """An integer field of `iloc`: where it is and how many bytes it takes."""

    pos: int
    size: int

    def read(self, data: bytes) -> int:
        return int.from_bytes(data[self.pos : self.pos + self.size], "big") if self.size else 0


@dataclass
class _Location:
    item: int
    method: int
    base: _Field
    extents: list[tuple[_Field, _Field]]  # (offset, length)


def _locations(data: bytes, iloc: BoxSpan) -> list[_Location]:
    """`iloc`'s entries (ISO/IEC 14496-12 8.11.3), versions 0 to 2."""
    version, _, pos = full_header(data, iloc)
    sizes = struct.unpack_from(">H", data, pos)[0]
    offset_size, length_size, base_size = sizes >> 12, (sizes >> 8) & 15, (sizes >> 4) & 15
    index_size = sizes & 15 if version in (1, 2) else 0
    if any(s not in (0, 4, 8) for s in (offset_size, length_size, base_size, index_size)):
        raise BoxError("'iloc' field sizes other than 0, 4 or 8 bytes")
    pos += 2
    (count,) = struct.unpack_from(">H" if version < 2 else ">I", data, pos)
    pos += 2 if version < 2 else 4
    found = []
    for _ in range(count):
        (item,) = struct.unpack_from(">H" if version < 2 else ">I", data, pos)
        pos += 2 if version < 2 else 4
        method = 0
        if version in (1, 2):
            method = struct.unpack_from(">H", data, pos)[0] & 15
            pos += 2
        if struct.unpack_from(">H", data, pos)[0] != 0:
            raise BoxError(f"item {item}'s data is in another file (data reference)")
        pos += 2
        base = _Field(pos, base_size)
        pos += base_size
        (n,) = struct.unpack_from(">H", data, pos)
        pos += 2
        extents = []
        for _ in range(n):
            pos += index_size
            offset = _Field(pos, offset_size)
            length = _Field(pos + offset_size, length_size)
            pos += offset_size + length_size
            extents.append((offset, length))
        found.append(_Location(item, method, base, extents))
    if pos > iloc.end:
        raise BoxError("'iloc' box cut short")
    return found


def _extents(data: bytes, iloc: BoxSpan, idat: BoxSpan | None) -> dict[int, list[tuple[int, int]]]:
    out = {}
    for loc in _locations(data, iloc):
        if loc.method not in (0, 1) or (loc.method == 1 and idat is None):
            raise BoxError(f"item {loc.item}: construction method {loc.method} not supported")
        origin = idat.body if loc.method == 1 else 0
        base = loc.base.read(data)
        out[loc.item] = [(origin + base + o.read(data), n.read(data)) for o, n in loc.extents]
    return out


def _shifted_iloc(data: bytes, iloc: BoxSpan, meta: tuple[int, int], delta: int) -> bytes:
    """The `iloc` box with every file offset (construction method 0) at or past `meta`'s end
    moved by `delta`: the base offset where an item has one, else each extent's offset."""
    out = bytearray(data[iloc.start : iloc.end])
    for loc in _locations(data, iloc):
        if loc.method != 0:
            continue  # idat-relative (1) or item-relative (2): nothing moves
        fields = [loc.base] if loc.base.read(data) else [o for o, _ in loc.extents]
        for field in fields:
            value = field.read(data)
            if field.size == 0:
                raise BoxError(f"item {loc.item}: its data has no offset to move")
            if meta[0] <= value < meta[1]:
                raise BoxError(f"item {loc.item}: its data is inside 'meta'")
            if value < meta[1]:
                continue
            moved = value + delta
            if moved >= 1 << (8 * field.size):
                raise BoxError(f"item {loc.item}: its offset outgrows a {field.size}-byte field")
            at = field.pos - iloc.start
            out[at : at + field.size] = moved.to_bytes(field.size, "big")
    return bytes(out)
