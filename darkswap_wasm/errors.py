"""The package's exceptions: one base class, a few families below it.

Every error says what was wrong and, where it helps, what was expected. The
JavaScript side maps each class to a stable ``code`` string (``CODE`` below).
"""

from __future__ import annotations


class DarkSwapError(Exception):
    """Base class of every error this package raises on purpose."""

    CODE = "DARKSWAP_ERROR"

    @property
    def code(self) -> str:
        return self.CODE


class ProtocolError(DarkSwapError):
    """A peer sent bytes that break the protocol. (A local call that breaks a machine's rules is
    a :class:`UsageError`, never this: a ``ProtocolError`` always means the remote side.)"""

    CODE = "PROTOCOL_ERROR"


class DecodeError(ProtocolError):
    """Bytes could not be decoded (bad varint, protobuf, multiaddr, ...)."""

    CODE = "DECODE_ERROR"


class LimitExceeded(ProtocolError):
    """A size, count or rate limit was exceeded."""

    CODE = "LIMIT_EXCEEDED"


class HandshakeError(ProtocolError):
    """A security handshake failed (bad signature, wrong peer, bad payload)."""

    CODE = "HANDSHAKE_FAILED"


class NegotiationError(ProtocolError):
    """multistream-select found no protocol both sides support."""

    CODE = "PROTOCOL_NEGOTIATION_FAILED"


class ResourceLimitExceeded(DarkSwapError):
    """A local resource budget (memory, streams, inbox) would be exceeded: the request is refused
    cleanly (stream reset, back-pressure) instead of the node growing. Not a ``ProtocolError``:
    the peer broke no rule, and an honest one retries later."""

    CODE = "RESOURCE_LIMIT_EXCEEDED"


class StreamReset(DarkSwapError):
    """The stream was reset by the peer or locally."""

    CODE = "STREAM_RESET"


class StreamClosed(DarkSwapError):
    """The stream (or its write side) is closed."""

    CODE = "STREAM_CLOSED"


class ConnectionClosed(DarkSwapError):
    """The connection is closed or was lost."""

    CODE = "CONNECTION_CLOSED"


class TimeoutError_(DarkSwapError, TimeoutError):
    """A wait ran past its deadline."""

    CODE = "TIMEOUT"


# Public alias: ``darkswap_wasm.errors.Timeout`` (avoids shadowing the builtin name).
Timeout = TimeoutError_


class UsageError(DarkSwapError):
    """A local call broke an API rule: a method called in the wrong state, a value of ours that
    cannot go on the wire. The caller's mistake, never the peer's (not a :class:`ProtocolError`)."""

    CODE = "USAGE_ERROR"


class MessageTooLarge(UsageError):
    """A message we were asked to send is over its protocol's (or our configured) size limit."""

    CODE = "MESSAGE_TOO_LARGE"


class PeerUnreachable(DarkSwapError):
    """No address of the peer could be dialed."""

    CODE = "PEER_UNREACHABLE"


class ConfigError(DarkSwapError, ValueError):
    """A configuration value is invalid."""

    CODE = "CONFIG_ERROR"


class CryptoBackendUnavailable(DarkSwapError):
    """No crypto backend is available in this runtime."""

    CODE = "CRYPTO_BACKEND_UNAVAILABLE"


class InvalidArgument(DarkSwapError, ValueError):
    """A caller passed a value of the wrong type or form (e.g. a JS API argument)."""

    CODE = "INVALID_ARGUMENT"


class InvalidPeerId(InvalidArgument, DecodeError):
    """A string (or value) is not a peer ID. Also a :class:`DecodeError` (it failed to decode),
    but its code is ``INVALID_ARGUMENT``: peer IDs as text almost always come from a caller."""

    CODE = "INVALID_ARGUMENT"


class KeyFileError(ConfigError):
    """A key file cannot be read, decoded or created; the message names the file."""

    CODE = "KEY_FILE_ERROR"


class ListenError(DarkSwapError):
    """A listen address cannot be bound (in use, not an address of this machine, ...)."""

    CODE = "LISTEN_FAILED"

    @classmethod
    def from_os_error(cls, addr: object, exc: OSError) -> ListenError:
        """``cannot listen on /ip4/127.0.0.1/tcp/4001: address already in use``."""
        import os

        reason = os.strerror(exc.errno).lower() if exc.errno else (str(exc) or type(exc).__name__)
        return cls(f"cannot listen on {addr}: {reason}")


class CorruptKeyFile(KeyFileError, DecodeError):
    """A key file's bytes are not a libp2p Ed25519 private key."""
