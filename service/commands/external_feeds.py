"""External feed subscriptions: subscribe a project to an RSS/Atom feed, change or end a
subscription (rules: :mod:`service.domain.external_feeds`).

Each command appends to the subscription's stream and writes its row of
``external_feeds`` (:mod:`service.reads.external_feeds`) in one transaction, as invitations
do: the poller reads the row, the log tells what happened. Who may: whoever may create
recordings in the project, clients excepted (a feed's address, its errors and its
schedule are the team's); anyone else is told there is no such feed (404).
"""

from __future__ import annotations

from ..domain.access import Action, Viewer, check
from ..domain.external_feeds import (
    MAX_PER_PROJECT,
    EditExternalFeed,
    FeedState,
    NewExternalFeed,
    decide_add,
    decide_edit,
    decide_remove,
    fold_feed,
)
from ..domain.projects import ProjectState, fold_project, project_facts, require_writable
from ..errors import Conflict, Forbidden, NotFound
from ..events.streams import EXTERNAL_FEED_ID, external_feed_stream, project_stream
from ..reads import external_feeds as rows
from .caller import Caller
from .execute import append_alongside, load


async def _project(caller: Caller, project_id: str) -> ProjectState:
    services = caller.services
    stream = project_stream(project_id)
    project: ProjectState | None
    if services.project_states is not None:
        project = (await services.project_states.load(services.store, stream))[1]
    else:
        project = fold_project(e.event for e in await services.store.read_stream(stream))
    if project is None:
        raise NotFound("there is no such project")
    return project


def may_manage(viewer: Viewer, project: ProjectState, *, write: bool) -> None:
    """Whether ``viewer`` may see (and with ``write``, change) the project's subscriptions.

    Raises:
        NotFound: they may not see the project, or are its client.
        Forbidden: they see it but may not create recordings in it (or their token reads
            only, for ``write``).
    """
    facts = project_facts(project)
    check(viewer, Action.VIEW_PROJECT, facts)
    if project.members.get(viewer.person_id) == "client":
        raise NotFound("there is no such external feed")
    if write:
        check(viewer, Action.CREATE_RECORDING, facts)


async def authorized(caller: Caller, project_id: str, *, write: bool) -> ProjectState:
    """The project, once :func:`may_manage` allowed the caller."""
    project = await _project(caller, project_id)
    may_manage(caller.actor, project, write=write)
    return project


async def subscribe(caller: Caller, project_id: str, cmd: NewExternalFeed) -> str:
    """Subscribe ``project_id`` to a feed; the new subscription's id.

    Raises:
        NotFound, Forbidden: see :func:`may_manage`.
        UnsafeUrl: the address is refused by the outbound policy.
        Conflict: the project is not active, or has :data:`MAX_PER_PROJECT` feeds already.
        InvalidCommand: a field out of bounds.
    """
    project = await authorized(caller, project_id, write=True)
    require_writable(project)
    url = caller.services.outbound.check_url(cmd.url)
    store = caller.store
    if await rows.count(store.pool, project_id) >= MAX_PER_PROJECT:
        raise Conflict(f"a project follows at most {MAX_PER_PROJECT} external feeds")
    feed_id = caller.new_id(EXTERNAL_FEED_ID)
    now = caller.services.clock()
    event = decide_add(feed_id, project_id, caller.actor.person_id, url, cmd, now)
    await append_alongside(
        caller, external_feed_stream(feed_id), [event], 0,
        lambda conn: rows.insert(
            conn, feed_id=feed_id, project_id=project_id, url=url, title=event.title,
            visible_to_clients=event.visible_to_clients, interval=event.interval,
            creator_id=caller.actor.person_id, now=now,
        ),
        project_id=project_id,
    )  # fmt: skip
    return feed_id


async def _feed(caller: Caller, feed_id: str) -> tuple[FeedState, int]:
    loaded = await load(caller, external_feed_stream(feed_id))
    state = fold_feed([e.event for e in loaded.events])
    if state is None or state.removed:
        raise NotFound("there is no such external feed")
    return state, loaded.version


async def visible_project(caller: Caller, feed_id: str, *, write: bool = False) -> str:
    """The project of subscription ``feed_id``, once the caller may see (``write``: change)
    it; NotFound for a removed one or one the caller may not see."""
    state, _ = await _feed(caller, feed_id)
    try:
        await authorized(caller, state.project_id, write=False)
    except (NotFound, Forbidden):
        raise NotFound("there is no such external feed") from None
    if write:
        await authorized(caller, state.project_id, write=True)
    return state.project_id


async def edit(caller: Caller, feed_id: str, cmd: EditExternalFeed) -> None:
    """Change a subscription (a new address is checked as at creation).

    Raises:
        NotFound, Forbidden: see :func:`may_manage`; NotFound for a removed one too.
        UnsafeUrl, InvalidCommand: as :func:`subscribe`.
    """
    await visible_project(caller, feed_id, write=True)
    state, version = await _feed(caller, feed_id)
    url = cmd.url if isinstance(cmd.url, str) else None
    checked = caller.services.outbound.check_url(url) if url is not None else None
    events = decide_edit(state, cmd, checked, caller.services.clock())
    if not events:
        return
    changes = {c.field: c.after for c in events[0].changes}
    await append_alongside(
        caller, external_feed_stream(feed_id), events, version,
        lambda conn: rows.update(conn, feed_id, changes, caller.services.clock()),
        project_id=state.project_id,
    )  # fmt: skip


async def unsubscribe(caller: Caller, feed_id: str) -> None:
    """End a subscription: it is no longer polled; its items stay.

    Raises:
        NotFound, Forbidden: as :func:`edit`.
    """
    await visible_project(caller, feed_id, write=True)
    state, version = await _feed(caller, feed_id)
    events = decide_remove(state, caller.services.clock())
    await append_alongside(
        caller, external_feed_stream(feed_id), events, version,
        lambda conn: rows.remove(conn, feed_id, caller.services.clock()),
        project_id=state.project_id,
    )  # fmt: skip
