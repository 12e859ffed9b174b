// Kademlia codec vectors from js-libp2p's own code, for tests/interop/test_kad_vectors.py.
//
// Reads one JSON object on stdin:
//   {"messages": [{type, key?, record?, clusterLevel?, closer?: [peer], providers?: [peer]}],
//    "decode": [hex, ...], "keys": [hex, ...], "namespace": "/libp2p/relay/v2"}
// with peer = {id: hex, multiaddrs: [hex], connection?: "CONNECTED" | ...}, and writes one JSON
// object on stdout:
//   {"encoded": [hex body], "framed": [hex uvarint(len) || body],
//    "decoded": [message as JSON, hex bytes], "keys": [{version, code, digest, string} | {error}],
//    "namespaceCid": {...}}
// Encoding and decoding use @libp2p/kad-dht's protons Message codec (dist/src/message/dht.js,
// not exported by the package, imported by path); the namespace key uses
// @libp2p/circuit-relay-v2's namespaceToCid, which its relay discovery provides.

import { CID } from 'multiformats/cid'
import * as varint from 'uint8-varint'
import { Message } from './node_modules/@libp2p/kad-dht/dist/src/message/dht.js'
import { namespaceToCid } from './node_modules/@libp2p/circuit-relay-v2/dist/src/utils.js'

const fromHex = (h) => Uint8Array.from(Buffer.from(h, 'hex'))
const toHex = (b) => Buffer.from(b).toString('hex')

const peerIn = (p) => ({
  id: fromHex(p.id),
  multiaddrs: (p.multiaddrs ?? []).map(fromHex),
  ...(p.connection != null ? { connection: p.connection } : {})
})
const peerOut = (p) => ({
  id: toHex(p.id),
  multiaddrs: p.multiaddrs.map(toHex),
  ...(p.connection != null ? { connection: p.connection } : {})
})

const messageIn = (m) => {
  const out = { type: m.type, closer: (m.closer ?? []).map(peerIn), providers: (m.providers ?? []).map(peerIn) }
  if (m.key != null) out.key = fromHex(m.key)
  if (m.record != null) out.record = fromHex(m.record)
  if (m.clusterLevel != null) out.clusterLevel = m.clusterLevel
  return out
}
const messageOut = (m) => {
  const out = { type: m.type, closer: m.closer.map(peerOut), providers: m.providers.map(peerOut) }
  if (m.key != null) out.key = toHex(m.key)
  if (m.record != null) out.record = toHex(m.record)
  if (m.clusterLevel != null) out.clusterLevel = m.clusterLevel
  return out
}

const cidOut = (cid) => ({
  version: cid.version,
  codec: cid.code,
  code: cid.multihash.code,
  digest: toHex(cid.multihash.digest),
  bytes: toHex(cid.bytes),
  multihash: toHex(cid.multihash.bytes),
  string: cid.toString()
})

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'))

const encoded = input.messages.map((m) => Message.encode(messageIn(m)))
const result = {
  encoded: encoded.map(toHex),
  framed: encoded.map((body) => toHex(Buffer.concat([varint.encode(body.byteLength), body]))),
  decoded: (input.decode ?? []).map((h) => messageOut(Message.decode(fromHex(h)))),
  keys: (input.keys ?? []).map((h) => {
    try {
      return cidOut(CID.decode(fromHex(h)))
    } catch (err) {
      return { error: String(err) }
    }
  }),
  namespaceCid: cidOut(await namespaceToCid(input.namespace ?? '/libp2p/relay/v2'))
}
process.stdout.write(JSON.stringify(result) + '\n')
