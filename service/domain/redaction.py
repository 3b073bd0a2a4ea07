"""Redaction: what a viewer is told of the recordings and people a thing names.

The access rules (:mod:`.access`) say whether a viewer may see a recording and whether they
may be told about a person; this module applies those answers, the same way, to whatever a
channel sends (history, activity, WebSocket frames, feeds, snapshots, recordings'
envelopes, and later mail and webhooks). The rule (docs/ACCESS.md, "Redaction"):

* A **recording** the viewer may not see is **left out**: a field naming it is omitted, and
  so is a change whose value before or after names it. (A thing *about* such a recording is
  not shown at all: that is the access rules' own verdict, not this module's.)
* A **person** the viewer may not be told about is **replaced**: their id by ``None``
  (``null``) and their name by ``"Someone"`` (:data:`SOMEONE`, written in the reader's
  language by :func:`someone`). A list of people keeps its length, with ``None`` in their
  places. Cairn itself (:data:`CAIRN_ID`) is always told, as ``"Cairn"`` (:data:`CAIRN`).
* An event **about** a person the viewer may not be told about (they joined, changed role
  or left a project, subscribed or unsubscribed) is left out whole (:func:`event_data`
  answers None).

Pure: a channel gathers the facts (:func:`mentions` says which recordings and people a
thing names; the read side or the replay says what it knows of them), makes the viewer's
:class:`Sight` with :func:`sight`, and hands it here with the thing. Staff see everything:
their sight is :data:`EVERYTHING`, which changes nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from typing import Any, Final

import msgspec

from ..events import projects as pr
from ..events import recordings as rc
from ..events.base import Event, FieldChange, type_name
from .access import (
    SYSTEM,
    ProjectFacts,
    RecordingFacts,
    Viewer,
    can_see_person,
    can_see_recording,
    hidden_probe,
    sees_everyone,
)
from .i18n import N_, Locale, translator

SOMEONE: Final = N_("Someone")
"""The name of a person the viewer may not be told about, in the source language
(:func:`someone` writes it in the reader's)."""
CAIRN: Final = N_("Cairn")
"""The name of Cairn itself, the actor of what it does on its own, in the source language
(:func:`cairn` writes it in the reader's)."""
CAIRN_ID: Final = SYSTEM.person_id
"""The actor id of Cairn itself; never redacted."""

RECORDING_FIELDS: Final = frozenset(
    {"todolist_id", "from_todolist_id", "to_todolist_id", "parent_id"}
)
"""Fields (of events, and of changes) whose value is the id of another recording."""
PERSON_FIELDS: Final = frozenset({"creator_id", "completer_id", "responsible_id", "person_id"})
"""Fields whose value is the id of one person (or None)."""
PEOPLE_FIELDS: Final = frozenset({"assignee_ids", "subscriber_ids"})
"""Fields whose value is a list of people's ids."""
_COMPANIONS: Final = {"parent_id": "parent_kind"}
"""A field left out with the recording field it describes."""
_ABOUT_A_PERSON: Final = (
    pr.ProjectMemberAdded,
    pr.ProjectMemberRoleChanged,
    pr.ProjectMemberRemoved,
    rc.SubscriberAdded,
    rc.SubscriberRemoved,
)


class Sight(msgspec.Struct, frozen=True, kw_only=True):
    """What one viewer may be told about, among the things at hand.

    ``recordings``: the recordings the viewer may see (at least those the redacted thing
    names); None when they see every recording of the project. ``people``: the people the
    viewer may be told about; None for everyone. A recording or person missing from a set
    is redacted, so a channel that forgets a fact leaves something out rather than leak it.
    """

    recordings: frozenset[str] | None = None
    people: frozenset[str] | None = None

    def shows_recording(self, recording_id: str) -> bool:
        """Whether the viewer may be told of recording ``recording_id``."""
        return self.recordings is None or recording_id in self.recordings

    def shows_person(self, person_id: str) -> bool:
        """Whether the viewer may be told who ``person_id`` is (Cairn: always)."""
        return person_id == CAIRN_ID or self.people is None or person_id in self.people


EVERYTHING: Final = Sight()
"""The sight of someone who sees everything at hand: redacting with it changes nothing."""


class Mentions(msgspec.Struct, frozen=True, kw_only=True):
    """The recordings and people a thing names (Cairn itself is never among the people)."""

    recordings: frozenset[str] = frozenset()
    people: frozenset[str] = frozenset()


# ------------------------------------------------------------------ facts


def known_people(viewer: Viewer, projects: Iterable[ProjectFacts]) -> frozenset[str] | None:
    """The people :func:`~.access.can_see_person` lets ``viewer`` be told about, given every
    project ``viewer`` sees (None: everyone)."""
    if sees_everyone(viewer):
        return None
    seen = list(projects)
    candidates = {viewer.person_id}.union(*(p.members for p in seen))
    return frozenset(p for p in candidates if can_see_person(viewer, p, seen))


def sees_all(viewer: Viewer, project: ProjectFacts) -> bool:
    """Whether nothing of ``project`` is ever redacted for ``viewer``: they see every
    recording of it and may be told about everyone (staff)."""
    return sees_everyone(viewer) and can_see_recording(
        viewer, project, hidden_probe(project.project_id)
    )


def sight(
    viewer: Viewer,
    project: ProjectFacts,
    *,
    recordings: Iterable[RecordingFacts] = (),
    people: Collection[str] | None = None,
) -> Sight:
    """``viewer``'s sight over things of ``project``.

    Args:
        recordings: the facts of the recordings the things name (those without facts are
            left out for a viewer who does not see every recording of the project).
        people: the people ``viewer`` may be told about (None: everyone), e.g.
            :func:`known_people` or :func:`people_seen`.
    """
    shown: frozenset[str] | None = None
    if not can_see_recording(viewer, project, hidden_probe(project.project_id)):
        shown = frozenset(
            r.recording_id for r in recordings if can_see_recording(viewer, project, r)
        )
    return Sight(recordings=shown, people=None if people is None else frozenset(people))


def people_seen(
    viewer: Viewer, memberships: Iterable[tuple[str, Collection[ProjectFacts]]]
) -> frozenset[str] | None:
    """Which of some people ``viewer`` may be told about, from each one's projects (person
    id, the facts of the projects they are on); None: everyone."""
    if sees_everyone(viewer):
        return None
    return frozenset(p for p, projects in memberships if can_see_person(viewer, p, projects))


def mentions(event: Event, actor: str | None = None) -> Mentions:
    """The recordings and people ``event`` names (its fields and its changes), and
    ``actor`` (who caused it) among the people."""
    return _collect(_event_values(event), actor)


def changes_mentions(edits: Iterable[FieldChange]) -> Mentions:
    """The recordings and people a list of changes names."""
    return _collect(_change_values(edits))


def _event_values(event: Event) -> Iterator[tuple[str, Any]]:
    for name in event.__struct_fields__:
        value = getattr(event, name)
        if name == "changes":
            yield from _change_values(value)
        else:
            yield name, value


def _change_values(edits: Iterable[FieldChange]) -> Iterator[tuple[str, Any]]:
    for change in edits:
        yield change.field, change.before
        yield change.field, change.after


def _collect(values: Iterable[tuple[str, Any]], actor: str | None = None) -> Mentions:
    recordings: set[str] = set()
    people: set[str] = set() if actor is None else {actor}
    for name, value in values:
        if value is None:
            continue
        if name in RECORDING_FIELDS:
            recordings.add(value)
        elif name in PERSON_FIELDS:
            people.add(value)
        elif name in PEOPLE_FIELDS:
            people.update(value)
    people.discard(CAIRN_ID)
    return Mentions(recordings=frozenset(recordings), people=frozenset(people))


def merged(named: Iterable[Mentions]) -> Mentions:
    """Everything several things name."""
    recordings: set[str] = set()
    people: set[str] = set()
    for one in named:
        recordings |= one.recordings
        people |= one.people
    return Mentions(recordings=frozenset(recordings), people=frozenset(people))


# ------------------------------------------------------------------ redacting


def person(sight: Sight, person_id: str | None) -> str | None:
    """``person_id`` as the viewer may be told it: itself, or None."""
    if person_id is None or sight.shows_person(person_id):
        return person_id
    return None


def named(
    sight: Sight, person_id: str | None, name: str | None, locale: Locale
) -> tuple[str | None, str | None]:
    """A person and their name as the viewer may be told them: unchanged, or
    ``(None, "Someone")`` (:func:`someone` in ``locale``)."""
    if person_id is None or sight.shows_person(person_id):
        return person_id, name
    return None, someone(locale)


def someone(locale: Locale) -> str:
    """The name of a person the viewer may not be told about, in ``locale``."""
    return translator(locale).gettext(SOMEONE)


VIA_INTEGRATION: Final = N_("{name} (via integration)")
"""How a service account (an integration, not a human) is named where it acted (#18)."""


def via_integration(name: str, locale: Locale) -> str:
    """The name of service account ``name`` where it acted, in ``locale``: "Deploy bot (via
    integration)"."""
    return translator(locale).gettext(VIA_INTEGRATION).format(name=name)


def cairn(locale: Locale) -> str:
    """The name of Cairn itself, in ``locale``."""
    return translator(locale).gettext(CAIRN)


def people(sight: Sight, person_ids: Iterable[str]) -> list[str | None]:
    """A list of people as the viewer may be told it (same length, None for those redacted)."""
    return [person(sight, p) for p in person_ids]


def changes(sight: Sight, edits: Iterable[FieldChange]) -> list[FieldChange]:
    """Changes as the viewer may be told them: those naming a recording they may not see
    left out (with the field describing it), people they may not be told about replaced."""
    kept: list[FieldChange] = []
    dropped: set[str] = set()
    for change in edits:
        before, keep_before = _value(sight, change.field, change.before)
        after, keep_after = _value(sight, change.field, change.after)
        if not (keep_before and keep_after):
            dropped.add(change.field)
        elif before is change.before and after is change.after:
            kept.append(change)
        else:
            kept.append(FieldChange(field=change.field, before=before, after=after))
    companions = {_COMPANIONS[f] for f in dropped if f in _COMPANIONS}
    return [c for c in kept if c.field not in companions]


def about_hidden_person(sight: Sight, event: Event) -> bool:
    """Whether ``event`` is about a person the viewer may not be told about (a membership
    or a subscription): such an event is left out whole."""
    return isinstance(event, _ABOUT_A_PERSON) and not sight.shows_person(event.person_id)


def event_data(sight: Sight, event: Event) -> dict[str, Any] | None:
    """``event`` as JSON-ready data (as stored, ``type`` its type) the viewer may be told,
    or None when it is about a person they may not be told about."""
    if about_hidden_person(sight, event):
        return None
    out: dict[str, Any] = {"type": type_name(type(event))}
    dropped: set[str] = set()
    for name in event.__struct_fields__:
        raw = getattr(event, name)
        if name == "changes":
            out[name] = changes(sight, raw)
            continue
        if name == "attachments" and not raw:
            continue  # left out of the stored data when empty: the same data for everyone
        value, keep = _value(sight, name, raw)
        if keep:
            out[name] = value
        else:
            dropped.add(name)
    for name in dropped:
        out.pop(_COMPANIONS.get(name, ""), None)
    data: dict[str, Any] = msgspec.to_builtins(out)
    return data


def _value(sight: Sight, name: str, value: Any) -> tuple[Any, bool]:
    """(the value as the viewer may be told it, whether it may be told at all)."""
    if value is None:
        return value, True
    if name in RECORDING_FIELDS:
        return value, sight.shows_recording(value)
    if name in PERSON_FIELDS:
        return person(sight, value), True
    if name in PEOPLE_FIELDS:
        shown = people(sight, value)
        return (value if shown == list(value) else shown), True
    return value, True
