"""Who may write now: the actor of a write as the log says it is at the moment the write
runs, not as a cache or a read model remembered it.

Reads may be answered on a token holder remembered for a moment (see
:class:`~service.reads.tokens.TokenCache`); a write may not. A person deactivated, a token
revoked or a role changed through another instance just before would otherwise still be
obeyed here until the cache or the read models caught up. So every write folds the actor's
own stream first (this process's last fold of it with the events since: one index probe
when nothing changed) and decides on what it says.
"""

from __future__ import annotations

from ..domain.access import Viewer
from ..domain.people import fold_person
from ..events.streams import person_stream
from .caller import Services


async def actor_now(services: Services, viewer: Viewer, token_hash: str | None) -> Viewer | None:
    """``viewer`` as their stream says they are now: their current role and the scope of
    token ``token_hash``, or None when the person is gone or deactivated or the token no
    longer works (revoked). ``token_hash`` None: a browser session's caller (the session was
    checked apart), with the person's full power."""
    stream = person_stream(viewer.person_id)
    states = services.person_states
    if states is not None:
        _, person = await states.load(services.store, stream)
    else:
        person = fold_person(e.event for e in await services.store.read_stream(stream))
    if person is None or not person.active:
        return None
    if token_hash is None:
        return Viewer(person_id=person.person_id, role=person.role, active=person.active)
    now = services.clock()
    token = next(
        (t for t in person.active_tokens if t.token_hash == token_hash and t.works_at(now)), None
    )
    if token is None:
        return None
    return Viewer(
        person_id=person.person_id, role=person.role, active=person.active, scope=token.scope
    )
