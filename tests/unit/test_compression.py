"""The compression seam: backend selection, the zstd format helpers, stream encoder/decoder.

The real backend is the interpreter's zstd (``compression.zstd``, ``backports.zstd`` below Python
3.14): natively, in Pyodide on node and in the page alike (no marker: missing means failing). The
seam's own tests use a pure-Python stand-in backend.
"""

from __future__ import annotations

import os
import random
import sys
import tracemalloc

import pytest
import zstd_vectors
from fake_zstd import FakeZstd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from darkswap_wasm import compression
from darkswap_wasm.compression import (
    COMPRESSED,
    STORED,
    CompressionBackend,
    CompressionBackendUnavailable,
    CompressionError,
    StreamDecoder,
    StreamEncoder,
    compress_bound,
    is_raw_blocks,
    raw_blocks,
)
from darkswap_wasm.errors import DarkSwapError, DecodeError, LimitExceeded

FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True)
KIB = 1024


# ------------------------------------------------------------------ a pure-Python stand-in backend




# ---------------------------------------------------------------------------------- the seam


@pytest.fixture
def restore_backend():
    saved = (compression._backend, compression._detected)
    yield
    compression._backend, compression._detected = saved


def test_set_backend_installs_and_none_redetects(restore_backend):
    fake = FakeZstd()
    compression.set_backend(fake)
    assert compression.get_backend() is fake
    assert compression.available_backend() is fake
    assert isinstance(fake, CompressionBackend)
    compression.set_backend(None)
    assert compression.available_backend() is not fake


def test_no_backend_is_a_clean_error(restore_backend, monkeypatch):
    compression._backend, compression._detected = None, True
    assert compression.available_backend() is None
    with pytest.raises(CompressionBackendUnavailable) as info:
        compression.get_backend()
    assert isinstance(info.value, DarkSwapError)
    assert info.value.code == "COMPRESSION_BACKEND_UNAVAILABLE"


def test_compression_error_is_a_decode_error():
    assert issubclass(CompressionError, DecodeError)
    assert CompressionError("x").code == "COMPRESSION_ERROR"


def test_the_interpreters_zstd_is_detected(restore_backend):
    compression.set_backend(None)
    backend = compression.get_backend()
    assert backend.name == "zstd"
    assert isinstance(backend, CompressionBackend)
    # the standard library's module where it exists (CPython 3.14, Pyodide 314), the backport below
    assert backend.module == ("compression.zstd" if sys.version_info >= (3, 14) else "backports.zstd")
    assert backend.zstd_version.startswith("1.")


# ------------------------------------------------------------------------ format helpers


def test_compress_bound_matches_zstd_macro():
    # ZSTD_COMPRESSBOUND(srcSize) = srcSize + (srcSize>>8) + ((srcSize < 128K) ? ((128K - srcSize) >> 11) : 0)
    assert compress_bound(0) == 64
    assert compress_bound(1000) == 1000 + 3 + ((131072 - 1000) >> 11)
    assert compress_bound(128 * KIB) == 128 * KIB + 512
    assert compress_bound(4 * 1024 * KIB) == 4 * 1024 * KIB + 16 * KIB


def test_raw_blocks_vectors():
    assert raw_blocks(b"") == b"\x00\x00\x00"
    assert raw_blocks(b"abc") == bytes.fromhex("180000") + b"abc"  # 3 << 3 = 0x18
    big = bytes(range(256)) * 1025  # 262400 bytes: 128 KiB + 128 KiB + 256
    out = raw_blocks(big)
    assert out[:3] == (128 * KIB << 3).to_bytes(3, "little")
    assert len(out) == len(big) + 9
    assert is_raw_blocks(out, len(big))


@given(st.binary(max_size=2000))
@FUZZ
def test_raw_blocks_round_trip_property(data):
    assert is_raw_blocks(raw_blocks(data), len(data))


def test_is_raw_blocks_rejects_anything_else():
    assert not is_raw_blocks(raw_blocks(b"abc"), 4)  # wrong total
    assert not is_raw_blocks(raw_blocks(b"abc")[:-1], 3)  # truncated content
    assert not is_raw_blocks(b"\x18\x00", 3)  # truncated header
    assert not is_raw_blocks(bytes.fromhex("190000") + b"abc", 3)  # Last_Block set
    assert not is_raw_blocks(bytes.fromhex("1a0000") + b"a", 3)  # RLE
    assert not is_raw_blocks(bytes.fromhex("1c0000") + b"abc", 3)  # compressed
    assert not is_raw_blocks(raw_blocks(b"abc") + b"\x00", 3)  # trailing byte


