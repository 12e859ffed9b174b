"""The native compression backend: python-zstandard (libzstd), streaming APIs only."""

from __future__ import annotations

import zstandard

from ..errors import LimitExceeded
from .backend import CompressionError

_WRITE_SIZE = 64 * 1024  # decompressor output chunk: the most we hold beyond the cap
# An empty, non-last raw block. python-zstandard's stream_writer.write() returns once its input
# is consumed, even when the decoder still holds decoded bytes (more than one output chunk); a
# following empty raw block makes it flush them all before the header is consumed. An empty raw
# block changes nothing in the decoder's state (no content, no tables, no repeat offsets).
_DRAIN = b"\x00\x00\x00"


def _dict(dictionary: bytes | None) -> zstandard.ZstdCompressionDict | None:
    if dictionary is None:
        return None
    return zstandard.ZstdCompressionDict(bytes(dictionary))  # DICT_TYPE_AUTO: zstd dict or raw content


class _Compressor:
    __slots__ = ("_flush", "_obj")

    def __init__(self, level: int, window_log: int, dictionary: bytes | None) -> None:
        params = zstandard.ZstdCompressionParameters.from_level(
            level, window_log=window_log, write_checksum=0, write_content_size=0, write_dict_id=0
        )
        try:
            cctx = zstandard.ZstdCompressor(compression_params=params, dict_data=_dict(dictionary))
            self._obj = cctx.compressobj()
        except zstandard.ZstdError as exc:
            raise CompressionError(f"zstd compressor setup failed: {exc}") from exc
        self._flush = zstandard.COMPRESSOBJ_FLUSH_BLOCK

    def compress_flush(self, data: bytes) -> bytes:
        obj = self._obj
        head = obj.compress(data)
        tail = obj.flush(self._flush)
        return head + tail if head else tail


class _CappedSink:
    """The writer ``stream_writer`` pushes output chunks into; raises past the cap."""

    __slots__ = ("cap", "parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.cap = 0

    def write(self, chunk) -> int:
        n = len(chunk)
        self.size += n
        if self.size > self.cap:
            raise LimitExceeded(f"decompressed frame exceeds the limit of {self.cap} bytes")
        self.parts.append(bytes(chunk))
        return n


class _Decompressor:
    __slots__ = ("_sink", "_writer")

    def __init__(self, max_window_log: int, dictionary: bytes | None) -> None:
        try:
            dctx = zstandard.ZstdDecompressor(dict_data=_dict(dictionary), max_window_size=1 << max_window_log)
        except zstandard.ZstdError as exc:
            raise CompressionError(f"zstd decompressor setup failed: {exc}") from exc
        self._sink = _CappedSink()
        self._writer = dctx.stream_writer(self._sink, write_size=_WRITE_SIZE, write_return_read=True)

    def decompress(self, data: bytes, max_output: int) -> bytes:
        sink = self._sink
        sink.parts = []
        sink.size = 0
        sink.cap = max_output
        try:
            self._writer.write(data)
            self._writer.write(_DRAIN)
        except zstandard.ZstdError as exc:
            raise CompressionError(f"corrupt zstd data: {exc}") from exc
        parts = sink.parts
        sink.parts = []
        if len(parts) == 1:
            return parts[0]
        return b"".join(parts)


class ZstdBackend:
    name = "python-zstandard"

    def compressor(self, level: int, window_log: int, dictionary: bytes | None) -> _Compressor:
        return _Compressor(level, window_log, dictionary)

    def decompressor(self, max_window_log: int, dictionary: bytes | None) -> _Decompressor:
        return _Decompressor(max_window_log, dictionary)
