"""Circuit relay v2, the client's side (``relay/circuit-v2.md``).

* :class:`RelayTransport` dials ``<relay>/p2p-circuit/p2p/<peer>``: a hop CONNECT on our
  connection to the relay, whose stream then carries the end-to-end connection (the host
  upgrades it with Noise + yamux, so the relay sees only ciphertext).
* The stop handler accepts circuits the relay opens to us, only from relays we reserved on.
* :class:`ReservationManager` keeps a reservation on each configured relay: reserve, verify the
  voucher, renew before expiry, and after a lost connection or a relay restart redial with
  jittered backoff and reserve again (driven by the sans-I/O
  :class:`~.reservations.ReservationMachine`). While a reservation holds, the host advertises
  ``<relay>/p2p-circuit/p2p/<self>``. Host events: ``relay:reserved`` / ``relay:lost`` (relay
  peer ID) and ``relay:error`` (relay peer ID, reason) after each failed dial or reservation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from ..errors import ConfigError, DarkSwapError, DecodeError, PeerUnreachable, ProtocolError
from ..identity import PeerId
from ..identity.envelope import EnvelopeError, open_voucher
from ..identity.keys import PublicKey
from ..policy.backoff import Backoff
from ..policy.reservations import Action, ReservationMachine
from ..protocols.circuit_v2 import (
    HOP_PROTOCOL_ID,
    STOP_PROTOCOL_ID,
    HopMessage,
    HopType,
    Peer,
    Status,
    StopMessage,
    StopType,
    status_for_error,
)
from ..tasks import spawn
from ..transports.base import ConnectionHandler, Listener, RawConnection, Transport
from ..wire.multiaddr import Multiaddr
from .host import Host
from .muxer import RELAY
from .relay_server import read_message
from .stream import Stream
from .stream_conn import StreamConnection

log = logging.getLogger(__name__)


class RelayError(PeerUnreachable):
    """The relay refused or failed a request; ``status`` is the relay's answer."""

    CODE = "RELAY_FAILED"

    def __init__(self, message: str, status: Status | None = None) -> None:
        super().__init__(message)
        self.status = status


class ReservationFailed(RelayError):
    CODE = "RELAY_RESERVATION_FAILED"


def split_circuit_addr(addr: Multiaddr) -> tuple[Multiaddr, PeerId]:
    """``<relay addr>/p2p/<relay>/p2p-circuit/p2p/<dst>`` → (relay addr with /p2p, dst)."""
    parts = addr.split_at("p2p-circuit")
    if parts is None:
        raise ConfigError(f"not a circuit address: {addr}")
    relay, rest = parts
    dst = rest.value_for("p2p")
    if dst is None or rest.protocols() != ["p2p-circuit", "p2p"]:
        raise ConfigError(f"a circuit address ends with /p2p-circuit/p2p/<peer>: {addr}")
    if relay.value_for("p2p") is None:
        raise ConfigError(f"the relay part of a circuit address needs /p2p/<relay>: {addr}")
    return relay, PeerId.from_string(dst)


@dataclass(frozen=True)
class ReservationInfo:
    relay: PeerId
    relay_addr: Multiaddr
    expires_at_unix: int  # the relay's clock
    addrs: tuple[Multiaddr, ...]  # the relay's public addresses, as it told us


class RelayTransport(Transport):
    """Dials circuit addresses through a relay; cannot listen (reservations do that)."""

    name = "relay"

    def __init__(self, host: Host, *, request_timeout: float = 10.0) -> None:
        self.host = host
        self.request_timeout = request_timeout
        self.trusted_relays: set[PeerId] = set()  # whose stop requests we accept
        host.set_stream_handler(STOP_PROTOCOL_ID, self._handle_stop)

    def can_dial(self, addr: Multiaddr) -> bool:
        return "p2p-circuit" in addr.protocols()

    def can_listen(self, addr: Multiaddr) -> bool:
        return False

    async def listen(self, addr: Multiaddr, handler: ConnectionHandler) -> Listener:
        raise ConfigError("listen on a relay with NetworkConfig.relays, not a /p2p-circuit listen address")

    async def dial(self, addr: Multiaddr) -> RawConnection:
        relay_addr, dst = split_circuit_addr(addr)
        relay = PeerId.from_string(relay_addr.value_for("p2p") or "")
        conn = next((c for c in self.host.connections(relay) if not c.relayed), None)
        if conn is None:
            conn = await self.host.dial(relay_addr)
        if conn.relayed:
            raise RelayError("refusing to relay over a relayed connection")
        stream = await self.host.new_stream_on(conn, [HOP_PROTOCOL_ID])
        try:
            await stream.write(HopMessage(HopType.CONNECT, peer=Peer(dst, ())).encode())
            reply = await read_message(stream, HopMessage, self.request_timeout)
        except BaseException:
            await stream.reset()
            raise
        if reply.type is not HopType.STATUS or reply.status is not Status.OK:
            await stream.reset()
            status = reply.status
            raise RelayError(
                f"relay {relay} could not connect us to {dst}: {status.name if status else 'no status'}", status
            )
        return StreamConnection(
            stream,
            transport=RELAY,
            remote_addr=relay_addr.encapsulate("/p2p-circuit"),
            local_addr=None,
            limit=reply.limit,
        )

    async def _handle_stop(self, stream: Stream) -> None:
        relay_conn = stream.conn
        try:
            msg = await read_message(stream, StopMessage, self.request_timeout)
        except DarkSwapError as exc:
            await self._stop_reply(stream, status_for_error(exc))
            return
        if msg.type is not StopType.CONNECT:
            await self._stop_reply(stream, Status.UNEXPECTED_MESSAGE)
            return
        if msg.peer is None:
            await self._stop_reply(stream, Status.MALFORMED_MESSAGE)
            return
        if relay_conn.relayed or stream.remote_peer not in self.trusted_relays:
            await self._stop_reply(stream, Status.PERMISSION_DENIED)
            return
        src = msg.peer.id
        await stream.write(StopMessage(StopType.STATUS, status=Status.OK).encode())
        relay_addr = relay_conn.remote_addr.encapsulate(f"/p2p/{stream.remote_peer}")
        raw = StreamConnection(
            stream,
            transport=RELAY,
            remote_addr=relay_addr.encapsulate("/p2p-circuit"),
            local_addr=None,
            limit=msg.limit,
        )
        try:
            await self.host.upgrade_inbound(raw, expected_peer=src)
        except DarkSwapError as exc:
            log.info("relayed connection from %s failed: %s", src, exc)

    async def _stop_reply(self, stream: Stream, status: Status) -> None:
        await stream.write(StopMessage(StopType.STATUS, status=status).encode())
        await stream.close()