# -------------------------------------------------------------- encoder / decoder (stand-in)


def test_first_output_is_always_compressed_then_stored_or_compressed():
    fake = FakeZstd()
    enc = StreamEncoder(fake.compressor(3, 19, None))
    dec = StreamDecoder(fake.decompressor(23, None))
    kind, body = enc.encode(b"hello")  # header + raw block: bigger, yet it must carry the header
    assert kind == COMPRESSED and len(body) > 5
    assert dec.decode(body, 100) == b"hello"
    kind, body = enc.encode(b"world!")
    assert (kind, body) == (STORED, b"world!")
    dec.append_stored(body)
    kind, body = enc.encode(b"z" * 100)  # RLE: shrinks
    assert kind == COMPRESSED and len(body) == 4
    assert dec.decode(body, 100) == b"z" * 100


def test_stored_before_stream_start_is_rejected():
    dec = StreamDecoder(FakeZstd().decompressor(23, None))
    with pytest.raises(DecodeError):
        dec.append_stored(b"abc")


def test_decoder_output_cap_is_enforced():
    fake = FakeZstd()
    enc = StreamEncoder(fake.compressor(3, 19, None))
    dec = StreamDecoder(fake.decompressor(23, None))
    _, body = enc.encode(b"x" * 10_000)
    with pytest.raises(LimitExceeded):
        dec.decode(body, 9_999)


# ------------------------------------------------------------- the interpreter's zstd (real)


@pytest.fixture
def zstd():
    from darkswap_wasm.compression.zstd_backend import zstd  # compression.zstd / backports.zstd

    return zstd


@pytest.fixture
def native(zstd):
    from darkswap_wasm.compression.zstd_backend import ZstdBackend

    return ZstdBackend()


def _orders(n: int, seed: int = 3) -> list[bytes]:
    rng = random.Random(seed)
    makers = [f"12D3KooW{rng.getrandbits(200):050x}"[:52] for _ in range(20)]
    return [
        (
            f'{{"type":"order","id":"{rng.getrandbits(128):032x}","maker":"{rng.choice(makers)}",'
            f'"side":"{rng.choice(["buy", "sell"])}","pair":"BTC/RUNE:840000:{rng.randint(1, 9)}",'
            f'"amount":"{rng.randint(1, 9999)}","price":"{rng.uniform(1, 5000):.8f}","expiry":{1718000000 + i}}}'
        ).encode()
        for i in range(n)
    ]


def _bomb(zstd, mib: int) -> bytes:
    """One flush of ``mib`` MiB of zeros: a few KiB on the wire (fed in 1 MiB pieces)."""
    comp = zstd.ZstdCompressor(level=3)
    zeros = bytes(1 << 20)
    out = [comp.compress(zeros) for _ in range(mib)]
    return b"".join(out) + comp.flush(zstd.ZstdCompressor.FLUSH_BLOCK)


def test_streaming_context_carries_across_frames(zstd, native):
    enc = StreamEncoder(native.compressor(3, 19, None))
    dec = StreamDecoder(native.decompressor(23, None))
    orders = _orders(200)
    sizes = []
    for order in orders:
        kind, body = enc.encode(order)
        assert kind == COMPRESSED
        assert dec.decode(body, 1 << 20) == order
        sizes.append(len(body))
    independent = [len(zstd.compress(o, level=3)) for o in orders]
    # later frames reference earlier ones: much smaller than the first and than one-shot zstd
    assert sum(sizes[100:]) / 100 < 0.6 * sizes[0]
    assert sum(sizes[100:]) < 0.6 * sum(independent[100:])
    # a repeat of an earlier payload costs a few bytes only
    kind, body = enc.encode(orders[50])
    assert kind == COMPRESSED and len(body) < 16
    assert dec.decode(body, 1 << 20) == orders[50]


