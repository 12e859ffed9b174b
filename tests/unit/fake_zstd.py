"""A pure-Python stand-in compression backend for the unit tests (runs in Pyodide too).

Speaks the zstd *block format* with raw and RLE blocks only, after a 6-byte header whose last
byte fingerprints the dictionary (so a dictionary mismatch is detected). Records what it was
asked to make.
"""

from __future__ import annotations

from darkswap_wasm.compression import CompressionError, raw_blocks
from darkswap_wasm.errors import LimitExceeded

MAGIC = b"\x28\xb5\x2f\xfd\x00"


def frame_header(dictionary) -> bytes:
    return MAGIC + bytes((sum(dictionary or b"") % 251,))


def rle_block(byte: bytes, n: int) -> bytes:
    return ((n << 3) | 2).to_bytes(3, "little") + byte


class FakeZstd:
    name = "fake"

    def __init__(self) -> None:
        self.made: list[tuple[str, int, bytes | None]] = []

    def compressor(self, level, window_log, dictionary):
        self.made.append(("c", window_log, dictionary))
        return _FakeCompressor(dictionary)

    def decompressor(self, max_window_log, dictionary):
        self.made.append(("d", max_window_log, dictionary))
        return _FakeDecompressor(dictionary)


class _FakeCompressor:
    def __init__(self, dictionary) -> None:
        self.header = frame_header(dictionary)

    def compress_flush(self, data: bytes) -> bytes:
        head, self.header = self.header, b""
        if len(data) > 4 and data.count(data[:1]) == len(data):
            return head + rle_block(data[:1], len(data))  # one repeated byte: one RLE block
        if len(data) > 16 and data.count(data[-1:]) == len(data) - 2:
            # one message of one repeated byte: its 2-byte entry header raw, the rest one RLE block
            return head + raw_blocks(data[:2]) + rle_block(data[-1:], len(data) - 2)
        return head + raw_blocks(data)


class _FakeDecompressor:
    def __init__(self, dictionary) -> None:
        self.header = frame_header(dictionary)

    def decompress(self, data: bytes, max_output: int) -> bytes:
        pos = 0
        if self.header:
            if data[: len(self.header)] != self.header:
                raise CompressionError("fake zstd: bad frame header (or dictionary)")
            pos, self.header = len(self.header), b""
        out = bytearray()
        while pos < len(data):
            if pos + 3 > len(data):
                raise CompressionError("fake zstd: truncated block header")
            header = int.from_bytes(data[pos : pos + 3], "little")
            btype, size = (header >> 1) & 3, header >> 3
            if header & 1 or btype > 1:
                raise CompressionError("fake zstd: unsupported block")
            if len(out) + size > max_output:
                raise LimitExceeded("fake zstd: output cap")
            if btype == 0:
                chunk = data[pos + 3 : pos + 3 + size]
                if len(chunk) != size:
                    raise CompressionError("fake zstd: truncated raw block")
                out += chunk
                pos += 3 + size
            else:
                if pos + 4 > len(data):
                    raise CompressionError("fake zstd: truncated RLE block")
                out += data[pos + 3 : pos + 4] * size
                pos += 4
        return bytes(out)
