"""Events of signing in (stream ``person-<id>``): a password set or changed, a person signed
in. Never a secret: neither the password nor its hash nor a session's secret is in the log
(the hash lives in table ``passwords``, written in the same transaction as
:class:`PasswordChanged`; sessions in table ``sessions``; see migration 0012)."""

from __future__ import annotations

from typing import Literal

from .base import Event, register

PasswordChange = Literal["self", "admin", "reset"]
"""Who set a password: the person (``PUT /v1/me/password``), an admin (an initial one), or
the person through a reset link."""

SignInMethod = Literal["password", "link", "invitation"]


@register
class PasswordChanged(Event, frozen=True, kw_only=True):
    """The person's password was set or changed (``by``: :data:`PasswordChange`)."""

    by: PasswordChange


@register
class PersonSignedIn(Event, frozen=True, kw_only=True):
    """The person signed in and got session ``session_id`` (an id, not its secret), with a
    password, a single-use mailed link or an invitation accepted."""

    session_id: str
    method: SignInMethod
