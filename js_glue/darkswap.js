/*
 * darkswap.js — DarkSwap's peer-to-peer networking core (libp2p) for web pages.
 *
 * Classic script:
 *   <script src="dist/darkswap.js"></script>
 *   <script>
 *     const darkswap = await DarkSwapWasm.new_with_defaults("regtest", { relays: [relayAddr] });
 *   </script>
 * ES module:
 *   import { DarkSwapWasm } from "./dist/darkswap.mjs";
 *
 * Everything else (Pyodide, the darkswap_wasm wheel, libsodium.js, webrtc-adapter) is
 * found relative to this file's own URL: document.currentScript.src for the classic script,
 * import.meta.url (through darkswap.mjs) for the module. Types: darkswap.d.ts.
 *
 * Errors are DarkSwapError objects (an Error subclass) with a stable `code` (the Python
 * exception's CODE: PEER_UNREACHABLE, TIMEOUT, RELAY_RESERVATION_FAILED, PROTOCOL_ERROR,
 * LIMIT_EXCEEDED, CONFIG_ERROR, INVALID_ARGUMENT, CLOSED, ...), never Python tracebacks.
 * Every method that returns a Promise reports every failure, bad arguments included, as a
 * rejection (it never throws synchronously); the sync methods (local_peer_id, listen_addrs, info,
 * on, off, once) throw. Durations are milliseconds everywhere (ping's result, options.timeout,
 * waitForReservations).
 */
