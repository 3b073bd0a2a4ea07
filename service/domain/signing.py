"""Short-lived signed links: a URL path and an expiry, signed with HMAC-SHA256 under a key
every instance shares (kept in PostgreSQL, read by :mod:`service.reads.signing_keys`).

A signed link (``/files/...?expires=<unix seconds>&signature=<key id>.<mac>``) serves a
file to whoever holds it, without a token: it is checked for nothing but its signature and
its expiry, so it lives at most :data:`MAX_TTL` seconds. The signature names the key that
made it, so keys can be rotated: a new key signs from then on, and the keys before it still
check the links they signed until those expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Final
from urllib.parse import quote

import msgspec

from ..errors import LinkRefused

MAX_TTL: Final = 300
"""Longest life of a signed link, in seconds (5 minutes)."""

CLOCK_SKEW: Final = 30
"""How far ahead of this instance's clock another instance's may be, in seconds: a link
minted there expiring up to ``MAX_TTL + CLOCK_SKEW`` from now here is still taken."""

_KEY_ID: Final = re.compile(r"[0-9a-z]{1,32}")
_SIGNATURE: Final = re.compile(r"([0-9a-z]{1,32})\.([A-Za-z0-9_-]{43})")
_EXPIRES: Final = re.compile(r"[0-9]{1,12}")


class Keyring(msgspec.Struct, frozen=True, kw_only=True):
    """The signing keys every instance shares: ``secrets`` by key id, and the id of the key
    that signs new links (``current``, the newest)."""

    secrets: Mapping[str, bytes]
    current: str

    def __post_init__(self) -> None:
        if self.current not in self.secrets:
            raise ValueError(f"the current key {self.current!r} is not in the keyring")
        for key_id in self.secrets:
            if not _KEY_ID.fullmatch(key_id):
                raise ValueError(f"bad key id {key_id!r}: 1 to 32 lowercase letters or digits")


class SignedLink(msgspec.Struct, frozen=True, kw_only=True):
    """A path with its expiry (Unix seconds) and signature, and the URL they make."""

    path: str
    expires: int
    signature: str

    @property
    def url(self) -> str:
        """The link, relative to the server's root."""
        return f"{self.path}?expires={self.expires}&signature={self.signature}"


def file_path(upload_id: str, version: int) -> str:
    """The path of a signed link to version ``version`` of upload ``upload_id``: the
    signature names the recording and the version, never "the latest" (a link minted
    before a new version keeps serving the version it named)."""
    return f"/files/{quote(upload_id, safe='')}/versions/{version}"


def _mac(secret: bytes, path: str, expires: int) -> str:
    # A newline cannot occur in a path nor in the decimal expiry: "path\nexpires" is
    # unambiguous.
    message = f"{path}\n{expires}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign(keyring: Keyring, path: str, *, now: int, ttl: int = MAX_TTL) -> SignedLink:
    """A link to ``path`` valid for ``ttl`` seconds from ``now`` (Unix seconds), signed
    with the keyring's current key.

    Raises:
        ValueError: ``ttl`` is not within 1 to :data:`MAX_TTL`, or ``path`` is not an
            absolute path with no query, fragment or newline.
    """
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"a signed link lives 1 to {MAX_TTL} seconds, not {ttl}")
    if not path.startswith("/") or any(c in path for c in "?#\n\r"):
        raise ValueError(f"not a path to sign: {path!r}")
    expires = now + ttl
    mac = _mac(keyring.secrets[keyring.current], path, expires)
    return SignedLink(path=path, expires=expires, signature=f"{keyring.current}.{mac}")


def key_id_of(signature: str) -> str | None:
    """The id of the key a ``signature`` names, or None when it is malformed (used to
    reload the keyring when a link names a key this instance does not know yet)."""
    match = _SIGNATURE.fullmatch(signature)
    return match[1] if match else None


def verify(
    keyring: Keyring, path: str, expires: str | None, signature: str | None, *, now: int
) -> None:
    """Check a link to ``path`` carrying the query parameters ``expires`` and
    ``signature`` (as received, None when absent), at ``now`` (Unix seconds).

    Raises:
        LinkRefused: a parameter is missing or malformed, the link has expired, it expires
            further ahead than any link is minted for, its key is unknown (rotated out) or
            its signature does not match (the path, the expiry or the signature changed).
    """
    if expires is None or signature is None:
        raise LinkRefused("the link has no expires or no signature")
    if not _EXPIRES.fullmatch(expires):
        raise LinkRefused("the link's expiry is malformed")
    until = int(expires)
    if until <= now:
        raise LinkRefused("the link has expired")
    if until > now + MAX_TTL + CLOCK_SKEW:
        raise LinkRefused("the link expires later than any link is minted for")
    match = _SIGNATURE.fullmatch(signature)
    if match is None:
        raise LinkRefused("the link's signature is malformed")
    secret = keyring.secrets.get(match[1])
    if secret is None:
        raise LinkRefused("the link was signed with a key that is no longer kept")
    # compare_digest takes as long whatever the first differing byte: the time of a refusal
    # says nothing of how much of a forged signature was right.
    if not hmac.compare_digest(_mac(secret, path, until), match[2]):
        raise LinkRefused("the link's signature does not match")
