"""Compression backend seam: streaming zstd behind one narrow interface (:mod:`.backend`).

The backend is the interpreter's own zstd (:mod:`.zstd_backend`): the standard library's
``compression.zstd`` on CPython 3.14 and in the page (Pyodide 314), ``backports.zstd`` below 3.14.
Where neither imports, :func:`available_backend` is ``None`` and protocols run uncompressed;
:func:`set_backend` installs another backend (tests do). Protocol code calls only this module.
Shared tests (``tests/unit/test_compression.py``) pin the behaviour every backend must have.

On top of any backend this module implements, once, the two format-level pieces the messaging
protocol needs (zstd frame format, RFC 8878):

* :class:`StreamEncoder` — one direction's context on one transport. Every payload is fed to the
  open zstd frame and flushed. If that output is smaller than the payload it goes as
  :data:`COMPRESSED`. If it is not smaller *and* consists only of raw (stored) blocks — what zstd
  emits for incompressible input — the payload itself goes as :data:`STORED`: the sender's
  context already holds it, and the receiver puts it into its own context by feeding synthetic
  raw blocks. Raw blocks carry no entropy tables or repeat offsets, so a decoder that saw our
  synthetic blocks is in exactly the state of one that saw the compressor's blocks (block
  boundaries do not matter for raw blocks). The first output of a context carries the zstd frame
  header, so it is always sent :data:`COMPRESSED`; so is the rare mixed output that did not shrink.
* :class:`StreamDecoder` — the receiving side of the same, with a hard output cap per frame.

Synthetic raw blocks are at most 128 KiB, which the zstd format allows only when the window is
at least that large: contexts use windows of ``2**MIN_WINDOW_LOG`` bytes or more.
"""

from __future__ import annotations

from ..errors import DecodeError
from .backend import (
    CompressionBackend,
    CompressionBackendUnavailable,
    CompressionError,
    StreamCompressor,
    StreamDecompressor,
)

__all__ = [
    "COMPRESSED",
    "MAX_WINDOW_LOG",
    "MIN_WINDOW_LOG",
    "STORED",
    "CompressionBackend",
    "CompressionBackendUnavailable",
    "CompressionError",
    "StreamCompressor",
    "StreamDecoder",
    "StreamDecompressor",
    "StreamEncoder",
    "available_backend",
    "compress_bound",
    "get_backend",
    "is_raw_blocks",
    "raw_blocks",
    "set_backend",
]

COMPRESSED = 1  # the body is zstd output of the direction's context
STORED = 2  # the body is the payload itself; both contexts hold it (as raw blocks)

MIN_WINDOW_LOG = 17  # 128 KiB: synthetic raw blocks of up to 128 KiB must fit the window
MAX_WINDOW_LOG = 27  # zstd's default decoder limit; also keeps 32-bit WASM memory sane
RAW_BLOCK_MAX = 128 * 1024  # zstd Block_Maximum_Size for windows >= 128 KiB

_backend: CompressionBackend | None = None
_detected = False


def set_backend(backend: CompressionBackend | None) -> None:
    """Install ``backend`` for this process; ``None`` re-detects."""
    global _backend, _detected
    _backend = backend
    _detected = backend is not None


def available_backend() -> CompressionBackend | None:
    """The active backend, or ``None`` when there is none (then callers run uncompressed)."""
    global _backend, _detected
    if not _detected:
        _detected = True
        try:
            from .zstd_backend import ZstdBackend
        except ImportError:
            _backend = None
        else:
            _backend = ZstdBackend()
    return _backend


def get_backend() -> CompressionBackend:
    """The active backend: the one installed by :func:`set_backend`, else ``compression.zstd``."""
    backend = available_backend()
    if backend is None:
        raise CompressionBackendUnavailable(
            "no compression backend: neither compression.zstd (Python >= 3.14) nor backports.zstd is "
            "importable here, and none was installed with darkswap_wasm.compression.set_backend()"
        )
    return backend


def compress_bound(n: int) -> int:
    """``ZSTD_COMPRESSBOUND(n)``: the most a single flush of ``n`` bytes can produce (no header)."""
    return n + (n >> 8) + (((128 * 1024) - n) >> 11 if n < 128 * 1024 else 0)


def is_raw_blocks(out: bytes, payload_length: int) -> bool:
    """Whether ``out`` is exactly a run of non-last raw blocks holding ``payload_length`` bytes."""
    end = len(out)
    pos = 0
    total = 0
    while pos < end:
        if pos + 3 > end:
            return False
        header = out[pos] | (out[pos + 1] << 8) | (out[pos + 2] << 16)
        if header & 7:  # Last_Block set, or Block_Type not Raw (0)
            return False
        size = header >> 3
        pos += 3 + size
        total += size
    return pos == end and total == payload_length


def raw_blocks(payload: bytes) -> bytes:
    """``payload`` as a run of non-last zstd raw blocks (each at most 128 KiB)."""
    n = len(payload)
    if n <= RAW_BLOCK_MAX:
        return (n << 3).to_bytes(3, "little") + payload
    parts = []
    view = memoryview(payload)
    for start in range(0, n, RAW_BLOCK_MAX):
        chunk = view[start : start + RAW_BLOCK_MAX]
        parts.append((len(chunk) << 3).to_bytes(3, "little"))
        parts.append(chunk)
    return b"".join(parts)


class StreamEncoder:
    """The sending half of one direction's zstd context on one transport."""

    __slots__ = ("_compressor", "_started")

    def __init__(self, compressor: StreamCompressor) -> None:
        self._compressor = compressor
        self._started = False

    def encode(self, payload: bytes) -> tuple[int, bytes]:
        """Feed ``payload`` to the context: ``(COMPRESSED, zstd bytes)`` or ``(STORED, payload)``."""
        out = self._compressor.compress_flush(payload)
        if not self._started:
            self._started = True
            return COMPRESSED, out  # carries the frame header: the receiver must see it
        if len(out) < len(payload) or not is_raw_blocks(out, len(payload)):
            return COMPRESSED, out
        return STORED, payload


class StreamDecoder:
    """The receiving half of one direction's zstd context on one transport."""

    __slots__ = ("_decompressor", "_started")

    def __init__(self, decompressor: StreamDecompressor) -> None:
        self._decompressor = decompressor
        self._started = False

    def decode(self, body: bytes, max_output: int) -> bytes:
        """The payload of a :data:`COMPRESSED` frame (at most ``max_output`` bytes)."""
        self._started = True
        return self._decompressor.decompress(body, max_output)

    def append_stored(self, payload: bytes) -> None:
        """Put the payload of a :data:`STORED` frame into the context, as the sender's holds it."""
        if not self._started:
            raise DecodeError("zstd: a stored frame before the compressed stream began")
        out = self._decompressor.decompress(raw_blocks(payload), len(payload))
        if len(out) != len(payload):
            raise CompressionError("zstd: stored frame did not round-trip through the context")
