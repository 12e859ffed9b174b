"""Reservation vouchers a relay hands out are checked (issue 12: "vouchers that are expired,
mismatched or garbage are accepted"). The lying relay is one of our own hosts with its own hop
handler; the honest relays of every other test show that real vouchers pass."""

from __future__ import annotations

import asyncio
import time

import pytest

from darkswap_wasm import Identity, Network, NetworkConfig
from darkswap_wasm.host.relay_server import read_message
from darkswap_wasm.identity.envelope import ReservationVoucher, seal_voucher
from darkswap_wasm.protocols.circuit_v2 import HOP_PROTOCOL_ID, HopMessage, HopType, Reservation, Status

from .helpers import async_test

pytestmark = pytest.mark.native_crypto


def lying_voucher(kind: str, relay: Identity, client, expire: int) -> bytes | None:
    if kind == "garbage":
        return b"\x0a\x03not an envelope"
    if kind == "someone else's":
        return seal_voucher(relay, ReservationVoucher(relay.peer_id, Identity.generate().peer_id, expire))
    if kind == "another reservation's":
        return seal_voucher(relay, ReservationVoucher(relay.peer_id, client, expire + 3600))
    if kind == "expired":
        return seal_voucher(relay, ReservationVoucher(relay.peer_id, client, expire))
    if kind == "none":
        return None
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["garbage", "someone else's", "another reservation's", "expired", "none"])
@async_test(timeout=30)
async def test_a_voucher_that_does_not_check_out_refuses_the_reservation(kind):
    relay_id = Identity.generate()
    relay = await Network.create(NetworkConfig(identity=relay_id, listen_addrs=["/ip4/127.0.0.1/tcp/0"], webrtc=None))

    async def hop(stream) -> None:
        await read_message(stream, HopMessage, 10)
        expire = int(time.time()) - 10 if kind == "expired" else int(time.time()) + 3600
        voucher = lying_voucher(kind, relay_id, stream.remote_peer, expire)
        rsvp = Reservation(expire=expire, addrs=tuple(relay.listen_addrs()), voucher=voucher)
        await stream.write(HopMessage(HopType.STATUS, status=Status.OK, reservation=rsvp).encode())
        await stream.close()

    relay.set_stream_handler(HOP_PROTOCOL_ID, hop)
    errors: list[str] = []
    client = await Network.create(NetworkConfig(relays=[str(relay.listen_addrs()[0])], webrtc=None))
    client.on("relay:error", lambda _relay, reason: errors.append(reason))
    try:
        deadline = time.monotonic() + 10
        while not errors and not client.reservations() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if kind == "none":  # vouchers are optional in circuit v2: a relay that sends none is fine
            assert client.reservations() and not errors, errors
        else:
            assert not client.reservations(), f"a reservation with a voucher that is {kind}"
            assert errors and "voucher" in errors[0], errors
            assert not any("/p2p-circuit" in str(a) for a in client.listen_addrs())
    finally:
        await client.close()
        await relay.close()
