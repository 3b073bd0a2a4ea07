"""The addresses mail comes back to: a reply address per recipient and recording
(``reply+<token>@<mail domain>``) and a project's address (``project+<token>@…``).

A token names what it is for and is sealed (:mod:`.sealed`: HMAC-SHA256, truncated to 80
bits) with a mail key named by its id, so that it cannot be forged nor turned to another
recording or person:

* reply: ``<key id>.<base32(person id digits, recording id digits, mac)>`` (ids are 20 hex
  digits, 10 bytes each: the local part stays under RFC 5321's 64 octets);
* project: ``<key id>.<base32(project id digits, mac)>``.

Base32 (lower-case, no padding) because mail servers may change the case of a local part.
Pure: the keys are handed in (:class:`~service.domain.signing.Keyring`); which keys exist and
how they rotate is the read side's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ..events.streams import ID_DIGITS, PERSON_ID, PROJECT_ID, RECORDING_ID
from . import sealed
from .signing import Keyring

REPLY: Final = "reply"
PROJECT: Final = "project"
_ID_BYTES: Final = ID_DIGITS // 2


@dataclass(frozen=True)
class ReplyTarget:
    """A reply from ``person_id`` about ``recording_id``."""

    person_id: str
    recording_id: str


@dataclass(frozen=True)
class ProjectTarget:
    """Mail sent (forwarded) to project ``project_id``'s address."""

    project_id: str


def _digits(id_: str, prefix: str) -> bytes:
    head, _, digits = id_.partition("_")
    if head != prefix or len(digits) != ID_DIGITS:
        raise ValueError(f"not a {prefix} id: {id_!r}")
    return bytes.fromhex(digits)


def reply_local_part(keyring: Keyring, person_id: str, recording_id: str) -> str:
    """``reply+<token>``: where ``person_id`` replies to mail about ``recording_id``."""
    payload = _digits(person_id, PERSON_ID) + _digits(recording_id, RECORDING_ID)
    return f"{REPLY}+{sealed.seal(keyring, REPLY, payload)}"


def project_local_part(keyring: Keyring, project_id: str) -> str:
    """``project+<token>``: the address mail is forwarded to, to post it in ``project_id``."""
    return f"{PROJECT}+{sealed.seal(keyring, PROJECT, _digits(project_id, PROJECT_ID))}"


def key_id_of(local_part: str) -> str | None:
    """The mail key a local part's token names (None: not one of ours), to reload the keys
    when a token names one this process has not seen."""
    return sealed.key_id_of(local_part.partition("+")[2])


def parse_local_part(keyring: Keyring, local_part: str) -> ReplyTarget | ProjectTarget | None:
    """What ``local_part`` (the part of an address before ``@``) is for, or None when it is
    not a token of ours, is malformed, names a key not kept, or its signature does not
    match."""
    kind, plus, token = local_part.lower().partition("+")
    if not plus or kind not in (REPLY, PROJECT):
        return None
    size = 2 * _ID_BYTES if kind == REPLY else _ID_BYTES
    payload = sealed.unseal(keyring, kind, token, size)
    if payload is None:
        return None
    if kind == REPLY:
        return ReplyTarget(
            person_id=f"{PERSON_ID}_{payload[:_ID_BYTES].hex()}",
            recording_id=f"{RECORDING_ID}_{payload[_ID_BYTES:].hex()}",
        )
    return ProjectTarget(project_id=f"{PROJECT_ID}_{payload.hex()}")
