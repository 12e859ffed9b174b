"""Unsigned LEB128 varints as the multiformats `unsigned-varint` spec defines them.

Spec: multiformats/unsigned-varint — at most 9 bytes (63 bits), minimal encoding required.
"""

from __future__ import annotations

from ..errors import DecodeError

MAX_VARINT_BYTES = 9  # unsigned-varint spec: 63 bits at most


def encode(value: int) -> bytes:
    """Encode a non-negative integer below 2**63."""
    if value < 0 or value >= 1 << 63:
        raise ValueError(f"varint out of range: {value}")
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode(buf, offset: int = 0) -> tuple[int, int]:
    """Decode one varint at ``offset``. Returns ``(value, new_offset)``.

    Raises ``DecodeError`` on a truncated, overlong or non-minimal varint.
    """
    value = 0
    shift = 0
    end = len(buf)
    i = offset
    while True:
        if i >= end:
            raise DecodeError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            if b == 0 and i - offset > 1:
                raise DecodeError("non-minimal varint encoding")
            return value, i
        shift += 7
        if i - offset >= MAX_VARINT_BYTES:
            raise DecodeError(f"varint longer than {MAX_VARINT_BYTES} bytes")


def try_decode(buf, offset: int = 0) -> tuple[int, int] | None:
    """Like :func:`decode` but returns ``None`` when the buffer ends mid-varint (need more bytes)."""
    end = len(buf)
    i = offset
    while i < end and i - offset < MAX_VARINT_BYTES:
        if not buf[i] & 0x80:
            return decode(buf, offset)
        i += 1
    if i - offset >= MAX_VARINT_BYTES:
        raise DecodeError(f"varint longer than {MAX_VARINT_BYTES} bytes")
    return None