class ReservationManager:
    """Holds a reservation on each configured relay, renewing and re-establishing it."""

    def __init__(
        self,
        host: Host,
        transport: RelayTransport,
        relays: list[Multiaddr],
        *,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        request_timeout: float = 10.0,
        webrtc: bool = False,
    ) -> None:
        self.host = host
        self.webrtc = webrtc
        self.transport = transport
        self.request_timeout = request_timeout
        self._machines: dict[PeerId, tuple[Multiaddr, ReservationMachine]] = {}
        self._backoff = (backoff_initial, backoff_max)
        for addr in relays:
            self._add_machine(addr)
        self._wakeup = asyncio.Event()
        self._tasks: dict[PeerId, asyncio.Task] = {}
        self._started = False
        host.on("peer:disconnect", self._on_disconnect)
        host.add_listen_addr_source(self.circuit_addrs)
        host.add_route_source(self.routes_to)

    def _add_machine(self, addr: Multiaddr) -> PeerId:
        relay_text = addr.value_for("p2p")
        if relay_text is None or addr.protocols()[-1] != "p2p":
            raise ConfigError(f"relay address must end with /p2p/<relay peer id>: {addr}")
        relay = PeerId.from_string(relay_text)
        machine = ReservationMachine(
            relay,
            Backoff(initial=self._backoff[0], maximum=self._backoff[1]),
            min_renew_interval=1.0,
            attempt_timeout=self.request_timeout + self.host.config.dial_timeout,
        )
        self._machines[relay] = (addr, machine)
        self.transport.trusted_relays.add(relay)
        return relay

    def start(self) -> None:
        self._started = True
        for relay in self._machines:
            if relay not in self._tasks:
                self._tasks[relay] = spawn(self._run(relay), f"reservation on {relay}")

    def relays(self) -> list[PeerId]:
        """The relays this manager holds (or is trying to hold) a reservation on."""
        return list(self._machines)

    def add_relay(self, addr: Multiaddr | str) -> PeerId:
        """Start holding a reservation on the relay at ``addr`` (``.../p2p/<relay>``), at once if
        the manager runs. A relay already held is left as it is."""
        addr = Multiaddr(addr)
        relay_text = addr.value_for("p2p")
        if relay_text is not None and PeerId.from_string(relay_text) in self._machines:
            return PeerId.from_string(relay_text)
        relay = self._add_machine(addr)
        if self._started:
            self._tasks[relay] = spawn(self._run(relay), f"reservation on {relay}")
        return relay

    async def remove_relay(self, relay: PeerId) -> bool:
        """Stop holding ``relay``: no more renewals, its circuit address is no longer advertised,
        its stop requests are no longer accepted (``relay:lost`` if it was reserved). The
        connection is left to its other users."""
        entry = self._machines.pop(relay, None)
        if entry is None:
            return False
        was = entry[1].is_reserved(time.monotonic())
        entry[1].stop()
        self.transport.trusted_relays.discard(relay)
        task = self._tasks.pop(relay, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if was:
            self.host.emit("relay:lost", relay)
        return True

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def reservations(self) -> list[ReservationInfo]:
        now = time.monotonic()
        return [
            ReservationInfo(relay, addr, m.expires_at_unix or 0, m.addrs)
            for relay, (addr, m) in self._machines.items()
            if m.is_reserved(now)
        ]

    def circuit_addrs(self) -> list[Multiaddr]:
        """``<relay>/p2p-circuit/p2p/<us>`` per live reservation (and its ``/webrtc`` form)."""
        out = []
        for r in self.reservations():
            out.append(r.relay_addr.encapsulate(f"/p2p-circuit/p2p/{self.host.peer_id}"))
            if self.webrtc:
                out.append(r.relay_addr.encapsulate(f"/p2p-circuit/webrtc/p2p/{self.host.peer_id}"))
        return out

    def routes_to(self, peer: PeerId) -> list[Multiaddr]:
        """Dial a peer by ID alone: through every relay we hold a reservation on."""
        return [r.relay_addr.encapsulate(f"/p2p-circuit/p2p/{peer}") for r in self.reservations() if r.relay != peer]

    def _on_disconnect(self, peer: PeerId) -> None:
        entry = self._machines.get(peer)
        if entry is None:
            return
        was = entry[1].is_reserved(time.monotonic())
        entry[1].connection_lost(time.monotonic())
        if was:
            self.host.emit("relay:lost", peer)
        self._wakeup.set()

    async def _run(self, relay: PeerId) -> None:
        addr, machine = self._machines[relay]
        machine.start(time.monotonic())
        while True:
            now = time.monotonic()
            action = machine.handle_timeout(now)
            if action is Action.DIAL:
                try:
                    if not [c for c in self.host.connections(relay) if not c.relayed]:
                        await self.host.dial(addr)
                    machine.connected(time.monotonic())
                except DarkSwapError as exc:
                    log.info("relay %s unreachable: %s", relay, exc)
                    machine.failed(time.monotonic(), str(exc))
                    self.host.emit("relay:error", relay, str(exc))
                continue
            if action is Action.RESERVE:
                try:
                    info = await self._reserve(relay)
                    machine.reserved(time.monotonic(), time.time(), info.expires_at_unix, info.addrs)
                    log.info("reserved on relay %s until %d", relay, info.expires_at_unix)
                    self.host.emit("relay:reserved", relay)
                except DarkSwapError as exc:
                    log.info("reservation on %s failed: %s", relay, exc)
                    was = machine.is_reserved(time.monotonic())
                    machine.failed(time.monotonic(), str(exc))
                    if was:
                        self.host.emit("relay:lost", relay)
                    self.host.emit("relay:error", relay, str(exc))
                continue
            deadline = machine.next_deadline()
            delay = 5.0 if deadline is None else max(0.0, deadline - time.monotonic())
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except TimeoutError:
                pass

    def _check_voucher(self, relay: PeerId, voucher_bytes: bytes, expire: int) -> None:
        """A voucher must be the relay's, for us, for this reservation and not expired; else the
        reservation is refused. A relay that sends none is fine (vouchers are optional in
        circuit v2), and so is one whose key type we cannot verify (not Ed25519: its voucher
        is advisory, said in a warning)."""
        try:
            voucher = open_voucher(voucher_bytes, expected_relay=relay, expected_peer=self.host.peer_id)
        except DecodeError as exc:
            if not _verifiable(relay):
                log.warning("cannot check the voucher of relay %s (key type): %s", relay, exc)
                return
            raise ReservationFailed(f"relay {relay} sent a voucher that does not decode: {exc}") from exc
        except EnvelopeError as exc:
            raise ReservationFailed(f"relay {relay} sent a voucher that does not check out: {exc}") from exc
        if voucher.expiration != expire:
            raise ReservationFailed(
                f"relay {relay} sent a voucher for another reservation (expires {voucher.expiration}, not {expire})"
            )
        if voucher.expiration <= time.time():
            raise ReservationFailed(f"relay {relay} sent an expired voucher (expired at {voucher.expiration})")

    async def _reserve(self, relay: PeerId) -> ReservationInfo:
        addr, _ = self._machines[relay]
        conn = next((c for c in self.host.connections(relay) if not c.relayed), None)
        if conn is None:
            raise ReservationFailed(f"not connected to relay {relay}")
        stream = await self.host.new_stream_on(conn, [HOP_PROTOCOL_ID])
        try:
            await stream.write(HopMessage(HopType.RESERVE).encode())
            reply = await read_message(stream, HopMessage, self.request_timeout)
        except BaseException:
            await stream.reset()
            raise
        await stream.close()
        if reply.type is not HopType.STATUS or reply.status is not Status.OK:
            status = reply.status
            raise ReservationFailed(f"relay {relay} refused the reservation: {status.name if status else '?'}", status)
        rsvp = reply.reservation
        if rsvp is None:
            raise ProtocolError("relay answered OK without a reservation")
        if rsvp.voucher is not None:
            self._check_voucher(relay, rsvp.voucher, rsvp.expire)
        return ReservationInfo(relay, addr, rsvp.expire, rsvp.addrs)


def _verifiable(peer: PeerId) -> bool:
    """Whether we can check ``peer``'s signatures (its ID inlines an Ed25519 key)."""
    key = peer.public_key_protobuf()
    if key is None:
        return False
    try:
        PublicKey.from_protobuf(key)
    except DecodeError:
        return False
    return True
