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
        """Add bytes; return every whole frame now buffered."""
        self.push(data)
        frames: list[bytes] = []
        while (frame := self.next_frame()) is not None:
            frames.append(frame)
        return frames

    def push(self, data: bytes) -> None:
        """Add bytes without decoding (take frames one by one with :meth:`next_frame`)."""
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next whole frame, or ``None`` until more bytes arrive. Bytes after it stay buffered."""
        buf = self._buf
        header = varint.try_decode(buf, 0)
        if header is None:
            return None
        length, start = header
        if length > self.max_frame:
            raise LimitExceeded(f"frame of {length} bytes exceeds the limit of {self.max_frame}")
        if len(buf) - start < length:
            return None
        frame = bytes(buf[start : start + length])
        del buf[: start + length]
        return frame

    def take_rest(self) -> bytes:
        """Bytes after the last whole frame (used when a protocol hands the stream over)."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest

    @property
    def buffered(self) -> int:
        return len(self._buf)
