"""E-mail claims: one stream per address (``email-<lowercased address>``) keeps addresses unique.

Creating a person, or changing their address, appends to both streams in one transaction: the
person's events (``decide_create_person`` / ``decide_edit_person``) and the claim from
:func:`decide_claim_email`, appended with the claim's ``version`` as expected version (0, i.e.
``NO_STREAM``, for an address never used), plus :func:`decide_release_email` on the old address.
A concurrent claim of the same address then fails with ``WrongExpectedVersion``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from ..errors import Conflict
from ..events.base import Event, FieldChange
from ..events.people import EmailClaimed, EmailReleased, PersonEdited


class EmailClaim(msgspec.Struct, frozen=True, kw_only=True):
    """Who holds an e-mail address (``person_id`` is ``None`` when free), at ``version``."""

    email: str
    person_id: str | None = None
    version: int = 0


def fold_email_claim(email: str, events: Iterable[Event]) -> EmailClaim:
    """Who holds ``email``, folded from its claim stream (free at version 0 when empty)."""
    claim = EmailClaim(email=email.strip().lower())
    for event in events:
        holder = event.person_id if isinstance(event, EmailClaimed) else None
        claim = msgspec.structs.replace(claim, person_id=holder, version=claim.version + 1)
    return claim


def decide_claim_email(claim: EmailClaim, person_id: str) -> list[Event]:
    """Claim ``claim.email`` for ``person_id``: ``[EmailClaimed]``, or ``[]`` if already theirs.

    Raises:
        Conflict: someone else holds the address.
    """
    if claim.person_id == person_id:
        return []
    if claim.person_id is not None:
        raise Conflict(f"the e-mail address {claim.email} is already in use")
    return [EmailClaimed(person_id=person_id, email=claim.email)]


def decide_release_email(claim: EmailClaim, person_id: str) -> list[Event]:
    """Give up ``claim.email``: ``[EmailReleased]``, or ``[]`` when ``person_id`` does not hold it."""
    if claim.person_id != person_id:
        return []
    return [EmailReleased(person_id=person_id)]


def email_change(events: Sequence[Event]) -> FieldChange | None:
    """The change of e-mail address among ``events`` (from :func:`decide_edit_person`), if any.

    When it is there, claim ``after`` and release ``before`` in the same transaction (the
    claim functions treat addresses differing only in case as the same address).
    """
    for event in events:
        if isinstance(event, PersonEdited):
            for change in event.changes:
                if change.field == "email":
                    return change
    return None
