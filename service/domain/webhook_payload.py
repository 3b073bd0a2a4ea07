"""What a webhook endpoint is sent (pure): which events its audience may be told of, the
payload redacted for that audience, the Standard Webhooks signature, and the retry schedule.

**Audiences** (docs/WEBHOOKS.md, "Payload"). A hook is never judged as whoever created it:
it sees each event as a *member* (audience ``team``) or a *client* (audience ``clients``) of
the event's project would, through the same access rules and redaction as every channel
(:mod:`.access`, :mod:`.redaction`). A project hook hears of its project only; an
account-wide hook of every project (as a member, or a client, of each). Events of no project
(people, accounts, notices, inboxes) are delivered to no hook. A ``clients`` hook hears only
of recordings' and projects' own streams (never of webhooks, feeds or anything else kept
from clients), of recordings visible to clients, of projects with clients enabled, and is
told names only of people on the project.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Literal

import msgspec
from standardwebhooks import Webhook

from ..events import projects as pr
from ..events.base import RecordedEvent
from ..events.streams import PROJECT, RECORDING, recording_id_of
from . import redaction
from .access import (
    ProjectFacts,
    RecordingFacts,
    Viewer,
    can_see_project,
    can_see_recording,
    hidden_probe,
)
from .i18n import Locale
from .redaction import CAIRN_ID, Sight, known_people

TEAM: Final = "team"
CLIENTS: Final = "clients"
AUDIENCES: Final = (TEAM, CLIENTS)

HOOK_VIEWER: Final = "webhook"
"""The person id a hook is judged as (on no project: it is added to the event's project's
facts in the role of its audience)."""
LOCALE: Final[Locale] = "en"
"""The language of the few words a payload carries ("Someone", "Cairn")."""

SCHEDULE: Final = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=10),
)
"""The waits before each retry of a delivery (after its 1st, 2nd … failed attempt); a
delivery failing once more after the last one fails for good (and disables its endpoint)."""
JITTER: Final = 0.1
"""Each wait is stretched or shrunk by up to this fraction, at random (so that the retries of
many deliveries that failed together spread out)."""
EXCERPT: Final = 1024
"""The most characters of an answer's body kept with an attempt."""

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_MEMBERSHIPS: Final = (pr.ProjectMemberAdded, pr.ProjectMemberRoleChanged, pr.ProjectMemberRemoved)


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta | None:
    """The wait before trying again a delivery that failed its ``attempts``-th attempt
    (jittered by :data:`JITTER`), or None: that was the last."""
    if attempts < 1 or attempts > len(SCHEDULE):
        return None
    factor = 1 + (rng or random).uniform(-JITTER, JITTER)
    return SCHEDULE[attempts - 1] * factor


def msg_id(position: int, webhook_id: str) -> str:
    """The ``webhook-id`` of the event at ``position`` sent to ``webhook_id``: the same on
    every retry and redelivery, so that a receiver drops duplicates by it."""
    return f"msg_{position}_{webhook_id}"


def kind_of(event_type: str) -> str:
    """The ``kind`` of an event type, as hooks filter on it: ``TodoCompleted`` →
    ``todo_completed``."""
    return _CAMEL.sub("_", event_type).lower()


def sign(secrets: Sequence[str], msg: str, at: datetime, body: bytes) -> str:
    """The ``webhook-signature`` header of ``body`` sent as ``msg`` at ``at``: a
    ``v1,<base64 HMAC-SHA256>`` per secret (newest first; several while a rotated secret is
    still valid), separated by spaces, as Standard Webhooks says."""
    return " ".join(Webhook(s).sign(msg, at, body) for s in secrets)


def headers(secrets: Sequence[str], msg: str, at: datetime, body: bytes) -> dict[str, str]:
    """The headers of a delivery: ``webhook-id``, ``webhook-timestamp`` (Unix seconds),
    ``webhook-signature`` and the JSON content type."""
    return {
        "content-type": "application/json",
        "webhook-id": msg,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": sign(secrets, msg, at, body),
    }


# ------------------------------------------------------------------ audiences


def audience_facts(audience: str, project: ProjectFacts) -> tuple[Viewer, ProjectFacts]:
    """The viewer a hook of ``audience`` is judged as on ``project``, and the project's facts
    with that viewer on it (a member, or a client)."""
    role: Literal["client", "member"] = "client" if audience == CLIENTS else "member"
    viewer = Viewer(person_id=HOOK_VIEWER, role=role)
    facts = msgspec.structs.replace(project, members={**project.members, HOOK_VIEWER: role})
    return viewer, facts


