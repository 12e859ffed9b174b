"""Which relays to hold reservations on: measurement, score, selection, replacement (issue 13
§3-4). Clock-free and I/O-free like the rest of ``policy/``: times are arguments, randomness is
an injected :class:`random.Random`, the caller pings, reserves and releases.

Measurement, per relay (:class:`RelayStats`):

* RTT: TCP's smoothed estimator (RFC 6298 §2): the first sample sets ``srtt = R``,
  ``rttvar = R / 2``; later ones ``rttvar = (1 - beta) rttvar + beta |srtt - R|``,
  ``srtt = (1 - alpha) srtt + alpha R`` with alpha = 1/8, beta = 1/4.
* Successes and failures (dial, reservation, renewal, ping), each count decaying with a
  half-life so an old failure stops mattering.
* Load (optional): the fuller of reservations / limit and circuits / limit from
  ``/darkswap/relay-info/1.0.0`` (:mod:`darkswap_wasm.protocols.relay_info`); a relay that
  does not speak it (js-libp2p, go-libp2p) has no load and is scored on RTT and failures alone.
  A load report older than ``load_max_age`` is forgotten.
* Backoff: each failure schedules the next allowed attempt with
  :class:`~darkswap_wasm.policy.backoff.Backoff` (exponential, jittered); a success resets it.
  A relay in backoff is never selected.

Score (lower is better; seconds of RTT scaled by penalties)::

    score = rtt · (1 + load_weight · L) · (1 + failure_weight · F)
    L = load + high_load_penalty · max(0, load - high_load) / (1 - high_load)   (0 when unknown)
    F = failures / (failures + successes + 1)
    rtt = srtt, or unknown_rtt before the first sample

so with the defaults a relay at 90 % load scores 2.9 times its RTT and one at 10 % 1.1 times
(above 80 % use the penalty steepens, as DarkSwap's Rust plan has it).

Selection (:meth:`RelaySelector.select`): the candidates are the usable relays not already held
whose score is within ``margin`` of the best; among them **power of two choices**: two are
sampled, the less loaded is taken (either, at random, when a load is missing or equal: every
candidate is near-best by the margin). Many clients seeing the same "best" relay thus spread
over the near-best ones instead of herding, with or without load reports.

Replacement (:meth:`RelaySelector.replacements`): a held relay that is dead (in backoff after a
failure) or whose score exceeds ``replace_factor`` times the best unheld one's (and by at least
``replace_min_gain`` seconds) is replaced. The :class:`Replace` action means: **reserve on
``reserve`` first, advertise its circuit address, and only then release ``release``**, so a node
with another relay never has zero reservations.

Discovery: relays come from four sources, merged into one entry per peer ID
(:data:`SOURCES`: configured, bootstrap, provider records, identify); :class:`DiscoverySchedule`
paces the discovery rounds and never stops while too few relays are usable.

Timers: :meth:`RelaySelector.next_deadline` (a backoff ends) and
:meth:`DiscoverySchedule.next_deadline` (a round is due); the host re-evaluates
(:meth:`RelaySelector.replacements`, :meth:`RelaySelector.select`) at those, on its own
periodic tick, and on events (a reservation lost, a new relay found).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from ..errors import ConfigError, UsageError
from ..identity import PeerId
from .backoff import Backoff


@dataclass(frozen=True)
class SelectionConfig:
    rtt_gain: float = 0.125  # alpha of RFC 6298
    rttvar_gain: float = 0.25  # beta of RFC 6298
    unknown_rtt: float = 1.0  # seconds assumed before the first RTT sample
    count_half_life: float = 600.0  # seconds for a success/failure count to halve
    failure_weight: float = 4.0  # a relay failing half its attempts scores 3x (F = 0.5)
    load_weight: float = 1.0
    high_load: float = 0.8  # above this use the load penalty steepens
    high_load_penalty: float = 2.0
    load_max_age: float = 300.0  # seconds a load report stays valid
    margin: float = 0.25  # candidates score within (1 + margin) of the best
    choices: int = 2  # relays sampled per pick: 2 = power of two choices, 1 = uniform at random
    replace_factor: float = 2.0  # "much worse": held score > factor x best unheld score
    replace_min_gain: float = 0.05  # ... and worse by at least this many seconds
    backoff_initial: float = 5.0
    backoff_max: float = 600.0
    backoff_multiplier: float = 2.0
    backoff_jitter: float = 0.2
    discovery_initial: float = 5.0  # first retry of a discovery round that left too few relays
    discovery_max: float = 300.0  # the retry delay grows to this and stays: never gives up
    discovery_interval: float = 600.0  # rounds while enough relays are known (relays come and go)
    spare_relays: int = 2  # discovery aims for wanted reservations + this many usable relays

    def __post_init__(self) -> None:
        for name in ("rtt_gain", "rttvar_gain"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigError(f"SelectionConfig.{name} must be in (0, 1]")
        for name in ("unknown_rtt", "count_half_life", "load_max_age"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"SelectionConfig.{name} must be positive")
        for name in ("failure_weight", "load_weight", "high_load_penalty", "margin", "replace_min_gain"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"SelectionConfig.{name} must not be negative")
        if not 0 < self.high_load < 1:
            raise ConfigError("SelectionConfig.high_load must be in (0, 1)")
        if not self.replace_factor >= 1:
            raise ConfigError("SelectionConfig.replace_factor must be at least 1")
        if not 0 < self.discovery_initial <= self.discovery_max:
            raise ConfigError("SelectionConfig needs 0 < discovery_initial <= discovery_max")
        if not self.discovery_interval > 0:
            raise ConfigError("SelectionConfig.discovery_interval must be positive")
        if self.choices < 1:
            raise ConfigError("SelectionConfig.choices must be at least 1")
        if self.spare_relays < 0:
            raise ConfigError("SelectionConfig.spare_relays must not be negative")


DEFAULT_CONFIG = SelectionConfig()


class RelayStats:
    """What we measured about one relay."""

    def __init__(self, peer: PeerId, config: SelectionConfig, rng: random.Random) -> None:
        self.peer = peer
        self.config = config
        self.srtt: float | None = None
        self.rttvar: float | None = None
        self._successes = 0.0
        self._failures = 0.0
        self._counted_at: float | None = None
        self.load: float | None = None
        self.load_at: float | None = None
        self.backoff = Backoff(config.backoff_initial, config.backoff_max, config.backoff_multiplier,
                               config.backoff_jitter, rng=rng)
        self.retry_at: float | None = None  # set while backed off
        self.sources: set[str] = set()  # how we learned of it (see SOURCES)

    # --- inputs -----------------------------------------------------------------------------

    def on_rtt(self, sample: float) -> None:
        if not (isinstance(sample, (int, float)) and math.isfinite(sample) and sample >= 0):
            raise UsageError(f"RTT sample must be a finite, non-negative number of seconds, not {sample!r}")
        cfg = self.config
        if self.srtt is None:
            self.srtt, self.rttvar = float(sample), sample / 2.0
        else:
            self.rttvar = (1 - cfg.rttvar_gain) * self.rttvar + cfg.rttvar_gain * abs(self.srtt - sample)
            self.srtt = (1 - cfg.rtt_gain) * self.srtt + cfg.rtt_gain * sample

    def on_success(self, now: float) -> None:
        self._decay(now)
        self._successes += 1.0
        self.backoff.reset()
        self.retry_at = None

    def on_failure(self, now: float) -> float:
        """Count a failure and back off; returns when the relay may be tried again."""
        self._decay(now)
        self._failures += 1.0
        self.retry_at = now + self.backoff.next_delay()
        return self.retry_at

    def on_load(self, load: float | None, now: float) -> None:
        """A relay-info report (``RelayInfo.load``); ``None`` clears the figure."""
        if load is not None and not (math.isfinite(load) and load >= 0):
            raise UsageError(f"load must be a finite fraction, not {load!r}")
        self.load = None if load is None else min(1.0, float(load))
        self.load_at = now

    # --- outputs ----------------------------------------------------------------------------

    def usable(self, now: float) -> bool:
        return self.retry_at is None or now >= self.retry_at

    def counts(self, now: float) -> tuple[float, float]:
        """(successes, failures), decayed to ``now``."""
        factor = self._factor(now)
        return self._successes * factor, self._failures * factor

    def current_load(self, now: float) -> float | None:
        if self.load is None or self.load_at is None or now - self.load_at > self.config.load_max_age:
            return None
        return self.load

    def score(self, now: float) -> float:
        cfg = self.config
        rtt = cfg.unknown_rtt if self.srtt is None else self.srtt
        successes, failures = self.counts(now)
        fail = failures / (failures + successes + 1.0)
        load = self.current_load(now)
        load_term = 0.0
        if load is not None:
            load_term = load + cfg.high_load_penalty * max(0.0, load - cfg.high_load) / (1 - cfg.high_load)
        return rtt * (1 + cfg.load_weight * load_term) * (1 + cfg.failure_weight * fail)

    # --- internals --------------------------------------------------------------------------

    def _factor(self, now: float) -> float:
        if self._counted_at is None or now <= self._counted_at:
            return 1.0
        return 0.5 ** ((now - self._counted_at) / self.config.count_half_life)

    def _decay(self, now: float) -> None:
        factor = self._factor(now)
        self._successes *= factor
        self._failures *= factor
        self._counted_at = now if self._counted_at is None else max(now, self._counted_at)


SOURCES = frozenset({
    "config",  # NetworkConfig.relays
    "bootstrap",  # a bootstrap peer that turned out to be a relay
    "provider",  # a provider record for the relay key (kad.relay_key())
    "identify",  # a connected peer whose identify lists the circuit v2 hop protocol
})


@dataclass(frozen=True)
class RelaySnapshot:
    """One relay as the API shows it (``net.relays()``)."""

    peer: PeerId
    rtt: float | None
    load: float | None
    successes: float
    failures: float
    score: float
    retry_at: float | None
    sources: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Replace:
    """Action: reserve on ``reserve``, advertise its circuit address, *then* release ``release``."""

    release: PeerId
    reserve: PeerId
    reason: str  # "dead" | "worse"


class RelaySelector:
    def __init__(self, config: SelectionConfig | None = None, rng: random.Random | None = None) -> None:
        self.config = config or DEFAULT_CONFIG
        self.rng = rng if rng is not None else random.Random()
        self._relays: dict[PeerId, RelayStats] = {}

    # --- the relay set ----------------------------------------------------------------------

    def add(self, peer: PeerId, source: str = "config") -> RelayStats:
        """Know ``peer`` as a relay, learned from ``source`` (one of :data:`SOURCES`); a relay
        found by several sources is one entry listing them all."""
        if source not in SOURCES:
            raise UsageError(f"relay source {source!r} is not one of {sorted(SOURCES)}")
        stats = self._relays.get(peer)
        if stats is None:
            stats = self._relays[peer] = RelayStats(peer, self.config, self.rng)
        stats.sources.add(source)
        return stats

    def usable_count(self, now: float) -> int:
        return sum(1 for s in self._relays.values() if s.usable(now))

    def remove(self, peer: PeerId) -> bool:
        return self._relays.pop(peer, None) is not None

    def __contains__(self, peer: object) -> bool:
        return peer in self._relays

    def __len__(self) -> int:
        return len(self._relays)

    def stats(self, peer: PeerId) -> RelayStats:
        try:
            return self._relays[peer]
        except KeyError:
            raise UsageError(f"relay {peer} is not known to the selector") from None

    # --- measurements (shortcuts) -----------------------------------------------------------

    def observe_rtt(self, peer: PeerId, rtt: float) -> None:
        self.stats(peer).on_rtt(rtt)

    def observe_load(self, peer: PeerId, load: float | None, now: float) -> None:
        self.stats(peer).on_load(load, now)

    def record_success(self, peer: PeerId, now: float) -> None:
        self.stats(peer).on_success(now)

    def record_failure(self, peer: PeerId, now: float) -> float:
        return self.stats(peer).on_failure(now)

    def score(self, peer: PeerId, now: float) -> float:
        return self.stats(peer).score(now)

    def snapshot(self, now: float) -> list[RelaySnapshot]:
        """Every known relay, best score first."""
        out = []
        for s in self._relays.values():
            successes, failures = s.counts(now)
            out.append(RelaySnapshot(s.peer, s.srtt, s.current_load(now), successes, failures, s.score(now),
                                     s.retry_at if not s.usable(now) else None, frozenset(s.sources)))
        return sorted(out, key=lambda r: r.score)

    # --- decisions --------------------------------------------------------------------------

    def candidates(self, now: float, exclude=()) -> list[PeerId]:
        """Usable relays not in ``exclude`` scoring within ``margin`` of the best, best first."""
        skip = set(exclude)
        scored = sorted((s.score(now), i, s.peer) for i, s in enumerate(self._relays.values())
                        if s.peer not in skip and s.usable(now))
        if not scored:
            return []
        limit = scored[0][0] * (1 + self.config.margin)
        return [peer for score, _, peer in scored if score <= limit]

    def choose(self, now: float, exclude=()) -> PeerId | None:
        """One relay by power of two choices among :meth:`candidates` (``None``: none usable):
        ``choices`` sampled at random, the least loaded of them taken."""
        cands = self.candidates(now, exclude)
        if not cands:
            return None
        if len(cands) == 1:
            return cands[0]
        sampled = self.rng.sample(cands, min(self.config.choices, len(cands)))
        best = sampled[0]
        for other in sampled[1:]:
            best = self._less_loaded(best, other, now)
        return best

    def select(self, n: int, now: float, held=()) -> list[PeerId]:
        """Relays to reserve on so that ``n`` are held (``held`` are kept, dead ones included:
        :meth:`replacements` deals with those)."""
        if n < 0:
            raise UsageError("cannot hold a negative number of relays")
        chosen: list[PeerId] = []
        taken = set(held)
        while len(taken) < n:
            peer = self.choose(now, exclude=taken)
            if peer is None:
                break
            chosen.append(peer)
            taken.add(peer)
        return chosen

    def replacements(self, held, now: float) -> list[Replace]:
        """For each held relay that is dead or much worse than the best unheld one, the relay to
        move to (reserve it first, release the old one after)."""
        held = list(held)
        taken = set(held)
        out: list[Replace] = []
        for peer in held:
            stats = self._relays.get(peer)
            dead = stats is None or not stats.usable(now)
            if not dead:
                best = self.candidates(now, exclude=taken)
                if not best:
                    continue
                held_score, best_score = stats.score(now), self.score(best[0], now)
                if not (held_score > self.config.replace_factor * best_score
                        and held_score - best_score >= self.config.replace_min_gain):
                    continue
            new = self.choose(now, exclude=taken)
            if new is None:
                continue  # nothing to move to: keep what we have
            taken.add(new)
            out.append(Replace(peer, new, "dead" if dead else "worse"))
        return out

    # --- the timer --------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When the first backed-off relay becomes usable again (re-evaluate then)."""
        times = [s.retry_at for s in self._relays.values() if s.retry_at is not None]
        return min(times) if times else None

    def handle_timeout(self, now: float) -> list[PeerId]:
        """Relays whose backoff ended at ``now`` (usable again; their next failure backs off
        longer, a success resets the backoff)."""
        ended = [s.peer for s in self._relays.values() if s.retry_at is not None and s.retry_at <= now]
        for peer in ended:
            self._relays[peer].retry_at = None
        return ended

    # --- internals --------------------------------------------------------------------------

    def _less_loaded(self, a: PeerId, b: PeerId, now: float) -> PeerId:
        la, lb = self._relays[a].current_load(now), self._relays[b].current_load(now)
        if la is not None and lb is not None and la != lb:
            return a if la < lb else b
        return a  # no load to compare: the first of a random sample (every candidate is near-best)


