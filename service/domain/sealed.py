"""Sealed tokens: a short payload and its MAC, for what must travel in mail (reply and
project addresses, one-click unsubscribe links) and live as long as the mail is kept.

``<key id>.<base32(payload, mac)>``: HMAC-SHA256 over ``purpose`` and the payload,
truncated to 80 bits, with the keyring's current key. Base32 (lower-case, no padding)
because mail servers may change the case of an address's local part; the purpose keeps a
token made for one use from being taken for another. Pure: the keys are handed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Final

from .signing import Keyring

_MAC_BYTES: Final = 10
_TOKEN: Final = re.compile(r"([0-9a-z]{1,32})\.([a-z2-7]+)")


def _mac(secret: bytes, purpose: str, payload: bytes) -> bytes:
    message = purpose.encode() + b"\n" + payload
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def seal(keyring: Keyring, purpose: str, payload: bytes) -> str:
    """The token of ``payload`` for ``purpose``, signed with the keyring's current key."""
    key_id = keyring.current
    raw = payload + _mac(keyring.secrets[key_id], purpose, payload)
    return f"{key_id}.{base64.b32encode(raw).decode('ascii').rstrip('=').lower()}"


def key_id_of(token: str) -> str | None:
    """The key a token names (None: malformed), to reload the keys when a token names one
    this process has not seen yet."""
    match = _TOKEN.fullmatch(token.lower())
    return match[1] if match else None


def unseal(keyring: Keyring, purpose: str, token: str, size: int) -> bytes | None:
    """The ``size``-byte payload ``token`` seals for ``purpose``, or None when it is
    malformed, names a key not kept, has another size or its MAC does not match (any case)."""
    match = _TOKEN.fullmatch(token.lower())
    if match is None:
        return None
    secret = keyring.secrets.get(match[1])
    text = match[2]
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except ValueError:
        return None
    if secret is None or len(raw) != size + _MAC_BYTES:
        return None
    payload, mac = raw[:size], raw[size:]
    if not hmac.compare_digest(mac, _mac(secret, purpose, payload)):
        return None
    return payload
