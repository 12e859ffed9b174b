"""js_glue/ffi.js in Chromium: the bulk data channel paths between Python and the page (and,
last, the fix for the page's event loop in darkswap_wasm/transports/webloop.py).

``boot.js`` registers ``sendSplit`` and ``batchMessages`` as the Python module ``darkswap_glue``;
``BrowserDataChannel`` uses them when the page has them. Here they run against a JS stand-in for
an ``RTCDataChannel`` (an ``EventTarget`` that records what is sent and dispatches real
``MessageEvent``s), with the real Pyodide bridge: what is sent is exactly the frames, batches keep
every byte in order, a text message stays a message of its own, a batch never outlives the
channel's close (data first, then the close), and nothing reaches Python once the channel is
released. The page ↔ page tests in test_page_network.py use the same paths on real channels.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.browser

PRELUDE = r"""
import asyncio, json
import js
from darkswap_wasm.transports import browser_webrtc, browser_ws
from darkswap_wasm.transports.browser_webrtc import BATCH_DENSE, BrowserDataChannel

bridge = browser_ws.pyodide_bridge()

FAKE_CHANNEL_JS = '''(() => {
  const t = new EventTarget();
  Object.assign(t, { label: "fake", readyState: "open", bufferedAmount: 0, binaryType: "blob",
                     bufferedAmountLowThreshold: 0, sent: [], closed: 0 });
  t.send = (v) => {
    t.sent.push(typeof v === "string" ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice());
  };
  t.close = () => { t.closed++; };
  // every message of one call is dispatched in the same task, as a burst from the network would be
  t.fire = (...items) => { for (const d of items) t.dispatchEvent(new MessageEvent("message", { data: d })); };
  t.bytes = (n, seed) => {
    const u = new Uint8Array(n);
    for (let i = 0; i < n; i++) u[i] = (i * 7 + seed) & 255;
    return u.buffer;
  };
  t.fireClose = () => t.dispatchEvent(new Event("close"));
  return t;
})()'''


def pattern(n, seed):
    return bytes((i * 7 + seed) & 255 for i in range(n))


def channel():
    ch = js.eval(FAKE_CHANNEL_JS)
    dc = BrowserDataChannel(ch, bridge)
    got, events = [], []
    dc.on_message = lambda d: (got.append(bytes(d)), events.append(("data", len(d))))
    dc.on_close = lambda: events.append(("close", sum(len(g) for g in got)))
    return ch, dc, got, events


async def settle(seconds=0.05):
    await asyncio.sleep(seconds)
"""


def run(page, body: str) -> dict:
    return json.loads(page.run_py(PRELUDE + body))


def test_boot_registers_the_glue_and_the_bridge_uses_it(page) -> None:
    out = run(
        page,
        "import darkswap_glue\n"
        "json.dumps({'bridge': bridge.ffi is not None,\n"
        "            'names': sorted(n for n in ('sendSplit', 'batchMessages') if hasattr(darkswap_glue, n))})",
    )
    assert out == {"bridge": True, "names": ["batchMessages", "sendSplit"]}


def test_send_split_sends_exactly_the_frames_from_the_wasm_heap(page) -> None:
    out = run(
        page,
        """
from darkswap_wasm.protocols.webrtc import ChannelStream
ch, dc, got, events = channel()
m = ChannelStream()
data = pattern(3 * m.max_payload + 100, 1)
buf, sizes = m.send_packed(data)
dc.send_packed(buf, sizes)                    # equal sizes but the last: one sendSplit call
split = [x.to_bytes() for x in ch.sent]
ch.sent = js.Array.new()
dc.send_packed(b"abcdefgh", [3, 5])           # a last message longer than the first: per message
odd = [x.to_bytes() for x in ch.sent]
expect, pos = [], 0
for n in sizes:
    expect.append(buf[pos:pos + n]); pos += n
json.dumps({'sizes': sizes, 'same': split == expect, 'n': len(split), 'odd': [o.decode() for o in odd],
            'decoded': b"".join(e.data for e in ChannelStream().receive_message(b"".join(split))) == data})
""",
    )
    assert out["n"] == 4 and out["same"] and out["decoded"], out
    assert out["sizes"][:3] == [out["sizes"][0]] * 3 and out["sizes"][3] < out["sizes"][0]
    assert out["odd"] == ["abc", "defgh"]


def test_a_burst_arrives_as_one_batch_in_order_and_text_stays_apart(page) -> None:
    out = run(
        page,
        """
