// darkswap_wasm js_glue: browser compatibility — the WebRTC shim, feature tests, browser identity.
//
//   import { collectEnvironment } from "./compat.js";
//   const env = await collectEnvironment();   // {userAgent, uaData, features, adapter}
//
// Pure data goes to Python (darkswap_wasm/api/compat.py decides: per-browser workarounds, or no
// WebRTC at all and the relayed path). This file only
//   1. loads webrtc-adapter (<dist>/vendor/webrtc-adapter/adapter.js, pinned by build_dist) before
//      anything touches WebRTC: it shims prefixed/legacy APIs (webkitRTCPeerConnection,
//      connectionState on Firefox < 113, RTCDataChannel naming, pc.sctp.maxMessageSize, ...);
//   2. tests the features the core needs (RTCPeerConnection, createDataChannel, WebSocket,
//      WebAssembly, BigInt, ...);
//   3. reads the browser's identity: UA client hints (navigator.userAgentData, with the
//      high-entropy fullVersionList when the browser gives it), else the UA string.

const ADAPTER_URL = new URL("../vendor/webrtc-adapter/adapter.js", import.meta.url);

let adapterPending = null;

/** Load webrtc-adapter once (a classic UMD script that sets `adapter` and shims on load). */
export function loadAdapter({ url = ADAPTER_URL, root = globalThis } = {}) {
  if (root.adapter && root.adapter.browserDetails) return Promise.resolve(root.adapter);
  if (adapterPending === null) {
    adapterPending = new Promise((resolve, reject) => {
      if (typeof document !== "undefined" && document.createElement) {
        const s = document.createElement("script");
        s.src = String(url);
        s.async = true;
        s.onload = () => (root.adapter ? resolve(root.adapter) : reject(new Error(`${url} did not define adapter`)));
        s.onerror = () => reject(new Error(`js_glue/compat.js: cannot load webrtc-adapter from ${url}`));
        document.head.appendChild(s);
      } else if (typeof importScripts === "function") {
        importScripts(String(url)); // a worker
        resolve(root.adapter);
      } else {
        resolve(null); // node and friends: no WebRTC to shim
      }
    });
    adapterPending.catch(() => {
      adapterPending = null;
    });
  }
  return adapterPending;
}

/** The feature map darkswap_wasm/api/compat.py reads (keys = Features fields). */
export function detectFeatures(root = globalThis) {
  const pc = root.RTCPeerConnection;
  const proto = pc && pc.prototype;
  return {
    rtc_peer_connection: typeof pc === "function",
    prefixed_rtc_peer_connection:
      typeof pc !== "function" && (typeof root.webkitRTCPeerConnection === "function" || typeof root.mozRTCPeerConnection === "function"),
    create_data_channel: !!proto && typeof proto.createDataChannel === "function",
    connection_state: !!proto && "connectionState" in proto,
    sctp_transport: !!proto && "sctp" in proto,
    websocket: typeof root.WebSocket === "function",
    webassembly: typeof root.WebAssembly === "object" && typeof root.WebAssembly.instantiate === "function",
    bigint: typeof root.BigInt === "function",
    secure_context: !!root.isSecureContext,
    adapter: root.adapter && root.adapter.browserDetails ? `${root.adapter.browserDetails.browser} ${root.adapter.browserDetails.version}` : null,
  };
}

/** UA client hints (low entropy, plus fullVersionList when available), or null. */
export async function userAgentData(root = globalThis) {
  const d = root.navigator && root.navigator.userAgentData;
  if (!d) return null;
  const out = {
    brands: (d.brands || []).map((b) => ({ brand: b.brand, version: b.version })),
    mobile: !!d.mobile,
    platform: d.platform || "",
  };
  if (typeof d.getHighEntropyValues === "function") {
    try {
      const hi = await d.getHighEntropyValues(["fullVersionList", "platformVersion"]);
      if (hi.fullVersionList) out.fullVersionList = hi.fullVersionList.map((b) => ({ brand: b.brand, version: b.version }));
      if (hi.platformVersion) out.platformVersion = hi.platformVersion;
    } catch (_e) {
      // high-entropy hints refused: the low-entropy ones are enough
    }
  }
  return out;
}

/** Everything compat.py needs: load the adapter first, then test and identify. */
export async function collectEnvironment({ adapter = true, adapterUrl = ADAPTER_URL, root = globalThis } = {}) {
  let adapterError = null;
  if (adapter) {
    try {
      await loadAdapter({ url: adapterUrl, root });
    } catch (e) {
      adapterError = String((e && e.message) || e); // the page goes on; compat.py notes it
    }
  }
  return {
    userAgent: (root.navigator && root.navigator.userAgent) || "",
    uaData: await userAgentData(root),
    features: detectFeatures(root),
    adapterError,
  };
}