def test_frames_are_bare_flushes_of_one_open_frame(zstd, native):
    """No checksum, content size or dictionary id in the header; no flush ends the frame."""
    comp = native.compressor(3, 19, b"".join(_orders(20)))
    first = comp.compress_flush(b"hello")
    assert first[:4] == b"\x28\xb5\x2f\xfd"
    descriptor = first[4]
    assert descriptor & 0x04 == 0 and descriptor & 0x03 == 0 and descriptor >> 6 == 0  # checksum, dict id, FCS
    dec = zstd.ZstdDecompressor(zstd_dict=zstd.ZstdDict(b"".join(_orders(20)), is_raw=True))
    assert dec.decompress(first + comp.compress_flush(b" world")) == b"hello world"
    assert not dec.eof and dec.needs_input


def test_incompressible_frames_go_stored_and_stay_in_sync(zstd, native):
    enc = StreamEncoder(native.compressor(3, 19, None))
    dec = StreamDecoder(native.decompressor(23, None))
    plain = StreamDecoder(native.decompressor(23, None))  # fed the real compressor output throughout
    first = b'{"hello": "world"}' * 4
    kind, body = enc.encode(first)
    assert dec.decode(body, 1 << 20) == first and plain.decode(body, 1 << 20) == first
    blob = os.urandom(300 * KIB)  # > 128 KiB: several synthetic raw blocks
    kind, body = enc.encode(blob)
    assert (kind, body) == (STORED, blob)
    dec.append_stored(body)
    plain.decode(raw_blocks(blob), len(blob))  # what the compressor really emitted, block sizes aside
    # the next frame references the stored bytes: it is tiny and decodes on the mirrored context
    again = blob[1000:200_000] + first
    kind, body = enc.encode(again)
    assert kind == COMPRESSED and len(body) < 100
    assert dec.decode(body, 1 << 20) == again
    assert plain.decode(body, 1 << 20) == again


def test_stored_choice_matches_the_compressor_output(native):
    """STORED is chosen exactly when the flush produced raw blocks only, and the STORED payload
    is the content of those blocks."""
    comp = native.compressor(3, 19, None)
    comp.compress_flush(b"start")
    rng = random.Random(5)
    raw_seen = 0
    for _ in range(50):
        data = rng.randbytes(rng.randint(1, 3000))
        out = comp.compress_flush(data)
        if is_raw_blocks(out, len(data)):
            raw_seen += 1
            pos, content = 0, b""
            while pos < len(out):
                size = int.from_bytes(out[pos : pos + 3], "little") >> 3
                content += out[pos + 3 : pos + 3 + size]
                pos += 3 + size
            assert content == data
    assert raw_seen > 10  # random bytes: zstd emits raw blocks for most of them


