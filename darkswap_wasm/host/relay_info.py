"""``/darkswap/relay-info/1.0.0`` on the host: the relay answers with its live counts, a client
asks (codec: :mod:`darkswap_wasm.protocols.relay_info`).

The relay writes one :class:`~..protocols.relay_info.RelayInfo` and closes its side;
:func:`query_relay_info` reads exactly one, bounded in size and time. A relay that does not speak
the protocol (js-libp2p, go-libp2p) fails the negotiation: :func:`query_relay_info` returns
``None`` and the relay is scored on RTT and failures alone.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import NegotiationError, ProtocolError
from ..protocols.relay_info import PROTOCOL_ID, RelayInfo, RelayInfoReader
from .host import Host
from .muxer import MuxedConnection
from .stream import Stream

__all__ = ["PROTOCOL_ID", "query_relay_info", "serve_relay_info"]


def serve_relay_info(host: Host, counts: Callable[[], RelayInfo]) -> None:
    """Answer ``/darkswap/relay-info/1.0.0`` with ``counts()`` (the relay's live figures)."""

    async def handle(stream: Stream) -> None:
        await stream.write(counts().encode())
        await stream.close()

    host.set_stream_handler(PROTOCOL_ID, handle)


async def query_relay_info(host: Host, conn: MuxedConnection, timeout: float) -> RelayInfo | None:
    """The relay's counts over ``conn``; ``None`` when it does not speak the protocol."""
    try:
        stream = await host.new_stream_on(conn, [PROTOCOL_ID])
    except NegotiationError:
        return None
    try:
        reader = RelayInfoReader()
        while True:
            data = await stream.read(timeout=timeout)
            if not data:
                raise ProtocolError("relay-info stream ended before the message")
            info = reader.receive_data(data)
            if info is not None:
                await stream.close()
                return info
    except BaseException:
        await stream.reset()
        raise
