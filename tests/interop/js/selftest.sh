#!/usr/bin/env bash
# js <-> js self-check of the interop peer harness.
#   tests/interop/js/selftest.sh [--throughput-mib 64] [--runs 3]
# Installs the pinned node 22 + js-libp2p (npm ci) if they are missing, then
# runs selftest.py, which drives two peer.mjs processes on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/node ] || [ ! -f node_modules/libp2p/package.json ]; then
  echo "selftest.sh: installing (npm ci)..." >&2
  npm ci --no-audit --no-fund >&2
fi
echo "selftest.sh: node $(node_modules/.bin/node --version), libp2p $(node_modules/.bin/node -p 'require("./node_modules/libp2p/package.json").version')" >&2
exec python3 selftest.py "$@"
