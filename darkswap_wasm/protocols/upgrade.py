"""The connection upgrade as one sans-I/O machine: multistream → Noise → multistream → yamux.

``libp2p/specs connections/README.md`` §Upgrading connections. Raw transport bytes go in; raw
bytes to write come out; once secured and muxed, the yamux machine's events come out. The
whole upgrade has one deadline (:attr:`deadline`, enforced by :meth:`handle_timeout`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..errors import ProtocolError, Timeout
from ..identity import Identity, PeerId, PublicKey
from . import multistream, noise, yamux

MUXER_ID = "/yamux/1.0.0"
SECURITY_ID = noise.PROTOCOL_ID


class Phase(enum.Enum):
    SECURITY = "negotiate-security"
    NOISE = "noise-handshake"
    MUXER = "negotiate-muxer"
    MUXED = "muxed"
    FAILED = "failed"


@dataclass(frozen=True)
class Upgraded:
    """The connection is secured and muxed; streams may be opened."""

    remote_peer: PeerId
    remote_public_key: PublicKey


class ConnectionUpgrade:
    def __init__(
        self,
        identity: Identity,
        *,
        is_initiator: bool,
        expected_peer: PeerId | None = None,
        now: float = 0.0,
        timeout: float = 10.0,
        yamux_config: yamux.YamuxConfig | None = None,
    ) -> None:
        self.identity = identity
        self.is_initiator = is_initiator
        self.expected_peer = expected_peer
        self.deadline: float | None = now + timeout
        self._now = now
        self._yamux_config = yamux_config or yamux.YamuxConfig()
        self.phase = Phase.SECURITY
        self.remote_peer: PeerId | None = None
        self.remote_public_key: PublicKey | None = None
        self._ms: multistream.Dialer | multistream.Listener = (
            multistream.Dialer([SECURITY_ID]) if is_initiator else multistream.Listener([SECURITY_ID])
        )
        self._noise: noise.NoiseSession | None = None
        self.muxer: yamux.YamuxConnection | None = None
        self._out: list[bytes] = []
        self._events: list[object] = []
        self._pump_plain_ms()

    # -- sans-I/O surface ------------------------------------------------------------
    def data_to_send(self) -> bytes:
        if self.muxer is not None:
            plain = self.muxer.data_to_send()
            if plain:
                assert self._noise is not None
                self._noise.send(plain)
        if self._noise is not None:
            out = self._noise.data_to_send()
            if out:
                self._out.append(out)
        data = b"".join(self._out)
        self._out.clear()
        return data

    def events_received(self) -> list[object]:
        if self.muxer is not None:
            self._events.extend(self.muxer.events_received())
        ev, self._events = self._events, []
        return ev

    def handle_timeout(self, now: float) -> None:
        if self.deadline is not None and now >= self.deadline and self.phase is not Phase.MUXED:
            phase, self.phase = self.phase, Phase.FAILED
            raise Timeout(f"connection upgrade timed out during {phase.value}")

    def receive_data(self, data: bytes) -> None:
        try:
            self._receive(data)
        except ProtocolError:
            self.phase = Phase.FAILED
            raise

    # -- internals ---------------------------------------------------------------------
    def _pump_plain_ms(self) -> None:
        out = self._ms.data_to_send()
        if out:
            self._out.append(out)

    def _receive(self, data: bytes) -> None:
        if self.phase is Phase.MUXED:
            assert self._noise is not None and self.muxer is not None
            self._noise.receive_data(data)
            for ev in self._noise.events_received():
                self.muxer.receive_data(ev.data)
            return
        if self.phase is Phase.SECURITY:
            agreed = self._ms.receive_data(data)
            self._pump_plain_ms()
            if agreed is None:
                return
            self.phase = Phase.NOISE
            self._noise = noise.NoiseSession(
                self.identity,
                is_initiator=self.is_initiator,
                expected_peer=self.expected_peer,
                now=self._now,
                handshake_timeout=max(0.0, (self.deadline or self._now) - self._now),
            )
            data = self._ms.leftover()
            if not data:
                return
        if self.phase in (Phase.NOISE, Phase.MUXER):
            assert self._noise is not None
            self._noise.receive_data(data)
            for ev in self._noise.events_received():
                if isinstance(ev, noise.HandshakeComplete):
                    self.remote_peer = ev.remote_peer
                    self.remote_public_key = ev.remote_public_key
                    self.phase = Phase.MUXER
                    self._ms = (
                        multistream.Dialer([MUXER_ID])
                        if self.is_initiator
                        else multistream.Listener([MUXER_ID])
                    )
                    self._send_plain(self._ms.data_to_send())
                elif isinstance(ev, noise.DataReceived):
                    if self.phase is Phase.MUXED:
                        assert self.muxer is not None
                        self.muxer.receive_data(ev.data)
                        continue
                    agreed = self._ms.receive_data(ev.data)
                    self._send_plain(self._ms.data_to_send())
                    if agreed is not None:
                        self._start_muxer(self._ms.leftover())

    def _send_plain(self, data: bytes) -> None:
        if data:
            assert self._noise is not None
            self._noise.send(data)

    def _start_muxer(self, leftover: bytes) -> None:
        self.phase = Phase.MUXED
        self.deadline = None
        self.muxer = yamux.YamuxConnection(is_client=self.is_initiator, config=self._yamux_config)
        assert self.remote_peer is not None and self.remote_public_key is not None
        self._events.append(Upgraded(self.remote_peer, self.remote_public_key))
        if leftover:
            self.muxer.receive_data(leftover)

    def set_time(self, now: float) -> None:
        """Tell the machine the current time (used when it creates its Noise session)."""
        self._now = now