(function (root) {
  "use strict";

  var SCRIPT_URL =
    typeof document !== "undefined" && document.currentScript && document.currentScript.src ? document.currentScript.src : null;

  var EVENTS = ["message", "peer:connect", "peer:disconnect", "connection:open", "connection:close", "relay:reserved", "relay:lost", "relay:error", "relay:warning", "close"];

  class DarkSwapError extends Error {
    constructor(code, message, pythonType) {
      super(message);
      this.name = "DarkSwapError";
      this.code = code;
      if (pythonType) this.pythonType = pythonType;
    }
  }

  function fail(code, message) {
    return new DarkSwapError(code, message);
  }

  function unwrap(env) {
    if (env && env.ok) return env.value;
    if (env && env.code) throw new DarkSwapError(env.code, env.message, env.name);
    throw new DarkSwapError("INTERNAL_ERROR", "malformed answer from the Python core");
  }

  function asBytes(data) {
    if (data instanceof Uint8Array) return data;
    if (data instanceof ArrayBuffer) return new Uint8Array(data);
    if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    throw fail("INVALID_ARGUMENT", "data must be a Uint8Array, an ArrayBuffer or a typed array");
  }

  function asPeerId(peerId) {
    if (typeof peerId !== "string" || !peerId) throw fail("INVALID_ARGUMENT", "peerId must be a peer ID string (12D3KooW...)");
    return peerId;
  }

  function asOptions(options, what) {
    if (options == null) return {};
    if (typeof options !== "object" || Array.isArray(options)) throw fail("INVALID_ARGUMENT", what + " must be an object (or omitted)");
    return options;
  }

  /** A duration in milliseconds; null/undefined stay null (the method's default). */
  function asMs(value, what) {
    if (value == null) return null;
    if (typeof value !== "number" || !isFinite(value) || value < 0) throw fail("INVALID_ARGUMENT", what + " must be a number of milliseconds >= 0");
    return value;
  }

  function makeApi(scriptUrl) {
    var base = new URL(".", scriptUrl).href; // the dist root: darkswap.js sits in it
    var registry = (root.__darkswapRuntimes = root.__darkswapRuntimes || {});

    /** Boot once per page and dist: Pyodide + wheel + libsodium.js, compat data (zstd: Python's own). */
    function runtime(options) {
      var lacking = [];
      if (typeof WebAssembly !== "object") lacking.push("WebAssembly");
      if (typeof BigInt !== "function") lacking.push("BigInt");
      if (typeof WebSocket !== "function") lacking.push("WebSocket");
      if (lacking.length) return Promise.reject(new Error("this browser lacks " + lacking.join(", ") + " (needed by Pyodide and libp2p)"));
      if (!registry[base]) {
        registry[base] = (async function () {
          var t0 = performance.now();
          var glue = await import(new URL("js_glue/boot.js", base).href);
          var compatMod = import(new URL("js_glue/compat.js", base).href);
          var envP = compatMod.then(function (m) {
            return m.collectEnvironment({ adapter: !(options && options.adapter === false) });
          });
          var pyodide = await glue.boot({ baseUrl: base, loadPyodideOptions: (options && options.loadPyodideOptions) || {} });
          var env = await envP;
          var ns = pyodide.toPy({});
          var install;
          var compression;
          try {
            // Pyodide 314 is CPython 3.14: compression.zstd (libzstd in pyodide.asm.wasm) is the backend
            install = pyodide.runPython(
              [
                "def install():",
                "    from darkswap_wasm.compression import available_backend",
                "    backend = available_backend()",
                "    return backend.name if backend is not None else 'unavailable: compression.zstd does not import'",
                "install",
              ].join("\n"),
              { globals: ns }
            );
            compression = install();
          } finally {
            if (install) install.destroy();
            ns.destroy();
          }
          var jsApi = pyodide.pyimport("darkswap_wasm.api.js_api");
          return {
            pyodide: pyodide,
            jsApi: jsApi,
            env: env,
            info: {
              baseUrl: base,
              boot: Object.assign({}, glue.lastBoot),
              compression: compression,
              adapterError: env.adapterError,
              totalMs: performance.now() - t0,
            },
          };
        })();
        registry[base].catch(function () {
          delete registry[base]; // a later call may retry
        });
      }
      return registry[base];
    }

    var TOKEN = {};

    class DarkSwapWasm {
      constructor(token, py, rt, network) {
        if (token !== TOKEN) throw fail("INVALID_ARGUMENT", "use `await DarkSwapWasm.new_with_defaults(network, options)`");
        this._py = py;
        this._rt = rt;
        this._network = network;
        this._listeners = new Map();
        this._closed = false;
        this._closing = null;
      }

      /**
       * Start a node: boot the runtime (once per page), then create the network.
       * @param {"regtest"|"testnet"|"mainnet"} network
       * @param {object} [options] see darkswap.d.ts (relays, identity, webrtc, compression, ...)
       */
      static async new_with_defaults(network, options) {
        if (typeof network !== "string") throw fail("INVALID_ARGUMENT", "network must be \"regtest\", \"testnet\" or \"mainnet\"");
        options = asOptions(options, "options");
        asMs(options.waitForReservations, "options.waitForReservations");
        var rt;
        try {
          rt = await runtime(options);
        } catch (e) {
          throw fail("RUNTIME_UNAVAILABLE", "cannot start the darkswap runtime: " + String((e && e.message) || e));
        }
        var self = null;
        var pending = [];
        var emit = function (event) {
          var args = Array.prototype.slice.call(arguments, 1);
          if (self) self._dispatch(event, args);
          else pending.push([event, args]);
        };
        var env = {
          userAgent: rt.env.userAgent,
          uaData: rt.env.uaData,
          features: rt.env.features,
          WebSocket: root.WebSocket,
          RTCPeerConnection: root.RTCPeerConnection || null,
        };
        var opts = Object.assign({}, options);
        delete opts.adapter;
        delete opts.loadPyodideOptions;
        var answer = await rt.jsApi.create(network, opts, emit, env);
        var py = unwrap(answer);
        self = new DarkSwapWasm(TOKEN, py, rt, network);
        self._pending = pending; // events before anyone could listen: replayed to the first listener
        return self;
      }

      /** Boot the runtime now (optional: new_with_defaults does it); resolves to its info. */
      static async preload(options) {
        var rt = await runtime(asOptions(options, "options"));
        return rt.info;
      }

      static get baseUrl() {
        return base;
      }

      // ---------------------------------------------------------------- calls into Python
      _check() {
        if (this._closed) throw fail("CLOSED", "this DarkSwapWasm is closed");
      }

      _sync(name, args) {
        this._check();
        return unwrap(this._py.call_sync(name, args || []));
      }

      async _call(name, args) {
        this._check();
        return unwrap(await this._py.call(name, args || []));
      }

      /** This node's peer ID (12D3KooW...). */
      local_peer_id() {
        return this._sync("local_peer_id");
      }

      /** Addresses others reach us at: /p2p-circuit ones while a relay reservation is live. */
      listen_addrs() {
        return this._sync("listen_addrs");
      }

      /** Version, network, compression, WebRTC, browser compatibility plan, boot timings. */
      info() {
        var i = this._sync("info");
        i.runtime = this._rt.info;
        return i;
      }

      /** Dial a full multiaddr (direct /ws, or <relay>/p2p-circuit/p2p/<peer>); resolves to the peer ID. */
      async connect(multiaddr) {
        if (typeof multiaddr !== "string") throw fail("INVALID_ARGUMENT", "multiaddr must be a string");
        return this._call("connect", [multiaddr]);
      }

      /** Round trip time to a connected (or reachable) peer, in milliseconds. */
      async ping(peerId) {
        return this._call("ping", [asPeerId(peerId)]);
      }

      /**
       * Make sure a direct WebRTC connection to `peerId` exists (reaching it through a shared
       * relay first). Resolves to {transport, remoteAddr} of the best connection afterwards:
       * "webrtc", or "relay" when WebRTC is unavailable or failed (no error: traffic stays relayed).
       */
      async create_webrtc_data_channel(peerId) {
        return this._call("create_webrtc_data_channel", [asPeerId(peerId)]);
      }

      /** Queue a message (DarkSwap messaging: batched, zstd-compressed, exactly once, in order). Resolves to its sequence number. */
      async send_webrtc_message(peerId, data) {
        return this._call("send_webrtc_message", [asPeerId(peerId), asBytes(data)]);
      }

      /** Like send_webrtc_message, on whatever connection reaches the peer now (no WebRTC attempt). */
      async send_message(peerId, data) {
        return this._call("send_message", [asPeerId(peerId), asBytes(data)]);
      }

      /** Resolves once the peer acknowledged every message up to `seq`. options.timeout in ms (default 30000). */
      async wait_delivered(peerId, seq, options) {
        asPeerId(peerId);
        if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) throw fail("INVALID_ARGUMENT", "seq must be a sequence number (an integer >= 0) from send_*");
        var timeout = asMs(asOptions(options, "options").timeout, "options.timeout");
        return this._call("wait_delivered", [peerId, seq, timeout]);
      }

      /** The next message from `peerId` (a Uint8Array), in order. options.timeout in ms (default: wait forever). */
      async receive_webrtc_message(peerId, options) {
        asPeerId(peerId);
        var timeout = asMs(asOptions(options, "options").timeout, "options.timeout");
        return this._call("receive_webrtc_message", [peerId, timeout]);
      }

      // ------------------------------------------------------------ rendezvous
      /**
       * Announce this page under `namespace` (a room, a market) on the relays it holds a
       * reservation on (their rendezvous service), with its /p2p-circuit addresses. Kept
       * registered (refreshed before the TTL ends and whenever a reservation comes back) until
       * unregister(). options.ttl in ms (default: the relay's, 2 h). Resolves with the granted TTL
       * in ms; rejects with "RENDEZVOUS_FAILED" when no relay accepted (e.g. none reserved yet).
       */
      async register(namespace, options) {
        if (typeof namespace !== "string" || !namespace) throw fail("INVALID_ARGUMENT", "namespace must be a non-empty string");
        var ttl = asMs(asOptions(options, "options").ttl, "options.ttl");
        return this._call("register", [namespace, ttl]);
      }

      /** Stop announcing this page under `namespace`. */
      async unregister(namespace) {
        if (typeof namespace !== "string" || !namespace) throw fail("INVALID_ARGUMENT", "namespace must be a non-empty string");
        return this._call("unregister", [namespace]);
      }

      /**
       * The other peers registered under `namespace` on this page's relays (never itself):
       * [{peerId, addrs, ttl}] (ttl in ms). options.limit, options.timeout (ms). Their addresses are
       * remembered: connect/send by peer ID reaches them afterwards.
       */
      async discover(namespace, options) {
        if (typeof namespace !== "string" || !namespace) throw fail("INVALID_ARGUMENT", "namespace must be a non-empty string");
        var opts = asOptions(options, "options");
        var limit = opts.limit == null ? null : opts.limit;
        if (limit !== null && (!Number.isSafeInteger(limit) || limit < 1)) throw fail("INVALID_ARGUMENT", "options.limit must be a positive integer");
        return this._call("discover", [namespace, limit, asMs(opts.timeout, "options.timeout")]);
      }

      /** Live connections (to `peerId`, or all), best first: [{transport, peerId, remoteAddr, direction, openedAt}]. */
      async connections(peerId) {
        return this._call("connections", peerId == null ? [] : [asPeerId(peerId)]);
      }

      // ---------------------------------------------------------------- events
      /**
       * Listen: "message" (peerId, Uint8Array), "peer:connect"/"peer:disconnect" (peerId),
       * "connection:open"/"connection:close" (peerId, transport), "relay:reserved"/"relay:lost"
       * (relay peer ID), "relay:error" (relay peer ID, reason: an attempt to reach or reserve on
       * it failed; retried with backoff), "relay:warning" (relay peer ID, reason: new_with_defaults got no
       * reservation on it in time), "close" (). A "relay:reserved", "peer:connect" or
       * "relay:warning" listener is also told, right after it is added, about the
       * reservations/peers/warnings that exist already.
       */
      on(event, fn) {
        if (EVENTS.indexOf(event) < 0) throw fail("INVALID_ARGUMENT", "unknown event " + JSON.stringify(event) + "; one of " + EVENTS.join(", "));
        if (typeof fn !== "function") throw fail("INVALID_ARGUMENT", "the listener must be a function");
        var set = this._listeners.get(event);
        if (!set) this._listeners.set(event, (set = new Set()));
        var first = set.size === 0;
        set.add(fn);
        if (event === "message" && first && !this._closed) this._sync("set_listening", [true]);
        this._replay(event, fn);
        return this;
      }

      off(event, fn) {
        var set = this._listeners.get(event);
        if (set && set.delete(fn) && set.size === 0 && event === "message" && !this._closed) this._sync("set_listening", [false]);
        return this;
      }

      once(event, fn) {
        var self = this;
        var wrapper = function () {
          self.off(event, wrapper);
          return fn.apply(this, arguments);
        };
        return this.on(event, wrapper);
      }

      _replay(event, fn) {
        var self = this;
        var args = [];
        if (event === "relay:reserved" && !this._closed) {
          this.info().reservations.forEach(function (r) {
            args.push([r]);
          });
        } else if ((event === "peer:connect" || event === "relay:warning") && this._pending) {
          this._pending.forEach(function (p) {
            if (p[0] === event) args.push(p[1]);
          });
        }
        if (args.length) {
          queueMicrotask(function () {
            args.forEach(function (a) {
              self._call1(fn, a);
            });
          });
        }
      }

      _call1(fn, args) {
        try {
          fn.apply(this, args);
        } catch (e) {
          console.error("darkswap: listener failed", e);
        }
      }

      _dispatch(event, args) {
        var set = this._listeners.get(event);
        if (!set) return;
        var self = this;
        Array.from(set).forEach(function (fn) {
          self._call1(fn, args);
        });
      }

      /** Stop: close every connection and reservation, release the Python object. */
      close() {
        if (!this._closing) {
          var self = this;
          this._closing = (async function () {
            if (self._closed) return;
            try {
              unwrap(await self._py.call("close", []));
            } finally {
              self._closed = true;
              try {
                self._py.destroy();
              } catch (_e) {
                // already gone
              }
              self._dispatch("close", []);
              self._listeners.clear();
            }
          })();
        }
        return this._closing;
      }
    }

    DarkSwapWasm.DarkSwapError = DarkSwapError;
    DarkSwapWasm.EVENTS = EVENTS.slice();
    return { DarkSwapWasm: DarkSwapWasm, DarkSwapError: DarkSwapError };
  }

  root.__darkswapFactory = makeApi;
  if (SCRIPT_URL) {
    var api = makeApi(SCRIPT_URL);
    root.DarkSwapWasm = api.DarkSwapWasm;
    root.DarkSwapError = api.DarkSwapError;
  }
})(typeof globalThis !== "undefined" ? globalThis : window);
