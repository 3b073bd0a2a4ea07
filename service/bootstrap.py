"""Creating the first admin: the one command that needs no caller (``cairn people create-admin``).

Goes through the same domain rules as the API, acting as :data:`~service.domain.access.SYSTEM`.
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from .domain.access import SYSTEM
from .domain.context import Context
from .domain.emails import decide_claim_email, fold_email_claim
from .domain.people import CreatePerson, decide_create_person, fold_person
from .domain.tokens import IssueToken, decide_issue_token
from .events.base import Metadata
from .events.store import NO_STREAM, AppendResult, EventStore
from .events.streams import email_stream, person_stream
from .http.context import hash_secret


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
    ctx = Context(actor=SYSTEM, now=datetime.now(UTC))
    person_id = f"per_{uuid.uuid4().hex[:20]}"
    token_id = f"tok_{uuid.uuid4().hex[:20]}"
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
    meta = Metadata(actor=SYSTEM.person_id, request_id=f"cli-{uuid.uuid4().hex[:12]}")
    async with store.pool.acquire() as conn, conn.transaction():
        existing = await store.read_stream(claim_stream)
        claim = fold_email_claim(person.email, [e.event for e in existing])
        await store.append(
            claim_stream,
            decide_claim_email(claim, person_id),
            claim.version,  # 0 is NO_STREAM
            meta,
            connection=conn,
        )
        result = await store.append(
            person_stream(person_id), [*created, *issued], NO_STREAM, meta, connection=conn
        )
    store.committed()
    return NewAdmin(person_id=person_id, token_id=token_id, token=secret, result=result)