class DiscoverySchedule:
    """When to run a discovery round (a GET_PROVIDERS lookup for the relay key and a random walk,
    whose peers identify may show to be relays), so that discovery never stops for good — the
    js-libp2p #2676 failure, where too few answering relays ended it.

    While fewer than ``want + spare_relays`` relays are usable, a round that ends is followed by
    another after a growing delay (``discovery_initial`` doubling up to ``discovery_max``, with
    jitter, never giving up); once enough are usable, rounds come every ``discovery_interval``
    and the delay starts small again the next time relays run short. One round at a time:
    :meth:`handle_timeout` says "start one" (True) and waits for :meth:`round_done`.
    """

    def __init__(self, selector: RelaySelector, want: int, now: float) -> None:
        if want < 0:
            raise UsageError("cannot want a negative number of relays")
        self.selector = selector
        self.want = want
        cfg = selector.config
        self._backoff = Backoff(cfg.discovery_initial, cfg.discovery_max, 2.0, cfg.backoff_jitter,
                                rng=selector.rng)
        self._next: float | None = now  # first round at once
        self._running = False
        self.rounds = 0

    @property
    def target(self) -> int:
        return self.want + self.selector.config.spare_relays

    def short(self, now: float) -> bool:
        return self.selector.usable_count(now) < self.target

    def round_done(self, now: float) -> float:
        """A round finished (whatever it found was added to the selector); returns when the next
        one is due."""
        self._running = False
        if self.short(now):
            self._next = now + self._backoff.next_delay()
        else:
            self._backoff.reset()
            self._next = now + self.selector.config.discovery_interval
        return self._next

    def relays_changed(self, now: float) -> None:
        """A relay failed or was lost: if that leaves too few, look again soon (not later than
        the first backoff step), without waiting for a long ``discovery_interval``."""
        if not self._running and self.short(now) and self._backoff.attempts == 0:
            soon = now + self._backoff.next_delay()
            self._next = soon if self._next is None else min(self._next, soon)

    def next_deadline(self) -> float | None:
        return None if self._running else self._next

    def handle_timeout(self, now: float) -> bool:
        if self._running or self._next is None or now < self._next:
            return False
        self._running = True
        self._next = None
        self.rounds += 1
        return True
