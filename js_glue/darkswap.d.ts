// Types of the DarkSwap JS API: dist/darkswap.js (classic script, global `DarkSwapWasm`) and
// dist/darkswap.mjs (ES module exporting `DarkSwapWasm`, `DarkSwapError`, default DarkSwapWasm).
//
// Units: every duration is in MILLISECONDS (ping's result, `timeout` options, waitForReservations).
// Errors: every method returning a Promise rejects (never throws synchronously) with a
// DarkSwapError carrying a stable `code`, bad arguments included (INVALID_ARGUMENT). The sync
// methods (local_peer_id, listen_addrs, info, on, off, once) throw. `null` and `undefined` are the
// same as an omitted argument or option.

/** The networks `new_with_defaults` knows. All start with no default relays: pass `relays`. */
export type NetworkName = "regtest" | "testnet" | "mainnet";

/** A peer ID in its base58 form, e.g. "12D3KooW…". */
export type PeerId = string;

/** A full multiaddr, e.g. "/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3KooW…". */
export type Multiaddr = string;

export type Transport = "webrtc" | "relay" | "ws" | "tcp";

/** Stable error codes (the Python exception's CODE); others may appear for new error classes. */
export type ErrorCode =
  | "PEER_UNREACHABLE"
  | "RELAY_FAILED"
  | "RELAY_RESERVATION_FAILED"
  | "RENDEZVOUS_FAILED" // no relay accepted a register/discover (none reserved, refused, no service)
  | "TIMEOUT"
  | "PROTOCOL_ERROR"
  | "DECODE_ERROR"
  | "LIMIT_EXCEEDED"
  | "RESOURCE_LIMIT_EXCEEDED" // refused at one of our own budgets (streams, memory): a LIMIT_EXCEEDED
  | "MESSAGE_TOO_LARGE" // a message you asked to send is over the limit (4 MiB, or a relay circuit's data limit)
  | "USAGE_ERROR" // a call in the wrong state: a bug in the caller, never the peer's fault
  | "MALFORMED_MESSAGE" // a relay protocol message that does not decode
  | "INVALID_ENVELOPE" // a signed envelope (peer record, voucher) that does not verify
  | "DECRYPTION_FAILED"
  | "COMPRESSION_BACKEND_UNAVAILABLE"
  | "HANDSHAKE_FAILED"
  | "PROTOCOL_NEGOTIATION_FAILED"
  | "STREAM_RESET"
  | "STREAM_CLOSED"
  | "CONNECTION_CLOSED"
  | "CONFIG_ERROR"
  | "BUFFER_FULL"
  | "SESSION_CLOSED"
  | "COMPRESSION_ERROR"
  | "CRYPTO_BACKEND_UNAVAILABLE"
  | "INVALID_ARGUMENT" // a bad argument (type, peer ID, duration, unknown event)
  | "KEY_FILE_ERROR" // native only: an --identity key file that cannot be read or is corrupt
  | "LISTEN_FAILED" // native only: an address that cannot be bound
  | "CLOSED" // the instance was closed
  | "CANCELLED"
  | "RUNTIME_UNAVAILABLE" // Pyodide or the wheels could not be loaded
  | "INTERNAL_ERROR" // a bug: details in the console
  | (string & {});

export declare class DarkSwapError extends Error {
  readonly name: "DarkSwapError";
  readonly code: ErrorCode;
  /** The Python exception class, for bug reports. */
  readonly pythonType?: string;
}

export interface WebRTCOptions {
  /** STUN/TURN URLs (none by default: no third-party servers unless asked). */
  iceServers?: string[];
  iceUsername?: string;
  iceCredential?: string;
  /** Merged into the RTCConfiguration (e.g. {iceTransportPolicy: "relay"}). */
  rtcConfiguration?: Record<string, unknown>;
}

export interface Options {
  /** Relay multiaddrs (…/ws/p2p/<relay>) to reserve on; added to the network's defaults (none). */
  relays?: Multiaddr[];
  /** A 32-byte Ed25519 seed: a stable peer ID. Default: a fresh key. */
  identity?: Uint8Array;
  /** Addresses to listen on (a page usually has none; it is reached through its relays). */
  listen?: Multiaddr[];
  /** false: never try WebRTC (messages go through the relay). Default true. */
  webrtc?: boolean | WebRTCOptions;
  /** false: announce no zstd (messages uncompressed). Default true (Python's compression.zstd). */
  compression?: boolean;
  /**
   * Milliseconds new_with_defaults waits for a reservation on every relay (default 10000; 0: do
   * not wait, resolve at once). At the deadline: if NO relay gave a reservation, the promise
   * rejects with code "RELAY_RESERVATION_FAILED" and a message naming each relay address once
   * with its last error (the node is closed); if some but not all did, it resolves and a
   * "relay:warning" event (relay peer ID, reason) is emitted per missing relay (replayed to the
   * first listener; those relays keep being retried in the background).
   */
  waitForReservations?: number;
  /** false: do not load webrtc-adapter (default: loaded once per page, before WebRTC is used). */
  adapter?: boolean;
  /** Passed to loadPyodide (e.g. {stdout, stderr}); first call per page only. */
  loadPyodideOptions?: Record<string, unknown>;
}

export interface ConnectionInfo {
  transport: Transport;
  peerId: PeerId;
  remoteAddr: Multiaddr;
  direction: "inbound" | "outbound";
  /** Unix time, milliseconds. */
  openedAt: number;
}

