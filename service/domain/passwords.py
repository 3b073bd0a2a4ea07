"""Passwords: what one must be (:func:`check_password`), and their argon2id hashes.

A password is 12 to 1024 characters and not one of the 30,000 most common passwords
(``common_passwords.txt``, shipped with the package), compared in lower case, nor one of
them repeated ("passwordpassword"), nor one character repeated. Hashes are argon2id with
``argon2-cffi``'s defaults (RFC 9106's low-memory profile: 64 MiB, 3 passes), as PHC strings
that carry their parameters, so a later change of parameters still verifies old hashes
(:func:`needs_rehash` says when to store a new one). Hashing takes tens of milliseconds on
purpose: callers run it off the event loop.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from ..errors import InvalidCommand

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 1024

_hasher: Final = PasswordHasher()


@cache
def common_passwords() -> frozenset[str]:
    """The bundled list of common passwords, lower-cased."""
    text = resources.files(__package__).joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def _repeats(password: str) -> str:
    """The shortest ``part`` such that ``password`` is ``part`` repeated."""
    n = len(password)
    for size in range(1, n // 2 + 1):
        if n % size == 0 and password[:size] * (n // size) == password:
            return password[:size]
    return password


def check_password(password: str, field: str = "password") -> None:
    """Refuse a password that is too short, too long or too common.

    Raises:
        InvalidCommand: naming ``field`` and why (422).
    """
    if len(password) < MIN_LENGTH:
        raise InvalidCommand(field, f"a password has at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidCommand(field, f"a password has at most {MAX_LENGTH} characters")
    lowered = password.lower()
    common = common_passwords()
    if lowered in common or _repeats(lowered) in common or len(_repeats(lowered)) == 1:
        raise InvalidCommand(
            field, "this password is among the most common ones (breached): choose another"
        )


def hash_password(password: str) -> str:
    """The argon2id hash of ``password`` (a PHC string with a random salt)."""
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    """Whether ``password`` is the one ``hashed`` was made of (False for a malformed hash)."""
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(hashed: str) -> bool:
    """Whether ``hashed`` was made with other parameters than today's."""
    try:
        return _hasher.check_needs_rehash(hashed)
    except InvalidHashError:
        return True


@cache
def dummy_hash() -> str:
    """A hash to verify against when there is none (an unknown address, a person without a
    password), so that such a sign-in takes as long as a wrong password."""
    return _hasher.hash("not a password of anyone's: only spends the time")
