"""A minimal protocol buffers (proto2/proto3 wire format) codec.

Enough for libp2p's messages: varint (0), 64-bit (1), length-delimited (2) and 32-bit (5) fields.
Messages are described by a tiny schema ``{field_number: (name, kind, repeated)}`` where kind is
``"uint"``, ``"sint"`` unused, ``"bool"``, ``"bytes"``, ``"string"`` or a nested schema (``dict``).
Unknown fields are skipped, as protobuf requires. Decoding is bounded by the input size.
"""

from __future__ import annotations

from typing import Any

from ..errors import DecodeError
from . import varint

WT_VARINT, WT_I64, WT_LEN, WT_I32 = 0, 1, 2, 5

Schema = dict[int, tuple[str, Any, bool]]


def _key(field: int, wire_type: int) -> bytes:
    return varint.encode((field << 3) | wire_type)


def encode(schema: Schema, message: dict[str, Any]) -> bytes:
    """Encode ``message`` (a dict of field name → value; ``None`` means absent) by ``schema``."""
    out = bytearray()
    for field, (name, kind, repeated) in sorted(schema.items()):
        value = message.get(name)
        if value is None:
            continue
        values = value if repeated else (value,)
        for v in values:
            if kind == "uint" or kind == "enum":
                out += _key(field, WT_VARINT) + varint.encode(int(v))
            elif kind == "bool":
                out += _key(field, WT_VARINT) + (b"\x01" if v else b"\x00")
            elif kind == "bytes":
                out += _key(field, WT_LEN) + varint.encode(len(v)) + bytes(v)
            elif kind == "string":
                raw = v.encode("utf-8")
                out += _key(field, WT_LEN) + varint.encode(len(raw)) + raw
            elif isinstance(kind, dict):
                raw = encode(kind, v)
                out += _key(field, WT_LEN) + varint.encode(len(raw)) + raw
            else:  # pragma: no cover - schema bug
                raise TypeError(f"unknown protobuf kind {kind!r}")
    return bytes(out)


def decode(schema: Schema, data: bytes, *, _depth: int = 0) -> dict[str, Any]:
    """Decode ``data`` by ``schema``. Raises ``DecodeError`` on malformed input.

    Absent optional fields are missing from the result; repeated fields decode to lists.
    """
    if _depth > 8:
        raise DecodeError("protobuf nesting too deep")
    result: dict[str, Any] = {}
    for name, _kind, repeated in schema.values():
        if repeated:
            result[name] = []
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = varint.decode(data, pos)
        field, wt = key >> 3, key & 7
        if field == 0:
            raise DecodeError("protobuf field number 0")
        if wt == WT_VARINT:
            value, pos = varint.decode(data, pos)
        elif wt == WT_LEN:
            length, pos = varint.decode(data, pos)
            if pos + length > end:
                raise DecodeError("protobuf length-delimited field runs past the end")
            value = data[pos : pos + length]
            pos += length
        elif wt == WT_I64:
            if pos + 8 > end:
                raise DecodeError("truncated protobuf fixed64")
            value = int.from_bytes(data[pos : pos + 8], "little")
            pos += 8
        elif wt == WT_I32:
            if pos + 4 > end:
                raise DecodeError("truncated protobuf fixed32")
            value = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
        else:
            raise DecodeError(f"unsupported protobuf wire type {wt}")
        spec = schema.get(field)
        if spec is None:
            continue  # unknown field: skip
        name, kind, repeated = spec
        value = _convert(kind, wt, value, name, _depth)
        if repeated:
            result[name].append(value)
        else:
            result[name] = value
    return result


def _convert(kind: Any, wt: int, value: Any, name: str, depth: int) -> Any:
    if kind in ("uint", "enum", "bool"):
        if wt != WT_VARINT:
            raise DecodeError(f"field {name}: expected varint, got wire type {wt}")
        return bool(value) if kind == "bool" else value
    if wt != WT_LEN:
        raise DecodeError(f"field {name}: expected length-delimited, got wire type {wt}")
    if kind == "bytes":
        return bytes(value)
    if kind == "string":
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"field {name}: invalid UTF-8") from exc
    if isinstance(kind, dict):
        return decode(kind, bytes(value), _depth=depth + 1)
    raise TypeError(f"unknown protobuf kind {kind!r}")  # pragma: no cover
