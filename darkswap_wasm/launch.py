"""The console scripts' entry points (``darkswap-node``, ``darkswap-relay``).

They install the stop-signal handlers first and import the CLI after, so that SIGINT/SIGTERM
while the program is still importing (a few hundred milliseconds) is a clean stop with exit code
0, as in every later state, instead of a ``KeyboardInterrupt`` traceback. The handlers only
*record* the signal (:data:`early_signals`): an exception raised from a handler in the middle of
an import can be swallowed by a library's bare ``except:`` (seen: the node then ran on as if
never told to stop); :func:`darkswap_wasm.cli.cli_main` checks the record at its safe points and
:func:`darkswap_wasm.cli.run_until_stopped` takes over with the event loop's handlers.
"""

from __future__ import annotations

import signal
import sys

SIGNAL_EXIT_CODE = 0  # as darkswap_wasm.cli.SIGNAL_EXIT_CODE (not imported: that is the point)


early_signals: list[int] = []  # stop signals that came before the event loop's handlers


def record_signal(signum: int, frame: object) -> None:
    early_signals.append(signum)


def record_stop_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, record_signal)


def _installed() -> bool:
    """Install the recording handlers; False if a SIGINT came while doing so (Python's default
    handler raised it in the middle of ``signal.signal``, seen in CI): that is a stop too."""
    try:
        record_stop_signals()
    except KeyboardInterrupt:
        return False
    return True


def node() -> int:
    if not _installed():
        return SIGNAL_EXIT_CODE
    from .cli import main

    return SIGNAL_EXIT_CODE if early_signals else main()


def relay() -> int:
    if not _installed():
        return SIGNAL_EXIT_CODE
    from .relay import main

    return SIGNAL_EXIT_CODE if early_signals else main()


if __name__ == "__main__":  # python -m darkswap_wasm.launch node|relay
    sys.exit({"node": node, "relay": relay}[sys.argv.pop(1)]())
