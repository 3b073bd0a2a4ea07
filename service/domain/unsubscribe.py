"""One-click unsubscribe tokens (RFC 8058): which person stops getting which kind of mail.

``<key id>.<base32(person id digits, kind number, mac)>``, sealed (:mod:`.sealed`) with a
mail key like the reply addresses of :mod:`.mail_addresses`, under its own purpose so that a
reply token is never an unsubscribe token; a link cannot be turned to another person or
kind. It never expires: a mailbox keeps mail for years, and the worst a
leaked link can do is turn someone's mail of one kind off.

Pure: the keys are handed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..events.streams import ID_DIGITS, PERSON_ID
from . import sealed
from .preferences import KINDS
from .signing import Keyring

ALL: Final = "all"
"""The kind of a digest's link: every kind of mail off."""
_KINDS: Final = (ALL, *KINDS)
_PURPOSE: Final = "unsubscribe"
_ID_BYTES: Final = ID_DIGITS // 2


@dataclass(frozen=True)
class Unsubscribe:
    """``person_id`` wants no more mail of ``kind`` (:data:`ALL`: none at all)."""

    person_id: str
    kind: str


def sign(keyring: Keyring, person_id: str, kind: str) -> str:
    """The token of an unsubscribe link for ``person_id`` and ``kind``.

    Raises:
        ValueError: not a person id, or an unknown kind.
    """
    head, _, digits = person_id.partition("_")
    if head != PERSON_ID or len(digits) != ID_DIGITS or kind not in _KINDS:
        raise ValueError(f"cannot sign an unsubscribe for {person_id!r}, {kind!r}")
    return sealed.seal(keyring, _PURPOSE, bytes.fromhex(digits) + bytes([_KINDS.index(kind)]))


key_id_of = sealed.key_id_of
"""The key a token names (None: malformed)."""


def verify(keyring: Keyring, token: str) -> Unsubscribe | None:
    """What ``token`` asks, or None when it is malformed, names a key not kept or its
    signature does not match."""
    payload = sealed.unseal(keyring, _PURPOSE, token, _ID_BYTES + 1)
    if payload is None or payload[-1] >= len(_KINDS):
        return None
    return Unsubscribe(
        person_id=f"{PERSON_ID}_{payload[:_ID_BYTES].hex()}", kind=_KINDS[payload[-1]]
    )
