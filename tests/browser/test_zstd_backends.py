"""zstd natively and in the page: the same module on two builds of libzstd, the same bytes both ways.

Natively the backend (``darkswap_wasm.compression.zstd_backend``) runs on ``backports.zstd``
(CPython < 3.14) or ``compression.zstd``; in the page on Pyodide 314's own ``compression.zstd``
(libzstd inside ``pyodide.asm.wasm``). These tests prove that the bytes each side writes decode
on the other:

* one-shot frames made natively decode in the page and vice versa (levels 1 to 19);
* streaming contexts (one open frame, a flush per message — what the messaging session uses):
  native streams decode in the page and the page's streams decode natively, through
  ``StreamEncoder``/``StreamDecoder`` (COMPRESSED and STORED frames), with and without
  dictionaries (a trained zstd dictionary and raw content), windows of 128 and 512 KiB; the
  page's output is as small as native;
* the page's decoder refuses what the native one refuses (corrupt data, a zip bomb past the cap,
  a window above the limit, the wrong dictionary) with the same errors;
* a DarkSwap messaging session in the page talks to a native one with compression on, both ways.

The rest of the backend's behaviour is ``tests/unit/test_compression.py``, which also runs in the
page (``test_unit_in_chromium.py``) and in Pyodide on node.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import threading

import pytest

from darkswap_wasm.compression import COMPRESSED, StreamDecoder, StreamEncoder
from darkswap_wasm.compression.zstd_backend import ZstdBackend, zstd

from .conftest import report

KIB = 1024
MIB = 1024 * KIB
PAGE_DIR = "/home/pyodide/dsw_zstd"
NATIVE = ZstdBackend()

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
    128 KiB window edge), and literals of two symbols only."""
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


PAGE_SETUP = f"""
import sys, json
sys.path.insert(0, {PAGE_DIR!r})
import zvec
from darkswap_wasm.compression import get_backend
b = get_backend()
json.dumps({{"repr": repr(b), "name": b.name, "module": b.module, "version": b.zstd_version,
            "python": sys.version.split()[0], "platform": sys.platform}})
"""


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def unb64(s: str) -> bytes:
    return base64.b64decode(s)


def native_stream(chunks, level=3, window_log=19, dictionary=None) -> list[bytes]:
    """One flush per chunk of one open frame, as the session's StreamEncoder sends COMPRESSED."""
    c = NATIVE.compressor(level, window_log, dictionary)
    return [c.compress_flush(x) for x in chunks]


@pytest.fixture(scope="module")
def dictionaries() -> dict:
    trained = zstd.train_dict(orders(2000, seed=11), 8 * KIB).dict_content
    return {"none": None, "trained": trained, "raw": b"".join(orders(60, seed=12))}


@pytest.fixture(scope="module")
def zpage(page, dictionaries):
    """The session's booted page, its zstd backend detected (Pyodide's compression.zstd)."""
    page.write_file(f"{PAGE_DIR}/zvec.py", ZVEC)
    for name, d in dictionaries.items():
        if d is not None:
            page.write_file(f"{PAGE_DIR}/dict_{name}.b64", b64(d))
    info = json.loads(page.run_py(PAGE_SETUP))
    native_py = sys.version.split()[0]
    report(f"page zstd: {info['repr']} on Python {info['python']}; native: {NATIVE!r} on Python {native_py}")
    assert info["platform"] == "emscripten" and info["python"].startswith("3.14")
    assert info["name"] == "zstd" and info["module"] == "compression.zstd", info  # the interpreter's own
    return page


def _page_dict(name: str) -> str:
    return (
        "None" if name == "none" else f"__import__('base64').b64decode(open({PAGE_DIR!r} + '/dict_{name}.b64').read())"
    )


# --------------------------------------------------------------------------- in the page


