"""The interface every compression backend implements: streaming zstd, nothing else.

The backend is :mod:`.zstd_backend` (``compression.zstd``, or ``backports.zstd`` below Python
3.14), natively and in the page alike; :func:`darkswap_wasm.compression.set_backend` installs
another. A backend is three small objects:

* :class:`CompressionBackend` makes one compressor or decompressor per stream direction;
* :class:`StreamCompressor` is one *open* zstd frame: every :meth:`~StreamCompressor.compress_flush`
  call is ``ZSTD_compressStream2(..., ZSTD_e_flush)`` until flushed, so each call's output decodes
  completely on its own while the frame (and its window) carries on;
* :class:`StreamDecompressor` is the matching ``ZSTD_decompressStream`` loop with a hard output
  cap (no zip bombs).

Everything format-level that builds on top (which output may go as a stored frame, synthetic raw
blocks) lives in :mod:`darkswap_wasm.compression`, once, for every backend.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..errors import DarkSwapError, DecodeError


class CompressionBackendUnavailable(DarkSwapError):
    """No compression backend is available in this runtime (and none was installed)."""

    CODE = "COMPRESSION_BACKEND_UNAVAILABLE"


class CompressionError(DecodeError):
    """Compressed input is corrupt (or uses a window/dictionary this side refuses)."""

    CODE = "COMPRESSION_ERROR"


@runtime_checkable
class StreamCompressor(Protocol):
    def compress_flush(self, data: bytes) -> bytes:
        """Compress ``data`` and flush a block (``ZSTD_e_flush``); return every byte produced.

        The zstd frame stays open: the next call may reference this call's bytes. The first call's
        output starts with the frame header. Frame header without checksum, dictionary id or
        content size (both ends agreed on the dictionary beforehand).
        """
        ...


@runtime_checkable
class StreamDecompressor(Protocol):
    def decompress(self, data: bytes, max_output: int) -> bytes:
        """Feed ``data``; return all the output it completes.

        Raises :class:`~darkswap_wasm.errors.LimitExceeded` as soon as the output would pass
        ``max_output`` bytes (never holding much more than that in memory), and
        :class:`CompressionError` on corrupt input. After either, the object is unusable.
        """
        ...


@runtime_checkable
class CompressionBackend(Protocol):
    name: str

    def compressor(self, level: int, window_log: int, dictionary: bytes | None) -> StreamCompressor:
        """A new streaming compressor: zstd ``level``, window ``2**window_log`` bytes, optional
        dictionary (a zstd dictionary or raw content, auto-detected as ``ZSTD_dct_auto`` does)."""
        ...

    def decompressor(self, max_window_log: int, dictionary: bytes | None) -> StreamDecompressor:
        """A new streaming decompressor refusing windows above ``2**max_window_log`` bytes."""
        ...
