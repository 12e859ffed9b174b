"""zstd natively (python-zstandard) and in the page (``@bokuweb/zstd-wasm`` through
``darkswap_wasm.compression.zstd_js``): the same bytes, both ways.

* one-shot frames made natively decode in the page and vice versa;
* streaming contexts (one open frame, a flush per message — what the messaging session uses):
  native streams decode in the page, the page's streams decode natively, with and without
  dictionaries (trained zstd dictionaries and raw content), windows of 128 and 512 KiB, stored
  (raw-block) frames in between; the page's output is about as small as native;
* the page's decoder refuses what the native one refuses (corrupt data, a zip bomb past the cap,
  a window above the limit, the wrong dictionary) with the same errors, and random input only
  ever raises ``DarkSwapError``;
* a DarkSwap messaging session in the page talks to a native one with compression on, both ways.

The format helpers of zstd_js (FSE table descriptions, block scanning, frame stripping) are also
checked natively against python-zstandard's output, without a browser.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import threading
import time

import pytest
import zstandard

from darkswap_wasm.compression import COMPRESSED, StreamDecoder, StreamEncoder
from darkswap_wasm.compression import zstd_js as zj
from darkswap_wasm.compression.zstd_backend import ZstdBackend

from .conftest import report

KIB = 1024
MIB = 1024 * KIB
PAGE_DIR = "/home/pyodide/dsw_zstd"

# Runs natively (exec) and in the page (as module zvec): the same payloads on both sides from a
# seed, using only random.Random.getrandbits/randbytes (stable across Python versions).
ZVEC = r'''
import json
import random


def _pick(rng, seq):
    return seq[rng.getrandbits(16) % len(seq)]


def orders(n, seed=3):
    rng = random.Random(seed)
    makers = ["12D3KooW" + rng.randbytes(22).hex()[:44] for _ in range(20)]
    out = []
    for i in range(n):
        out.append(json.dumps({
            "type": "order", "id": rng.randbytes(16).hex(), "maker": _pick(rng, makers),
            "side": _pick(rng, ["buy", "sell"]), "pair": "BTC/RUNE:840000:%d" % (1 + rng.getrandbits(3)),
            "amount": str(1 + rng.getrandbits(13)), "price": "%d.%08d" % (rng.getrandbits(12), rng.getrandbits(26)),
            "expiry": 1718000000 + i}, separators=(",", ":")).encode())
    return out


def payloads(seed, n=160):
    """Orders in batches, incompressible blobs, long runs, repeats of older content (some near the
    128 KiB window edge), and literals of the two symbols of zstd_js's stand-in Huffman table."""
    rng = random.Random(seed)
    pool = orders(400, seed + 1)
    blobs = [rng.randbytes(10 + rng.getrandbits(16)) for _ in range(8)]
    out, hist = [], b""
    for _ in range(n):
        k = rng.getrandbits(8)
        if k < 90:
            p = b"".join(_pick(rng, pool) for _ in range(1 + rng.getrandbits(5)))
        elif k < 120:
            p = _pick(rng, blobs)
        elif k < 150 and len(hist) > 1000:
            back = 100000 + rng.getrandbits(15)
            start = max(0, len(hist) - back)
            p = hist[start:start + 20 + rng.getrandbits(12)] + _pick(rng, pool)
        elif k < 175:
            p = bytes([rng.getrandbits(2)]) * (1 + rng.getrandbits(17))
        elif k < 200:
            p = bytes(_pick(rng, [0, 128]) for _ in range(8 + rng.getrandbits(8)))
        else:
            p = rng.randbytes(1 + rng.getrandbits(9))
        out.append(p)
        hist = (hist + p)[-400000:]
    return out
