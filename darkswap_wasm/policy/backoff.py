"""Exponential backoff with jitter. Pure: no clock, no sleeping — it only computes delays.

``delay(n) = min(maximum, initial * multiplier**n) * (1 + u)``, ``u`` uniform in
``[-jitter, +jitter]``, and never above ``maximum``; ``n`` counts the delays handed out since
the last :meth:`Backoff.reset`.
"""

from __future__ import annotations

import random

from ..errors import ConfigError


class Backoff:
    def __init__(
        self,
        initial: float = 0.5,
        maximum: float = 60.0,
        multiplier: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
        give_up_after: int | None = None,
    ) -> None:
        if not initial > 0:
            raise ConfigError("Backoff.initial must be > 0")
        if not maximum >= initial:
            raise ConfigError("Backoff.maximum must be >= initial")
        if not multiplier >= 1.0:
            raise ConfigError("Backoff.multiplier must be >= 1")
        if not 0.0 <= jitter < 1.0:
            raise ConfigError("Backoff.jitter must be in [0, 1)")
        if give_up_after is not None and give_up_after < 0:
            raise ConfigError("Backoff.give_up_after must be >= 0 (or None)")
        self.initial = float(initial)
        self.maximum = float(maximum)
        self.multiplier = float(multiplier)
        self.jitter = float(jitter)
        self.give_up_after = give_up_after
        self._rng = rng if rng is not None else random.Random()
        self._attempts = 0
        self._base = self.initial

    @property
    def attempts(self) -> int:
        """Delays handed out since the last reset."""
        return self._attempts

    @property
    def exhausted(self) -> bool:
        """True once ``give_up_after`` delays were handed out (never when it is ``None``)."""
        return self.give_up_after is not None and self._attempts >= self.give_up_after

    def next_delay(self) -> float:
        """The next delay in seconds (advances the attempt count; still answers when exhausted)."""
        base = self._base
        self._attempts += 1
        self._base = min(self.maximum, base * self.multiplier)  # grows without float overflow
        delay = base * (1.0 + self._rng.uniform(-self.jitter, self.jitter))
        return min(self.maximum, delay)

    def peek_base(self) -> float:
        """The un-jittered base of the next delay."""
        return self._base

    def reset(self) -> None:
        self._attempts = 0
        self._base = self.initial

    def __repr__(self) -> str:
        return f"Backoff(attempts={self._attempts}, next_base={self._base:.3f})"
