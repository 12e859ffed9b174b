"""The in-page compression backend: zstd compiled to WebAssembly (``@bokuweb/zstd-wasm`` 0.0.27).

The page's glue loads the wasm (``js_glue/zstd.js``: ``zstdReady()``) and hands the API over::

    from darkswap_wasm.compression import set_backend
    from darkswap_wasm.compression.zstd_js import ZstdJsBackend
    set_backend(ZstdJsBackend(zstd))

Like :mod:`darkswap_wasm.crypto.libsodium_js`, this module never imports ``js`` and imports
nothing from ``pyodide`` at import time; only the constructor does, when no ``to_js`` is given.

What the package offers, and what is missing
---------------------------------------------
The wasm build exports only the *one-shot* API: ``ZSTD_compress[_usingDict]``,
``ZSTD_decompress[_usingDict]``, ``ZSTD_create/freeCCtx``, ``ZSTD_create/freeDCtx``,
``ZSTD_compressBound``, ``ZSTD_isError``, ``malloc``/``free``. The streaming calls the seam
is defined by (``ZSTD_compressStream2(..., ZSTD_e_flush)``, ``ZSTD_decompressStream``) and
``ZSTD_CCtx_setParameter`` are not exported, and the module is linked with ``-flto``, so they
are not in it at all. One-shot frames interoperate directly (:meth:`ZstdJsBackend.compress_frame`,
:meth:`ZstdJsBackend.decompress_frame`).

How the streaming contexts are built anyway (exactly, not approximately)
--------------------------------------------------------------------------
A zstd decoder between two blocks of an open frame is fully described by: the window (the last
``Window_Size`` bytes of output, plus the frame's dictionary content while it is in reach), the
three repeat offsets, and the last Huffman and FSE (LL/OF/ML) tables. A zstd-format dictionary
(RFC 8878 §5) carries exactly that: Huffman and FSE table *descriptions* (the same formats that
appear in blocks), three repeat offsets, then content. So:

* **decompressor** — for every flushed chunk, build a dictionary from the current state (the
  latest table descriptions, copied from the blocks seen so far; the repeat offsets; the
  history), wrap the chunk's blocks in a synthetic frame (header with the stream's window, the
  blocks, an empty last block) and call ``ZSTD_decompress_usingDict``. The output lands right
  after the history in wasm memory. The new table descriptions come from parsing the chunk's
  block and section headers (no entropy decoding in Python); the new repeat offsets are read
  from the ``ZSTD_DCtx`` after the call (``dctx->entropy.rep``, whose offset inside the struct is
  located and verified by probes when the backend is created: if that fails, the backend refuses
  to load instead of guessing).
* **compressor** — ``ZSTD_compress_usingDict`` with a dictionary built the same way from the
  state the *receiver* is in (a mirror decompressor tracks it), then the frame header is
  stripped and the last-block flag cleared: the blocks continue the open frame. The dictionary's
  content is the last ``Window_Size - len(chunk)`` bytes of history, so that no offset the
  compressor can produce exceeds the window; repeat offsets reaching further back point into
  random filler placed in front (a dictionary must contain its repeat offsets). Every chunk is
  verified by decoding it with the mirror (exact state, real history) before it is emitted; a
  chunk that does not decode back to the input (the compressor matched filler, or reused a
  stand-in table, see below) is emitted as raw blocks instead: always a valid continuation, just
  not compressed (``stats["raw_fallbacks"]`` counts them; none in the shared tests).

Limits of this emulation (all checked, none silent):

* a dictionary cannot say "no table yet" or hold an RLE or predefined table as such, so for those
  states the compressor's dictionary holds stand-ins it never reuses (single-symbol FSE tables)
  or whose reuse the mirror catches (a two-symbol Huffman table, symbols 0x00 and 0x80);
* in a received stream, a block that *repeats* a predefined or RLE FSE table is refused with
  :class:`CompressionError`: the format allows it, libzstd never emits it (it sets the repeat
  mode to none after those), and a dictionary cannot express an RLE table;
* every chunk costs one dictionary load (tables built, history indexed by the compressor: up to
  ``Window_Size`` bytes) — slower than a real streaming context, fine for DarkSwap's batches;
* while the history is shorter than 8 bytes (the initial repeat offsets are 1, 4, 8), the
  decoder's dictionary pads it with zeros: a corrupt stream referencing before its start decodes
  zeros there instead of failing (a valid stream never does that).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import LimitExceeded
from .backend import CompressionBackendUnavailable, CompressionError

__all__ = ["ZstdJsBackend", "parse_frame_header", "read_ncount", "scan_blocks", "write_ncount"]

log = logging.getLogger(__name__)

FRAME_MAGIC = b"\x28\xb5\x2f\xfd"
DICT_MAGIC = b"\x37\xa4\x30\xec"
REP_START = (1, 4, 8)
BLOCK_MAX = 128 * 1024
END_BLOCK = b"\x01\x00\x00"  # an empty raw block with Last_Block set
GAP = 4096  # room for a dictionary header (and padding) in front of the history
DST_SIZE_TOO_SMALL = 70  # ZSTD_error_dstSize_tooSmall

# (max symbol, max accuracy log) of the sequence codes
LL = (35, 9)
OF = (31, 8)
ML = (52, 9)

REQUIRED_FUNCTIONS = (
    "malloc",
    "free",
    "compressBound",
    "createCCtx",
    "freeCCtx",
    "createDCtx",
    "freeDCtx",
    "compressUsingDict",
    "decompressUsingDict",
    "write",
    "read",
    "fill",
    "move",
    "equal",
    "u32",
    "find",
    "compress",
    "decompress",
)


# ------------------------------------------------------------------------------ format helpers


def _bad(msg: str) -> CompressionError:
    return CompressionError(f"corrupt zstd data: {msg}")


def read_ncount(
    buf: bytes, pos: int, max_symbol: int, max_log: int, end: int | None = None
) -> tuple[int, list[int], int]:
    """Parse an FSE table description (RFC 8878 §4.1.1) at ``pos`` (not reading past ``end``).

    Returns ``(stop, normalized counts, accuracy log)``; a port of zstd's ``FSE_readNCount``.
    """
    end = len(buf) if end is None else end
    if pos >= end:
        raise _bad("truncated FSE table description")
    bitpos = pos * 8

    def peek(n: int) -> int:
        byte = bitpos >> 3
        return (int.from_bytes(buf[byte : min(byte + 5, end)], "little") >> (bitpos & 7)) & ((1 << n) - 1)

    log_ = peek(4) + 5
    bitpos += 4
    if log_ > max_log:
        raise _bad(f"FSE accuracy log {log_} above {max_log}")
    remaining = (1 << log_) + 1
    threshold = 1 << log_
    nbits = log_ + 1
    counts: list[int] = []
    prev0 = False
    while True:
        if prev0:
            while True:
                r = peek(2)
                bitpos += 2
                counts.extend((0,) * r)
                if r != 3:
                    break
            if len(counts) > max_symbol:
                raise _bad("FSE table description with too many symbols")
        mx = (2 * threshold - 1) - remaining
        low = peek(nbits - 1)
        if low < mx:
            count = low
            bitpos += nbits - 1
        else:
            count = peek(nbits)
            if count >= threshold:
                count -= mx
            bitpos += nbits
        count -= 1
        remaining -= -count if count < 0 else count
        counts.append(count)
        prev0 = count == 0
        if remaining < threshold:
            if remaining <= 1:
                break
            nbits = remaining.bit_length()
            threshold = 1 << (nbits - 1)
        if len(counts) > max_symbol:
            break
    if remaining != 1:
        raise _bad("FSE table description does not add up")
    stop = (bitpos + 7) >> 3
    if stop > end:
        raise _bad("truncated FSE table description")
    return stop, counts, log_


def write_ncount(counts: list[int], table_log: int) -> bytes:
    """An FSE table description for normalized ``counts`` (a port of zstd's ``FSE_writeNCount``)."""
    acc = table_log - 5
    nacc = 4
    remaining = (1 << table_log) + 1
    threshold = 1 << table_log
    nbits = table_log + 1
    symbol = 0
    alphabet = len(counts)
    prev0 = False
    while symbol < alphabet and remaining > 1:
        if prev0:
            start = symbol
            while symbol < alphabet and not counts[symbol]:
                symbol += 1
            if symbol == alphabet:
                raise ValueError("incorrect distribution")
            while symbol >= start + 3:
                start += 3
                acc |= 3 << nacc
                nacc += 2
            acc |= (symbol - start) << nacc
            nacc += 2
        count = counts[symbol]
        symbol += 1
        mx = (2 * threshold - 1) - remaining
        remaining -= -count if count < 0 else count
        count += 1
        if count >= threshold:
            count += mx
        acc |= count << nacc
        nacc += nbits - (1 if count < mx else 0)
        prev0 = count == 1
        if remaining < 1:
            raise ValueError("incorrect distribution")
        while remaining < threshold:
            nbits -= 1
            threshold >>= 1
    if remaining != 1:
        raise ValueError("incorrect distribution")
    return acc.to_bytes((nacc + 7) // 8, "little")


def huffman_description_length(buf: bytes, pos: int, end: int | None = None) -> int:
    """Length of the Huffman tree description at ``pos`` (RFC 8878 §4.2.1)."""
    end = len(buf) if end is None else end
    if pos >= end:
        raise _bad("truncated Huffman tree description")
    head = buf[pos]
    n = 1 + head if head < 128 else 1 + (head - 127 + 1) // 2
    if pos + n > end:
        raise _bad("truncated Huffman tree description")
    return n


# A stand-in Huffman table (symbols 0x00 and 0x80, one bit each) for a dictionary whose stream has
# no Huffman table yet: direct weights for symbols 0..127 (0x00: 1, the rest 0), the last symbol
# (0x80) implied with weight 1.
DUMMY_HUFFMAN = bytes([255, 0x10]) + bytes(63)
# A stand-in FSE table (one symbol, code 0, at full probability): never reused by libzstd's
# compressor (a block whose codes are all one symbol goes RLE or predefined first).
DUMMY_FSE = write_ncount([32], 5)


@dataclass(frozen=True)
class Tables:
    """The entropy state a block may repeat: latest descriptions (or why there is none)."""

    huf: bytes | None = None
    ll: tuple[str, bytes | None] = ("none", None)  # mode: none | basic | rle | fse
    of: tuple[str, bytes | None] = ("none", None)
    ml: tuple[str, bytes | None] = ("none", None)

    @property
    def pristine(self) -> bool:
        return self.huf is None and self.ll[0] == self.of[0] == self.ml[0] == "none"


EMPTY_TABLES = Tables()


def parse_frame_header(buf: bytes) -> tuple[int, int, int, bool] | None:
    """``(header length, window size, dictionary id, checksum flag)``, or ``None`` if ``buf``
    does not hold the whole header yet."""
    if len(buf) < 5:
        if FRAME_MAGIC.startswith(bytes(buf[:4])):
            return None
        raise _bad("not a zstd frame (bad magic number)")
    if bytes(buf[:4]) != FRAME_MAGIC:
        raise _bad("not a zstd frame (bad magic number)")
    fhd = buf[4]
    if fhd & 0x08:
        raise _bad("reserved bit set in the frame header")
    fcs_flag, single, checksum, did_flag = fhd >> 6, (fhd >> 5) & 1, bool(fhd & 4), fhd & 3
    pos = 5
    window = 0
    if not single:
        if len(buf) < 6:
            return None
        wd = buf[5]
        base = 1 << (10 + (wd >> 3))
        window = base + (base >> 3) * (wd & 7)
        pos = 6
    did_size = (0, 1, 2, 4)[did_flag]
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if len(buf) < pos + did_size + fcs_size:
        return None
    dict_id = int.from_bytes(buf[pos : pos + did_size], "little")
    pos += did_size
    fcs = int.from_bytes(buf[pos : pos + fcs_size], "little") + (256 if fcs_size == 2 else 0)
    pos += fcs_size
    if single:
        window = fcs
    return pos, window, dict_id, checksum


def _window_descriptor(window: int) -> int:
    """The smallest Window_Descriptor byte whose window is at least ``window`` (>= 1 KiB)."""
    for wd in range(256):
        base = 1 << (10 + (wd >> 3))
        if base + (base >> 3) * (wd & 7) >= window:
            return wd
    raise _bad(f"window of {window} bytes is too large")


def _fse_section(buf: bytes, s: int, q: int, prev: tuple[str, bytes | None], mode: int, spec, name: str):
    max_symbol, max_log = spec
    if mode == 0:
        return s, ("basic", None)
    if mode == 1:
        if s >= q:
            raise _bad("truncated RLE symbol")
        if buf[s] > max_symbol:
            raise _bad(f"{name} RLE symbol {buf[s]} out of range")
        return s + 1, ("rle", bytes(buf[s : s + 1]))
    if mode == 2:
        stop, _counts, _log = read_ncount(buf, s, max_symbol, max_log, q)
        return stop, ("fse", bytes(buf[s:stop]))
    # repeat
    if prev[0] == "none":
        raise _bad(f"{name} table repeated before any table was defined")
    if prev[0] != "fse":
        raise CompressionError(
            f"zstd stream repeats a {'predefined' if prev[0] == 'basic' else 'RLE'} {name} table: valid, but "
            "libzstd never emits it and the in-page zstd backend (one-shot wasm + dictionaries) cannot express it"
        )
    return s, prev


def _compressed_block(buf: bytes, p: int, q: int, tables: Tables) -> Tables:
    """Check one compressed block's section headers; return the tables after it."""
    b0 = buf[p]
    ltype, sf = b0 & 3, (b0 >> 2) & 3
    huf = tables.huf
    if ltype <= 1:
        if sf & 1 == 0:
            hs, regen = 1, b0 >> 3
        elif sf == 1:
            hs, regen = 2, (b0 >> 4) | (buf[p + 1] << 4) if p + 1 < q else -1
        else:
            hs, regen = 3, ((b0 >> 4) | (buf[p + 1] << 4) | (buf[p + 2] << 12)) if p + 2 < q else -1
        if regen < 0:
            raise _bad("truncated literals section header")
        s = p + hs + (regen if ltype == 0 else 1)
    else:
        hs = (3, 3, 4, 5)[sf]
        if p + hs > q:
            raise _bad("truncated literals section header")
        v = int.from_bytes(buf[p : p + hs], "little")
        bits = (10, 10, 14, 18)[sf]
        csize = (v >> (4 + bits)) & ((1 << bits) - 1)
        s = p + hs + csize
        if ltype == 2:
            n = huffman_description_length(buf, p + hs, q)
            if n > csize:
                raise _bad("Huffman tree description longer than the literals")
            huf = bytes(buf[p + hs : p + hs + n])
        elif huf is None:
            raise _bad("treeless literals before any Huffman table was defined")
    if s >= q:
        raise _bad("compressed block without a sequences section" if s == q else "literals overrun the block")
    b = buf[s]
    if b == 0:
        return Tables(huf, tables.ll, tables.of, tables.ml) if huf is not tables.huf else tables
    if b < 128:
        s += 1
    elif b < 255:
        s += 2
    else:
        s += 3
    if s >= q:
        raise _bad("truncated sequences section header")
    modes = buf[s]
    s += 1
    if modes & 3:
        raise _bad("reserved bits set in the symbol compression modes")
    s, ll = _fse_section(buf, s, q, tables.ll, modes >> 6, LL, "literal length")
    s, of = _fse_section(buf, s, q, tables.of, (modes >> 4) & 3, OF, "offset")
    s, ml = _fse_section(buf, s, q, tables.ml, (modes >> 2) & 3, ML, "match length")
    if s > q:
        raise _bad("sequences section header overruns the block")
    return Tables(huf, ll, of, ml)


@dataclass
class BlockScan:
    end: int  # where the last complete block ends
    tables: Tables
    compressed: bool  # any compressed block (else raw/RLE only)
    bound: int  # an upper bound of the output
    last: bool  # a block with Last_Block set was seen (it ends the scan)
    plain: list[tuple[int, int, int]]  # (type, start, size) of raw/RLE blocks, in order


def scan_blocks(buf: bytes, pos: int, tables: Tables, block_max: int = BLOCK_MAX) -> BlockScan:
    """Walk the complete blocks in ``buf[pos:]``: check their section headers, track the tables."""
    end = len(buf)
    compressed = False
    bound = 0
    plain: list[tuple[int, int, int]] = []
    last = False
    while pos + 3 <= end and not last:
        header = buf[pos] | (buf[pos + 1] << 8) | (buf[pos + 2] << 16)
        last = bool(header & 1)
        btype = (header >> 1) & 3
        size = header >> 3
        if btype == 3:
            raise _bad("reserved block type")
        if size > block_max:
            raise _bad(f"block of {size} bytes above the maximum of {block_max}")
        content = 1 if btype == 1 else size
        if pos + 3 + content > end:
            last = False
            break
        start = pos + 3
        if btype == 2:
            if size == 0:
                raise _bad("empty compressed block")
            tables = _compressed_block(buf, start, start + size, tables)
            compressed = True
            bound += block_max
        else:
            plain.append((btype, start, size))
            bound += size
        pos = start + content
    return BlockScan(pos, tables, compressed, bound, last, plain)


def parse_dictionary(dictionary: bytes | None) -> tuple[Tables, tuple[int, int, int], bytes, int]:
    """``(tables, repeat offsets, content, dictionary id)`` of a zstd dictionary or raw content
    (auto-detected as ``ZSTD_dct_auto`` does)."""
    if not dictionary:
        return EMPTY_TABLES, REP_START, b"", 0
    d = bytes(dictionary)
    if len(d) < 8 or d[:4] != DICT_MAGIC:
        return EMPTY_TABLES, REP_START, d, 0
    dict_id = int.from_bytes(d[4:8], "little")
    pos = 8
    n = huffman_description_length(d, pos)
    huf = d[pos : pos + n]
    pos += n
    descs = []
    for spec in (OF, ML, LL):
        stop, _c, _l = read_ncount(d, pos, *spec)
        descs.append(d[pos:stop])
        pos = stop
    if pos + 12 > len(d):
        raise CompressionError("zstd dictionary is truncated")
    reps = tuple(int.from_bytes(d[pos + 4 * i : pos + 4 * i + 4], "little") for i in range(3))
    content = d[pos + 12 :]
    if any(r == 0 or r > len(content) for r in reps):
        raise CompressionError("zstd dictionary has invalid repeat offsets")
    of, ml, ll = descs
    return Tables(huf, ("fse", ll), ("fse", of), ("fse", ml)), reps, content, dict_id  # type: ignore[return-value]


def dictionary_header(tables: Tables, reps) -> bytes:
    """Magic, id 0, Huffman + FSE (OF, ML, LL) descriptions, repeat offsets: a dictionary's head."""
    huf = tables.huf if tables.huf is not None else DUMMY_HUFFMAN

    def fse(t: tuple[str, bytes | None]) -> bytes:
        return t[1] if t[0] == "fse" and t[1] is not None else DUMMY_FSE

    return b"".join(
        (
            DICT_MAGIC,
            b"\x00\x00\x00\x00",
            huf,
            fse(tables.of),
            fse(tables.ml),
            fse(tables.ll),
            b"".join(int(r).to_bytes(4, "little") for r in reps),
        )
    )


def strip_frame(frame: bytes) -> bytes:
    """The blocks of one complete frame, made non-last (an empty last block is dropped)."""
    head = parse_frame_header(frame)
    if head is None:
        raise CompressionError("zstd produced a truncated frame")
    pos = head[0]
    out = bytearray()
    end = len(frame)
    while True:
        if pos + 3 > end:
            raise CompressionError("zstd produced a frame without a last block")
        header = frame[pos] | (frame[pos + 1] << 8) | (frame[pos + 2] << 16)
        btype, size = (header >> 1) & 3, header >> 3
        stop = pos + 3 + (1 if btype == 1 else size)
        if header & 1:
            if not (btype == 0 and size == 0):
                out += (header & ~1).to_bytes(3, "little")
                out += frame[pos + 3 : stop]
            return bytes(out)
        out += frame[pos:stop]
        pos = stop


def raw_blocks(payload) -> bytes:
    """``payload`` as non-last raw blocks of at most 128 KiB."""
    mv = memoryview(payload)
    parts = []
    for off in range(0, len(mv), BLOCK_MAX):
        chunk = mv[off : off + BLOCK_MAX]
        parts.append((len(chunk) << 3).to_bytes(3, "little"))
        parts.append(chunk)
    return b"".join(parts)


# ------------------------------------------------------------------------------ wasm state


class _Wasm:
    """The glue object plus conversions; every pointer is an offset into the wasm memory."""

    def __init__(self, zstd: Any, to_js: Callable[[Any], Any]) -> None:
        self.z = zstd
        self.to_js = to_js
        self.malloc = zstd.malloc
        self.free = zstd.free

    def write(self, ptr: int, data) -> None:
        if len(data):
            self.z.write(ptr, self.to_js(data))

    def read(self, ptr: int, n: int) -> bytes:
        return self.z.read(ptr, n).to_bytes() if n else b""


class _Buffer:
    """A growable scratch buffer in wasm memory."""

    def __init__(self, w: _Wasm) -> None:
        self.w = w
        self.ptr = 0
        self.cap = 0

    def need(self, n: int) -> int:
        if n > self.cap:
            if self.ptr:
                self.w.free(self.ptr)
                self.ptr = 0
            self.cap = max(n, 2 * self.cap, 4096)
            self.ptr = self.w.malloc(self.cap)
        return self.ptr

    def release(self) -> None:
        if self.ptr:
            self.w.free(self.ptr)
            self.ptr = 0
            self.cap = 0


class _Decoder:
    """The state of a zstd decoder between blocks, held as a dictionary + history in wasm memory."""

    def __init__(self, backend: ZstdJsBackend, dictionary: bytes | None, keep: int | None) -> None:
        self.b = backend
        w = self.w = backend._w
        self.tables, self.reps, content, self.dict_id = parse_dictionary(dictionary)
        self.dict_len = len(content)
        self.keep = keep  # bytes of history kept (window + dictionary content); None until known
        self.dctx = w.z.createDCtx()
        if not self.dctx:
            raise CompressionError("ZSTD_createDCtx failed")
        self.area = 0
        self.cap = 0
        self.lo = self.hi = 0  # kept history: [lo, hi)
        self.total = 0  # bytes of history ever (dictionary content included)
        self.frame = _Buffer(w)
        self._pending_content = content
        self.window = 0

    # -- history ---------------------------------------------------------------------------
    def start(self, window: int) -> None:
        self.window = window
        self.keep = window + self.dict_len
        content, self._pending_content = self._pending_content, b""
        self._room(len(content))
        if content:
            self.w.write(self.hi, content)
            self._commit(len(content), self.tables, self.reps)

    def _room(self, extra: int) -> None:
        """Make ``extra`` bytes free after ``hi`` (compacting or growing the area)."""
        if self.area and self.hi + extra <= self.area + self.cap:
            return
        kept = self.hi - self.lo
        need = GAP + kept + extra
        if self.area and need <= self.cap:
            self.w.z.move(self.area + GAP, self.lo, kept)
        else:
            cap = max(need, 2 * self.cap, 64 * 1024)
            area = self.w.malloc(cap)
            if self.area:
                self.w.z.move(area + GAP, self.lo, kept)
                self.w.free(self.area)
            self.area, self.cap = area, cap
        self.lo = self.area + GAP
        self.hi = self.lo + kept

    def _commit(self, n: int, tables: Tables, reps) -> None:
        self.hi += n
        self.total += n
        self.tables = tables
        self.reps = reps
        assert self.keep is not None
        if self.hi - self.lo > self.keep:
            self.lo = self.hi - self.keep

    def append_plain(self, data) -> None:
        self._room(len(data))
        self.w.write(self.hi, data)
        self._commit(len(data), self.tables, self.reps)

    # -- decoding --------------------------------------------------------------------------
    def _dict(self, tables: Tables, reps, content_len: int, header: bytes) -> tuple[int, int]:
        """Write ``header`` (+ zero padding up to the largest repeat offset) in front of the last
        ``content_len`` bytes of history; ``(dict pointer, dict size)``."""
        pad = max(0, max(reps) - content_len)
        start = self.hi - content_len - pad - len(header)
        if start < self.area:
            raise CompressionError("zstd-js: no room for the dictionary header")  # GAP is too small
        if pad:
            self.w.z.fill(self.hi - content_len - pad, pad, 0)
        self.w.write(start, header)
        return start, self.hi - start

    def decode(self, blocks: bytes, scan: BlockScan, max_output: int) -> tuple[int, Tables, tuple]:
        """Decode complete ``blocks`` (already scanned) into the wasm memory right after the
        history, without committing: ``(output size, tables after, repeat offsets after)``."""
        w = self.w
        cap = min(max_output, scan.bound)
        self._room(cap)
        content_len = min(self.hi - self.lo, self.keep or 0)
        dptr, dlen = self._dict(self.tables, self.reps, content_len, dictionary_header(self.tables, self.reps))
        frame = FRAME_MAGIC + bytes((0, _window_descriptor(max(self.window, 1024)))) + blocks + END_BLOCK
        src = self.frame.need(len(frame))
        w.write(src, frame)
        r = w.z.decompressUsingDict(self.dctx, self.hi, cap, src, len(frame), dptr, dlen)
        if r < 0:
            if -r == DST_SIZE_TOO_SMALL:
                raise LimitExceeded(f"decompressed frame exceeds the limit of {max_output} bytes")
            raise _bad(f"ZSTD_decompress_usingDict failed (zstd error {-r})")
        base = self.dctx + self.b._rep_offset
        reps = (w.z.u32(base), w.z.u32(base + 4), w.z.u32(base + 8))
        return int(r), scan.tables, reps

    def release(self) -> None:
        z = self.w.z
        try:
            if self.area:
                self.w.free(self.area)
                self.area = 0
            if self.dctx:
                z.freeDCtx(self.dctx)
                self.dctx = 0
            self.frame.release()
        except Exception as exc:  # noqa: BLE001 - best effort (page teardown)
            log.debug("zstd-js: releasing a decoder failed: %r", exc)


class _Decompressor:
    """A streaming decompressor (:class:`~.backend.StreamDecompressor`)."""

    def __init__(self, backend: ZstdJsBackend, max_window_log: int, dictionary: bytes | None) -> None:
        self._d = _Decoder(backend, dictionary, None)
        self._max_window = 1 << max_window_log
        self._buf = b""  # input not yet decoded (a partial header or block)
        self._started = False
        self._broken: CompressionError | LimitExceeded | None = None

    def decompress(self, data: bytes, max_output: int) -> bytes:
        if self._broken is not None:
            raise CompressionError(f"zstd decompressor unusable after an earlier error: {self._broken}")
        try:
            return self._decompress(data, max_output)
        except (CompressionError, LimitExceeded) as exc:
            self._broken = exc
            raise

    def _decompress(self, data: bytes, max_output: int) -> bytes:
        buf = self._buf + bytes(data) if self._buf else bytes(data)
        d = self._d
        pos = 0
        if not self._started:
            head = parse_frame_header(buf)
            if head is None:
                self._buf = buf
                return b""
            pos, window, dict_id, _checksum = head
            if window > self._max_window:
                raise CompressionError(f"zstd frame window of {window} bytes exceeds the limit of {self._max_window}")
            if dict_id and dict_id != d.dict_id:
                raise CompressionError(f"zstd frame needs dictionary {dict_id}, this context has {d.dict_id or 'none'}")
            d.start(max(window, 1))
            self._started = True
        scan = scan_blocks(buf, pos, d.tables, min(BLOCK_MAX, max(d.window, 1)))
        if scan.last:
            raise CompressionError("zstd frame ended: the stream of this context is over")
        self._buf = buf[scan.end :]
        if scan.end == pos:
            return b""
        if not scan.compressed:  # raw/RLE only (stored frames): no wasm call needed
            out = bytearray()
            for btype, start, size in scan.plain:
                if len(out) + size > max_output:
                    raise LimitExceeded(f"decompressed frame exceeds the limit of {max_output} bytes")
                out += buf[start : start + size] if btype == 0 else bytes((buf[start],)) * size
            out = bytes(out)
            d.append_plain(out)
            return out
        n, tables, reps = d.decode(buf[pos : scan.end], scan, max_output)
        out = d.w.read(d.hi, n)
        d._commit(n, tables, reps)
        return out

    def __del__(self) -> None:
        self._d.release()


class _Compressor:
    """A streaming compressor (:class:`~.backend.StreamCompressor`): one open frame."""

    def __init__(self, backend: ZstdJsBackend, level: int, window_log: int, dictionary: bytes | None) -> None:
        w = self._w = backend._w
        self._level = level
        self._window = 1 << window_log
        self._mirror = _Decoder(backend, dictionary, None)
        self._mirror.start(self._window)
        self._header = FRAME_MAGIC + bytes((0, (window_log - 10) << 3))
        self._cctx = w.z.createCCtx()
        if not self._cctx:
            raise CompressionError("ZSTD_createCCtx failed")
        self._src = _Buffer(w)
        self._dst = _Buffer(w)
        self._saved = _Buffer(w)
        self._filler = _Buffer(w)
        self.stats = {"chunks": 0, "raw_fallbacks": 0}

    def compress_flush(self, data: bytes) -> bytes:
        out = [self._header] if self._header else []
        self._header = b""
        mv = memoryview(data)
        step = self._window // 2
        out.extend(self._piece(mv[off : off + step]) for off in range(0, len(mv), step))
        return b"".join(out)

    def _piece(self, piece: memoryview) -> bytes:
        n = len(piece)
        m = self._mirror
        w = self._w
        self.stats["chunks"] += 1
        m._room(n)  # the mirror decodes right after its history: make room before taking pointers
        history = m.hi - m.lo
        limit = min(history, self._window - n)
        src = self._src.need(n)
        w.write(src, piece)
        saved = None
        dptr = dlen = 0
        if m.tables.pristine and m.reps == REP_START:
            if limit >= 8 and w.read(m.hi - limit, 4) != DICT_MAGIC:
                dptr, dlen = m.hi - limit, limit  # raw content: exactly the pristine state
            elif limit >= 8:
                dptr, dlen, saved = self._zstd_dict(limit, REP_START)
        elif limit >= 8:
            dptr, dlen, saved = self._zstd_dict(limit, m.reps)
        else:
            return self._raw(piece, src, "history shorter than 8 bytes")
        cap = w.z.compressBound(n) + 32
        dst = self._dst.need(cap)
        r = w.z.compressUsingDict(self._cctx, dst, cap, src, n, dptr, dlen, self._level)
        if saved is not None:
            w.z.move(saved[0], self._saved.ptr, saved[1])  # put the history back
        if r < 0:
            return self._raw(piece, src, f"ZSTD_compress_usingDict failed (zstd error {-r})")
        blocks = strip_frame(w.read(dst, int(r)))
        try:
            scan = scan_blocks(blocks, 0, m.tables)
            if scan.last or scan.end != len(blocks):
                raise CompressionError("unexpected block structure")
            got, tables, reps = m.decode(blocks, scan, n)
        except (CompressionError, LimitExceeded) as exc:
            return self._raw(piece, src, f"the mirror refused it: {exc}")
        if got != n or not w.z.equal(m.hi, src, n):
            return self._raw(piece, src, "the mirror decoded different bytes")
        m._commit(n, tables, reps)
        return blocks

    def _zstd_dict(self, limit: int, reps) -> tuple[int, int, tuple[int, int]]:
        """A dictionary of the receiver's state whose content is the last ``limit`` bytes of
        history. Repeat offsets reaching further back (a dictionary must contain them) point into
        random filler put in front: the compressor finds nothing to match there, and should it
        match anyway, the mirror (which has the real history there) rejects the chunk."""
        m = self._mirror
        w = self._w
        header = dictionary_header(m.tables, reps)
        filler = max(0, max(reps) - limit)
        start = m.hi - limit - filler - len(header)
        if start < m.area:
            raise CompressionError("zstd-js: no room for the dictionary header")
        covered = m.hi - limit - start  # history (or gap) bytes the header and filler cover
        w.z.move(self._saved.need(covered), start, covered)
        w.write(start, header)
        if filler:
            w.z.move(start + len(header), self._filler_ptr(filler), filler)
        return start, m.hi - start, (start, covered)

    def _filler_ptr(self, n: int) -> int:
        if n > self._filler.cap:
            ptr = self._filler.need(n)
            self._w.write(ptr, random.Random(n).randbytes(self._filler.cap))
        return self._filler.ptr

    def _raw(self, piece: memoryview, src: int, why: str) -> bytes:
        self.stats["raw_fallbacks"] += 1
        log.debug("zstd-js: chunk of %d bytes sent as raw blocks: %s", len(piece), why)
        m = self._mirror
        m._room(len(piece))
        m.w.z.move(m.hi, src, len(piece))
        m._commit(len(piece), m.tables, m.reps)
        return raw_blocks(piece)

    def __del__(self) -> None:
        try:
            self._w.z.freeCCtx(self._cctx)
            for buf in (self._src, self._dst, self._saved, self._filler):
                buf.release()
        except Exception as exc:  # noqa: BLE001 - best effort (page teardown)
            log.debug("zstd-js: releasing a compressor failed: %r", exc)
        self._mirror.release()


# ------------------------------------------------------------------------------ the backend


class ZstdJsBackend:
    """:class:`~.backend.CompressionBackend` over ``js_glue/zstd.js``'s API (``zstdReady()``)."""

    name = "zstd-wasm"

    def __init__(self, zstd: Any, *, to_js: Callable[[Any], Any] | None = None) -> None:
        if to_js is None:
            try:
                from pyodide.ffi import to_js as pyodide_to_js
            except ImportError as exc:
                raise CompressionBackendUnavailable(
                    "ZstdJsBackend needs Pyodide (pyodide.ffi) unless to_js is given"
                ) from exc
            to_js = pyodide_to_js
        missing = [f for f in REQUIRED_FUNCTIONS if not callable(getattr(zstd, f, None))]
        if missing:
            raise CompressionBackendUnavailable(
                f"the zstd object lacks {', '.join(missing)}: pass js_glue/zstd.js's zstdReady() result"
            )
        self._w = _Wasm(zstd, to_js)
        self._rep_offset = self._locate_repeat_offsets()

    def __repr__(self) -> str:
        return f"<ZstdJsBackend @bokuweb/zstd-wasm, rep offsets at dctx+{self._rep_offset}>"

    # -- the seam ---------------------------------------------------------------------------
    def compressor(self, level: int, window_log: int, dictionary: bytes | None) -> _Compressor:
        if not 17 <= window_log <= 30:
            raise CompressionError(f"zstd-js: window_log {window_log} outside 17..30")
        return _Compressor(self, level, window_log, dictionary)

    def decompressor(self, max_window_log: int, dictionary: bytes | None) -> _Decompressor:
        return _Decompressor(self, max_window_log, dictionary)

    # -- one-shot frames --------------------------------------------------------------------
    def compress_frame(self, data: bytes, level: int = 3) -> bytes:
        """One complete zstd frame (``ZSTD_compress``)."""
        return self._w.z.compress(self._w.to_js(data), level).to_bytes()

    def decompress_frame(self, frame: bytes, max_output: int) -> bytes:
        """The content of complete frame(s) (``ZSTD_decompress``), at most ``max_output`` bytes."""
        z = self._w.z
        try:
            return z.decompress(self._w.to_js(frame), max_output).to_bytes()
        except Exception as exc:  # noqa: BLE001 - a JS Error (JsException) from the glue
            code = getattr(exc, "zstdError", None)
            text = str(exc)
            if code == DST_SIZE_TOO_SMALL or "error 70)" in text:
                raise LimitExceeded(f"zstd frame decompresses to more than {max_output} bytes") from None
            raise CompressionError(f"corrupt zstd frame: {text}") from None

    # -- setup ------------------------------------------------------------------------------
    def _probe(self, dctx: int, content: bytes, reps, blocks: bytes) -> int:
        """Decode ``blocks`` with a dictionary holding ``reps``; return the output size."""
        w = self._w
        header = dictionary_header(EMPTY_TABLES, reps)
        frame = FRAME_MAGIC + bytes((0, (17 - 10) << 3)) + blocks + END_BLOCK
        d = header + content
        dptr = w.malloc(len(d) + len(frame) + 4096)
        try:
            w.write(dptr, d)
            src = dptr + len(d)
            w.write(src, frame)
            dst = src + len(frame)
            r = w.z.decompressUsingDict(dctx, dst, 4096, src, len(frame), dptr, len(d))
            if r < 0:
                raise CompressionBackendUnavailable(f"zstd-js probe: ZSTD_decompress_usingDict failed ({-r})")
            return int(r)
        finally:
            w.free(dptr)

    def _locate_repeat_offsets(self) -> int:
        """Find ``dctx->entropy.rep`` (where libzstd leaves the repeat offsets after a frame)."""
        w = self._w
        dctx = w.z.createDCtx()
        try:
            content = bytes(range(256)) * 16
            a = (3001, 2002, 1003)
            self._probe(dctx, content, a, raw_blocks(b"probe"))
            needle = b"".join(r.to_bytes(4, "little") for r in a)
            hits = list(w.z.find(dctx, 64 * 1024, w.to_js(needle)))
            if len(hits) != 1:
                raise CompressionBackendUnavailable(
                    f"zstd-js: cannot locate the repeat offsets in ZSTD_DCtx ({len(hits)} candidates)"
                )
            off = int(hits[0])
            # a second set of loaded offsets, then offsets set by decoding sequences
            b = (1111, 2222, 3333)
            self._probe(dctx, content, b, raw_blocks(b"probe"))
            got = tuple(w.z.u32(dctx + off + 4 * i) for i in range(3))
            if got != b:
                raise CompressionBackendUnavailable(f"zstd-js: repeat offset probe 2 read {got}, expected {b}")
            frame = self.compress_frame(b"abcdefgh" * 64, 3)
            blocks = strip_frame(frame)
            n = self._probe(dctx, content, REP_START, blocks)
            got = tuple(w.z.u32(dctx + off + 4 * i) for i in range(3))
            if n != 512 or got[0] != 8:
                raise CompressionBackendUnavailable(
                    f"zstd-js: repeat offset probe 3 read {got} after {n} bytes (expected offset 8 first)"
                )
            return off
        finally:
            w.z.freeDCtx(dctx)
