"""Ed25519 keys in libp2p's protobuf encoding (``peer-ids/peer-ids.md`` §Keys).

``PublicKey``/``PrivateKey`` messages: ``{1: KeyType Type, 2: bytes Data}``; Ed25519 is type 1.
The public key data is the 32-byte key; the private key data is ``seed || public key`` (64 bytes),
as go- and js-libp2p write it, so key files are interchangeable with theirs.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .. import crypto
from ..errors import ConfigError, CorruptKeyFile, DarkSwapError, DecodeError, KeyFileError
from ..wire import protobuf
from .peer_id import PeerId

KEY_TYPE_ED25519 = 1
KEY_SCHEMA = {1: ("type", "enum", False), 2: ("data", "bytes", False)}
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise DecodeError(f"Ed25519 public key must be 32 bytes, got {len(self.raw)}")

    def to_protobuf(self) -> bytes:
        return protobuf.encode(KEY_SCHEMA, {"type": KEY_TYPE_ED25519, "data": self.raw})

    @classmethod
    def from_protobuf(cls, data: bytes) -> PublicKey:
        if len(data) > MAX_KEY_BYTES:
            raise DecodeError("public key message too large")
        msg = protobuf.decode(KEY_SCHEMA, data)
        if msg.get("type") != KEY_TYPE_ED25519:
            raise DecodeError(f"unsupported key type {msg.get('type')!r} (only Ed25519 is supported)")
        if "data" not in msg:
            raise DecodeError("public key message without data")
        return cls(msg["data"])

    def verify(self, message: bytes, signature: bytes) -> bool:
        return crypto.get_backend().ed25519_verify(self.raw, message, signature)

    @property
    def peer_id(self) -> PeerId:
        return PeerId.from_public_key_protobuf(self.to_protobuf())


def _reason(exc: OSError) -> str:
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


class Identity:
    """A node's Ed25519 key pair. Keep the seed secret; share :attr:`peer_id`."""

    __slots__ = ("_seed", "peer_id", "public_key")

    def __init__(self, seed: bytes) -> None:
        seed = bytes(seed)
        if len(seed) != 32:
            raise ConfigError(f"an Ed25519 seed is 32 bytes, got {len(seed)}")
        self._seed = seed
        self.public_key = PublicKey(crypto.get_backend().ed25519_public_key(seed))
        self.peer_id = self.public_key.peer_id

    @classmethod
    def generate(cls) -> Identity:
        return cls(crypto.get_backend().random_bytes(32))

    @classmethod
    def from_seed(cls, seed: bytes) -> Identity:
        return cls(seed)

    def sign(self, message: bytes) -> bytes:
        return crypto.get_backend().ed25519_sign(self._seed, message)

    def private_key_protobuf(self) -> bytes:
        return protobuf.encode(KEY_SCHEMA, {"type": KEY_TYPE_ED25519, "data": self._seed + self.public_key.raw})

    @classmethod
    def from_private_key_protobuf(cls, data: bytes) -> Identity:
        if len(data) > MAX_KEY_BYTES:
            raise DecodeError("private key message too large")
        msg = protobuf.decode(KEY_SCHEMA, data)
        if msg.get("type") != KEY_TYPE_ED25519:
            raise DecodeError(f"unsupported private key type {msg.get('type')!r}")
        raw = msg.get("data", b"")
        if len(raw) not in (32, 64):
            raise DecodeError(f"Ed25519 private key data must be 32 or 64 bytes, got {len(raw)}")
        ident = cls(raw[:32])
        if len(raw) == 64 and raw[32:] != ident.public_key.raw:
            raise DecodeError("private key file: public half does not match the seed")
        return ident

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Identity:
        """Read the key file at ``path`` (a libp2p protobuf private key, as go/js-libp2p write it).

        Raises :class:`KeyFileError` naming the file: missing, a directory, unreadable, or not a key.
        """
        p = Path(path)
        try:
            data = p.read_bytes()
        except IsADirectoryError:
            raise KeyFileError(f"key file {p} is a directory") from None
        except OSError as exc:
            raise KeyFileError(f"cannot read key file {p}: {_reason(exc)}") from exc
        try:
            return cls.from_private_key_protobuf(data)
        except DarkSwapError as exc:
            raise CorruptKeyFile(f"key file {p} is not a libp2p Ed25519 private key: {exc}") from exc

    @classmethod
    def load_or_create(cls, path: str | os.PathLike[str], *, create_dirs: bool = True) -> Identity:
        """Load the key at ``path`` (libp2p protobuf private key), or create it with mode 0600.

        Missing directories are created unless ``create_dirs`` is false (the CLIs pass false: a
        typo should not make a new identity somewhere unexpected). Every failure is a
        :class:`KeyFileError` naming the file.
        """
        p = Path(path)
        if p.exists() or p.is_symlink():
            return cls.load(p)
        parent = p.parent
        if create_dirs and not parent.exists():
            try:
                parent.mkdir(parents=True)
            except OSError as exc:
                raise KeyFileError(f"cannot create key file {p}: {_reason(exc)}") from exc
        if not parent.is_dir():
            what = "is not a directory" if parent.exists() else "does not exist"
            raise KeyFileError(f"cannot create key file {p}: directory {parent} {what}")
        ident = cls.generate()
        try:
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=".key-")
        except OSError as exc:
            raise KeyFileError(f"cannot create key file {p}: {_reason(exc)}") from exc
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(ident.private_key_protobuf())
            os.replace(tmp, p)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise KeyFileError(f"cannot create key file {p}: {_reason(exc)}") from exc
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return ident

    def __repr__(self) -> str:
        return f"Identity({self.peer_id})"
