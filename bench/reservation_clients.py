"""Load generator for the relay benchmark: N peers (own keys, own connections) reserving on one
relay. Prints ``reserved <count>`` once all hold a reservation (or the timeout passed), then
stays until stdin closes.

    python bench/reservation_clients.py RELAY_ADDR N [--timeout 600]
"""

from __future__ import annotations

import asyncio
import sys
import time

from darkswap_wasm import Network, NetworkConfig


async def main() -> None:
    relay, n = sys.argv[1], int(sys.argv[2])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 600.0
    nets: list[Network] = []
    batch = 200
    for i in range(0, n, batch):
        nets.extend(
            await asyncio.gather(*(Network.create(NetworkConfig(relays=[relay])) for _ in range(min(batch, n - i))))
        )
        while sum(1 for x in nets if x.reservations()) < len(nets) - batch:  # bound the handshakes in flight
            await asyncio.sleep(0.05)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sum(1 for x in nets if x.reservations())
        if done == n:
            break
        await asyncio.sleep(0.2)
    print(f"reserved {sum(1 for x in nets if x.reservations())}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for x in nets:
        await x.close()


if __name__ == "__main__":
    asyncio.run(main())
