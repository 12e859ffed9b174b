#!/usr/bin/env bash
# Run the sans-I/O unit tests (default: tests/unit) inside Pyodide on node.
#
#   tests/pyodide/run.sh                      # build/refresh dist/pyodide, then run tests/unit
#   tests/pyodide/run.sh -k varint -x         # extra pytest arguments pass through
#   tests/pyodide/run.sh tests/unit/test_yamux.py
#   NO_BUILD=1 tests/pyodide/run.sh           # use dist/pyodide as it is (a stale one is an error)
#
# Exit status is pytest's: non-zero when node or the dist is missing, when a test fails,
# or when no test at all was executed inside Pyodide. Tests marked native_crypto or
# interop are deselected (see tests/pyodide/plugin.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if [ -z "${NO_BUILD:-}" ]; then
    "$PY" scripts/build_dist.py --out dist --with-tests --quiet
fi
has_path=0
for a in "$@"; do
    case "$a" in tests/*|./tests/*) has_path=1 ;; esac
done
if [ "$has_path" = 0 ]; then
    set -- tests/unit "$@"
fi
exec "$PY" -m pytest -p tests.pyodide.plugin --run-in-pyodide --runtime node \
    --dist-dir=dist/pyodide "$@"
