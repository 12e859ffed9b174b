"""Realistic DarkSwap messages for benchmarks (deterministic for a given seed; stdlib only).

Shapes follow what DarkSwap peers gossip: JSON orders on BTC/rune and BTC/alkane pairs
(~230 bytes), the same order signed by its maker (a 64-byte Schnorr signature in hex, ~380 bytes),
cancels, and order-book snapshots of 50 orders (~10 KiB). Makers, pairs and price levels come
from small pools, as on a real market, so messages share structure but not content.

    from messages import MessageGenerator
    gen = MessageGenerator(seed=1)
    gen.order(); gen.signed_order(); gen.cancel(); gen.snapshot(); gen.mixed(1000)
"""

from __future__ import annotations

import json
import random

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_RUNES = [
    "840000:3",  # DOG•GO•TO•THE•MOON
    "840000:28",
    "840010:1",
    "840000:35",
    "841221:1082",
    "842015:377",
    "845764:84",
    "851912:2",
]
_ALKANES = ["2:1", "2:16", "2:68", "2:21302"]


def _peer_id(rng: random.Random) -> str:
    return "12D3KooW" + "".join(rng.choice(_B58) for _ in range(44))


class MessageGenerator:
    def __init__(self, seed: int = 1, makers: int = 40, start_time: int = 1_718_000_000) -> None:
        self.rng = rng = random.Random(seed)
        self.makers = [_peer_id(rng) for _ in range(makers)]
        self.pairs = [f"BTC/RUNE:{r}" for r in _RUNES] + [f"BTC/ALKANE:{a}" for a in _ALKANES]
        levels = [0.8, 1.7, 12.5, 38.0, 150.0, 4200.0]
        self.base_price = {p: rng.choice(levels) * rng.uniform(0.5, 2) for p in self.pairs}
        self.now = start_time
        self.live: list[tuple[str, str, str]] = []  # (order id, maker, pair) for cancels

    def _id(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def _tick(self) -> int:
        self.now += self.rng.randint(0, 3)
        return self.now

    def order_dict(self, pair: str | None = None, maker: str | None = None) -> dict:
        rng = self.rng
        pair = pair or rng.choice(self.pairs)
        maker = maker or rng.choice(self.makers)
        side = rng.choice(("buy", "sell"))
        price = self.base_price[pair] * (1 + rng.gauss(0, 0.02))
        amount = rng.choice((10, 50, 100, 250, 500, 1000, 5000, 21000)) * rng.choice((1, 1, 1, 2, 5))
        now = self._tick()
        order_id = self._id()
        self.live.append((order_id, maker, pair))
        if len(self.live) > 500:
            del self.live[:100]
        return {
            "type": "order",
            "id": order_id,
            "maker": maker,
            "side": side,
            "pair": pair,
            "amount": str(amount),
            "price": f"{price:.8f}",
            "expiry": now + rng.choice((600, 3600, 86400)),
            "ts": now,
        }

    def order(self) -> bytes:
        return json.dumps(self.order_dict(), separators=(",", ":")).encode()

    def signed_order(self) -> bytes:
        d = self.order_dict()
        d["nonce"] = self.rng.getrandbits(32)
        d["sig"] = f"{self.rng.getrandbits(512):0128x}"
        return json.dumps(d, separators=(",", ":")).encode()

    def cancel(self) -> bytes:
        rng = self.rng
        while len(self.live) < 200:  # cancels name orders that were announced earlier, once each
            self.order_dict()
        order_id, maker, pair = self.live.pop(rng.randrange(len(self.live)))
        d = {"type": "cancel", "id": order_id, "maker": maker, "pair": pair, "ts": self._tick()}
        return json.dumps(d, separators=(",", ":")).encode()

    def snapshot(self, n: int = 50) -> bytes:
        pair = self.rng.choice(self.pairs)
        orders = []
        for _ in range(n):
            d = self.order_dict(pair=pair)
            orders.append({k: d[k] for k in ("id", "maker", "side", "amount", "price", "expiry")})
        snap = {"type": "orderbook", "pair": pair, "seq": self.rng.getrandbits(24), "ts": self.now, "orders": orders}
        return json.dumps(snap, separators=(",", ":")).encode()

    def mixed(self, count: int) -> list[bytes]:
        """A gossip-like stream: 70% orders, 15% signed orders, 13% cancels, 2% snapshots."""
        out = []
        for _ in range(count):
            r = self.rng.random()
            if r < 0.70:
                out.append(self.order())
            elif r < 0.85:
                out.append(self.signed_order())
            elif r < 0.98:
                out.append(self.cancel())
            else:
                out.append(self.snapshot())
        return out

    def kind(self, name: str, count: int) -> list[bytes]:
        make = {"order": self.order, "signed": self.signed_order, "cancel": self.cancel, "snapshot": self.snapshot}
        if name == "mixed":
            return self.mixed(count)
        return [make[name]() for _ in range(count)]


if __name__ == "__main__":
    gen = MessageGenerator()
    for name in ("order", "signed", "cancel", "snapshot"):
        sample = gen.kind(name, 200)
        print(f"{name:9s} avg {sum(map(len, sample)) / len(sample):8.1f} B   e.g. {sample[0][:160].decode()}...")
