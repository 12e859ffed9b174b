// darkswap_wasm js_glue: the two bulk paths between Python and an RTCDataChannel.
//
// boot.js registers this module in Pyodide as the Python module `darkswap_glue`;
// darkswap_wasm/transports/browser_ws.py (pyodide_bridge) picks it up, and
// darkswap_wasm/transports/browser_webrtc.py uses it when it is there (else it falls back to
// one Python call per message and one to_js copy per write, which works the same, only slower).
// No protocol logic here: framing stays in Python; these only move bytes in bulk.

/**
 * Send a Python buffer as back-to-back messages of `size` bytes (the last one may be shorter),
 * straight from the wasm heap: one call from Python per write, no copy into a JS buffer
 * (`RTCDataChannel.send` copies what it is given before it returns).
 * @param {RTCDataChannel} channel
 * @param {object} data a PyProxy of a Python bytes-like object (borrowed for this call only)
 * @param {number} size bytes per message
 */
export function sendSplit(channel, data, size) {
  if (!(size > 0)) throw new RangeError(`sendSplit: bad message size ${size}`);
  const buf = data.getBuffer("u8");
  try {
    let bytes = buf.data;
    // a view of shared memory cannot be sent: copy it (Pyodide's heap is not shared today)
    if (typeof SharedArrayBuffer !== "undefined" && bytes.buffer instanceof SharedArrayBuffer) bytes = bytes.slice();
    const end = bytes.length;
    for (let pos = 0; pos < end; pos += size) channel.send(bytes.subarray(pos, Math.min(pos + size, end)));
  } finally {
    buf.release();
  }
}

// A channel's messages reach Python in batches, joined: several 16 KiB messages cost Python one
// call (and the reader one wake-up) instead of one each. When the last batch was small (sparse
// traffic: a request, a reply, a ping), the next one goes in a task posted on a MessageChannel,
// which runs right after the message events already queued: no added latency. When the last
// batch held `denseCount` messages or more (bulk data, queuing up faster than they are taken),
// the next one waits `delayMs` on a timer to gather more: fewer, bigger batches while data
// streams, at most `delayMs` later. `maxBytes` held goes at once either way.
const dirty = new Set();
let posted = false;
let port = null;

function flushAll() {
  posted = false;
  const batches = [...dirty];
  dirty.clear();
  for (const b of batches) {
    try {
      b.flush();
    } catch (e) {
      reportLater(e);
    }
  }
}

function reportLater(e) {
  // an exception from Python reaches the page's error reporting, without stopping other channels
  if (typeof reportError === "function") reportError(e);
  else setTimeout(() => { throw e; }, 0);
}

function schedule(batch) {
  dirty.add(batch);
  if (posted) return;
  posted = true;
  if (port === null) {
    const mc = new MessageChannel();
    mc.port1.onmessage = flushAll;
    port = mc.port2;
  }
  port.postMessage(null);
}

/**
 * Deliver a channel's binary messages in batches: `deliver(Uint8Array)` gets every message that
 * arrived since the last delivery, in order and joined (the libp2p framing inside is
 * self-delimiting); a text message is delivered on its own, as a string, after what came before.
 * @param {RTCDataChannel} channel its binaryType must be "arraybuffer"
 * @param {(data: Uint8Array | string) => void} deliver a PyProxy that outlives this call
 * @param {number} [maxBytes] held bytes that go at once
 * @param {number} [delayMs] how long a batch gathers while traffic is dense
 * @param {number} [denseCount] messages in the last batch from which traffic counts as dense
 * @returns {{flush: () => void, stop: () => void, pending: () => number}} flush() delivers what
 *   is held now (call it before acting on the channel's close); stop() removes the listener and
 *   drops what is held, after which `deliver` is never called again (then destroy its proxy).
 */
export function batchMessages(channel, deliver, maxBytes = 1 << 20, delayMs = 3, denseCount = 4) {
  let parts = [];
  let held = 0;
  let lastCount = 0;
  let timer = null;
  let stopped = false;
  const cancel = () => {
    dirty.delete(handle);
    if (timer !== null) {
      clearTimeout(timer);
      timer = null;
    }
  };
  const handle = {
    flush() {
      cancel();
      if (stopped || parts.length === 0) return;
      let out;
      if (parts.length === 1) {
        out = new Uint8Array(parts[0]);
      } else {
        out = new Uint8Array(held);
        let pos = 0;
        for (const p of parts) {
          out.set(new Uint8Array(p), pos);
          pos += p.byteLength;
        }
      }
      lastCount = parts.length;
      parts = [];
      held = 0;
      deliver(out);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      channel.removeEventListener("message", onMessage);
      cancel();
      parts = [];
      held = 0;
    },
    pending() {
      return held;
    },
  };
  const onTimer = () => {
    timer = null;
    try {
      handle.flush();
    } catch (e) {
      reportLater(e);
    }
  };
  function onMessage(event) {
    if (stopped) return;
    const data = event.data;
    if (typeof data === "string") {
      handle.flush();
      lastCount = 0;
      deliver(data);
      return;
    }
    parts.push(data); // an ArrayBuffer: the caller set binaryType = "arraybuffer"
    held += data.byteLength;
    if (held >= maxBytes) handle.flush();
    else if (timer === null && !dirty.has(handle)) {
      if (lastCount >= denseCount) timer = setTimeout(onTimer, delayMs);
      else schedule(handle);
    }
  }
  channel.addEventListener("message", onMessage);
  return handle;
}
