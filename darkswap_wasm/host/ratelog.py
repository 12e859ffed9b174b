"""Refusal logging that an attacker cannot turn into a flood: one line per kind and interval.

Every refusal at a limit (a stream refused over a budget, an inbox that stopped reading) is
counted per kind; at most one line per kind goes to the log every ``interval`` seconds, and it
says how many more happened since the last line. Kinds are fixed strings chosen by the code,
never text from a peer, so the tables stay small.
"""

from __future__ import annotations

import logging
import time
from collections import Counter


class RefusalLog:
    def __init__(self, logger: logging.Logger, interval: float = 1.0, level: int = logging.WARNING) -> None:
        self.logger = logger
        self.interval = interval
        self.level = level
        self.counts: Counter[str] = Counter()  # refusals per kind since start (for metrics)
        self._last: dict[str, float] = {}
        self._quiet: Counter[str] = Counter()  # refusals not logged since the kind's last line

    def refused(self, kind: str, msg: str, *args: object) -> None:
        """Count one refusal of ``kind``; log ``msg % args`` unless this kind logged recently."""
        self.counts[kind] += 1
        now = time.monotonic()
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._quiet[kind] += 1
            return
        self._last[kind] = now
        more = self._quiet.pop(kind, 0)
        if more:
            msg += " (and %d more since the last report)"
            args = (*args, more)
        self.logger.log(self.level, msg, *args)
