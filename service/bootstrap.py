"""Creating the first admin: the one command that needs no caller (``cairn people create-admin``,
and ``cairn serve``'s first run on the embedded database).

Goes through the same domain rules and application layer as the API, acting as
:data:`~service.domain.access.SYSTEM`.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Final

from .commands.caller import Caller, Services
from .commands.execute import Plan, append_together
from .domain.access import SYSTEM
from .domain.emails import decide_claim_email, fold_email_claim
from .domain.people import CreatePerson, decide_create_person, fold_person
from .domain.tokens import IssueToken, decide_issue_token, hash_secret
from .errors import Conflict
from .events.base import Metadata
from .events.store import NO_STREAM, AppendResult, EventStore
from .events.streams import PERSON, PERSON_ID, TOKEN_ID, email_stream, person_stream

FIRST_ADMIN_NAME: Final = "Admin"
FIRST_ADMIN_EMAIL: Final = "admin@example.com"
"""Name and address of the admin a first run creates (the domain wants a dotted domain, so
not ``admin@localhost``); they change them with ``PATCH /v1/people/{id}``."""


@dataclass(frozen=True)
class NewAdmin:
    """The admin created, and the API token's secret (shown once, stored only hashed)."""

    person_id: str
    token_id: str
    token: str
    result: AppendResult


async def create_admin(store: EventStore, name: str, email: str) -> NewAdmin:
    """Create an admin and an API token for them, atomically.

    Raises:
        InvalidCommand: a bad name or e-mail address.
        Conflict: the e-mail address is already in use.
    """
    meta = Metadata(actor=SYSTEM.person_id, request_id=f"cli-{uuid.uuid4().hex[:12]}")
    caller = Caller(services=Services(store=store), actor=SYSTEM, metadata=meta)
    ctx = caller.context()
    person_id = caller.new_id(PERSON_ID)
    token_id = caller.new_id(TOKEN_ID)
    secret = f"cairn_{secrets.token_urlsafe(32)}"
    created = decide_create_person(
        CreatePerson(person_id=person_id, name=name, email=email, role="admin"), ctx
    )
    person = fold_person(created)
    assert person is not None
    issued = decide_issue_token(
        person,
        IssueToken(token_id=token_id, token_hash=hash_secret(secret), label="create-admin"),
        ctx,
    )
    claim_stream = email_stream(person.email)

    async def plan() -> Plan:
        existing = await store.read_stream(claim_stream)
        claim = fold_email_claim(person.email, [e.event for e in existing])
        return [
            # claim.version 0 is NO_STREAM: the address was never claimed.
            (claim_stream, decide_claim_email(claim, person_id), claim.version),
            (person_stream(person_id), [*created, *issued], NO_STREAM),
        ]

    result = await append_together(caller, plan)
    assert result is not None
    return NewAdmin(person_id=person_id, token_id=token_id, token=secret, result=result)


async def has_people(store: EventStore) -> bool:
    """Whether the log holds any person.

    Asks the log, not the directory: at start-up the read model may not have caught up.
    """
    return await store.has_stream_with_prefix(PERSON)


async def create_first_admin(store: EventStore) -> NewAdmin | None:
    """Create the admin :data:`FIRST_ADMIN_NAME` <:data:`FIRST_ADMIN_EMAIL`> and their token if
    nobody is in the log yet; None when somebody is (nothing is created then)."""
    if await has_people(store):
        return None
    # Two processes starting on one new database may both find nobody above; only one of
    # them can then create the admin. Both claim the same address, with the claim stream's
    # expected version "no stream", in the transaction that creates the person: the second
    # finds the address taken, or fails to append and finds it taken when its plan runs
    # again, and raises Conflict. Someone else just made the first admin: create nothing.
    # (A concurrent `cairn people create-admin` with another address is not stopped: two
    # admins, each deliberate.)
    try:
        return await create_admin(store, FIRST_ADMIN_NAME, FIRST_ADMIN_EMAIL)
    except Conflict:
        return None
