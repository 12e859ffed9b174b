"""The compression backend: the interpreter's own zstd (``compression.zstd``, PEP 784).

CPython 3.14 (and Pyodide 314, whose ``pyodide.asm.wasm`` carries libzstd) has it in the
standard library; below 3.14 the PyPI package ``backports.zstd`` provides the same API. The same
module therefore runs natively and in the page: real streaming contexts, ``ZSTD_e_flush`` per
call, dictionaries, bounded decompression.
"""

from __future__ import annotations

from functools import lru_cache

try:
    from compression import zstd  # CPython >= 3.14, Pyodide 314
except ImportError:  # CPython < 3.14 (or a 3.14 built without libzstd)
    from backports import zstd  # type: ignore[no-redef]

from ..errors import LimitExceeded
from .backend import CompressionError

__all__ = ["ZstdBackend", "zstd"]

_P = zstd.CompressionParameter
_FLUSH_BLOCK = zstd.ZstdCompressor.FLUSH_BLOCK
_DICT_MAGIC = b"\x37\xa4\x30\xec"  # a zstd-format dictionary (RFC 8878 section 5)


@lru_cache(maxsize=16)
def _dict(dictionary: bytes) -> zstd.ZstdDict:
    # ZSTD_dct_auto, as python-zstandard's DICT_TYPE_AUTO did: the dictionary format when the
    # magic is there, else raw content (libzstd itself still auto-detects when loading).
    try:
        return zstd.ZstdDict(dictionary, is_raw=not dictionary.startswith(_DICT_MAGIC))
    except (ValueError, TypeError, zstd.ZstdError) as exc:
        raise CompressionError(f"zstd dictionary refused: {exc}") from exc


def _maybe_dict(dictionary: bytes | None) -> zstd.ZstdDict | None:
    return None if dictionary is None else _dict(bytes(dictionary))


class _Compressor:
    __slots__ = ("_obj",)

    def __init__(self, level: int, window_log: int, dictionary: bytes | None) -> None:
        options = {
            _P.compression_level: level,
            _P.window_log: window_log,
            _P.checksum_flag: 0,
            _P.content_size_flag: 0,
            _P.dict_id_flag: 0,
        }
        try:
            self._obj = zstd.ZstdCompressor(options=options, zstd_dict=_maybe_dict(dictionary))
        except (ValueError, TypeError, zstd.ZstdError) as exc:
            raise CompressionError(f"zstd compressor setup failed: {exc}") from exc

    def compress_flush(self, data: bytes) -> bytes:
        try:
            return self._obj.compress(data, _FLUSH_BLOCK)  # ZSTD_compressStream2(..., ZSTD_e_flush)
        except zstd.ZstdError as exc:
            raise CompressionError(f"zstd compression failed: {exc}") from exc


class _Decompressor:
    __slots__ = ("_failed", "_obj")

    def __init__(self, max_window_log: int, dictionary: bytes | None) -> None:
        try:
            self._obj = zstd.ZstdDecompressor(
                zstd_dict=_maybe_dict(dictionary),
                options={zstd.DecompressionParameter.window_log_max: max_window_log},
            )
        except (ValueError, TypeError, zstd.ZstdError) as exc:
            raise CompressionError(f"zstd decompressor setup failed: {exc}") from exc
        self._failed: str | None = None

    def _fail(self, error: Exception) -> Exception:
        self._failed = str(error)
        return error

    def decompress(self, data: bytes, max_output: int) -> bytes:
        if self._failed is not None:
            raise CompressionError(f"zstd: the stream failed earlier ({self._failed})")
        obj = self._obj
        try:
            # at most max_output + 1 bytes are ever produced: one byte past the cap proves the excess
            out = obj.decompress(data, max_output + 1)
        except (zstd.ZstdError, EOFError) as exc:
            raise self._fail(CompressionError(f"corrupt zstd data: {exc}")) from exc
        if len(out) > max_output:
            raise self._fail(LimitExceeded(f"decompressed frame exceeds the limit of {max_output} bytes"))
        # Output below the cap means the input was consumed and everything it completes returned.
        if obj.eof:
            # The sender closed the frame (our peers never do): nothing may follow it.
            self._failed = "the zstd frame ended"
            if obj.unused_data:
                raise CompressionError("zstd: data after the end of the frame")
        return out


class ZstdBackend:
    """``compression.zstd`` (or ``backports.zstd``) behind the :mod:`.backend` interface."""

    name = "zstd"
    module = zstd.__name__  # "compression.zstd" or "backports.zstd"
    zstd_version = zstd.zstd_version

    def compressor(self, level: int, window_log: int, dictionary: bytes | None) -> _Compressor:
        return _Compressor(level, window_log, dictionary)

    def decompressor(self, max_window_log: int, dictionary: bytes | None) -> _Decompressor:
        return _Decompressor(max_window_log, dictionary)

    def __repr__(self) -> str:
        return f"<ZstdBackend {self.module} libzstd {self.zstd_version}>"