def test_one_shot_frames_decode_both_ways(zpage):
    data = payloads(21, 40)
    levels = [1, 3, 9, 19] * 10
    native_frames = [zstd.compress(p, level=lv) for lv, p in zip(levels, data, strict=True)]
    zpage.write_file(f"{PAGE_DIR}/oneshot.json", json.dumps([b64(f) for f in native_frames]))
    out = json.loads(
        zpage.run_py(f"""
import json, base64, zvec
from compression import zstd
frames = [base64.b64decode(f) for f in json.load(open({PAGE_DIR!r} + "/oneshot.json"))]
data = zvec.payloads(21, 40)
ok = [zstd.decompress(f) == p for f, p in zip(frames, data)]
mine = [base64.b64encode(zstd.compress(p, level=lv)).decode() for lv, p in zip({levels!r}, data)]
json.dumps({{"ok": ok, "mine": mine}})
""")
    )
    assert all(out["ok"])
    for f, p in zip(out["mine"], data, strict=True):
        assert zstd.decompress(unb64(f)) == p


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
    enc = StreamEncoder(NATIVE.compressor(3, window_log, dictionaries[dname]))
    native_frames = [enc.encode(p) for p in data]
    assert {k for k, _ in native_frames} == {1, 2}  # COMPRESSED and STORED both exercised
    zpage.write_file(f"{PAGE_DIR}/frames.json", json.dumps([[k, b64(b)] for k, b in native_frames]))
    res = json.loads(
        zpage.run_py(f"""
import json, base64, time, zvec
from darkswap_wasm.compression import COMPRESSED, StreamDecoder, StreamEncoder, get_backend
data = zvec.payloads({seed}, 160)
b = get_backend()
dec = StreamDecoder(b.decompressor(23, {_page_dict(dname)}))
bad = []
t0 = time.perf_counter()
for i, (k, body) in enumerate(json.load(open({PAGE_DIR!r} + "/frames.json"))):
    body = base64.b64decode(body)
    if k == COMPRESSED:
        if dec.decode(body, 4 << 20) != data[i]: bad.append(i)
    else:
        dec.append_stored(body)
dec_ms = (time.perf_counter() - t0) * 1000
enc = StreamEncoder(b.compressor(3, {window_log}, {_page_dict(dname)}))
t0 = time.perf_counter()
frames = [enc.encode(p) for p in data]
ms = (time.perf_counter() - t0) * 1000
json.dumps({{"bad": bad, "frames": [[k, base64.b64encode(x).decode()] for k, x in frames], "ms": round(ms, 1),
             "dec_ms": round(dec_ms, 1)}})
""")
    )
    assert res["bad"] == []
    dec = StreamDecoder(NATIVE.decompressor(23, dictionaries[dname]))
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
        f"in {res['ms']} ms, decoded the native stream in {res['dec_ms']} ms (native {native_bytes / 1e6:.3f} MB)"
    )
    assert page_bytes <= native_bytes * 1.02 + 256


def test_streaming_context_carries_across_messages_in_the_page(zpage):
    """The point of a streaming context: later small messages reference earlier ones."""
    res = json.loads(
        zpage.run_py("""
import json, time, zvec
from darkswap_wasm.compression import COMPRESSED, StreamDecoder, StreamEncoder, get_backend
b = get_backend()
enc, dec = StreamEncoder(b.compressor(3, 19, None)), StreamDecoder(b.decompressor(23, None))
sizes, ok = [], True
os_ = zvec.orders(2000)
bodies = []
t0 = time.perf_counter()
for o in os_:
    k, body = enc.encode(o)
    ok = ok and k == COMPRESSED
    bodies.append(body)
    sizes.append(len(body))
t1 = time.perf_counter()
back = [dec.decode(body, 1 << 20) for body in bodies]
t2 = time.perf_counter()
ok = ok and back == os_
k, again = enc.encode(os_[50])
json.dumps({"ok": ok, "first": sizes[0], "late": sum(sizes[100:]) / (len(sizes) - 100),
            "plain": sum(map(len, os_[100:])) / (len(os_) - 100), "again": len(again),
            "again_ok": dec.decode(again, 1 << 20) == os_[50],
            "enc_us": (t1 - t0) / len(os_) * 1e6, "dec_us": (t2 - t1) / len(os_) * 1e6})
""")
    )
    assert res["ok"] and res["again_ok"]
    assert res["late"] < 0.6 * res["first"] and res["late"] < 0.6 * res["plain"]
    assert res["again"] < 16
    report(
        f"streaming in the page: order {res['plain']:.0f} B -> {res['late']:.0f} B on the wire after 100 "
        f"(repeat: {res['again']} B); {res['enc_us']:.1f} us to compress, {res['dec_us']:.1f} us to decompress "
        "one order"
    )


