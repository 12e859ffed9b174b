"""The Kademlia DHT service on the host (``/ipfs/kad/1.0.0``; spec: libp2p/specs
``kad-dht/README.md``): the I/O adapter of the sans-I/O machines in
:mod:`darkswap_wasm.protocols.kad` and its siblings.

* **Server mode** (:attr:`DhtConfig.mode` ``"server"``): inbound streams of ``/ipfs/kad/1.0.0``
  are served by :class:`~..protocols.kad_server.KadServerStream`; the handler is registered only
  in this mode, so identify lists the protocol only then. **Client mode**: we query, never serve.
* **Routing table**: fed by identify (:meth:`RoutingTable.add_if_server`: only peers listing the
  protocol) and by lookups (a peer that answered a request serves the DHT); a peer that failed a
  request is dropped (its bucket's freshest replacement takes its place); a full bucket's oldest
  entry is pinged (one check per bucket at a time) and dropped if it does not answer.
* **Lookups** (FIND_NODE, GET_PROVIDERS): :class:`~..protocols.kad_lookup.Lookup` (alpha = 3),
  one stream per request, each bounded by ``KadConfig.request_timeout`` (the machine's deadline,
  driven by a :class:`~.driver.Driver`) and the whole lookup by :attr:`DhtConfig.lookup_timeout`.
* **Providing**: ADD_PROVIDER to the k closest of the key; republished by the provider store's
  one timer (a :class:`~.driver.Driver`), every ``KadConfig.republish_interval`` (22 h, before
  the 48 h expiry), retried after ``republish_retry_interval`` when no peer took it.
* **Random walk**: :class:`~..protocols.kad_routing.RefreshSchedule` on a Driver: a bucket no
  lookup touched for ``refresh_interval`` is walked with a FIND_NODE for a random key in it.

Bounds: a lookup has at most ``alpha`` requests in flight and ``max_lookups`` lookups run at
once (more wait their turn); every read has a timeout; the address book is an LRU of
``max_address_book`` peers. Keys: :func:`~..protocols.kad.relay_key` is what relays provide.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from ..errors import ConfigError, DarkSwapError, ProtocolError, Timeout
from ..identity import PeerId
from ..protocols.kad import (
    PROTOCOL_ID,
    KadConfig,
    KadMessage,
    KadMessageReader,
    KadPeer,
    MessageType,
    kad_id,
)
from ..protocols.kad_lookup import Lookup, LookupResult, SendRequest
from ..protocols.kad_providers import ProviderStore, Republish, add_provider_message
from ..protocols.kad_routing import RefreshSchedule, RoutingTable, random_key_for_bucket
from ..protocols.kad_server import KadServer, KadServerStream
from ..tasks import TaskSet
from ..wire.multiaddr import Multiaddr
from .driver import Driver
from .host import Host
from .muxer import MuxedConnection
from .stream import Stream
from .wakeup import Wakeup

log = logging.getLogger(__name__)

MODES = ("client", "server")


@dataclass(frozen=True)
class DhtConfig:
    mode: str = "client"  # "server": answer requests and list /ipfs/kad/1.0.0 in identify
    kad: KadConfig = field(default_factory=KadConfig)
    lookup_timeout: float = 30.0  # seconds for a whole lookup (each request: kad.request_timeout)
    max_lookups: int = 8  # lookups running at once; more wait
    max_address_book: int = 2048  # peers whose addresses (from lookups) we remember, LRU
    bootstrap_timeout: float = 10.0  # per bootstrap peer: dial and identify
    refresh: bool = True  # random walk of stale buckets (RefreshSchedule)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"DhtConfig.mode must be one of {MODES}, not {self.mode!r}")
        if self.kad.client_mode != (self.mode == "client"):
            object.__setattr__(self, "kad", _with_client_mode(self.kad, self.mode == "client"))
        for name, value in (("lookup_timeout", self.lookup_timeout), ("bootstrap_timeout", self.bootstrap_timeout)):
            if not value > 0:
                raise ConfigError(f"DhtConfig.{name} must be positive")
        for name, count in (("max_lookups", self.max_lookups), ("max_address_book", self.max_address_book)):
            if count < 1:
                raise ConfigError(f"DhtConfig.{name} must be at least 1")


def _with_client_mode(kad: KadConfig, client: bool) -> KadConfig:
    return replace(kad, client_mode=client)


def dialable(addr: Multiaddr) -> bool:
    """A direct address we can dial for the DHT (no circuit, no WebRTC)."""
    protos = addr.protocols()
    return "p2p-circuit" not in protos and "webrtc" not in protos and "webrtc-direct" not in protos


def direct_addrs(addrs) -> tuple[Multiaddr, ...]:
    out = []
    for a in addrs:
        m = Multiaddr(a).without_p2p()
        if dialable(m) and m not in out:
            out.append(m)
    return tuple(out)


def peer_of(addr: Multiaddr) -> PeerId:
    text = addr.value_for("p2p") if addr.protocols()[-1:] == ["p2p"] else None
    if text is None:
        raise ConfigError(f"a bootstrap address must end with /p2p/<peer id>: {addr}")
    return PeerId.from_string(text)


class DhtService:
    def __init__(self, host: Host, config: DhtConfig | None = None, bootstrap=(), provide=()) -> None:
        self.host = host
        self.config = config or DhtConfig()
        self.kad = self.config.kad
        self.bootstrap_addrs = [Multiaddr(a) for a in bootstrap]
        self._provide_at_start = [bytes(k) for k in provide]
        for a in self.bootstrap_addrs:
            peer_of(a)  # fail early
        self.routing = RoutingTable(host.peer_id, self.kad)
        self.providers = ProviderStore(self.kad)
        self.server = KadServer(host.peer_id, self.routing, self.providers, self.kad)
        self._book: OrderedDict[PeerId, tuple[Multiaddr, ...]] = OrderedDict()
        self._tasks = TaskSet()
        self._lookup_slots = asyncio.Semaphore(self.config.max_lookups)
        self._checking: set[PeerId] = set()  # full-bucket liveness checks in flight
        self._closed = False
        self.requests_served = 0
        self.lookups_done = 0
        self._provider_driver = Driver(
            next_deadline=self.providers.next_deadline,
            handle_timeout=self._on_provider_timer,
            after=_nothing,
            on_error=self._on_driver_error,
            what="kad provider store",
        )
        self._ready = Wakeup()  # bootstrap done
        self._refresh: RefreshSchedule | None = None
        self._refresh_driver: Driver | None = None
        if self.config.mode == "server":
            host.set_stream_handler(PROTOCOL_ID, self._handle)
        host.on("peer:identify", self._on_identify)

    @property
    def server_mode(self) -> bool:
        return self.config.mode == "server"

    # -- start / stop --------------------------------------------------------------------------
    def start(self) -> None:
        """Bootstrap in the background (dial the bootstrap peers, a lookup for our own ID), then
        start the random walk."""
        self._tasks.spawn(self._start(), "kad bootstrap")

    async def _start(self) -> None:
        try:
            await self.bootstrap()
        finally:
            self._ready.set()
        for key in self._provide_at_start:  # after bootstrap: a publish needs peers to go to
            self.provide(key)
        if self.config.refresh and not self._closed:
            self._refresh = RefreshSchedule(self.routing, time.monotonic())
            self._refresh_driver = Driver(
                next_deadline=self._refresh.next_deadline,
                handle_timeout=self._on_refresh_timer,
                after=_nothing,
                on_error=self._on_driver_error,
                what="kad random walk",
            )
            self._refresh_driver.rearm()

    async def wait_bootstrapped(self, timeout: float) -> bool:
        """Wait until the start-up bootstrap finished (whatever it reached); False on timeout."""
        return await self._ready.wait(timeout)

    async def bootstrap(self) -> int:
        """Connect to every bootstrap peer, add the servers among them to the table, then look
        up our own peer ID (which fills the buckets near us). Returns the table size."""
        await asyncio.gather(*(self._bootstrap_one(a) for a in self.bootstrap_addrs))
        if len(self.routing):
            try:
                await self.find_node(self.host.peer_id.to_bytes())
            except DarkSwapError as exc:
                log.debug("kad self-lookup failed: %s", exc)
        return len(self.routing)

    async def _bootstrap_one(self, addr: Multiaddr) -> None:
        peer = peer_of(addr)
        if peer == self.host.peer_id:
            return
        try:
            if not self._direct(peer):
                await self.host.dial(addr)
            info = await self.host.identify(peer, self.config.bootstrap_timeout)
        except DarkSwapError as exc:
            log.info("kad bootstrap peer %s unreachable: %s", addr, exc)
            return
        self._learn(peer, direct_addrs(info.listen_addrs) or direct_addrs([addr]))
        self.routing.add_if_server(KadPeer(peer, self._book.get(peer, ())), info.protocols)

    async def close(self) -> None:
        self._closed = True
        self._provider_driver.close()
        if self._refresh_driver is not None:
            self._refresh_driver.close()
        await self._tasks.close()

    # -- the table -----------------------------------------------------------------------------
    def _on_identify(self, peer: PeerId, info) -> None:
        addrs = direct_addrs(info.listen_addrs)
        if not addrs:
            return
        self._learn(peer, addrs)
        result = self.routing.add_if_server(KadPeer(peer, addrs), info.protocols)
        if result.ping is not None and result.ping not in self._checking and not self._closed:
            self._checking.add(result.ping)
            self._tasks.spawn(self._check_oldest(result.ping), "kad bucket liveness check")

    async def _check_oldest(self, peer: PeerId) -> None:
        try:
            conn = await self._connect(peer)
            await conn.ping(self.kad.request_timeout)
            self.routing.mark_alive(peer)
        except DarkSwapError:
            self.routing.mark_failed(peer)
        finally:
            self._checking.discard(peer)

    def _learn(self, peer: PeerId, addrs) -> None:
        addrs = direct_addrs(addrs)
        if not addrs or peer == self.host.peer_id:
            return
        self._book.pop(peer, None)
        self._book[peer] = addrs
        while len(self._book) > self.config.max_address_book:
            self._book.popitem(last=False)

    def addrs_of(self, peer: PeerId) -> tuple[Multiaddr, ...]:
        return self._book.get(peer, ())

    def _direct(self, peer: PeerId) -> MuxedConnection | None:
        return next((c for c in self.host.connections(peer) if not c.relayed), None)

    async def _connect(self, peer: PeerId, addrs=()) -> MuxedConnection:
        conn = self._direct(peer)
        if conn is not None:
            return conn
        errors = []
        for addr in dict.fromkeys([*direct_addrs(addrs), *self._book.get(peer, ())]):
            try:
                return await self.host.dial(addr.encapsulate(f"/p2p/{peer}"))
            except DarkSwapError as exc:
                errors.append(str(exc))
        raise Timeout(f"kad: cannot reach {peer} ({'; '.join(errors) or 'no direct address'})")

    def local_peer(self) -> KadPeer:
        return KadPeer(self.host.peer_id, direct_addrs(self.host.listen_addrs()))

    # -- serving ---------------------------------------------------------------------------------
    async def _handle(self, stream: Stream) -> None:
        serving = KadServerStream(self.server, stream.remote_peer)
        self.server.set_local_addrs(self.local_peer().addrs)
        timeout = self.host.config.connection.io_timeout
        while True:
            data = await stream.read(timeout=timeout)
            if not data:
                await stream.close()
                return
            replies = serving.receive_data(data, time.monotonic())  # a ProtocolError: the host resets
            self.requests_served += len(replies)
            out = serving.data_to_send()
            if out:
                await stream.write(out)
            for reply in replies:
                if reply.refused is not None:
                    log.debug("kad request from %s refused: %s", stream.remote_peer, reply.refused)
            if serving.closed:
                await stream.reset()
                return
            self.providers_changed()

    def providers_changed(self) -> None:
        """A record was stored: the store's expiry timer may be earlier now."""
        self._provider_driver.rearm()

    # -- requests --------------------------------------------------------------------------------
    async def request(self, peer: KadPeer, message: KadMessage, *, expect_reply: bool = True) -> KadMessage | None:
        """One request on a new stream to ``peer``; its answer (``None`` for ADD_PROVIDER)."""
        conn = await self._connect(peer.peer_id, peer.addrs)
        stream = await self.host.new_stream_on(conn, [PROTOCOL_ID])
        try:
            await stream.write(message.encode(self.kad))
            if not expect_reply:
                await stream.close()
                return None
            reader = KadMessageReader(self.kad)
            while True:
                data = await stream.read(timeout=self.kad.request_timeout)
                if not data:
                    raise ProtocolError(f"kad: {peer.peer_id} closed the stream without an answer")
                messages = reader.receive_data(data)
                if messages:
                    await stream.close()
                    return messages[0]
        except BaseException:
            await stream.reset()
            raise

    # -- lookups ---------------------------------------------------------------------------------
    async def find_node(self, key: bytes) -> list[KadPeer]:
        """The k peers closest to ``key`` that answered (nearest first)."""
        return list((await self.lookup(key, MessageType.FIND_NODE)).closest)

    async def find_providers(self, key: bytes, wanted: int | None = None) -> list[KadPeer]:
        """Providers of ``key``: ours from the local store, then those a GET_PROVIDERS lookup
        finds (stops early once ``wanted`` are known)."""
        now = time.monotonic()
        found: dict[PeerId, KadPeer] = {p.peer_id: p for p in self.providers.get(key, now)}
        if wanted is None or len(found) < wanted:
            result = await self.lookup(key, MessageType.GET_PROVIDERS, wanted=wanted)
            for p in result.providers:
                if p.peer_id != self.host.peer_id:
                    found.setdefault(p.peer_id, p)
        for p in found.values():
            self._learn(p.peer_id, p.addrs)
        return list(found.values())

    async def lookup(self, key: bytes, kind: MessageType, wanted: int | None = None) -> LookupResult:
        async with self._lookup_slots:
            return await self._lookup(bytes(key), kind, wanted)

    async def _lookup(self, key: bytes, kind: MessageType, wanted: int | None) -> LookupResult:
        seeds = self.routing.closest(kad_id(key), self.kad.k)
        machine = Lookup(key, seeds, local_peer=self.host.peer_id, kind=kind, wanted=wanted, config=self.kad)
        finished = Wakeup()
        requests = TaskSet()

        def send(actions: list[SendRequest]) -> None:
            for action in actions:
                requests.spawn(ask(action), f"kad {kind.name} request")

        def after() -> None:
            if machine.done:
                finished.set()

        driver = Driver(
            next_deadline=machine.next_deadline,
            handle_timeout=lambda now: send(machine.handle_timeout(now)),
            after=after,
            on_error=lambda exc: (machine.cancel(), finished.set()),
            what=f"kad {kind.name} lookup",
        )

        async def ask(action: SendRequest) -> None:
            peer = action.peer
            try:
                reply = await self.request(peer, action.message)
            except DarkSwapError as exc:
                log.debug("kad %s to %s failed: %s", kind.name, peer.peer_id, exc)
                self.routing.mark_failed(peer.peer_id)
                send(machine.on_failure(peer.peer_id, now=time.monotonic()))
            else:
                assert reply is not None
                self._learn(peer.peer_id, peer.addrs)
                if reply.type is kind:
                    self.routing.add(KadPeer(peer.peer_id, self._book.get(peer.peer_id, peer.addrs)))
                    for p in reply.closer_peers:
                        self._learn(p.peer_id, p.addrs)
                send(machine.on_message(peer.peer_id, reply, now=time.monotonic()))
            driver.step()

        send(machine.start(time.monotonic()))
        driver.step()
        try:
            if not await finished.wait(self.config.lookup_timeout):
                log.debug("kad %s lookup timed out after %gs", kind.name, self.config.lookup_timeout)
                machine.cancel()
        finally:
            driver.close()
            await requests.close()
        self.lookups_done += 1
        if self._refresh is not None:
            self._refresh.lookup_done(kad_id(key), time.monotonic())
            if self._refresh_driver is not None:
                self._refresh_driver.rearm()
        return machine.result()

    # -- providing -------------------------------------------------------------------------------
    def provide(self, key: bytes) -> None:
        """Announce us as a provider of ``key`` now and republish it before it expires."""
        self._run_republish(self.providers.provide(key, time.monotonic()))
        self._provider_driver.rearm()

    async def publish(self, key: bytes) -> int:
        """ADD_PROVIDER for ``key`` to the k closest peers we find; returns how many took it."""
        closest = await self.find_node(key)
        local = self.local_peer()
        if not local.addrs:
            return 0
        message = add_provider_message(key, local)

        async def one(peer: KadPeer) -> bool:
            try:
                await self.request(peer, message, expect_reply=False)
                return True
            except DarkSwapError as exc:
                log.debug("ADD_PROVIDER to %s failed: %s", peer.peer_id, exc)
                return False

        results = await asyncio.gather(*(one(p) for p in closest))
        return sum(results)

    def _on_provider_timer(self, now: float) -> None:
        self._run_republish(self.providers.handle_timeout(now))

    def _run_republish(self, actions: list[Republish]) -> None:
        for action in actions:
            if self._closed:
                return
            self._tasks.spawn(self._republish(action.key), "kad provider republish")

    async def _republish(self, key: bytes) -> None:
        try:
            sent = await self.publish(key)
        except DarkSwapError as exc:
            log.info("publishing a provider record failed: %s", exc)
            sent = 0
        now = time.monotonic()
        if sent:
            log.info("provider record published to %d peers", sent)
            self.providers.republished(key, now)
        else:
            self.providers.republish_failed(key, now)
        self._provider_driver.rearm()

    # -- random walk -----------------------------------------------------------------------------
    def _on_refresh_timer(self, now: float) -> None:
        assert self._refresh is not None
        for index in self._refresh.handle_timeout(now):
            self._tasks.spawn(self._walk(index), "kad random walk")

    async def _walk(self, index: int) -> None:
        assert self._refresh is not None
        key = random_key_for_bucket(self.routing.local_id, index)
        try:
            await self.find_node(key)  # reports lookup_done for the key's bucket
        except DarkSwapError as exc:
            log.debug("kad random walk of bucket %d failed: %s", index, exc)
        # done or not (nobody answered), this bucket's next walk is refresh_interval away
        self._refresh.walk_failed(index, time.monotonic())
        if self._refresh_driver is not None:
            self._refresh_driver.rearm()

    def _on_driver_error(self, exc: Exception) -> None:
        log.error("kad timer failed: %r", exc)


def _nothing() -> None:
    return None
