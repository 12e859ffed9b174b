"""host/datachannel.py streams over a pair of in-process data channels (no WebRTC stack):
gathered writes, their order against flags, backpressure and failures.

The channels are plain Python objects implementing transports/webrtc_base.RTCDataChannel: what
one sends reaches the other's ``on_message`` on the next turn of the loop, as with a real one.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from darkswap_wasm.errors import ConnectionClosed, StreamClosed, StreamReset, Timeout
from darkswap_wasm.host.connection import ConnectionConfig
from darkswap_wasm.host.datachannel import TX_GATHER, channel_stream
from darkswap_wasm.host.stream import Stream
from darkswap_wasm.host.webrtc import WebRTCSettings
from darkswap_wasm.protocols import webrtc as framing
from darkswap_wasm.transports.webrtc_base import RTCDataChannel

from .helpers import async_test, pattern


class LoopChannel(RTCDataChannel):
    def __init__(self, label: str) -> None:
        self.label = label
        self.state = "open"
        self.sent: list[bytes] = []
        self.peer: LoopChannel | None = None
        self.buffered = 0
        self.fail: BaseException | None = None
        self.threshold = 0

    @property
    def ready_state(self) -> str:
        return self.state

    @property
    def buffered_amount(self) -> int:
        return self.buffered

    def send(self, data: bytes) -> None:
        if self.fail is not None:
            raise self.fail
        self.sent.append(bytes(data))
        if self.peer is not None:
            asyncio.get_running_loop().call_soon(self.peer.deliver, bytes(data))

    def deliver(self, data: bytes) -> None:
        if self.on_message is not None and self.state == "open":
            self.on_message(data)

    def close(self) -> None:
        # as SCTP does: what was sent before still arrives, then both ends see the close
        if self.state == "open":
            self.state = "closing"
            asyncio.get_running_loop().call_soon(self._closed)

    def _closed(self) -> None:
        for ch in (self, self.peer):
            if ch is not None and ch.state != "closed":
                ch.state = "closed"
                if ch.on_close is not None:
                    ch.on_close()

    def set_buffered_amount_low_threshold(self, n: int) -> None:
        self.threshold = n


def pair(settings: WebRTCSettings | None = None) -> tuple[Stream, Stream]:
    settings = settings or WebRTCSettings()
    a_ch, b_ch = LoopChannel("s"), LoopChannel("s")
    a_ch.peer, b_ch.peer = b_ch, a_ch

    def conn():
        return SimpleNamespace(
            settings=settings,
            config=ConnectionConfig(io_timeout=5.0),
            closed=False,
            remote_peer=None,
            _forget=lambda s: None,
        )

    return (
        channel_stream(conn(), a_ch, 1, inbound=False),  # type: ignore[arg-type]
        channel_stream(conn(), b_ch, 1, inbound=True),  # type: ignore[arg-type]
    )


async def read_all(s: Stream) -> bytes:
    parts = []
    while d := await s.read(timeout=5):
        parts.append(d)
    return b"".join(parts)


def decoded(sent: list[bytes]) -> list[framing.ChannelMessage]:
    dec = framing.MessageDecoder()
    out = []
    for m in sent:
        out += dec.feed(m)
    return out


@async_test(20)
async def test_small_writes_fill_whole_messages_and_the_fin_comes_after_them() -> None:
    a, b = pair()
    data = pattern(100 * 1000)
    for off in range(0, len(data), 1000):  # 100 writes of 1000 B, all in one turn of the loop
        await a.write(data[off : off + 1000])
    assert a.port.channel.sent == []  # gathered until the end of the turn (under TX_GATHER)
    await asyncio.sleep(0)
    n_data = -(-len(data) // framing.MAX_PAYLOAD_SIZE)
    assert len(a.port.channel.sent) == n_data  # 7 full-size messages, not 100 small ones
    await a.write(b"tail")
    await a.close()  # flushes "tail" first: after the FIN the machine would refuse it
    assert await read_all(b) == data + b"tail"
    msgs = decoded(a.port.channel.sent)
    assert [m.flag for m in msgs] == [None] * (n_data + 1) + [framing.Flag.FIN]


@async_test(20)
async def test_a_large_write_goes_at_once_in_gathered_steps() -> None:
    a, b = pair()
    data = pattern(3 * TX_GATHER + 5)
    reader = asyncio.ensure_future(read_all(b))
    await a.write(data)
    sent_at_return = sum(len(m) for m in a.port.channel.sent)
    assert sent_at_return >= 3 * TX_GATHER  # whole TX_GATHER steps are not held back
    await a.close()
    assert await reader == data


@async_test(20)
async def test_backpressure_waits_for_buffered_amount_low_and_times_out() -> None:
    settings = WebRTCSettings(send_high_water=64 * 1024)
    a, b = pair(settings)
    a.port.channel.buffered = 200 * 1024  # the browser holds more than the high-water mark
    w = asyncio.ensure_future(a.write(pattern(1000)))
    await asyncio.sleep(0.05)
    assert not w.done() and a.port.channel.sent == []
    a.port.channel.buffered = 0
    a.port.channel.on_buffered_amount_low()
    await w
    await asyncio.sleep(0)
    assert len(a.port.channel.sent) == 1
    a.port.channel.buffered = 200 * 1024
    with pytest.raises(Timeout):
        await a.write(b"x", timeout=0.05)


@async_test(20)
async def test_a_failed_deferred_send_surfaces_on_the_next_write_and_close_still_works() -> None:
    a, b = pair()
    await a.write(b"lost")
    a.port.channel.fail = ConnectionClosed("data channel send failed: the channel broke")
    await asyncio.sleep(0)  # the gathered write fails at the end of the turn
    with pytest.raises(ConnectionClosed, match="the channel broke"):
        await a.write(b"more")


@async_test(20)
async def test_an_adapter_that_raises_something_else_still_fails_the_next_write() -> None:
    a, b = pair()
    await a.write(b"lost")
    a.port.channel.fail = RuntimeError("adapter bug")  # not the ConnectionClosed the interface promises
    await asyncio.sleep(0)
    with pytest.raises(ConnectionClosed, match="adapter bug"):
        await a.write(b"more")


@async_test(20)
async def test_reset_drops_gathered_data_and_stop_sending_refuses_writes() -> None:
    a, b = pair()
    await a.write(b"never sent")
    await a.reset()
    assert decoded(a.port.channel.sent) == [framing.ChannelMessage(framing.Flag.RESET_STREAM, None)]
    with pytest.raises(StreamReset):
        await b.read(timeout=5)
    with pytest.raises(StreamReset):
        await a.write(b"x")

    c, d = pair()
    await c.write(b"first")
    await asyncio.sleep(0)
    d.port._send_raw(d.port.machine.close_read())  # d: STOP_SENDING
    await asyncio.sleep(0.01)
    with pytest.raises(StreamClosed, match="STOP_SENDING"):
        await c.write(b"second")
    await c.close()
    with pytest.raises(StreamClosed):
        await c.write(b"after close")
