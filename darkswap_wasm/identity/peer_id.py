"""libp2p peer IDs (``peer-ids/peer-ids.md`` §Peer Ids).

A peer ID is a multihash of the protobuf-encoded public key: the identity multihash when that
encoding is at most 42 bytes (every Ed25519 key: IDs start ``12D3KooW``), else SHA-256.
Its text form is base58btc (legacy) or a CIDv1 with the ``libp2p-key`` codec.
"""

from __future__ import annotations

import hashlib

from ..errors import DecodeError, InvalidPeerId
from ..wire import multibase, varint

MH_IDENTITY = 0x00
MH_SHA256 = 0x12
MAX_INLINE_KEY = 42
MAX_PEER_ID_BYTES = 128
CID_MULTIBASES = "zumbf"  # the multibase prefixes wire.multibase decodes
PEER_ID_FORMS = "a base58btc peer ID (12D3KooW… / Qm…) or a CIDv1 (libp2p-key)"


class PeerId:
    __slots__ = ("_bytes", "_text")

    def __init__(self, multihash: bytes) -> None:
        mh = bytes(multihash)
        _validate_multihash(mh)
        self._bytes = mh
        self._text: str | None = None

    @classmethod
    def from_public_key_protobuf(cls, key_protobuf: bytes) -> PeerId:
        if len(key_protobuf) <= MAX_INLINE_KEY:
            return cls(bytes((MH_IDENTITY, len(key_protobuf))) + key_protobuf)
        return cls(bytes((MH_SHA256, 32)) + hashlib.sha256(key_protobuf).digest())

    @classmethod
    def from_string(cls, text: str) -> PeerId:
        """Parse the text form; :class:`~darkswap_wasm.errors.InvalidPeerId` (a ``DecodeError``,
        code ``INVALID_ARGUMENT``) names the text and the forms expected."""
        if not isinstance(text, str):
            raise TypeError(f"peer ID must be a str, not {type(text).__name__}")
        if text.startswith(("Qm", "1")):
            try:
                return cls(multibase.b58decode(text))
            except DecodeError as exc:
                raise _invalid(text, str(exc)) from None
        if not text or text[0] not in CID_MULTIBASES:  # e.g. "hello": not an attempt at either form
            raise _invalid(text)
        try:
            data = multibase.decode(text)
            version, pos = varint.decode(data)
            codec, pos = varint.decode(data, pos)
            if version != 1 or codec != 0x72:
                raise DecodeError("a CID, but not a CIDv1 with the libp2p-key codec")
            return cls(data[pos:])
        except DecodeError as exc:
            raise _invalid(text, str(exc)) from None

    @classmethod
    def coerce(cls, value: PeerId | str | bytes) -> PeerId:
        if isinstance(value, PeerId):
            return value
        if isinstance(value, str):
            return cls.from_string(value)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise InvalidPeerId(f"a peer ID must be a string (12D3KooW… / Qm… / a CIDv1), not {type(value).__name__}")
        return cls(value)

    def to_bytes(self) -> bytes:
        return self._bytes

    def __bytes__(self) -> bytes:
        return self._bytes

    def public_key_protobuf(self) -> bytes | None:
        """The embedded public key, when the ID is an identity multihash."""
        if self._bytes[0] == MH_IDENTITY:
            return self._bytes[2:]
        return None

    def __str__(self) -> str:
        if self._text is None:
            self._text = multibase.b58encode(self._bytes)
        return self._text

    def __repr__(self) -> str:
        return f"PeerId({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PeerId):
            return self._bytes == other._bytes
        if isinstance(other, str):
            return str(self) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._bytes)


def _invalid(text: str, detail: str | None = None) -> InvalidPeerId:
    shown = text if len(text) <= 80 else text[:77] + "..."
    return InvalidPeerId(f"invalid peer ID {shown!r}: not {PEER_ID_FORMS}" + (f" ({detail})" if detail else ""))


def _validate_multihash(mh: bytes) -> None:
    if not mh or len(mh) > MAX_PEER_ID_BYTES:
        raise DecodeError(f"peer ID multihash of {len(mh)} bytes")
    code, pos = varint.decode(mh)
    length, pos = varint.decode(mh, pos)
    if code not in (MH_IDENTITY, MH_SHA256):
        raise DecodeError(f"peer ID multihash uses unsupported hash code {code:#x}")
    if code == MH_SHA256 and length != 32:
        raise DecodeError("sha2-256 peer ID digest must be 32 bytes")
    if len(mh) - pos != length:
        raise DecodeError("peer ID multihash length does not match its digest")