'''

_ns: dict = {}
exec(compile(ZVEC, "zvec", "exec"), _ns)  # noqa: S102 - our own source, shared with the page
orders = _ns["orders"]
payloads = _ns["payloads"]

LOAD_ZSTD_JS = """
const [baseUrl, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  const t0 = performance.now();
  const mod = await import(baseUrl + "js_glue/zstd.js");
  window.__dsw_zstd = await mod.zstdReady();
  return String(performance.now() - t0);
})().then((v) => done({ ok: true, value: v }), (e) => done({ ok: false, error: String((e && e.stack) || e) }));
"""

PAGE_SETUP = f"""
import sys, js
sys.path.insert(0, {PAGE_DIR!r})
import zvec
from darkswap_wasm.compression import set_backend, get_backend
from darkswap_wasm.compression.zstd_js import ZstdJsBackend
set_backend(ZstdJsBackend(js.__dsw_zstd))
repr(get_backend())
"""


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def unb64(s: str) -> bytes:
    return base64.b64decode(s)


def native_stream(chunks, level=3, window_log=19, dictionary=None) -> list[bytes]:
    params = zstandard.ZstdCompressionParameters.from_level(
        level, window_log=window_log, write_checksum=0, write_content_size=0, write_dict_id=0
    )
    d = zstandard.ZstdCompressionDict(dictionary) if dictionary else None
    c = zstandard.ZstdCompressor(compression_params=params, dict_data=d).compressobj()
    return [c.compress(x) + c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK) for x in chunks]


@pytest.fixture(scope="module")
def dictionaries() -> dict:
    trained = zstandard.train_dictionary(8 * KIB, orders(2000, seed=11)).as_bytes()
    return {"none": None, "trained": trained, "raw": b"".join(orders(60, seed=12))}


@pytest.fixture(scope="module")
def zpage(page, dictionaries):
    """The session's booted page with the zstd wasm loaded and ZstdJsBackend installed."""
    ms = float(page._call(LOAD_ZSTD_JS, page.server.base_url))
    page.write_file(f"{PAGE_DIR}/zvec.py", ZVEC)
    for name, d in dictionaries.items():
        if d is not None:
            page.write_file(f"{PAGE_DIR}/dict_{name}.b64", b64(d))
    t0 = time.perf_counter()
    backend = page.run_py(PAGE_SETUP)
    report(
        f"zstd wasm loaded in {ms:.0f} ms; {backend} created in "
        f"{(time.perf_counter() - t0) * 1000:.0f} ms (incl. the call)"
    )
    assert backend.startswith("<ZstdJsBackend"), backend
    yield page
    page.run_py("from darkswap_wasm.compression import set_backend\nset_backend(None)\n'restored'")


def _page_dict(name: str) -> str:
    return (
        "None" if name == "none" else f"__import__('base64').b64decode(open({PAGE_DIR!r} + '/dict_{name}.b64').read())"
    )


# --------------------------------------------------------------------------- natively: format helpers


def test_ncount_parser_and_writer_match_libzstd_on_real_streams():
    chunks = native_stream(payloads(5, 120), level=3)
    pos = zj.parse_frame_header(chunks[0])[0]
    tables, seen = zj.EMPTY_TABLES, 0
    for c in chunks:
        scan = zj.scan_blocks(c, pos, tables)
        assert scan.end == len(c) and not scan.last
        pos, tables = 0, scan.tables
        for name, spec in (("ll", zj.LL), ("of", zj.OF), ("ml", zj.ML)):
            mode, desc = getattr(tables, name)
            if mode == "fse":
                stop, counts, log = zj.read_ncount(desc, 0, *spec)
                assert stop == len(desc)
                assert zj.write_ncount(counts, log) == desc  # byte-identical to FSE_writeNCount
                seen += 1
    assert seen > 20
    assert zj.read_ncount(zj.DUMMY_FSE, 0, 35, 9)[1:] == ([32], 5)


def test_dictionary_parsing_and_frame_stripping(dictionaries):
    tables, reps, content, dict_id = zj.parse_dictionary(dictionaries["trained"])
    assert dict_id == zstandard.ZstdCompressionDict(dictionaries["trained"]).dict_id()
    assert tables.ll[0] == tables.of[0] == tables.ml[0] == "fse" and tables.huf
    assert all(0 < r <= len(content) for r in reps)
    assert zj.parse_dictionary(dictionaries["raw"])[2] == dictionaries["raw"]
    frame = zstandard.ZstdCompressor(level=3).compress(b"hello hello hello hello" * 50)
    blocks = zj.strip_frame(frame)
    assert not zj.scan_blocks(blocks, 0, zj.EMPTY_TABLES).last  # the last-block flag is cleared
    with pytest.raises(zj.CompressionError):
        zj.scan_blocks(b"\x06\x00\x00", 0, zj.EMPTY_TABLES)  # reserved block type


# --------------------------------------------------------------------------- in the page


def test_one_shot_frames_decode_both_ways(zpage):
    data = payloads(21, 40)
    native_frames = [
        zstandard.ZstdCompressor(level=lv).compress(p) for lv, p in zip([1, 3, 9, 19] * 10, data, strict=True)
    ]
    zpage.write_file(f"{PAGE_DIR}/oneshot.json", json.dumps([b64(f) for f in native_frames]))
    out = json.loads(
        zpage.run_py(f"""
import json, base64, zvec
from darkswap_wasm.compression import get_backend
b = get_backend()
frames = [base64.b64decode(f) for f in json.load(open({PAGE_DIR!r} + "/oneshot.json"))]
data = zvec.payloads(21, 40)
ok = [b.decompress_frame(f, len(p) + 1) == p for f, p in zip(frames, data)]
mine = [base64.b64encode(b.compress_frame(p, 3)).decode() for p in data]
json.dumps({{"ok": ok, "mine": mine}})
""")
    )
    assert all(out["ok"])
    dctx = zstandard.ZstdDecompressor()
    for f, p in zip(out["mine"], data, strict=True):
        assert dctx.decompress(unb64(f), max_output_size=len(p) + 1) == p


@pytest.mark.parametrize(
    ("level", "dname"), [(1, "none"), (3, "none"), (19, "none"), (1, "trained"), (3, "trained"), (3, "raw")]
)
def test_native_streams_decode_in_the_page(zpage, dictionaries, level, dname):
    data = payloads(31 + level, 120)
    chunks = native_stream(data, level=level, window_log=17 if level == 1 else 19, dictionary=dictionaries[dname])
    zpage.write_file(f"{PAGE_DIR}/stream.json", json.dumps([b64(c) for c in chunks]))
    res = json.loads(
        zpage.run_py(f"""
import json, base64, time, zvec
from darkswap_wasm.compression import get_backend
chunks = [base64.b64decode(c) for c in json.load(open({PAGE_DIR!r} + "/stream.json"))]
data = zvec.payloads({31 + level}, 120)
d = get_backend().decompressor(23, {_page_dict(dname)})
t0 = time.perf_counter()
bad = [i for i, (c, p) in enumerate(zip(chunks, data)) if d.decompress(c, 4 << 20) != p]
json.dumps({{"bad": bad, "ms": round((time.perf_counter() - t0) * 1000, 1)}})
""")
    )
    assert res["bad"] == [], res
    total = sum(map(len, data))
    report(f"page decodes a native stream (level {level}, dict {dname}): {total / 1e6:.2f} MB in {res['ms']} ms")


@pytest.mark.parametrize("window_log", [17, 19])
@pytest.mark.parametrize("dname", ["none", "trained", "raw"])
def test_page_streams_decode_natively_through_the_stream_encoder(zpage, dictionaries, window_log, dname):
    """StreamEncoder in the page (COMPRESSED and STORED frames), StreamDecoder natively; and the
    native encoder's frames through the page's StreamDecoder."""
    seed = 40 + window_log
    data = payloads(seed, 160)
    enc = StreamEncoder(ZstdBackend().compressor(3, window_log, dictionaries[dname]))
    native_frames = [enc.encode(p) for p in data]
    zpage.write_file(f"{PAGE_DIR}/frames.json", json.dumps([[k, b64(b)] for k, b in native_frames]))
    res = json.loads(
        zpage.run_py(f"""
import json, base64, time, zvec
from darkswap_wasm.compression import COMPRESSED, StreamDecoder, StreamEncoder, get_backend
data = zvec.payloads({seed}, 160)
b = get_backend()
dec = StreamDecoder(b.decompressor(23, {_page_dict(dname)}))
bad = []
for i, (k, body) in enumerate(json.load(open({PAGE_DIR!r} + "/frames.json"))):
    body = base64.b64decode(body)
    if k == COMPRESSED:
        if dec.decode(body, 4 << 20) != data[i]: bad.append(i)
    else:
        dec.append_stored(body)
comp = b.compressor(3, {window_log}, {_page_dict(dname)})
enc = StreamEncoder(comp)
t0 = time.perf_counter()
frames = [enc.encode(p) for p in data]
ms = (time.perf_counter() - t0) * 1000
json.dumps({{"bad": bad, "frames": [[k, base64.b64encode(x).decode()] for k, x in frames], "ms": round(ms, 1),
             "stats": comp.stats}})
""")
    )
    assert res["bad"] == []
    dec = StreamDecoder(ZstdBackend().decompressor(23, dictionaries[dname]))
    page_bytes = 0
    for i, (k, body) in enumerate(res["frames"]):
        body = unb64(body)
        page_bytes += len(body)
        if k == COMPRESSED:
            assert dec.decode(body, 4 * MIB) == data[i], i
        else:
            assert body == data[i]
            dec.append_stored(body)
    native_bytes = sum(len(b) for _k, b in native_frames)
    total = sum(map(len, data))
    report(
        f"page StreamEncoder (window 2^{window_log}, dict {dname}): {total / 1e6:.2f} MB -> {page_bytes / 1e6:.3f} MB "
        f"in {res['ms']} ms (native {native_bytes / 1e6:.3f} MB); {res['stats']}"
    )
    assert page_bytes <= native_bytes * 1.05 + 1024
    assert res["stats"]["raw_fallbacks"] <= 2


def test_streaming_context_carries_across_messages_in_the_page(zpage):
    """The point of a streaming context: later small messages reference earlier ones."""
    res = json.loads(
        zpage.run_py("""
import json, zvec
from darkswap_wasm.compression import COMPRESSED, StreamDecoder, StreamEncoder, get_backend
b = get_backend()
enc, dec = StreamEncoder(b.compressor(3, 19, None)), StreamDecoder(b.decompressor(23, None))
sizes, ok = [], True
os_ = zvec.orders(200)
for o in os_:
    k, body = enc.encode(o)
    ok = ok and k == COMPRESSED and dec.decode(body, 1 << 20) == o
    sizes.append(len(body))
k, again = enc.encode(os_[50])
json.dumps({"ok": ok, "first": sizes[0], "late": sum(sizes[100:]) / 100, "plain": sum(map(len, os_[100:])) / 100,
            "again": len(again), "again_ok": dec.decode(again, 1 << 20) == os_[50]})
""")
    )
    assert res["ok"] and res["again_ok"]
    assert res["late"] < 0.6 * res["first"] and res["late"] < 0.6 * res["plain"]
    assert res["again"] < 16
    report(
        f"streaming in the page: order {res['plain']:.0f} B -> {res['late']:.0f} B on the wire after 100 "
        f"(repeat: {res['again']} B)"
    )


def test_page_decoder_refuses_what_the_native_one_refuses(zpage, dictionaries):
    comp = zstandard.ZstdCompressor(level=3).compressobj()
    bomb = comp.compress(bytes(64 * MIB)) + comp.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)
    big_window = native_stream([os.urandom(64)], window_log=25)[0]
    with_dict = native_stream([orders(1)[0]], dictionary=dictionaries["trained"])[0]
    zpage.write_file(
        f"{PAGE_DIR}/bad.json", json.dumps({"bomb": b64(bomb), "big": b64(big_window), "dict": b64(with_dict)})
    )
    res = json.loads(
        zpage.run_py(f"""
import json, base64, os
from darkswap_wasm.compression import get_backend
from darkswap_wasm.errors import DarkSwapError
v = {{k: base64.b64decode(x) for k, x in json.load(open({PAGE_DIR!r} + "/bad.json")).items()}}
b = get_backend()
def err(f):
    try:
        f()
    except DarkSwapError as e:
        return [type(e).__name__, e.code]
    except Exception as e:
        return ["NOT A DarkSwapError", repr(e)]
    return None
d = b.decompressor(23, None)
out = {{
    "bomb": err(lambda: b.decompressor(23, None).decompress(v["bomb"], 1 << 20)),
    "corrupt": err(lambda: b.decompressor(23, None).decompress(b"\\x28\\xb5\\x2f\\xfd" + os.urandom(64), 1 << 20)),
    "window": err(lambda: b.decompressor(20, None).decompress(v["big"], 1 << 20)),
    "no_dict": err(lambda: b.decompressor(23, None).decompress(v["dict"], 1 << 20)),
    "with_dict": b.decompressor(23, {_page_dict("trained")}).decompress(v["dict"], 1 << 20).decode()[:9],
}}
d = b.decompressor(23, None)
err(lambda: d.decompress(b"\\x28\\xb5\\x2f\\xfd" + os.urandom(64), 1 << 20))
out["after_error"] = err(lambda: d.decompress(b"", 10))
json.dumps(out)
""")
    )
    assert res["bomb"] == ["LimitExceeded", "LIMIT_EXCEEDED"]
    assert res["corrupt"][1] == "COMPRESSION_ERROR" and res["window"][1] == "COMPRESSION_ERROR"
    assert res["no_dict"] is not None and res["no_dict"][0] != "NOT A DarkSwapError"
    assert res["with_dict"] == '{"type":"'
    assert res["after_error"][1] == "COMPRESSION_ERROR"


def test_fuzz_page_decoder_raises_only_darkswap_errors(zpage):
    zpage.load_packages(["hypothesis"])
    res = json.loads(
        zpage.run_py("""
import json
from hypothesis import given, settings, strategies as st, HealthCheck
from darkswap_wasm.compression import StreamDecoder, get_backend
from darkswap_wasm.errors import DarkSwapError
b = get_backend()
bad = []
@settings(max_examples=300, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=400), wl=st.integers(0, 7))
def fuzz(data, wl):
    dec = StreamDecoder(b.decompressor(20, None))
    try:
        dec.decode(b"\\x28\\xb5\\x2f\\xfd\\x00" + bytes([wl << 3]) + data, 64 * 1024)
        dec.append_stored(data)
        dec.decode(data, 64 * 1024)
    except DarkSwapError:
        pass
    except Exception as e:
        bad.append(repr(e))
fuzz()
json.dumps({"bad": bad[:5]})
""")
    )
    assert res["bad"] == []


# --------------------------------------------------------------------------- messaging, page <-> native


class NativeNode:
    """A native Network in a thread of its own (its own event loop), listening on /ws."""

    def __init__(self) -> None:
        from darkswap_wasm import Network, NetworkConfig

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.net = self.run(Network.create(NetworkConfig(listen_addrs=["/ip4/127.0.0.1/tcp/0/ws"], webrtc=None)))
        self.net.on("peer:connect", lambda p: asyncio.ensure_future(self._echo(p)))
        self.echoed = 0

    async def _echo(self, peer) -> None:
        from darkswap_wasm.errors import DarkSwapError

        try:
            while True:
                data = await self.net.receive_message(peer)
                await self.net.send_message(peer, data)
                self.echoed += 1
        except DarkSwapError:
            return

    def run(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def addr(self) -> str:
        return str(self.net.listen_addrs()[0])

    def close(self) -> None:
        try:
            self.run(self.net.close(), 20)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def test_messaging_session_page_to_native_with_compression(zpage):
    node = NativeNode()
    try:
        res = json.loads(
            zpage.run_py(f"""
import json, time, js, zvec
from darkswap_wasm.api.network import Network, NetworkConfig
from darkswap_wasm.transports.browser_ws import BrowserWebSocketTransport
net = await Network.create(
    NetworkConfig(transports=[BrowserWebSocketTransport(js.WebSocket)], webrtc=None, monitor=None))
try:
    peer = await net.connect({node.addr!r})
    os_ = zvec.orders(600, seed=77) + [zvec.payloads(9, 20)[7]]
    t0 = time.perf_counter()
    for o in os_:
        seq = await net.send_message(peer, o)
    got = [await net.receive_message(peer, timeout=60) for _ in os_]
    ms = (time.perf_counter() - t0) * 1000
    s = net._messaging.session(peer)
    st = s.stats
    out = {{"ok": got == os_, "ms": round(ms, 1), "compressing": s.compressing, "frames_out": st.frames_out,
           "zstd_out": st.compressed_frames_out, "payload_out": st.payload_bytes_out, "wire_out": st.wire_bytes_out,
           "payload_in": st.payload_bytes_in, "wire_in": st.wire_bytes_in, "n": len(os_)}}
finally:
    await net.close()
json.dumps(out)
""")
        )
        peer_sessions = [node.net._messaging.session(p) for p in list(node.net._messaging._peers)]
        native = next(s for s in peer_sessions if s is not None and s.stats.messages_in)
        nst = native.stats
    finally:
        node.close()
    assert res["ok"], res
    # zstd both ways (the native session's transport is gone once the page closed: count its frames)
    assert res["compressing"] and res["zstd_out"] > 0
    assert nst.compressed_frames_out > 0 and nst.messages_out == res["n"]
    ratio_out = res["wire_out"] / res["payload_out"]
    ratio_in = res["wire_in"] / res["payload_in"]
    report(
        f"messaging page <-> native, zstd both ways: {res['n']} messages ({res['payload_out'] / 1e6:.2f} MB) "
        "there and back "
        f"in {res['ms']:.0f} ms; wire/payload page->native {ratio_out:.2f}, native->page {ratio_in:.2f}"
    )
    assert ratio_out < 0.6 and ratio_in < 0.6
