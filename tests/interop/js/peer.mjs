#!/usr/bin/env node
// js-libp2p interop peer harness.
//
// A long-running js-libp2p node driven over a line-based JSON protocol:
//   stdin  <- one JSON command per line   {"id":1,"cmd":"ping","peer":"12D3KooW..."}
//   stdout -> one JSON object per line     {"id":1,"ok":true,"rtt_ms":0.4}
//                                          {"event":"peer:connect","peer":"12D3KooW..."}
// stdout carries nothing but these JSON lines; diagnostics go to stderr.
// See README.md in this folder for the full protocol.
//
// Run with the Node 22 that `npm ci` installs here:
//   tests/interop/js/node_modules/.bin/node tests/interop/js/peer.mjs --listen /ip4/127.0.0.1/tcp/0

import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import { createLibp2p } from 'libp2p'
import { version as LIBP2P_VERSION } from 'libp2p/version'
import { tcp } from '@libp2p/tcp'
import { webSockets } from '@libp2p/websockets'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { ping } from '@libp2p/ping'
import { identify } from '@libp2p/identify'
import { circuitRelayServer, circuitRelayTransport } from '@libp2p/circuit-relay-v2'
import { generateKeyPairFromSeed, generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'

export const ECHO_PROTOCOL = '/darkswap/echo/1.0.0'
export const SINK_PROTOCOL = '/darkswap/sink/1.0.0'
const CHUNK = 64 * 1024
const PATTERN_MOD = 251

// ---------------------------------------------------------------- output

// Event lines produced before the 'ready' line (e.g. the connection to a relay
// made while listening on a /p2p-circuit address) are held back and written
// right after it, so the first stdout line is always 'ready' or 'fatal'.
let readyEmitted = false
const heldBack = []

function emit (obj) {
  if (!readyEmitted) {
    if (obj.event === 'ready') {
      readyEmitted = true
      writeLine(obj)
      for (const o of heldBack.splice(0)) writeLine(o)
      return
    }
    if (obj.event !== 'fatal') {
      heldBack.push(obj)
      return
    }
    // fatal before ready: report it first, then whatever was held back
    writeLine(obj)
    for (const o of heldBack.splice(0)) writeLine(o)
    return
  }
  writeLine(obj)
}

function writeLine (obj) {
  // process.stdout on a pipe is synchronous on Linux, so lines are never
  // interleaved or lost on exit.
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function log (...args) {
  process.stderr.write(`[peer.mjs ${new Date().toISOString()}] ${args.join(' ')}\n`)
}

function errText (err) {
  if (err == null) return 'unknown error'
  if (err instanceof Error) {
    const name = err.name && err.name !== 'Error' ? `${err.name}: ` : ''
    let s = `${name}${err.message}`
    if (err instanceof AggregateError && Array.isArray(err.errors) && err.errors.length > 0) {
      s += ' [' + err.errors.map(errText).join('; ') + ']'
    }
    return s
  }
  return String(err)
}

process.on('uncaughtException', (err) => {
  log('uncaughtException', err?.stack ?? err)
  emit({ event: 'error', where: 'uncaughtException', error: errText(err) })
})
process.on('unhandledRejection', (err) => {
  log('unhandledRejection', err?.stack ?? err)
  emit({ event: 'error', where: 'unhandledRejection', error: errText(err) })
})

// ---------------------------------------------------------------- args

function parseArgs (argv) {
  const opts = {
    seed: null,
    listen: [],
    relayServer: false,
    relayUnlimited: false,
    relayClient: false,
    connectionMonitor: true,
    agent: `js-libp2p-interop/${LIBP2P_VERSION}`
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${a}`)
      return argv[++i]
    }
    switch (a) {
      case '--seed': opts.seed = next(); break
      case '--listen': opts.listen.push(next()); break
      case '--relay-server': opts.relayServer = true; break
      case '--relay-unlimited': opts.relayUnlimited = true; break
      case '--relay-client': opts.relayClient = true; break
      case '--no-connection-monitor': opts.connectionMonitor = false; break
      case '--agent': opts.agent = next(); break
      case '-h':
      case '--help':
        process.stderr.write('usage: peer.mjs [--seed HEX64] [--listen MULTIADDR]... [--relay-server [--relay-unlimited]] [--relay-client] [--no-connection-monitor] [--agent STRING]\n')
        process.exit(0)
        break
      default:
        throw new Error(`unknown argument ${a}`)
    }
  }
  if (opts.listen.length === 0) {
    opts.listen = ['/ip4/127.0.0.1/tcp/0', '/ip4/127.0.0.1/tcp/0/ws']
  }
  if (opts.seed != null && !/^[0-9a-fA-F]{64}$/.test(opts.seed)) {
    throw new Error('--seed must be 64 hex characters (32 bytes)')
  }
  return opts
}

// ---------------------------------------------------------------- helpers

/** Deterministic payload: byte i of a transfer is (i mod 251). */
const PATTERN = new Uint8Array(CHUNK + PATTERN_MOD)
for (let i = 0; i < PATTERN.length; i++) PATTERN[i] = i % PATTERN_MOD

function patternSlice (offset, n) {
  const start = offset % PATTERN_MOD
  return PATTERN.subarray(start, start + n)
}

/** Yields the Uint8Array chunks of a Uint8Array or a Uint8ArrayList. */
function * chunksOf (data) {
  if (data instanceof Uint8Array) yield data
  else yield * data
}

/**
 * Read a libp2p 3.x stream until the remote closes its write side.
 *
 * `onChunk(data)` is called for every 'message' event. If it returns a
 * promise the stream is paused (which for yamux stops sending window updates,
 * so the remote stops sending) until the promise settles - this gives real
 * end-to-end backpressure, unlike `for await (const buf of stream)` which in
 * libp2p 3.x buffers without limit.
 */
function consume (stream, onChunk, signal) {
  return new Promise((resolve, reject) => {
    let pending = null
    let done = false
    const finish = (err) => {
      if (done) return
      done = true
      stream.removeEventListener('message', onMessage)
      stream.removeEventListener('end', onEnd)
      stream.removeEventListener('close', onClose)
      signal?.removeEventListener('abort', onAbort)
      if (err != null) reject(err)
      else resolve()
    }
    const onMessage = (evt) => {
      try {
        const r = onChunk(evt.data)
        if (r != null && typeof r.then === 'function') {
          if (stream.readStatus === 'readable') stream.pause()
          pending = r.then(() => {
            pending = null
            if (!done && stream.readStatus === 'paused') stream.resume()
          }, (err) => { pending = null; finish(err) })
        }
      } catch (err) {
        finish(err)
      }
    }
    const onEnd = () => {
      Promise.resolve(pending).then(() => finish(), finish)
    }
    const onClose = (evt) => {
      if (evt.error != null) finish(evt.error)
      else Promise.resolve(pending).then(() => finish(), finish)
    }
    const onAbort = () => {
      const err = signal.reason ?? new Error('aborted')
      try { stream.abort(err) } catch {}
      finish(err)
    }
    if (signal?.aborted) { onAbort(); return }
    signal?.addEventListener('abort', onAbort)
    stream.addEventListener('end', onEnd)
    stream.addEventListener('close', onClose)
    stream.addEventListener('message', onMessage)
    if (stream.readableEnded) onEnd()
  })
}

/** Send `size` pattern bytes in 64 KiB chunks, waiting for 'drain' when needed. */
async function sendPattern (stream, size, signal) {
  for (let off = 0; off < size; off += CHUNK) {
    const n = Math.min(CHUNK, size - off)
    if (!stream.send(patternSlice(off, n))) {
      await stream.onDrain({ signal })
    }
  }
}

function parseTarget (s) {
  if (typeof s !== 'string' || s.length === 0) throw new Error('missing "peer"/"addr"')
  if (s.startsWith('/')) return multiaddr(s)
  return peerIdFromString(s)
}

function peerIdOf (s) {
  if (typeof s !== 'string' || s.length === 0) throw new Error('missing "peer"')
  if (s.startsWith('/')) {
    const pid = multiaddr(s).getPeerId()
    if (pid == null) throw new Error(`multiaddr ${s} has no /p2p/ component`)
    return peerIdFromString(pid)
  }
  return peerIdFromString(s)
}

function describeIdentify (r) {
  return {
    peer: r.peerId.toString(),
    agentVersion: r.agentVersion ?? null,
    protocolVersion: r.protocolVersion ?? null,
    protocols: [...(r.protocols ?? [])],
    listenAddrs: (r.listenAddrs ?? []).map(a => a.toString()),
    observedAddr: r.observedAddr?.toString() ?? null,
    publicKey: r.publicKey != null ? Buffer.from(r.publicKey).toString('hex') : null,
    signedPeerRecord: r.signedPeerRecord != null
      ? { seq: Number(r.signedPeerRecord.seq), addrs: r.signedPeerRecord.addresses.map(a => a.toString()) }
      : null
  }
}

function describeConnection (c) {
  return {
    id: c.id,
    peer: c.remotePeer.toString(),
    addr: c.remoteAddr.toString(),
    status: c.status,
    direction: c.direction,
    multiplexer: c.multiplexer ?? null,
    encryption: c.encryption ?? null,
    limited: c.limits != null,
    streams: c.streams.map(s => s.protocol ?? null)
  }
}

function timeoutSignal (cmd, defMs) {
  const ms = Number(cmd.timeout_ms ?? defMs)
  return AbortSignal.timeout(ms)
}

// ---------------------------------------------------------------- node

async function main () {
  let opts
  try {
    opts = parseArgs(process.argv.slice(2))
  } catch (err) {
    emit({ event: 'fatal', error: errText(err) })
    process.exit(2)
  }

  const privateKey = opts.seed != null
    ? await generateKeyPairFromSeed('Ed25519', Buffer.from(opts.seed, 'hex'))
    : await generateKeyPair('Ed25519')

  const transports = [tcp(), webSockets()]
  if (opts.relayClient) transports.push(circuitRelayTransport())

  const services = {
    identify: identify(),
    ping: ping()
  }
  if (opts.relayServer) {
    // --relay-unlimited: no per-circuit duration/data limit (for throughput benchmarks)
    services.relay = circuitRelayServer(opts.relayUnlimited ? { reservations: { applyDefaultLimit: false } } : {})
  }

  const node = await createLibp2p({
    privateKey,
    start: false,
    addresses: { listen: opts.listen },
    transports,
    connectionEncrypters: [noise()],
    streamMuxers: [yamux({
      // a paused stream may buffer up to one full yamux window (16 MiB max),
      // so keep the read buffer limit above it
      streamOptions: { maxReadBufferLength: 32 * 1024 * 1024 }
    })],
    // Node's default gater already allows everything; be explicit so that
    // loopback and insecure ws:// are never filtered.
    connectionGater: {
      denyDialMultiaddr: async () => false
    },
    connectionMonitor: { enabled: opts.connectionMonitor },
    nodeInfo: {
      name: 'js-libp2p-interop',
      version: LIBP2P_VERSION,
      userAgent: opts.agent
    },
    services
  })

  // latest identify result per peer id (string)
  const identified = new Map()
  const identifyWaiters = new Map() // peer -> Set<fn>

  node.addEventListener('peer:connect', (evt) => {
    emit({ event: 'peer:connect', peer: evt.detail.toString() })
  })
  node.addEventListener('peer:disconnect', (evt) => {
    emit({ event: 'peer:disconnect', peer: evt.detail.toString() })
  })
  node.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    emit({ event: 'connection:open', peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), direction: c.direction })
  })
  node.addEventListener('connection:close', (evt) => {
    const c = evt.detail
    emit({ event: 'connection:close', peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), direction: c.direction })
  })
  node.addEventListener('peer:identify', (evt) => {
    const d = describeIdentify(evt.detail)
    identified.set(d.peer, d)
    emit({ event: 'peer:identify', ...d })
    const ws = identifyWaiters.get(d.peer)
    if (ws != null) {
      identifyWaiters.delete(d.peer)
      for (const fn of ws) fn(d)
    }
  })

  // ---- protocol handlers (inbound)

  await node.handle(ECHO_PROTOCOL, async (stream, connection) => {
    const peer = connection.remotePeer.toString()
    let bytes = 0
    try {
      await consume(stream, (data) => {
        bytes += data.byteLength
        if (!stream.send(data)) return stream.onDrain()
      })
      await stream.close()
      emit({ event: 'stream:echo', peer, bytes })
    } catch (err) {
      emit({ event: 'error', where: 'echo-handler', peer, bytes, error: errText(err) })
      try { stream.abort(err) } catch {}
    }
  }, { maxInboundStreams: 256, maxOutboundStreams: 256, runOnLimitedConnection: true })

  await node.handle(SINK_PROTOCOL, async (stream, connection) => {
    const peer = connection.remotePeer.toString()
    let bytes = 0
    try {
      await consume(stream, (data) => { bytes += data.byteLength })
      const out = new Uint8Array(8)
      new DataView(out.buffer).setBigUint64(0, BigInt(bytes), false)
      stream.send(out)
      await stream.close()
      emit({ event: 'stream:sink', peer, bytes })
    } catch (err) {
      emit({ event: 'error', where: 'sink-handler', peer, bytes, error: errText(err) })
      try { stream.abort(err) } catch {}
    }
  }, { maxInboundStreams: 256, maxOutboundStreams: 256, runOnLimitedConnection: true })

  await node.start()

  // ---- commands

  function waitIdentify (peer, signal) {
    return new Promise((resolve, reject) => {
      let set = identifyWaiters.get(peer)
      if (set == null) { set = new Set(); identifyWaiters.set(peer, set) }
      const fn = (d) => { signal.removeEventListener('abort', onAbort); resolve(d) }
      const onAbort = () => { set.delete(fn); reject(signal.reason) }
      set.add(fn)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  async function peerStoreView (pid) {
    try {
      const p = await node.peerStore.get(pid)
      const md = (k) => p.metadata.has(k) ? Buffer.from(p.metadata.get(k)).toString('utf8') : null
      return {
        protocols: [...p.protocols],
        addrs: p.addresses.map(a => a.multiaddr.toString()),
        agentVersion: md('AgentVersion'),
        protocolVersion: md('ProtocolVersion')
      }
    } catch (err) {
      return null
    }
  }

  async function openStream (cmd, protocol, signal) {
    const target = parseTarget(cmd.peer)
    return node.dialProtocol(target, protocol, { signal, runOnLimitedConnection: cmd.limited === true })
  }

  const commands = {
    async info () {
      return {
        peerId: node.peerId.toString(),
        addrs: node.getMultiaddrs().map(a => a.toString()),
        protocols: node.getProtocols(),
        agentVersion: opts.agent,
        libp2pVersion: LIBP2P_VERSION
      }
    },

    async dial (cmd) {
      const signal = timeoutSignal(cmd, 30_000)
      const conn = await node.dial(parseTarget(cmd.addr ?? cmd.peer), { signal })
      return { peerId: conn.remotePeer.toString(), addr: conn.remoteAddr.toString(), direction: conn.direction }
    },

    async hangup (cmd) {
      await node.hangUp(parseTarget(cmd.peer), { signal: timeoutSignal(cmd, 30_000) })
      return {}
    },

    async ping (cmd) {
      const signal = timeoutSignal(cmd, 30_000)
      const rtt = await node.services.ping.ping(parseTarget(cmd.peer), { signal, runOnLimitedConnection: cmd.limited === true })
      return { rtt_ms: rtt }
    },

    async identify (cmd) {
      const pid = peerIdOf(cmd.peer)
      const key = pid.toString()
      const timeoutMs = Number(cmd.timeout_ms ?? 10_000)
      let result = cmd.refresh === true ? null : identified.get(key)
      const openConns = () => node.getConnections(pid).filter(c => c.status === 'open')
      if (result == null && openConns().length === 0) throw new Error(`no open connection to ${key}`)
      if (result == null && cmd.refresh !== true) {
        // identify runs automatically when a connection opens; wait for it
        const waitMs = Math.max(1, Math.floor(timeoutMs / 2))
        try {
          result = await waitIdentify(key, AbortSignal.timeout(waitMs))
        } catch {
          result = null
        }
      }
      if (result == null) {
        // explicitly run identify on an open connection (also yields a
        // concrete error message if the remote's identify is broken)
        const conns = openConns()
        if (conns.length === 0) throw new Error(`no open connection to ${key}`)
        const r = await node.services.identify.identify(conns[0], { signal: AbortSignal.timeout(Math.max(1, Math.floor(timeoutMs / 2))) })
        result = describeIdentify(r)
        identified.set(key, result)
      }
      return { ...result, peerStore: await peerStoreView(pid) }
    },

    async echo (cmd) {
      const size = Number(cmd.size ?? 0)
      if (!Number.isSafeInteger(size) || size < 0) throw new Error('bad size')
      const signal = timeoutSignal(cmd, 120_000)
      const start = performance.now()
      const stream = await openStream(cmd, ECHO_PROTOCOL, signal)
      const hash = createHash('sha256')
      let received = 0
      try {
        const reader = consume(stream, (data) => {
          for (const buf of chunksOf(data)) {
            if (received + buf.length > size) {
              throw new Error(`echo returned more bytes than sent (${received + buf.length} > ${size})`)
            }
            const base = received % PATTERN_MOD
            for (let i = 0; i < buf.length; i++) {
              if (buf[i] !== PATTERN[(base + i) % PATTERN_MOD]) {
                throw new Error(`echo mismatch at byte ${received + i}: got ${buf[i]}, want ${(received + i) % PATTERN_MOD}`)
              }
            }
            hash.update(buf)
            received += buf.length
          }
        }, signal)
        // if the reader fails early, stop writing
        let readerErr = null
        reader.catch((err) => { readerErr = err })
        await sendPattern(stream, size, signal)
        if (readerErr != null) throw readerErr
        await stream.close({ signal })
        await reader
      } catch (err) {
        try { stream.abort(err) } catch {}
        throw err
      }
      const ms = performance.now() - start
      if (received !== size) throw new Error(`echo returned ${received} bytes, sent ${size}`)
      return { bytes: size, ms, sha256: hash.digest('hex') }
    },

    async throughput (cmd) {
      const size = Number(cmd.size ?? 0)
      if (!Number.isSafeInteger(size) || size < 0) throw new Error('bad size')
      const signal = timeoutSignal(cmd, 300_000)
      const t0 = performance.now()
      const stream = await openStream(cmd, SINK_PROTOCOL, signal)
      const t1 = performance.now()
      const reply = []
      try {
        const reader = consume(stream, (data) => { for (const b of chunksOf(data)) reply.push(Buffer.from(b)) }, signal)
        let readerErr = null
        reader.catch((err) => { readerErr = err })
        await sendPattern(stream, size, signal)
        if (readerErr != null) throw readerErr
        await stream.close({ signal })
        await reader
      } catch (err) {
        try { stream.abort(err) } catch {}
        throw err
      }
      const t2 = performance.now()
      const buf = Buffer.concat(reply)
      if (buf.length !== 8) throw new Error(`sink replied ${buf.length} bytes, expected 8`)
      const count = buf.readBigUInt64BE(0)
      if (count !== BigInt(size)) throw new Error(`sink counted ${count} bytes, sent ${size}`)
      const ms = t2 - t1
      return {
        bytes: size,
        ms,
        open_ms: t1 - t0,
        mib_per_s: ms > 0 ? (size / 1048576) / (ms / 1000) : null
      }
    },

    async connections () {
      return { connections: node.getConnections().map(describeConnection) }
    },

    async peerstore (cmd) {
      return { peer: peerIdOf(cmd.peer).toString(), ...(await peerStoreView(peerIdOf(cmd.peer))) }
    },

    async stop () {
      return {}
    }
  }

  let stopping = false
  async function shutdown (code) {
    if (stopping) return
    stopping = true
    try {
      await Promise.race([node.stop(), new Promise(resolve => setTimeout(resolve, 5000))])
    } catch (err) {
      emit({ event: 'error', where: 'stop', error: errText(err) })
    }
    emit({ event: 'stopped' })
    process.exit(code)
  }

  async function handleLine (line) {
    line = line.trim()
    if (line === '') return
    let cmd
    try {
      cmd = JSON.parse(line)
      if (cmd == null || typeof cmd !== 'object' || Array.isArray(cmd)) throw new Error('command must be a JSON object')
    } catch (err) {
      emit({ id: null, ok: false, error: `bad command line: ${errText(err)}` })
      return
    }
    const id = cmd.id ?? null
    const fn = Object.hasOwn(commands, cmd.cmd) ? commands[cmd.cmd] : null
    if (fn == null) {
      emit({ id, ok: false, error: `unknown cmd ${JSON.stringify(cmd.cmd)}` })
      return
    }
    try {
      const res = await fn(cmd)
      emit({ id, ok: true, ...res })
    } catch (err) {
      log(`cmd ${cmd.cmd} failed:`, err?.stack ?? err)
      emit({ id, ok: false, error: errText(err) })
    }
    if (cmd.cmd === 'stop') await shutdown(0)
  }

  emit({
    event: 'ready',
    peerId: node.peerId.toString(),
    addrs: node.getMultiaddrs().map(a => a.toString()),
    protocols: node.getProtocols(),
    agentVersion: opts.agent,
    libp2pVersion: LIBP2P_VERSION
  })

  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
  rl.on('line', (line) => { handleLine(line) })
  rl.on('close', () => { shutdown(0) })
  process.on('SIGTERM', () => { shutdown(0) })
  process.on('SIGINT', () => { shutdown(0) })
}

main().catch((err) => {
  log('fatal', err?.stack ?? err)
  emit({ event: 'fatal', error: errText(err) })
  process.exit(1)
})