ch, dc, got, events = channel()
ch.fire(ch.bytes(1000, 1), ch.bytes(2000, 2), ch.bytes(3, 3))
direct = len(got)                              # nothing yet: the batch goes in a task of its own
await settle()
first = list(got)
ch.fire(ch.bytes(10, 4), "hi", ch.bytes(20, 5))
await settle()
json.dumps({'direct': direct, 'first': [len(g) for g in first],
            'first_ok': first == [pattern(1000, 1) + pattern(2000, 2) + pattern(3, 3)],
            'then_raw': [g.decode() if g == b"hi" else len(g) for g in got[1:]],
            'binary_type': str(ch.binaryType)})
""",
    )
    assert out["binary_type"] == "arraybuffer"
    assert out["direct"] == 0
    assert out["first"] == [3003] and out["first_ok"], out
    assert out["then_raw"] == [10, "hi", 20], out  # the text splits the batch around it


def test_dense_traffic_gathers_bigger_batches_and_max_bytes_goes_at_once(page) -> None:
    out = run(
        page,
        """
browser_webrtc.BATCH_DELAY_MS = 300          # a long gathering time, so that the timing is unambiguous
try:
    ch, dc, got, events = channel()
finally:
    browser_webrtc.BATCH_DELAY_MS = 3
ch.fire(*[ch.bytes(100, i) for i in range(BATCH_DENSE)])   # a batch of BATCH_DENSE: dense from now on
await settle()
n_after_dense = len(got)
ch.fire(ch.bytes(100, 9))
await settle(0.05)                                          # a separate task later: still gathering
gathering = len(got)
ch.fire(ch.bytes(100, 10))
await settle(0.6)                                           # the timer delivers both at once
both = [len(g) for g in got[n_after_dense:]]
ch.fire(ch.bytes(700 * 1024, 11), ch.bytes(400 * 1024, 12))  # over BATCH_BYTES: delivered at once
at_once = [len(g) for g in got[len(got) - 1:]]
json.dumps({'dense': n_after_dense, 'gathering': gathering, 'both': both, 'at_once': at_once,
            'all': b"".join(got) == b"".join([pattern(100, i) for i in range(BATCH_DENSE)] + [pattern(100, 9),
                pattern(100, 10), pattern(700 * 1024, 11), pattern(400 * 1024, 12)])})
""",
    )
    assert out["dense"] == 1 and out["gathering"] == 1 and out["both"] == [200], out
    assert out["at_once"] == [1100 * 1024] and out["all"], out


def test_held_data_is_delivered_before_the_close_and_nothing_after_release(page) -> None:
    out = run(
        page,
        """
ch, dc, got, events = channel()
ch.fire(ch.bytes(500, 1), ch.bytes(600, 2))
ch.fireClose()                                  # same task: the batch is still held in JS
await settle()
order = list(events)
before = browser_ws.live_proxies()
ch2, dc2, got2, events2 = channel()
ch2.fire(ch2.bytes(50, 3))
dc2._released()                                 # the peer connection closed: flush, then drop the proxies
ch2.fire(ch2.bytes(70, 4))                      # nothing reaches Python any more
await settle()
json.dumps({'order': order, 'got2': [len(g) for g in got2], 'events2': events2,
            'proxies_freed': browser_ws.live_proxies() == before})
""",
    )
    assert out["order"] == [["data", 1100], ["close", 1100]], out
    assert out["got2"] == [50] and out["events2"] == [["data", 50], ["close", 50]], out
    assert out["proxies_freed"], out


def test_the_page_loop_accepts_timeouts_a_hair_away_once_the_bridge_exists(page) -> None:
    """Pyodide's WebLoop.call_at raised ValueError for a time just past (its clock moves in 100 µs
    steps), killing whatever awaited ``asyncio.wait_for`` with a tiny delay; pyodide_bridge() and
    Network.create install the fix (transports/webloop.py)."""
    out = run(
        page,
        """
from pyodide.webloop import WebLoop
fixed = getattr(WebLoop.call_at, "_darkswap_call_at_clamped", False)
loop = asyncio.get_running_loop()
ran = []
loop.call_at(loop.time() - 1.0, ran.append, 1)        # the past: at once, as asyncio does
await asyncio.sleep(0.01)
ev = asyncio.Event()
errors = 0
for i in range(3000):
    try:
        await asyncio.wait_for(ev.wait(), (i % 50) * 2e-6)
    except TimeoutError:
        pass
    except ValueError:
        errors += 1
json.dumps({'fixed': fixed, 'ran': ran, 'errors': errors})
""",
    )
    assert out == {"fixed": True, "ran": [1], "errors": 0}, out
