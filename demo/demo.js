// The DarkSwap demo page: two tabs find each other through a relay and trade orders.
//
//   demo/index.html?relay=/ip4/127.0.0.1/tcp/4002/ws/p2p/12D3KooW…[&peer=12D3KooW…][&network=regtest]
//
// Uses only the public JS API (DarkSwapWasm from ../dist/darkswap.js). window.demo.state is what
// the page shows, for tests.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const state = { peerId: null, reserved: false, relay: params.get("relay"), peer: null, link: "none", rttMs: null, sent: [], received: [] };
  const demo = (window.demo = { state, ds: null });
  const LINK_TEXT = { webrtc: "direct WebRTC", relay: "relayed (circuit through the relay)", ws: "direct WebSocket", none: "not connected" };

  function status(text, error) {
    $("status").textContent = text;
    $("status").className = "status" + (error ? " error" : "");
  }

  function short(id) {
    return id ? id.slice(0, 10) + "…" + id.slice(-6) : "—";
  }

  function orderText(o) {
    return `${o.side} ${o.amount} ${o.base} @ ${o.price} ${o.quote}`;
  }

  function addRow(dir, order, via) {
    const tr = document.createElement("tr");
    const cells = [new Date().toLocaleTimeString(), dir === "in" ? "received" : "sent", orderText(order), LINK_TEXT[via] || via, dir === "in" ? "ack sent" : "waiting for ack"];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      td.textContent = text;
      if (i === 1) td.className = dir;
      tr.appendChild(td);
    });
    tr.dataset.id = order.id;
    $("messages").querySelector("tbody").prepend(tr);
    return tr;
  }

  async function refreshLink() {
    const ds = demo.ds;
    if (!ds || !state.peer) return;
    let conns = [];
    try {
      conns = await ds.connections(state.peer);
    } catch (_e) {
      conns = [];
    }
    state.link = conns.length ? conns[0].transport : "none";
    $("link").textContent = LINK_TEXT[state.link] || state.link;
    $("link").className = "badge " + (state.link === "webrtc" ? "webrtc" : state.link === "none" ? "none" : "relay");
    $("send").disabled = !state.peer;
  }

  function setPeer(peer) {
    if (!peer || peer === state.peer || peer === state.peerId) return;
    state.peer = peer;
    $("remote-id").textContent = peer;
    if (!$("peer").value) $("peer").value = peer;
    refreshLink();
  }

  async function connect(peer) {
    const ds = demo.ds;
    setPeer(peer);
    status("connecting to " + short(peer) + " through the relay, then WebRTC…");
    try {
      const c = await ds.create_webrtc_data_channel(peer);
      status(`connected to ${short(peer)}: ${LINK_TEXT[c.transport] || c.transport}`);
    } catch (e) {
      status(`cannot reach ${short(peer)}: ${e.code}: ${e.message}`, true);
    }
    refreshLink();
  }

  async function sendOrder(ev) {
    ev.preventDefault();
    const ds = demo.ds;
    if (!ds || !state.peer) return;
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
    const row = addRow("out", order, state.link);
    state.sent.push({ order, acked: false, row });
    try {
      await ds.send_webrtc_message(state.peer, new TextEncoder().encode(JSON.stringify(order)));
      refreshLink();
    } catch (e) {
      row.lastChild.textContent = `failed: ${e.code}`;
    }
  }

  function onMessage(peer, bytes) {
    let msg;
    try {
      msg = JSON.parse(new TextDecoder().decode(bytes));
    } catch (_e) {
      return;
    }
    setPeer(peer);
    if (msg.type === "order") {
      state.received.push(msg);
      addRow("in", msg, state.link);
      demo.ds.send_webrtc_message(peer, new TextEncoder().encode(JSON.stringify({ type: "ack", id: msg.id }))).catch(() => {});
    } else if (msg.type === "ack") {
      const s = state.sent.find((x) => x.order.id === msg.id);
      if (s) {
        s.acked = true;
        s.row.lastChild.textContent = "acked ✓";
      }
    }
  }

  async function rttLoop() {
    for (;;) {
      await new Promise((r) => setTimeout(r, 1500));
      if (!demo.ds || !state.peer) continue;
      try {
        state.rttMs = await demo.ds.ping(state.peer);
        $("rtt").textContent = `${state.rttMs.toFixed(1)} ms (${LINK_TEXT[state.link] || state.link})`;
      } catch (_e) {
        $("rtt").textContent = "—";
      }
      refreshLink();
    }
  }

  async function main() {
    $("relay-addr").textContent = state.relay || "—";
    $("copy").onclick = () => navigator.clipboard && navigator.clipboard.writeText(state.peerId || "");
    $("connect-form").onsubmit = (ev) => {
      ev.preventDefault();
      const p = $("peer").value.trim();
      if (p) connect(p);
    };
    $("order-form").onsubmit = sendOrder;
    if (!state.relay) {
      status("add ?relay=<relay multiaddr> to the URL (python scripts/demo.py prints a complete URL)", true);
      return;
    }
    if (typeof DarkSwapWasm === "undefined") {
      status("../dist/darkswap.js did not load: build the dist (./build.sh demo) and serve dist/ next to demo/", true);
      return;
    }
    status("starting DarkSwap (Pyodide, libp2p, relay reservation)…");
    const t0 = performance.now();
    let ds;
    try {
      ds = await DarkSwapWasm.new_with_defaults(params.get("network") || "regtest", { relays: [state.relay] });
    } catch (e) {
      status(`cannot start: ${e.code}: ${e.message}`, true);
      return;
    }
    demo.ds = ds;
    state.peerId = ds.local_peer_id();
    $("peer-id").textContent = state.peerId;
    const info = ds.info();
    state.reserved = info.reservations.length > 0;
    const addrs = ds.listen_addrs();
    $("circuit").textContent = addrs.length ? addrs[0] : "no reservation yet";
    ds.on("message", onMessage);
    ds.on("relay:reserved", () => {
      state.reserved = true;
      $("circuit").textContent = ds.listen_addrs()[0] || "—";
    });
    ds.on("relay:lost", () => {
      state.reserved = false;
      status("lost the relay reservation; it is renewed automatically", true);
    });
    ds.on("peer:connect", (peer) => {
      if (!info.reservations.includes(peer)) setPeer(peer);
    });
    ds.on("connection:open", () => refreshLink());
    ds.on("connection:close", () => refreshLink());
    status(
      `ready in ${((performance.now() - t0) / 1000).toFixed(1)} s — ${state.reserved ? "reserved on the relay" : "no reservation"}, ` +
        `compression ${info.compression || "off"}, WebRTC ${info.webrtc ? "on" : "off"} (${info.compat.browser.name} ${info.compat.browser.version}). ` +
        "Paste the other tab's peer ID and connect."
    );
    rttLoop();
    const peer = params.get("peer");
    if (peer) connect(peer);
  }

  main();
})();
