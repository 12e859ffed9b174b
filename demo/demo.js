// The DarkSwap demo page: tabs of one room find each other through the relay and trade orders.
//
//   demo/index.html?relay=/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3KooW…&room=<name>[&peer=12D3KooW…][&network=regtest]
//
// Uses only the public JS API (DarkSwapWasm from ../dist/darkswap.js). How two tabs meet:
//   * each tab registers in the room (rendezvous namespace "darkswap-demo/<room>") on the relay and
//     polls discover() every 2 s while it has no partner; a page opened without `room` picks one
//     and writes it into its address (history.replaceState), so the address bar is the invitation;
//   * of two tabs that see each other, the one with the smaller peer ID dials (the other waits
//     for it, and dials itself only if nothing came after GRACE_MS): it connects through the
//     relay and sends {"type":"hello"}; the other answers "welcome" (it had no partner, or that
//     very one: both may dial at once) or "busy" (it has another partner: a third tab never
//     breaks a pair). A paired tab leaves the room; it rejoins when its partner goes away;
//   * the relay's own peer ID (from the relay address) is never taken for "the other tab".
// The manual peer-ID field is the fallback (the same hello). Every status line is computed from
// `state` by render() after each change; window.demo.state is what the page shows, for tests.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const ROOM_RE = /^[A-Za-z0-9._-]{1,64}$/;
  const ROOM_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789";
  const PEER_RE = /^(12D3KooW[1-9A-HJ-NP-Za-km-z]{44}|Qm[1-9A-HJ-NP-Za-km-z]{44})$/;
  const POLL_MS = 2000; // discover() while looking
  const GRACE_MS = 8000; // a larger peer ID waits this long for the smaller one to dial
  const REPLY_MS = 15000; // hello -> welcome/busy
  const SKIP_MS = 20000; // a tab that was busy or unreachable is not tried again for this long
  const RETRY_START_MS = 15000; // no reservation at start: try again after this long
  const REGISTER_TTL_MS = 120000; // the registration is refreshed by the API before it ends
  const LINK_TEXT = { webrtc: "direct WebRTC", relay: "relayed (circuit through the relay)", ws: "direct WebSocket", tcp: "direct TCP", none: "not connected" };

  const relay = params.get("relay");
  const relayPeer = relay && relay.includes("/p2p/") ? relay.slice(relay.lastIndexOf("/p2p/") + 5) : null;

  const state = {
    phase: "starting", // starting | ready | failed
    startError: null,
    readyText: null,
    peerId: null,
    relay,
    relayPeer,
    reserved: false,
    relayState: "reserving", // reserving | reserved | lost | renewed | failed
    relayError: null,
    relayChangedAt: null,
    circuit: null,
    room: null,
    roomState: "off", // off | joining | looking | paired | error | unavailable
    roomError: null,
    inRoom: [], // the other peers last discovered in the room
    lookRounds: 0, // discover() rounds done
    peer: null, // the tab this one is paired with
    target: null, // the tab being connected to
    lastPeer: null, // the partner that went away, or the tab that could not be reached
    linkState: "none", // none | connecting | connected | disconnected | failed
    linkError: null,
    link: "none", // transport of the best connection to `peer`
    rttMs: null,
    copy: null, // the copy button's feedback
    sent: [], // {id, order, acked, error}
    received: [],
  };
  const demo = (window.demo = { state, ds: null });
  const rows = new Map(); // order id -> <tr>
  const pending = new Map(); // peer -> resolve(reply) of our hello
  const skipUntil = new Map(); // peer -> ms: busy or unreachable, not tried before then
  const firstSeen = new Map(); // peer -> ms it was first discovered
  let attempt = 0;
  let roomTask = null;

  // ------------------------------------------------------------------ view

  function short(id) {
    return id ? id.slice(0, 10) + "…" + id.slice(-6) : "—";
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString();
  }

  function errText(e) {
    if (!e) return "unknown error";
    return e.code ? `${e.code}: ${e.message}` : String(e.message || e);
  }

  function line(id, text, kind) {
    const el = $(id);
    el.textContent = text;
    el.className = "line" + (kind ? " " + kind : "");
  }

  function relayLine() {
    const at = state.relayChangedAt ? clock(state.relayChangedAt) : "";
    switch (state.relayState) {
      case "reserved":
        return ["reserved on the relay", "ok"];
      case "renewed":
        return [`reservation renewed at ${at}`, "ok"];
      case "lost":
        return [`lost the relay reservation at ${at}; renewing it…` + (state.relayError ? ` (last error: ${state.relayError})` : ""), "error"];
      case "failed":
        return [`no reservation: ${state.relayError || "the relay did not answer"}`, "error"];
      default:
        return ["reserving a slot on the relay…", ""];
    }
  }

  function roomLine() {
    const n = state.inRoom.length;
    switch (state.roomState) {
      case "unavailable":
        return ["this build has no room discovery (DarkSwapWasm.register): connect by peer ID below", "warn"];
      case "joining":
        return [`joining room “${state.room}” on the relay…`, ""];
      case "looking":
        if (!state.reserved) return ["in the room, but not reachable until the relay reservation is back", "warn"];
        return [
          `in the room: looking for another tab (${n ? n + " other tab" + (n > 1 ? "s" : "") + " here" : "none here yet: open this page's address in another tab"})` +
            (state.roomError ? ` — last discovery failed: ${state.roomError}` : ""),
          state.roomError ? "warn" : "",
        ];
      case "paired":
        return [`paired with ${short(state.peer)}: left the room (new tabs do not find this one)`, "ok"];
      case "error":
        return [`cannot join the room: ${state.roomError}; trying again…`, "error"];
      default:
        return [state.relayState === "failed" ? "not in the room (no reservation on the relay)" : "—", ""];
    }
  }

  function linkLine() {
    switch (state.linkState) {
      case "connecting":
        return [`connecting to ${short(state.target)} through the relay…`, ""];
      case "connected":
        return [`connected to ${short(state.peer)}`, "ok"];
      case "disconnected":
        return [`${short(state.lastPeer)} went away (${state.linkError}); looking for another tab`, "warn"];
      case "failed":
        return [`cannot reach ${short(state.lastPeer)}: ${state.linkError}`, "error"];
      default:
        return ["", ""];
    }
  }

  function canSend() {
    return !!(demo.ds && state.peer && state.linkState === "connected");
  }

  function render() {
    const st = $("status");
    if (state.phase === "failed") {
      st.textContent = `cannot start: ${state.startError}`;
      st.className = "status error";
    } else {
      st.textContent = state.phase === "ready" ? state.readyText : "starting DarkSwap (Pyodide, libp2p, relay reservation)…";
      st.className = "status";
    }
    $("peer-id").textContent = state.peerId || "—";
    $("copy").textContent = state.copy || "copy";
    $("copy").disabled = !state.peerId;
    $("relay-addr").textContent = relay || "—";
    line("relay-status", ...relayLine());
    $("circuit").textContent = state.circuit || (state.peerId ? "not reachable (no reservation)" : "—");
    $("room").textContent = state.room || "—";
    line("room-status", ...roomLine());
    $("remote-id").textContent = state.peer || state.target || "—";
    const shown = state.peer && state.linkState === "connected" ? state.link : "none";
    $("link").textContent = LINK_TEXT[shown] || shown;
    $("link").className = "badge " + (shown === "webrtc" ? "webrtc" : shown === "none" ? "none" : "relay");
    line("link-status", ...linkLine());
    $("rtt").textContent = state.peer && state.rttMs != null ? `${state.rttMs.toFixed(1)} ms (${LINK_TEXT[state.link] || state.link})` : "—";
    $("send").disabled = !canSend();
    $("connect").disabled = !demo.ds;
  }

  function orderText(o) {
    return `${o.side} ${o.amount} ${o.base} @ ${o.price} ${o.quote}`;
  }

  function addRow(dir, order, via, stateText) {
    const tr = document.createElement("tr");
    const cells = [new Date().toLocaleTimeString(), dir === "in" ? "received" : "sent", orderText(order), LINK_TEXT[via] || via, stateText];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 1) td.className = dir;
      tr.appendChild(td);
    });
    tr.dataset.id = order.id;
    tr.dataset.dir = dir;
    $("messages").querySelector("tbody").prepend(tr);
    return tr;
  }

  // ------------------------------------------------------------------ talking to the other tab

  const encode = (msg) => new TextEncoder().encode(JSON.stringify(msg));

  function post(peer, msg) {
    return demo.ds.send_message(peer, encode(msg)).catch((e) => console.warn("demo: sending", msg.type, "to", peer, "failed:", errText(e)));
  }

  function paired(peer) {
    if (state.peer === peer) return;
    attempt++; // a connect in flight to someone else is superseded
    state.peer = peer;
    state.target = null;
    state.lastPeer = null;
    state.linkState = "connected";
    state.linkError = null;
    state.link = "relay";
    state.rttMs = null;
    render();
    refreshLink();
    leaveRoom();
  }

  function lostPeer(peer, why) {
    if (state.peer !== peer) return;
    state.peer = null;
    state.lastPeer = peer;
    state.linkState = "disconnected";
    state.linkError = why;
    state.link = "none";
    state.rttMs = null;
    render();
    joinRoom();
  }

  function waitReply(peer, ms) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(peer);
        reject(new Error(`no answer within ${ms / 1000} s (not a demo tab, or it was closed)`));
      }, ms);
      pending.set(peer, (reply) => {
        clearTimeout(timer);
        pending.delete(peer);
        resolve(reply);
      });
    });
  }

  /**
   * Connect through the relay, say hello, wait for welcome/busy. A failed attempt on a tab found
   * in the room (busy with another tab, or gone) is skipped for a while without a word; a failed
   * manual Connect says why.
   */
  async function pair(peer, addrs, manual) {
    const ds = demo.ds;
    const my = ++attempt;
    const before = { linkState: state.linkState, linkError: state.linkError, lastPeer: state.lastPeer };
    state.target = peer;
    state.lastPeer = null;
    state.linkState = "connecting";
    state.linkError = null;
    render();
    try {
      const addr = (addrs || []).find((a) => a.includes("/p2p-circuit/p2p/")) || `${relay}/p2p-circuit/p2p/${peer}`;
      await ds.connect(addr);
      if (my !== attempt) return;
      const reply = waitReply(peer, REPLY_MS);
      await ds.send_message(peer, encode({ type: "hello", room: state.room }));
      const r = await reply;
      if (my !== attempt || state.peer === peer) return; // its hello got here first: paired already
      if (r.type !== "welcome") throw new Error("that tab is paired with another tab already");
      paired(peer);
      upgrade(peer);
    } catch (e) {
      if (my !== attempt || state.peer === peer) return;
      skipUntil.set(peer, Date.now() + SKIP_MS);
      state.target = null;
      if (manual) {
        state.lastPeer = peer;
        state.linkState = "failed";
        state.linkError = errText(e);
      } else {
        console.info(`demo: ${peer} (found in the room) not paired: ${errText(e)}`);
        Object.assign(state, before);
      }
      render();
    }
  }

  /** Ask for a direct WebRTC connection (the dialing side only: no two offers at once). */
  async function upgrade(peer) {
    try {
      const c = await demo.ds.create_webrtc_data_channel(peer);
      if (state.peer === peer) state.link = c.transport;
      render();
    } catch (e) {
      console.warn("demo: WebRTC upgrade failed, staying relayed:", errText(e));
    }
    refreshLink();
  }

  function onHello(peer) {
    if (peer === relayPeer || peer === state.peerId) return;
    const free = !state.peer && (!state.target || state.target === peer);
    if (state.peer === peer || free) {
      post(peer, { type: "welcome" });
      paired(peer);
    } else {
      post(peer, { type: "busy" });
    }
  }

  function onMessage(peer, bytes) {
    let msg;
    try {
      msg = JSON.parse(new TextDecoder().decode(bytes));
    } catch (_e) {
      return;
    }
    if (!msg || typeof msg.type !== "string") return;
    if (msg.type === "hello") return onHello(peer);
    if (msg.type === "welcome" || msg.type === "busy") {
      const resolve = pending.get(peer);
      if (resolve) resolve(msg);
      else if (msg.type === "busy" && state.peer === peer) lostPeer(peer, "it paired with another tab");
      return;
    }
    if (msg.type === "bye") return lostPeer(peer, "it left");
    if (peer !== state.peer) {
      if (msg.type === "order") post(peer, { type: "busy" });
      return;
    }
    if (msg.type === "order") {
      state.received.push(msg);
      rows.set(msg.id, addRow("in", msg, state.link, "ack sent"));
      post(peer, { type: "ack", id: msg.id });
    } else if (msg.type === "ack") {
      const s = state.sent.find((x) => x.id === msg.id);
      if (s && !s.acked) {
        s.acked = true;
        rows.get(s.id).lastChild.textContent = "acked ✓";
      }
    }
  }

  async function sendOrder(ev) {
    ev.preventDefault();
    if (!canSend()) return;
    const peer = state.peer;
    const order = {
      type: "order",
      id: crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2),
      side: $("side").value,
      amount: $("amount").value,
      base: $("base").value,
      price: $("price").value,
      quote: $("quote").value,
      maker: state.peerId,
      ts: Date.now(),
    };
    const entry = { id: order.id, order, to: peer, acked: false, error: null };
    state.sent.push(entry);
    rows.set(order.id, addRow("out", order, state.link, "waiting for ack"));
    try {
      await demo.ds.send_webrtc_message(peer, encode(order));
    } catch (e) {
      entry.error = errText(e);
      rows.get(order.id).lastChild.textContent = `failed: ${entry.error}`;
    }
    refreshLink();
  }

  async function refreshLink() {
    const peer = state.peer;
    if (!demo.ds || !peer) return;
    let conns;
    try {
      conns = await demo.ds.connections(peer);
    } catch (_e) {
      return;
    }
    if (state.peer !== peer) return;
    if (conns.length) {
      state.link = conns[0].transport;
      state.linkState = "connected";
      render();
    } else {
      lostPeer(peer, "no connection left");
    }
  }

  async function rttLoop() {
    for (;;) {
      await new Promise((r) => setTimeout(r, 1500));
      const peer = state.peer;
      if (!demo.ds || !peer || state.linkState !== "connected") continue;
      try {
        const rtt = await demo.ds.ping(peer);
        if (state.peer === peer) state.rttMs = rtt;
      } catch (_e) {
        if (state.peer === peer) state.rttMs = null;
      }
      render();
      await refreshLink();
      render();
    }
  }

  // ------------------------------------------------------------------ the room

  const namespace = () => "darkswap-demo/" + state.room;

  async function joinRoom() {
    if (!demo.ds || state.roomState === "unavailable" || state.peer || state.roomState === "joining") return;
    state.roomState = "joining";
    render();
    try {
      await demo.ds.register(namespace(), { ttl: REGISTER_TTL_MS });
      state.roomError = null;
      state.roomState = state.peer ? "paired" : "looking";
      if (state.peer) leaveRoom();
    } catch (e) {
      state.roomState = "error";
      state.roomError = errText(e);
    }
    render();
  }

  async function leaveRoom() {
    if (state.roomState === "unavailable") return;
    state.roomState = "paired";
    state.inRoom = [];
    render();
    try {
      await demo.ds.unregister(namespace());
    } catch (e) {
      console.warn("demo: unregister failed:", errText(e));
    }
  }

  async function lookOnce() {
    if (!state.reserved) return; // the relay answers discover() only to a tab with a reservation
    const since = state.relayChangedAt;
    let found;
    try {
      found = await demo.ds.discover(namespace(), { limit: 100, timeout: 5000 });
    } catch (e) {
      if (state.relayChangedAt === since) state.roomError = errText(e); // not an error of a reservation gone since
      render();
      return;
    }
    state.lookRounds++;
    if (state.roomState !== "looking") return;
    const now = Date.now();
    const others = found.filter((f) => f.peerId !== state.peerId && f.peerId !== relayPeer);
    state.inRoom = others.map((f) => f.peerId);
    state.roomError = null;
    render();
    if (state.peer || state.target) return;
    const live = others.filter((f) => !((skipUntil.get(f.peerId) || 0) > now));
    live.forEach((f) => firstSeen.has(f.peerId) || firstSeen.set(f.peerId, now));
    // the smaller peer ID dials; the larger waits for it, but not forever (a tab that cannot dial)
    const mine = live.filter((f) => f.peerId > state.peerId);
    const overdue = live.filter((f) => f.peerId < state.peerId && now - firstSeen.get(f.peerId) > GRACE_MS);
    const pick = (mine.length ? mine : overdue).sort((x, y) => (x.peerId < y.peerId ? -1 : 1))[0];
    if (pick) pair(pick.peerId, pick.addrs, false);
  }

  async function roomLoop() {
    let lastJoin = 0;
    for (;;) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      if (!demo.ds) continue;
      if (state.roomState === "error" && Date.now() - lastJoin > 5000) {
        lastJoin = Date.now();
        await joinRoom();
      } else if (state.roomState === "looking") {
        await lookOnce();
      }
    }
  }

  function pickRoom() {
    const given = params.get("room");
    if (given && ROOM_RE.test(given)) return given;
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    const room = Array.from(bytes, (b) => ROOM_ALPHABET[b % ROOM_ALPHABET.length]).join("");
    // into the address bar: copying it invites another tab into this room
    const rest = location.search.replace(/^\?/, "").split("&").filter((kv) => kv && !kv.startsWith("room="));
    history.replaceState(null, "", location.pathname + "?" + rest.concat("room=" + room).join("&") + location.hash);
    return room;
  }

  // ------------------------------------------------------------------ controls

  async function copyId() {
    const id = state.peerId || "";
    let how = null;
    try {
      await navigator.clipboard.writeText(id);
      how = "copied ✓";
    } catch (e) {
      // the Clipboard API needs focus and permission: fall back to a selection + execCommand
      const ta = document.createElement("textarea");
      ta.value = id;
      document.body.appendChild(ta);
      ta.select();
      let ok = false;
      try {
        ok = document.execCommand("copy");
      } catch (_e) {
        ok = false;
      }
      ta.remove();
      how = ok ? "copied ✓" : `copy failed (${(e && e.message) || e}): select the ID and copy it`;
    }
    state.copy = how;
    render();
    setTimeout(() => {
      if (state.copy === how) {
        state.copy = null;
        render();
      }
    }, 3000);
  }

  function manualConnect(ev) {
    ev.preventDefault();
    const p = $("peer").value.trim();
    if (!p || !demo.ds) return;
    let bad = null;
    if (p === state.peerId) bad = "that is this tab's own peer ID";
    else if (p === relayPeer) bad = "that is the relay's peer ID, not another tab";
    else if (!PEER_RE.test(p)) bad = "not a peer ID (12D3KooW… followed by 44 base58 characters)";
    if (bad) {
      attempt++;
      state.target = null;
      state.lastPeer = p;
      state.linkState = "failed";
      state.linkError = bad;
      render();
      return;
    }
    if (state.peer === p) return;
    if (state.peer) {
      const old = state.peer;
      post(old, { type: "bye" });
      state.peer = null;
      state.link = "none";
      state.rttMs = null;
      joinRoom(); // back in the room: should this Connect fail, the room is still there
    }
    skipUntil.delete(p);
    pair(p, null, true);
  }

  // ------------------------------------------------------------------ start

  async function start() {
    state.phase = "starting";
    state.relayState = "reserving";
    render();
    const t0 = performance.now();
    let ds;
    try {
      ds = await DarkSwapWasm.new_with_defaults(params.get("network") || "regtest", { relays: [relay] });
    } catch (e) {
      state.phase = "failed";
      if (e.code === "RELAY_RESERVATION_FAILED") {
        state.relayState = "failed";
        state.relayError = e.message;
        const full = /RESOURCE_LIMIT_EXCEEDED/.test(e.message || "");
        state.startError =
          "the relay gave this tab no reservation" +
          (full ? " — it is full for this IP address (a relay caps reservations per IP: 4 by default, 64 on scripts/demo.py's relay; close a tab or raise --max-reservations-per-peer)" : "") +
          `. Trying again in ${RETRY_START_MS / 1000} s…`;
        setTimeout(start, RETRY_START_MS);
      } else {
        state.startError = errText(e);
      }
      render();
      return;
    }
    demo.ds = ds;
    state.peerId = ds.local_peer_id();
    const info = ds.info();
    const circuitAddr = () => ds.listen_addrs().find((a) => a.includes("/p2p-circuit") && !a.includes("/webrtc")) || null;
    state.reserved = info.reservations.includes(relayPeer);
    state.circuit = circuitAddr();
    state.relayError = null;
    ds.on("message", onMessage);
    ds.on("relay:reserved", (r) => {
      if (r !== relayPeer) return;
      if (!state.reserved) {
        state.relayState = state.relayState === "lost" || state.relayState === "renewed" ? "renewed" : "reserved";
        if (state.relayState === "renewed") state.relayChangedAt = Date.now();
      } else if (state.relayState === "reserving") {
        state.relayState = "reserved";
      }
      state.reserved = true;
      state.relayError = null;
      state.roomError = null;
      state.circuit = circuitAddr();
      render();
      if (state.roomState === "error") joinRoom();
    });
    ds.on("relay:lost", (r) => {
      if (r !== relayPeer) return;
      state.reserved = false;
      state.roomError = null;
      state.relayState = "lost";
      state.relayChangedAt = Date.now();
      state.circuit = null;
      render();
    });
    const onRelayProblem = (r, reason) => {
      if (r !== relayPeer || state.reserved) return;
      state.relayError = reason;
      render();
    };
    ds.on("relay:warning", onRelayProblem);
    if (DarkSwapWasm.EVENTS.includes("relay:error")) ds.on("relay:error", onRelayProblem);
    ds.on("peer:disconnect", (p) => {
      if (p === state.peer) refreshLink();
    });
    ds.on("connection:open", (p) => {
      if (p === state.peer) refreshLink();
    });
    ds.on("connection:close", (p) => {
      if (p === state.peer) refreshLink();
    });
    addEventListener("pagehide", () => {
      if (state.peer) post(state.peer, { type: "bye" });
      ds.close();
    });
    state.phase = "ready";
    state.readyText =
      `ready in ${((performance.now() - t0) / 1000).toFixed(1)} s — compression ${info.compression || "off"}, ` +
      `WebRTC ${info.webrtc ? "on" : "off"}` +
      (info.compat ? ` (${info.compat.browser.name} ${info.compat.browser.version})` : "");
    render();
    rttLoop();
    if (typeof ds.register !== "function") {
      state.roomState = "unavailable";
      render();
    } else {
      await joinRoom();
      roomTask = roomTask || roomLoop();
    }
    const peer = params.get("peer");
    if (peer) {
      $("peer").value = peer;
      $("connect").click();
    }
  }

  function main() {
    $("copy").onclick = copyId;
    $("connect-form").onsubmit = manualConnect;
    $("order-form").onsubmit = sendOrder;
    render();
    if (!relay || !relayPeer) {
      state.phase = "failed";
      state.startError = "add ?relay=<relay multiaddr ending in /p2p/<relay peer ID>> to the URL (python scripts/demo.py prints a complete URL)";
      render();
      return;
    }
    state.room = pickRoom();
    if (typeof DarkSwapWasm === "undefined") {
      state.phase = "failed";
      state.startError = "../dist/darkswap.js did not load: build the dist (./build.sh demo) and serve dist/ next to demo/";
      render();
      return;
    }
    start();
  }

  main();
})();