# Runs natively and in the page: the refusals of one backend, as (error class, code) pairs.
REFUSALS = r"""
from darkswap_wasm.compression import get_backend
from darkswap_wasm.errors import DarkSwapError

RESERVED_BLOCK = b"\x28\xb5\x2f\xfd\x00\x48" + b"\x06\x00\x00"  # frame header, then block type 3


def err(f):
    try:
        f()
    except DarkSwapError as e:
        return [type(e).__name__, e.code]
    except Exception as e:
        return ["NOT A DarkSwapError", repr(e)]
    return None


def refusals(v, trained):
    b = get_backend()
    out = {
        "bomb": err(lambda: b.decompressor(23, None).decompress(v["bomb"], 1 << 20)),
        "corrupt": err(lambda: b.decompressor(23, None).decompress(RESERVED_BLOCK, 1 << 20)),
        "window": err(lambda: b.decompressor(20, None).decompress(v["big"], 1 << 20)),
        "no_dict": err(lambda: b.decompressor(23, None).decompress(v["dict"], 1 << 20)),
        "with_dict": b.decompressor(23, trained).decompress(v["dict"], 1 << 20).decode()[:9],
    }
    d = b.decompressor(23, None)
    err(lambda: d.decompress(RESERVED_BLOCK, 1 << 20))
    out["after_error"] = err(lambda: d.decompress(b"", 10))
    return out
"""


def test_page_decoder_refuses_what_the_native_one_refuses(zpage, dictionaries):
    comp = zstd.ZstdCompressor(level=3)
    bomb = b"".join(comp.compress(bytes(MIB)) for _ in range(64)) + comp.flush(zstd.ZstdCompressor.FLUSH_BLOCK)
    v = {
        "bomb": bomb,
        "big": native_stream([os.urandom(64)], window_log=25)[0],
        "dict": native_stream([orders(1)[0]], dictionary=dictionaries["trained"])[0],
    }
    zpage.write_file(f"{PAGE_DIR}/refusals.py", REFUSALS)
    zpage.write_file(f"{PAGE_DIR}/bad.json", json.dumps({k: b64(x) for k, x in v.items()}))
    res = json.loads(
        zpage.run_py(f"""
import importlib, json, base64
importlib.invalidate_caches()
import refusals
v = {{k: base64.b64decode(x) for k, x in json.load(open({PAGE_DIR!r} + "/bad.json")).items()}}
json.dumps(refusals.refusals(v, {_page_dict("trained")}))
""")
    )
    assert res["bomb"] == ["LimitExceeded", "LIMIT_EXCEEDED"]
    assert res["corrupt"][1] == "COMPRESSION_ERROR" and res["window"][1] == "COMPRESSION_ERROR"
    assert res["no_dict"] is not None and res["no_dict"][0] != "NOT A DarkSwapError"
    assert res["with_dict"] == '{"type":"'
    assert res["after_error"][1] == "COMPRESSION_ERROR"
    ns: dict = {}
    exec(compile(REFUSALS, "refusals", "exec"), ns)  # noqa: S102 - our own source, shared with the page
    assert ns["refusals"](v, dictionaries["trained"]) == res  # natively: the same refusals, the same errors


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