def test_large_frames_come_back_whole(zstd, native):
    """A flush whose output is far larger than any internal output chunk decodes whole, at a cap
    of exactly its size."""
    enc = StreamEncoder(native.compressor(3, 19, None))
    dec = StreamDecoder(native.decompressor(23, None))
    rng = random.Random(9)
    for size in (10, 70 * KIB, 1024 * KIB, 3 * 1024 * KIB):
        data = b"".join(_orders(size // 200 + 1, seed=rng.randint(0, 99)))[:size]
        kind, body = enc.encode(data)
        if kind == STORED:
            dec.append_stored(body)
        else:
            assert dec.decode(body, len(data)) == data


def test_zip_bomb_is_rejected_with_a_hard_cap_and_bounded_memory(zstd, native):
    bomb = _bomb(zstd, 64)
    assert len(bomb) < 8 * KIB
    dec = native.decompressor(23, None)
    tracemalloc.start()
    try:
        with pytest.raises(LimitExceeded):
            dec.decompress(bomb, 1024 * KIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * KIB  # never the 64 MiB: output stops one byte past the cap
    with pytest.raises(CompressionError):  # the context is unusable after the refusal
        dec.decompress(b"", 10)


def test_output_exactly_at_the_cap_passes_one_byte_more_fails(zstd, native):
    data = b"".join(_orders(300))
    for cap, ok in ((len(data), True), (len(data) - 1, False)):
        body = native.compressor(3, 19, None).compress_flush(data)
        dec = native.decompressor(23, None)
        if ok:
            assert dec.decompress(body, cap) == data
        else:
            with pytest.raises(LimitExceeded):
                dec.decompress(body, cap)


def test_corrupt_input_and_oversized_window_are_compression_errors(zstd, native):
    with pytest.raises(CompressionError):
        native.decompressor(23, None).decompress(b"\x28\xb5\x2f\xfd" + os.urandom(64), 1 << 20)
    big_window = native.compressor(3, 25, None)
    body = big_window.compress_flush(os.urandom(64))
    with pytest.raises(CompressionError):
        native.decompressor(20, None).decompress(body, 1 << 20)


def test_a_failed_context_stays_failed(native):
    dec = native.decompressor(23, None)
    with pytest.raises(CompressionError):
        dec.decompress(b"\x28\xb5\x2f\xfd\x00\x48" + b"\x06\x00\x00", 1 << 20)  # reserved block type
    good = native.compressor(3, 19, None).compress_flush(b"fine")
    with pytest.raises(CompressionError):
        dec.decompress(good, 1 << 20)  # never silently resynchronised on a fresh frame


def test_a_closed_frame_ends_the_context(zstd, native):
    """Our peers never end the frame; one that does may not send anything after it."""
    frame = zstd.compress(b"the end", level=3)
    dec = native.decompressor(23, None)
    assert dec.decompress(frame, 100) == b"the end"
    with pytest.raises(CompressionError):
        dec.decompress(b"more", 100)
    with pytest.raises(CompressionError):
        native.decompressor(23, None).decompress(frame + b"trailing", 100)


def test_setup_errors_are_compression_errors(native):
    with pytest.raises(CompressionError):
        native.compressor(3, 40, None)  # no such window
    with pytest.raises(CompressionError):
        native.decompressor(99, None)


def test_dictionaries_help_and_must_match(zstd, native):
    train = _orders(2000, seed=11)
    trained = zstd.train_dict(train, 8 * KIB).dict_content
    orders = _orders(20, seed=12)
    with_dict = native.compressor(3, 19, trained)
    without = native.compressor(3, 19, None)
    a = with_dict.compress_flush(orders[0])
    b = without.compress_flush(orders[0])
    assert len(a) < 0.7 * len(b)
    assert native.decompressor(23, trained).decompress(a, 1 << 20) == orders[0]
    # raw-content dictionaries work too (ZSTD_dct_auto)
    raw_dict = b"".join(train[:50])
    c = native.compressor(3, 19, raw_dict).compress_flush(orders[0])
    assert len(c) < 0.7 * len(b)
    assert native.decompressor(23, raw_dict).decompress(c, 1 << 20) == orders[0]
    with pytest.raises(CompressionError):
        native.decompressor(23, None).decompress(a, 1 << 20)


@pytest.mark.parametrize("name", ["none", "raw", "trained"])
def test_streams_recorded_from_python_zstandard_decode(native, name):
    """Wire compatibility with peers on the previous backend (python-zstandard 0.25)."""
    import hashlib

    window_log, frames = getattr(zstd_vectors, f"STREAM_{name.upper()}")
    dictionary = {"none": None, "raw": zstd_vectors.RAW_DICT, "trained": zstd_vectors.TRAINED_DICT}[name]
    payloads = zstd_vectors.payloads()
    assert [hashlib.sha256(p).hexdigest() for p in payloads] == [f[2] for f in frames]  # generator intact
    dec = StreamDecoder(native.decompressor(window_log, dictionary))
    kinds = []
    for (kind, body, _), payload in zip(frames, payloads, strict=True):
        kinds.append(kind)
        if kind == COMPRESSED:
            assert dec.decode(bytes.fromhex(body), len(payload)) == payload
        else:
            dec.append_stored(payload)
    assert kinds.count(STORED) == 1
    # and our encoder over the same payloads: the same frame kinds, as small (within a few bytes)
    enc = StreamEncoder(native.compressor(3, window_log, dictionary))
    ours = [enc.encode(p) for p in payloads]
    assert [k for k, _ in ours] == kinds
    recorded = sum(len(b) // 2 if k == COMPRESSED else len(p) for (k, b, _), p in zip(frames, payloads, strict=True))
    assert abs(sum(len(b) for _, b in ours) - recorded) < 0.05 * recorded


@given(data=st.binary(max_size=300))
@settings(FUZZ, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_fuzz_decompressor_raises_only_darkswap_errors(native, data):
    dec = StreamDecoder(native.decompressor(20, None))
    try:
        dec.decode(b"\x28\xb5\x2f\xfd\x00\x48" + data, 64 * KIB)
        dec.append_stored(data)
        dec.decode(data, 64 * KIB)
    except DarkSwapError:
        pass
