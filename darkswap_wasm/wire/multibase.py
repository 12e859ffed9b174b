"""base58btc and the few multibase encodings libp2p addresses use (``z``, ``u``, ``b``, ``f``, ``m``).

Spec: multiformats/multibase.
"""

from __future__ import annotations

import base64
import binascii

from ..errors import DecodeError

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
MAX_B58_INPUT = 256  # characters; identifiers here are far shorter


def b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    chars = []
    while n:
        n, r = divmod(n, 58)
        chars.append(_B58[r])
    pad = len(data) - len(data.lstrip(b"\x00"))
    return "1" * pad + "".join(reversed(chars))


def b58decode(text: str) -> bytes:
    if len(text) > MAX_B58_INPUT:
        raise DecodeError(f"base58 string longer than {MAX_B58_INPUT} characters")
    n = 0
    for c in text:
        try:
            n = n * 58 + _B58_INDEX[c]
        except KeyError:
            raise DecodeError(f"invalid base58 character {c!r}") from None
    body = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    pad = len(text) - len(text.lstrip("1"))
    return b"\x00" * pad + body


def encode(data: bytes, base: str = "u") -> str:
    if base == "z":
        return "z" + b58encode(data)
    if base == "u":
        return "u" + base64.urlsafe_b64encode(data).decode().rstrip("=")
    if base == "m":
        return "m" + base64.b64encode(data).decode().rstrip("=")
    if base == "b":
        return "b" + base64.b32encode(data).decode().lower().rstrip("=")
    if base == "f":
        return "f" + data.hex()
    raise ValueError(f"unsupported multibase {base!r}")


def decode(text: str) -> bytes:
    if not text:
        raise DecodeError("empty multibase string")
    prefix, body = text[0], text[1:]
    try:
        if prefix == "z":
            return b58decode(body)
        if prefix in ("u", "m"):
            if "=" in body or (prefix == "u" and ("+" in body or "/" in body)):
                raise DecodeError(f"character outside the multibase {prefix!r} base64 alphabet")
            altchars = b"-_" if prefix == "u" else None
            return base64.b64decode(body + "=" * (-len(body) % 4), altchars=altchars, validate=True)
        if prefix == "b":
            return base64.b32decode(body.upper() + "=" * (-len(body) % 8))
        if prefix == "f":
            return bytes.fromhex(body)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"invalid multibase {prefix!r} string") from exc
    raise DecodeError(f"unsupported multibase prefix {prefix!r}")
