// Entry of the js-libp2p browser bundle used by bench/bench_browser.py (row "js-libp2p").
//
// bench_browser.py --prepare-js DIR installs the pinned packages into DIR (outside the repo),
// copies this file there and bundles it with esbuild into DIR/js-libp2p-bench.js (an IIFE
// defining window.JsLibp2pBench). A page loads that script and calls, through selenium:
//   await JsLibp2pBench.start(relayAddr)      -> {peer, addrs, ms}: WS to the relay, reservation,
//                                                /webrtc listening (private-to-private WebRTC)
//   await JsLibp2pBench.dialWebRTC(peerId)    -> {ms, addr, transports}: <relay>/p2p-circuit/webrtc/p2p/<peer>
//   await JsLibp2pBench.sinkThroughput(peerId, size) -> {bytes, ms, mib_per_s}: one stream on
//        /darkswap/sink/1.0.0 over the WebRTC connection, `size` bytes in 64 KiB chunks with
//        send()/onDrain() backpressure, then the sink's 8-byte count (same as bench_throughput.py)
//   await JsLibp2pBench.stop()

import { createLibp2p } from 'libp2p'
import { webRTC } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { identify } from '@libp2p/identify'
import { multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import { version } from 'libp2p/version'

const SINK = '/darkswap/sink/1.0.0'
const CHUNK = 64 * 1024
let node = null
let relay = null
let rtcAddr = new Map() // peer -> webrtc multiaddr used

function sleep (ms) { return new Promise((resolve) => setTimeout(resolve, ms)) }

async function until (what, fn, timeoutMs) {
  const deadline = performance.now() + timeoutMs
  for (;;) {
    const v = fn()
    if (v) return v
    if (performance.now() > deadline) throw new Error(`timeout after ${timeoutMs} ms: ${what}`)
    await sleep(20)
  }
}

function consume (stream, onChunk) {
  return new Promise((resolve, reject) => {
    const done = (err) => {
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('end', onEnd)
      stream.removeEventListener('close', onClose)
      if (err != null) reject(err); else resolve()
    }
    const onMessage = (evt) => {
      const d = evt.data
      if (d instanceof Uint8Array) onChunk(d); else for (const b of d) onChunk(b)
    }
    const onEnd = () => done()
    const onClose = (evt) => done(evt.error)
    stream.addEventListener('message', onMessage)
    stream.addEventListener('end', onEnd)
    stream.addEventListener('close', onClose)
    if (stream.readableEnded) done()
  })
}

export async function start (relayAddr, timeoutMs = 30000) {
  const t0 = performance.now()
  relay = multiaddr(relayAddr)
  node = await createLibp2p({
    addresses: { listen: [`${relayAddr}/p2p-circuit`, '/webrtc'] },
    transports: [
      webSockets(),
      webRTC({ rtcConfiguration: { iceServers: [] } }),
      circuitRelayTransport()
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    // the browser default denies private addresses (our relay is on 127.0.0.1)
    connectionGater: { denyDialMultiaddr: async () => false },
    services: { identify: identify() }
  })
  await node.handle(SINK, async (stream) => {
    let bytes = 0
    try {
      await consume(stream, (d) => { bytes += d.byteLength })
      const out = new Uint8Array(8)
      new DataView(out.buffer).setBigUint64(0, BigInt(bytes), false)
      stream.send(out)
      await stream.close()
    } catch (err) {
      try { stream.abort(err) } catch {}
    }
  }, { maxInboundStreams: 64, maxOutboundStreams: 64 })
  const addrs = await until('a /p2p-circuit address (reservation)', () => {
    const a = node.getMultiaddrs().map(String)
    return a.some((x) => x.includes('/p2p-circuit') && x.includes('/webrtc')) ? a : null
  }, timeoutMs)
  return { peer: node.peerId.toString(), addrs, ms: performance.now() - t0, version }
}

export async function dialWebRTC (peer, timeoutMs = 30000) {
  const t0 = performance.now()
  const ma = multiaddr(`${relay.toString()}/p2p-circuit/webrtc/p2p/${peer}`)
  const conn = await node.dial(ma, { signal: AbortSignal.timeout(timeoutMs) })
  rtcAddr.set(peer, ma)
  return {
    ms: performance.now() - t0,
    addr: conn.remoteAddr.toString(),
    transports: node.getConnections(peerIdFromString(peer)).map((c) => c.remoteAddr.toString())
  }
}

export async function sinkThroughput (peer, size, timeoutMs = 120000) {
  const signal = AbortSignal.timeout(timeoutMs)
  const ma = rtcAddr.get(peer)
  const conns = node.getConnections(peerIdFromString(peer)).filter((c) => c.remoteAddr.toString().includes('/webrtc'))
  if (!conns.length) throw new Error('no WebRTC connection to ' + peer)
  const t0 = performance.now()
  const stream = await conns[0].newStream(SINK, { signal })
  const t1 = performance.now()
  const reply = []
  const reader = consume(stream, (d) => reply.push(d.slice()))
  const chunk = new Uint8Array(CHUNK)
  for (let off = 0; off < size; off += CHUNK) {
    const n = Math.min(CHUNK, size - off)
    if (!stream.send(n === CHUNK ? chunk : chunk.subarray(0, n))) await stream.onDrain({ signal })
  }
  await stream.close({ signal })
  await Promise.race([reader, new Promise((resolve, reject) => signal.addEventListener('abort', () => reject(new Error('sink reply timed out'))))])
  const t2 = performance.now()
  const buf = new Uint8Array(reply.reduce((n, b) => n + b.length, 0))
  let o = 0
  for (const b of reply) { buf.set(b, o); o += b.length }
  if (buf.length !== 8) throw new Error(`sink replied ${buf.length} bytes`)
  const count = Number(new DataView(buf.buffer).getBigUint64(0, false))
  if (count !== size) throw new Error(`sink counted ${count} of ${size} bytes`)
  return { bytes: size, ms: t2 - t1, open_ms: t1 - t0, mib_per_s: size / 1048576 / ((t2 - t1) / 1000), via: ma && ma.toString(), conn: conns[0].remoteAddr.toString() }
}

export async function stop () {
  if (node != null) await node.stop()
  node = null
  return true
}
