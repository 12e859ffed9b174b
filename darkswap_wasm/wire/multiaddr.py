"""Multiaddr: self-describing network addresses, text and binary forms.

Spec: multiformats/multiaddr (and its protocols table). Supported components: ip4, ip6, dns,
dns4, dns6, dnsaddr, tcp, udp, quic-v1, ws, wss, tls, sni, p2p, p2p-circuit, webrtc,
webrtc-direct, certhash. ``/ipfs/<id>`` is read as ``/p2p/<id>``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import DecodeError
from . import multibase, varint

MAX_MULTIADDR_BYTES = 1024
MAX_COMPONENTS = 32


@dataclass(frozen=True)
class _Proto:
    name: str
    code: int
    size: int  # bits; 0 = no value, -1 = varint-length-prefixed


_PROTOCOLS = [
    _Proto("ip4", 4, 32),
    _Proto("tcp", 6, 16),
    _Proto("dns", 53, -1),
    _Proto("dns4", 54, -1),
    _Proto("dns6", 55, -1),
    _Proto("dnsaddr", 56, -1),
    _Proto("ip6", 41, 128),
    _Proto("udp", 273, 16),
    _Proto("p2p-webrtc-direct", 276, 0),
    _Proto("webrtc-direct", 280, 0),
    _Proto("webrtc", 281, 0),
    _Proto("p2p-circuit", 290, 0),
    _Proto("p2p", 421, -1),
    _Proto("tls", 448, 0),
    _Proto("sni", 449, -1),
    _Proto("quic-v1", 461, 0),
    _Proto("certhash", 466, -1),
    _Proto("ws", 477, 0),
    _Proto("wss", 478, 0),
]
BY_NAME = {p.name: p for p in _PROTOCOLS}
BY_NAME["ipfs"] = BY_NAME["p2p"]
BY_CODE = {p.code: p for p in _PROTOCOLS}


def _value_to_bytes(proto: _Proto, text: str) -> bytes:
    try:
        if proto.name == "ip4":
            return ipaddress.IPv4Address(text).packed
        if proto.name == "ip6":
            if "%" in text:
                raise ValueError("zoned IPv6 addresses are not supported here")
            return ipaddress.IPv6Address(text).packed
        if proto.name in ("tcp", "udp"):
            if not (text.isascii() and text.isdigit()):
                raise ValueError("a port is plain decimal digits")
            port = int(text, 10)
            if not 0 <= port <= 65535:
                raise ValueError("port out of range")
            return port.to_bytes(2, "big")
    except ValueError as exc:
        raise DecodeError(f"invalid /{proto.name} value {text!r}: {exc}") from None
    if proto.name == "p2p":
        if text.startswith(("Qm", "1")):
            raw = multibase.b58decode(text)
        else:
            raw = _peer_id_from_cid(text)
        _check_peer_id(raw)
        return raw
    if proto.name == "certhash":
        raw = multibase.decode(text)
    else:
        try:
            raw = text.encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError(f"/{proto.name} value is not valid Unicode") from None
    if not raw:
        raise DecodeError(f"empty /{proto.name} value")
    return raw


def _check_peer_id(raw: bytes) -> None:
    """A /p2p value is a peer-ID multihash: identity or sha2-256 (peer-ids spec)."""
    try:
        code, pos = varint.decode(raw)
        length, pos = varint.decode(raw, pos)
    except DecodeError:
        raise DecodeError("/p2p value is not a multihash") from None
    if code not in (0x00, 0x12) or len(raw) - pos != length or (code == 0x12 and length != 32):
        raise DecodeError("/p2p value is not a peer ID multihash")


def _peer_id_from_cid(text: str) -> bytes:
    """A peer ID written as a CIDv1 (libp2p-key codec 0x72) in any multibase."""
    data = multibase.decode(text)
    version, pos = varint.decode(data)
    codec, pos = varint.decode(data, pos)
    if version != 1 or codec != 0x72:
        raise DecodeError("p2p value is neither a base58 multihash nor a libp2p-key CID")
    return bytes(data[pos:])


def _value_to_text(proto: _Proto, raw: bytes) -> str:
    if proto.name == "ip4":
        return str(ipaddress.IPv4Address(raw))
    if proto.name == "ip6":
        return str(ipaddress.IPv6Address(raw))
    if proto.name in ("tcp", "udp"):
        return str(int.from_bytes(raw, "big"))
    if proto.name == "p2p":
        return multibase.b58encode(raw)
    if proto.name == "certhash":
        return multibase.encode(raw, "u")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"/{proto.name} value is not UTF-8") from None
    if "/" in text:
        raise DecodeError(f"/{proto.name} value contains '/'")
    return text


class Multiaddr:
    """An immutable multiaddr. ``Multiaddr("/ip4/127.0.0.1/tcp/4001")`` or ``Multiaddr.from_bytes(b)``."""

    __slots__ = ("_parts",)

    def __init__(self, addr: str | Multiaddr | bytes) -> None:
        if isinstance(addr, Multiaddr):
            self._parts = addr._parts
            return
        if isinstance(addr, (bytes, bytearray, memoryview)):
            self._parts = _parse_bytes(bytes(addr))
            return
        self._parts = _parse_text(addr)

    @classmethod
    def from_bytes(cls, data: bytes) -> Multiaddr:
        return cls(bytes(data))

    @classmethod
    def _from_parts(cls, parts: tuple[tuple[str, bytes], ...]) -> Multiaddr:
        obj = cls.__new__(cls)
        obj._parts = parts
        return obj

    # -- views -----------------------------------------------------------------
    def components(self) -> list[tuple[str, str | None]]:
        """``[(protocol name, text value or None)]``."""
        return [(n, _value_to_text(BY_NAME[n], v) if BY_NAME[n].size else None) for n, v in self._parts]

    def protocols(self) -> list[str]:
        return [n for n, _ in self._parts]

    def value_for(self, name: str) -> str | None:
        """Text value of the last component named ``name`` (``None`` when absent)."""
        for n, v in reversed(self._parts):
            if n == name:
                return _value_to_text(BY_NAME[n], v)
        return None

    def raw_value_for(self, name: str) -> bytes | None:
        for n, v in reversed(self._parts):
            if n == name:
                return v
        return None

    def to_bytes(self) -> bytes:
        out = bytearray()
        for name, value in self._parts:
            proto = BY_NAME[name]
            out += varint.encode(proto.code)
            if proto.size == -1:
                out += varint.encode(len(value))
            out += value
        return bytes(out)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    # -- composition -----------------------------------------------------------
    def encapsulate(self, other: Multiaddr | str) -> Multiaddr:
        return Multiaddr._from_parts(self._parts + Multiaddr(other)._parts)

    def decapsulate_last(self, name: str) -> Multiaddr:
        """Everything before the last ``/name`` component."""
        for i in range(len(self._parts) - 1, -1, -1):
            if self._parts[i][0] == name:
                return Multiaddr._from_parts(self._parts[:i])
        return self

    def split_at(self, name: str) -> tuple[Multiaddr, Multiaddr] | None:
        """Split at the first ``/name`` component: (before, from it on). ``None`` when absent."""
        for i, (n, _) in enumerate(self._parts):
            if n == name:
                return Multiaddr._from_parts(self._parts[:i]), Multiaddr._from_parts(self._parts[i:])
        return None

    def without_p2p(self) -> Multiaddr:
        if self._parts and self._parts[-1][0] == "p2p":
            return Multiaddr._from_parts(self._parts[:-1])
        return self

    def __iter__(self) -> Iterator[tuple[str, str | None]]:
        return iter(self.components())

    def __len__(self) -> int:
        return len(self._parts)

    def __str__(self) -> str:
        out = []
        for name, value in self._parts:
            out.append("/" + name)
            proto = BY_NAME[name]
            if proto.size:
                out.append("/" + _value_to_text(proto, value))
        return "".join(out)

    def __repr__(self) -> str:
        return f"Multiaddr({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            try:
                other = Multiaddr(other)
            except DecodeError:
                return False
        return isinstance(other, Multiaddr) and self._parts == other._parts

    def __hash__(self) -> int:
        return hash(self._parts)


def _parse_text(text: str) -> tuple[tuple[str, bytes], ...]:
    if not isinstance(text, str):
        raise TypeError(f"multiaddr must be str or bytes, not {type(text).__name__}")
    if len(text) > 4 * MAX_MULTIADDR_BYTES:
        raise DecodeError("multiaddr text too long")
    if not text.startswith("/"):
        raise DecodeError(f"multiaddr must start with '/': {text!r}")
    tokens = text.rstrip("/").split("/")[1:]
    parts = []
    i = 0
    while i < len(tokens):
        name = tokens[i]
        proto = BY_NAME.get(name)
        if proto is None:
            raise DecodeError(f"unknown multiaddr protocol {name!r}")
        i += 1
        if proto.size == 0:
            raw = b""
        else:
            if i >= len(tokens):
                raise DecodeError(f"multiaddr protocol /{name} needs a value")
            raw = _value_to_bytes(proto, tokens[i])
            i += 1
        parts.append((proto.name, raw))
        if len(parts) > MAX_COMPONENTS:
            raise DecodeError("too many multiaddr components")
    result = tuple(parts)
    if len(Multiaddr._from_parts(result).to_bytes()) > MAX_MULTIADDR_BYTES:
        raise DecodeError(f"multiaddr longer than {MAX_MULTIADDR_BYTES} bytes")
    return result


def _parse_bytes(data: bytes) -> tuple[tuple[str, bytes], ...]:
    if len(data) > MAX_MULTIADDR_BYTES:
        raise DecodeError(f"multiaddr longer than {MAX_MULTIADDR_BYTES} bytes")
    parts = []
    pos = 0
    while pos < len(data):
        code, pos = varint.decode(data, pos)
        proto = BY_CODE.get(code)
        if proto is None:
            raise DecodeError(f"unknown multiaddr protocol code {code}")
        if proto.size == -1:
            length, pos = varint.decode(data, pos)
        else:
            length = proto.size // 8
        if pos + length > len(data):
            raise DecodeError(f"truncated /{proto.name} value")
        raw = data[pos : pos + length]
        pos += length
        if proto.size == -1:
            if not raw:
                raise DecodeError(f"empty /{proto.name} value")
            if proto.name == "p2p":
                _check_peer_id(raw)
            elif proto.name != "certhash":
                _value_to_text(proto, raw)  # validates text values
        parts.append((proto.name, raw))
        if len(parts) > MAX_COMPONENTS:
            raise DecodeError("too many multiaddr components")
    return tuple(parts)