def judge(
    event: RecordedEvent,
    audience: str,
    project: ProjectFacts | None,
    recordings: Mapping[str, RecordingFacts],
) -> Sight | None:
    """What a hook of ``audience`` may be told of ``event`` (of ``project``, None: unknown),
    as a :class:`~.redaction.Sight`, or None: nothing (the event is not delivered).

    ``recordings``: the facts of the event's recording and of those it names, as the read
    model has them (missing: hidden from clients, known to the team).
    """
    if project is None or event.project_id is None:
        return None
    if audience == CLIENTS and not event.stream_id.startswith((RECORDING, PROJECT)):
        return None
    viewer, facts = audience_facts(audience, project)
    if not can_see_project(viewer, facts):
        return None
    recording_id = recording_id_of(event.stream_id)
    if recording_id is not None:
        found = recordings.get(recording_id) or hidden_probe(project.project_id)
        if not can_see_recording(viewer, facts, found):
            return None
    sees_hidden = can_see_recording(viewer, facts, hidden_probe(project.project_id))
    change = event.event
    if (
        isinstance(change, _MEMBERSHIPS)
        and not sees_hidden
        and change.person_id not in project.members
    ):
        # As in activity (docs/ACCESS.md): clients hear of memberships only while the
        # person is on the project, so never of a removal.
        return None
    shown: frozenset[str] | None = None
    if not sees_hidden:
        shown = frozenset(r for r, f in recordings.items() if can_see_recording(viewer, facts, f))
    people = known_people(viewer, [facts])
    sight = Sight(recordings=shown, people=people)
    if isinstance(change, _MEMBERSHIPS) and not sight.shows_person(change.person_id):
        return None
    return sight


# ------------------------------------------------------------------ payload


def person_ref(
    sight: Sight, person_id: str | None, names: Mapping[str, str]
) -> dict[str, Any] | None:
    """A person named by a payload, ``{"id", "name"}``, as the audience may be told it."""
    if person_id is None:
        return None
    if person_id == CAIRN_ID:
        return {"id": None, "name": "Cairn"}
    if not sight.shows_person(person_id):
        return {"id": None, "name": "Someone"}
    return {"id": person_id, "name": names.get(person_id)}


def recording(row: Mapping[str, Any], sight: Sight, names: Mapping[str, str]) -> dict[str, Any]:
    """A recording as the API shows its main fields, redacted for ``sight``: a parent it may
    not see left out, people it may not be told about as "Someone"."""
    out: dict[str, Any] = {
        "id": row["recording_id"],
        "type": row["kind"],
        "status": row["status"],
        "title": row["title"],
        "content": row["content"],
        "visible_to_clients": row["visible_to_clients"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "creator": person_ref(sight, row["creator_id"], names),
        "comments_count": row["comments_count"],
    }
    parent = row["parent_id"]
    if parent is not None and sight.shows_recording(parent):
        out["parent"] = {"id": parent, "type": row["parent_kind"], "title": row["parent_title"]}
    if row["kind"] == "todo":
        out["completed"] = row["completed"]
        out["completed_at"] = row["completed_at"]
        out["completer"] = person_ref(sight, row["completer_id"], names)
        out["assignees"] = [person_ref(sight, p, names) for p in row["assignee_ids"]]
        out["due_on"] = row["due_on"]
        out["starts_on"] = row["starts_on"]
    elif row["kind"] == "milestone":
        out["due_on"] = row["due_on"]
        out["completed"] = row["completed"]
        out["responsible"] = person_ref(sight, row["responsible_id"], names)
    elif row["kind"] == "message":
        out["category"] = row["category"]
    return out


def payload(
    event: RecordedEvent,
    sight: Sight,
    *,
    project_name: str | None,
    recording_row: Mapping[str, Any] | None,
    names: Mapping[str, str],
) -> bytes:
    """The JSON body sent for ``event`` to a hook that may be told ``sight`` of it
    (docs/WEBHOOKS.md, "Payload")."""
    data = redaction.event_data(sight, event.event) or {}
    changes = data.pop("changes", [])
    body = {
        "id": event.hash.hex(),
        "kind": kind_of(event.event_type),
        "position": event.position,
        "occurred_at": event.recorded_at,
        "actor": person_ref(sight, event.metadata.actor, names),
        "project": None
        if event.project_id is None
        else {"id": event.project_id, "name": project_name},
        "recording": None
        if recording_row is None or not sight.shows_recording(recording_row["recording_id"])
        else recording(recording_row, sight, names),
        "changes": changes,
        "data": data,
    }
    return msgspec.json.encode(body)
