"""Length-prefixed framing: ``uvarint(len) || payload``, incrementally decoded with a size bound.

Used by multistream-select, identify, circuit relay and webrtc signaling messages.
"""

from __future__ import annotations

from ..errors import LimitExceeded
from . import varint


def encode_frame(payload: bytes) -> bytes:
    return varint.encode(len(payload)) + payload


class FrameDecoder:
    """Feed bytes, get whole frames out. Never buffers more than ``max_frame`` + 9 bytes per frame."""

    __slots__ = ("_buf", "max_frame")

    def __init__(self, max_frame: int) -> None:
        self._buf = bytearray()
        self.max_frame = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        frames: list[bytes] = []
        buf = self._buf
        pos = 0
        while True:
            header = varint.try_decode(buf, pos)
            if header is None:
                break
            length, start = header
            if length > self.max_frame:
                raise LimitExceeded(f"frame of {length} bytes exceeds the limit of {self.max_frame}")
            if len(buf) - start < length:
                break
            frames.append(bytes(buf[start : start + length]))
            pos = start + length
        if pos:
            del buf[:pos]
        return frames

    def take_rest(self) -> bytes:
        """Bytes after the last whole frame (used when a protocol hands the stream over)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    @property
    def buffered(self) -> int:
        return len(self._buf)
