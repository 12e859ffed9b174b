"""The console scripts' entry points (``darkswap-node``, ``darkswap-relay``).

They install the stop-signal handlers first and import the CLI after, so that SIGINT/SIGTERM
while the program is still importing (a few hundred milliseconds) is a clean stop with exit code
0, as in every later state, instead of a ``KeyboardInterrupt`` traceback. From there on
:func:`darkswap_wasm.cli.cli_main` handles them.
"""

from __future__ import annotations

import signal
import sys

SIGNAL_EXIT_CODE = 0  # as darkswap_wasm.cli.SIGNAL_EXIT_CODE (not imported: that is the point)


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(SIGNAL_EXIT_CODE)


def _quiet_until_started() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)


def node() -> int:
    _quiet_until_started()
    from .cli import main

    return main()


def relay() -> int:
    _quiet_until_started()
    from .relay import main

    return main()


if __name__ == "__main__":  # python -m darkswap_wasm.launch node|relay
    sys.exit({"node": node, "relay": relay}[sys.argv.pop(1)]())