export interface DiscoveredPeer {
  peerId: PeerId;
  /** Full multiaddrs (a page's are /p2p-circuit ones through a relay). */
  addrs: Multiaddr[];
  /** What is left of the registration, milliseconds. */
  ttl: number;
}

export interface ChannelInfo {
  /** "webrtc" when the direct connection is up; "relay" when WebRTC is unavailable or failed. */
  transport: Transport;
  remoteAddr: Multiaddr;
}

export interface CompatPlan {
  browser: { name: string; engine: "blink" | "gecko" | "webkit" | "unknown"; version: number; mobile: boolean; platform: string; ios: boolean; source: "client-hints" | "user-agent" };
  features: Record<string, boolean | string | null>;
  webrtc: boolean;
  needs_adapter: boolean;
  /** Ids of the per-browser workarounds applied (darkswap_wasm/api/compat.py WORKAROUNDS). */
  applied: string[];
  notes: string[];
  missing: string[];
  max_message_size: number | null;
  send_high_water: number | null;
}

export interface Info {
  version: string;
  network: NetworkName;
  peerId: PeerId;
  webrtc: boolean;
  /** "zstd" (Python's compression.zstd), or null when messages go uncompressed. */
  compression: string | null;
  /** Relay peer IDs with a live reservation. */
  reservations: PeerId[];
  compat: CompatPlan | null;
  droppedCopies: number;
  runtime: { baseUrl: string; boot: Record<string, unknown>; compression: string; adapterError: string | null; totalMs: number };
}

export interface EventMap {
  /** A DarkSwap message (also kept for receive_webrtc_message). */
  message: (peerId: PeerId, bytes: Uint8Array) => void;
  "peer:connect": (peerId: PeerId) => void;
  "peer:disconnect": (peerId: PeerId) => void;
  "connection:open": (peerId: PeerId, transport: Transport) => void;
  "connection:close": (peerId: PeerId, transport: Transport) => void;
  "relay:reserved": (relayPeerId: PeerId) => void;
  "relay:lost": (relayPeerId: PeerId) => void;
  /** An attempt to reach or reserve on this relay failed (it is retried with backoff), and why. */
  "relay:error": (relayPeerId: PeerId, reason: string) => void;
  /** new_with_defaults resolved without a reservation on this relay (see waitForReservations). */
  "relay:warning": (relayPeerId: PeerId, reason: string) => void;
  close: () => void;
}

export declare class DarkSwapWasm {
  private constructor();
  /** Boot the runtime (once per page) and start a node on `network`. */
  static new_with_defaults(network: NetworkName, options?: Options): Promise<DarkSwapWasm>;
  /** Boot the runtime now (optional). */
  static preload(options?: Pick<Options, "adapter" | "loadPyodideOptions">): Promise<Info["runtime"]>;
  /** The dist root this script was loaded from. */
  static readonly baseUrl: string;
  static readonly DarkSwapError: typeof DarkSwapError;
  static readonly EVENTS: ReadonlyArray<keyof EventMap>;

  local_peer_id(): PeerId;
  listen_addrs(): Multiaddr[];
  info(): Info;
  connect(multiaddr: Multiaddr): Promise<PeerId>;
  /** Round trip time in milliseconds (the Python API's Network.ping is in seconds). */
  ping(peerId: PeerId): Promise<number>;
  create_webrtc_data_channel(peerId: PeerId): Promise<ChannelInfo>;
  /** Resolves with the message's sequence number once queued. */
  send_webrtc_message(peerId: PeerId, data: Uint8Array | ArrayBuffer | ArrayBufferView): Promise<number>;
  send_message(peerId: PeerId, data: Uint8Array | ArrayBuffer | ArrayBufferView): Promise<number>;
  /** Resolves once the peer acknowledged `seq`. `timeout` in milliseconds (default 30000); "TIMEOUT" after it. */
  wait_delivered(peerId: PeerId, seq: number, options?: { timeout?: number | null } | null): Promise<true>;
  /** The next message from the peer, in order. `timeout` in milliseconds (default: wait forever); "TIMEOUT" after it. */
  receive_webrtc_message(peerId: PeerId, options?: { timeout?: number | null } | null): Promise<Uint8Array>;
  connections(peerId?: PeerId): Promise<ConnectionInfo[]>;
  /**
   * Announce this page under `namespace` on the relays it holds a reservation on (rendezvous),
   * refreshed until `unregister`. `ttl` in milliseconds (default: the relay's, 2 h). Resolves with
   * the granted TTL in milliseconds; "RENDEZVOUS_FAILED" when no relay accepted.
   */
  register(namespace: string, options?: { ttl?: number | null } | null): Promise<number>;
  unregister(namespace: string): Promise<true>;
  /** The other peers registered under `namespace` (never this page). `timeout` in milliseconds. */
  discover(namespace: string, options?: { limit?: number | null; timeout?: number | null } | null): Promise<DiscoveredPeer[]>;
  on<E extends keyof EventMap>(event: E, listener: EventMap[E]): this;
  off<E extends keyof EventMap>(event: E, listener: EventMap[E]): this;
  once<E extends keyof EventMap>(event: E, listener: EventMap[E]): this;
  close(): Promise<void>;
}

export default DarkSwapWasm;

type DarkSwapWasmClass = typeof DarkSwapWasm;
type DarkSwapErrorClass = typeof DarkSwapError;

declare global {
  /** Defined by the classic script tag (dist/darkswap.js). */
  // eslint-disable-next-line no-var
  var DarkSwapWasm: DarkSwapWasmClass;
  // eslint-disable-next-line no-var
  var DarkSwapError: DarkSwapErrorClass;
}
