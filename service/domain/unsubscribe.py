"""One-click unsubscribe tokens (RFC 8058): which person stops getting which kind of mail.

``<key id>.<base32(person id digits, kind number, mac)>``, signed with a mail key like the
reply addresses of :mod:`.mail_addresses` (HMAC-SHA256 truncated to 80 bits, under its own
purpose so a reply token is never an unsubscribe token), so that a link cannot be turned to
another person or kind. It never expires: a mailbox keeps mail for years, and the worst a
leaked link can do is turn someone's mail of one kind off.

Pure: the keys are handed in.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final

from ..events.streams import ID_DIGITS, PERSON_ID
from .preferences import KINDS
from .signing import Keyring

ALL: Final = "all"
"""The kind of a digest's link: every kind of mail off."""
_KINDS: Final = (ALL, *KINDS)
_PURPOSE: Final = b"unsubscribe\n"
_MAC_BYTES: Final = 10
_ID_BYTES: Final = ID_DIGITS // 2
_TOKEN: Final = re.compile(r"([0-9a-z]{1,32})\.([a-z2-7]+)")


@dataclass(frozen=True)
class Unsubscribe:
    """``person_id`` wants no more mail of ``kind`` (:data:`ALL`: none at all)."""

    person_id: str
    kind: str


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, _PURPOSE + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def sign(keyring: Keyring, person_id: str, kind: str) -> str:
    """The token of an unsubscribe link for ``person_id`` and ``kind``.

    Raises:
        ValueError: not a person id, or an unknown kind.
    """
    head, _, digits = person_id.partition("_")
    if head != PERSON_ID or len(digits) != ID_DIGITS or kind not in _KINDS:
        raise ValueError(f"cannot sign an unsubscribe for {person_id!r}, {kind!r}")
    payload = bytes.fromhex(digits) + bytes([_KINDS.index(kind)])
    key_id = keyring.current
    raw = payload + _mac(keyring.secrets[key_id], payload)
    return f"{key_id}.{base64.b32encode(raw).decode('ascii').rstrip('=').lower()}"


def key_id_of(token: str) -> str | None:
    """The key a token names (None: malformed)."""
    match = _TOKEN.fullmatch(token.lower())
    return match[1] if match else None


def verify(keyring: Keyring, token: str) -> Unsubscribe | None:
    """What ``token`` asks, or None when it is malformed, names a key not kept or its
    signature does not match."""
    match = _TOKEN.fullmatch(token.lower())
    if match is None:
        return None
    secret = keyring.secrets.get(match[1])
    text = match[2]
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except ValueError:
        return None
    if secret is None or len(raw) != _ID_BYTES + 1 + _MAC_BYTES:
        return None
    payload, mac = raw[: _ID_BYTES + 1], raw[_ID_BYTES + 1 :]
    if not hmac.compare_digest(mac, _mac(secret, payload)) or payload[-1] >= len(_KINDS):
        return None
    return Unsubscribe(
        person_id=f"{PERSON_ID}_{payload[:_ID_BYTES].hex()}", kind=_KINDS[payload[-1]]
    )
