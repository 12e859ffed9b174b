#!/usr/bin/env bash
# darkswap_wasm — build and project jobs.
#
#   ./build.sh          build the browser distribution in dist/ (project wheel, Pyodide core, wheels)
#   ./build.sh demo     build, then start a local relay and a static server for demo/ on 127.0.0.1; prints the URL
#   ./build.sh test     install everything the tests need, build (with the test wheels), run the suite
#   ./build.sh bench    run the benchmarks (numbers go to bench/RESULTS.md by hand)
#
# Everything it installs goes into this checkout: .venv/ (Python), tests/interop/js/node_modules
# (Node 22 + js-libp2p from npm), .cache/ and dist/. Re-running is cheap: .venv and node_modules
# are skipped when their inputs did not change, dist/ is reassembled from cached downloads.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
VENV=$ROOT/.venv
PY=$VENV/bin/python
JS_DIR=$ROOT/tests/interop/js
NODE22_BIN=$JS_DIR/node_modules/.bin

say() { printf '\033[1m[build]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[build] error:\033[0m %s\n' "$*" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is required but not installed ($2)"; }

# python_env webrtc|test: .venv with the project (editable) and one extra: "webrtc" (aiortc: the
# README's examples use native WebRTC) for build and demo, "test" (pytest, selenium,
# pytest-pyodide, ..., and webrtc) for test and bench. The stamp names the extra installed: a
# test install serves a build, not the other way round.
python_env() {
  need python3 "Python >= 3.11"
  python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is required, found $(python3 -V)"
  local extra=$1 hash
  hash=$(sha1sum pyproject.toml | cut -c1-12)
  local stamp=$VENV/.stamp-$hash-$extra
  if [ -f "$stamp" ] || { [ "$extra" = webrtc ] && [ -f "$VENV/.stamp-$hash-test" ]; }; then
    say "python: .venv up to date"
    return
  fi
  say "python: creating .venv and installing the project with its $extra extra"
  [ -x "$PY" ] || python3 -m venv "$VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  "$PY" -m pip install --quiet --upgrade pip >/dev/null
  "$PY" -m pip install --quiet -e ".[$extra]" || die "pip install failed (is PyPI reachable?)"
  rm -f "$VENV"/.stamp-*; touch "$stamp"
}

# .cache/wheelhouse: what a plain `pip install` of the project needs (its dependencies, no extras,
# and its build requirements), for tests/integration/test_packaging.py: it builds the wheel and
# installs it into a fresh venv inside the test namespace, where no registry is reachable.
wheelhouse() {
  local dir=$ROOT/.cache/wheelhouse
  local stamp=$dir/.stamp-$(sha1sum pyproject.toml | cut -c1-12)
  if [ -f "$stamp" ]; then
    say "wheelhouse: .cache/wheelhouse up to date"
    return
  fi
  say "wheelhouse: the project's dependencies (no extras) and build requirements into .cache/wheelhouse"
  mkdir -p "$dir"
  "$PY" -c 'import tomllib; c = tomllib.load(open("pyproject.toml", "rb"))
print("\n".join(c["project"]["dependencies"] + c["build-system"]["requires"]))' >"$dir/requirements.txt"
  "$PY" -m pip download --quiet --dest "$dir" -r "$dir/requirements.txt" || die "pip download failed (is PyPI reachable?)"
  rm -f "$dir"/.stamp-*; touch "$stamp"
}

node_env() {
  need npm "Node.js and npm"
  local stamp=$JS_DIR/node_modules/.stamp-$(sha1sum "$JS_DIR/package-lock.json" | cut -c1-12)
  if [ ! -f "$stamp" ]; then
    say "node: npm ci in tests/interop/js (Node 22 + js-libp2p 3)"
    (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed (is the npm registry reachable?)"
    touch "$stamp"
  else
    say "node: tests/interop/js/node_modules up to date"
  fi
  [ -x "$NODE22_BIN/node" ] || die "Node 22 binary missing at $NODE22_BIN/node after npm ci"
  "$NODE22_BIN/node" -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 22 ? 0 : 1)' || die "the Node in $NODE22_BIN is not >= 22"
}

# build_dist [--with-tests]: the test wheels (pytest, hypothesis, ...) and Pyodide's console pages
# only for test/bench; build_dist.py rebuilds dist/pyodide each time, so a dist built one way
# never stays behind for the other. (It needs only the standard library and pip: python_env is
# called by each job, with the extras that job needs.)
build_dist() {
  say "dist: building dist/ (project wheel, Pyodide core from npm, pure wheels from PyPI, js_glue, libsodium.js${1:+; $1})"
  "$PY" scripts/build_dist.py --out dist "$@" --browser || die "building dist/ failed"
}

browser_env() {
  if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    [ "$(id -u)" = 0 ] || die "chromium + chromium-driver are needed: apt-get install chromium chromium-driver (as root)"
    say "browser: installing Debian chromium + chromium-driver"
    apt-get update -q >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null \
      || die "apt-get install chromium chromium-driver failed"
  fi
  export SE_CHROMEDRIVER=/usr/bin/chromedriver
}

cmd_build() { python_env webrtc; build_dist; say "done: dist/ is ready"; }

cmd_demo() {
  python_env webrtc
  # demo.py builds dist/ itself (--build, without the test wheels), so that Ctrl-C/SIGTERM stop
  # the build, the relay and the web server alike (a shell waiting on a child would not)
  say "demo: building dist/, then our relay and a static server on 127.0.0.1; open the printed URL twice (Ctrl-C stops)"
  exec "$PY" scripts/demo.py --build "$@"
}

# Run a command inside a network namespace of our own: loopback plus one veth test host
# (10.99.0.1/24, default route through it). WebRTC needs a non-loopback interface to gather
# candidates, and no test may send traffic to this machine's outside address: in here there is
# none. Installs happen before entering it (no registry inside).
TEST_NET=10.99.0.0/24
in_test_netns() {
  need unshare "util-linux"
  need ip "iproute2"
  local flags=-n
  [ "$(id -u)" = 0 ] || flags=-rn  # unprivileged: a user namespace maps us to root inside
  unshare $flags bash -c '
    set -e
    ip link set lo up
    ip link add dsw0 type veth peer name dsw1
    ip addr add 10.99.0.1/24 dev dsw0
    ip link set dsw0 up
    ip link set dsw1 up
    ip route add default via 10.99.0.2
    exec "$@"' netns "$@" || return $?
}

cmd_test() {
  python_env test
  node_env
  browser_env
  build_dist --with-tests
  wheelhouse
  export PATH="$NODE22_BIN:$PATH"  # pytest-pyodide's node runtime and the js peers use Node 22
  export DARKSWAP_TEST_NETNS=$TEST_NET
  say "test: the whole suite inside a private network namespace (loopback + test host $TEST_NET)"
  in_test_netns "$PY" -m pytest tests "$@"
}

cmd_bench() {
  python_env test
  node_env
  browser_env
  build_dist --with-tests
  export PATH="$NODE22_BIN:$PATH"
  # js-libp2p bundled for the browser (compared in bench_browser.py): npm, so outside the namespace
  "$PY" bench/bench_browser.py --prepare-js "$ROOT/.cache/jsbundle" || say "bench: no js-libp2p browser bundle (row skipped)"
  say "bench: yamux machine, core throughput vs js-libp2p, relay, messaging, WebRTC (numbers -> bench/RESULTS.md)"
  in_test_netns bash -c '
    set -e
    "$0" bench/bench_yamux.py
    "$0" bench/bench_throughput.py
    "$0" bench/bench_relay.py throughput
    "$0" bench/bench_relay.py reservations --count 10000
    "$0" bench/bench_messaging.py
    "$0" bench/bench_webrtc.py --net '"$TEST_NET"'
    "$0" bench/bench_browser.py --js-dir '"$ROOT/.cache/jsbundle"'
  ' "$PY"
}

case "${1:-build}" in
  build) shift || true; cmd_build "$@" ;;
  demo) shift; cmd_demo "$@" ;;
  test) shift; cmd_test "$@" ;;
  bench) shift; cmd_bench "$@" ;;
  -h|--help|help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0" ;;
  *) die "unknown job '$1' (build | demo | test | bench)" ;;
esac
