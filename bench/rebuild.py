"""Rebuilding every projection against a raw scan of the log, and reading on the result.

Run ``python -m bench.rebuild`` (200,000 events, a few minutes) or ``--quick`` (20,000);
``--files-from N`` adds files from the N-th event on (uploads and attachments: the bulk fills
of recordings and activity decline such logs, so those two are rebuilt event by event).
Uses ``DATABASE_URL`` if set, else a throwaway embedded PostgreSQL.

1. A realistic workload (:class:`Workload`): people, projects, memberships, messages,
   comments, to-do lists, to-dos assigned, completed, moved and rescheduled, milestones,
   archiving, trashing and restoring, client visibility. Every command goes through the
   domain's ``decide`` functions, and every append through ``cairn_append`` (the hash chain),
   many appends per round trip (``executemany`` in one transaction per chunk).
2. In one run: a raw ordered scan of ``events`` (plain asyncpg, pages of 2,000 in log
   order), then a full rebuild of all projections (``ProjectionEngine.rebuild_many``, what
   ``cairn projections rebuild --all`` runs: new generations from position 0, each filled
   by its projection's set-based bulk fill up to a cursor fixed first, the rest event by
   event, then swapped in), then the raw scan again; the rate of the rebuild is compared
   with the faster scan. Then each projection is rebuilt alone, for where the time goes.
   Last, a **floor** (no target): the rebuilt generations copied as they are into scratch
   tables (``CREATE TABLE ... AS``, then the same indexes), one connection per projection
   at once. No rebuild, however it computes its rows, writes less than that; its rate
   against the scan is the most any rebuild of these read models can reach here.
3. ``cairn serve`` (a real uvicorn in a child process) on that data: p50/p99 of activity page
   GETs (a project's, and everything) and of the project overview.

Exits 1 if the rebuild rate is below :data:`TARGET` of the raw scan rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec

from service.blobs.store import FileRef
from service.domain import (
    comments,
    messages,
    milestones,
    projects,
    recordings,
    todolists,
    todos,
    uploads,
)
from service.domain.access import SYSTEM, Viewer
from service.domain.context import Context
from service.domain.emails import decide_claim_email, fold_email_claim
from service.domain.memberships import (
    RemoveMember,
    SetMember,
    decide_remove_member,
    decide_set_member,
)
from service.domain.people import (
    CreatePerson,
    EditPerson,
    PersonState,
    decide_create_person,
    decide_edit_person,
    evolve_person,
)
from service.domain.projects import ProjectState, evolve_project
from service.domain.recordings import RecordingState, evolve_recording
from service.domain.subscriptions import Subscribe, decide_subscribe
from service.errors import CairnError
from service.events.base import Event, Metadata, encode_data, encode_metadata, type_name
from service.events.recordings import TodoAdded, TodoMoved
from service.events.store import NO_STREAM, EventStore
from service.events.streams import email_stream, person_stream, project_stream, recording_stream

from ._common import (
    free_port,
    fresh_database,
    machine_facts,
    percentile,
    postgres_server,
    server_facts,
    table,
)

TARGET = 0.3
"""Rebuild rate of all projections, as a share of the raw scan rate, that must hold."""

# fmt: off
_VOCABULARY = [
    "launch", "plan", "review", "draft", "budget", "client", "design", "copy", "ship", "fix",
    "test", "deploy", "meeting", "notes", "agenda", "feedback", "invoice", "logo", "page",
    "button", "flow", "data", "report",
]
# French projects' words, one for one (the same draws pick the word of the same place).
_VOCABULARY_FR = [
    "lancement", "plan", "révision", "brouillon", "budget", "client", "conception", "texte",
    "livraison", "tâche", "essai", "déploiement", "réunion", "notes", "ordre", "retours",
    "facture", "logo", "page", "bouton", "parcours", "données", "rapport",
]
# Syllables of rare words: each message body holds one word of three (8,000 of them).
_SYLLABLES = [
    "ka", "ro", "mi", "tesh", "vu", "zal", "qo", "nir", "pex", "lu", "dra", "fom", "gui",
    "hax", "jo", "wen", "yst", "bri", "cho", "sorb",
]
# fmt: on
_APPEND = "SELECT 1 FROM cairn_append($1, $2, $3, $4::jsonb, $5::jsonb, NULL::text, NULL::bytea)"


# ------------------------------------------------------------------ the workload


@dataclass
class Append:
    """One decided command: events for one stream, at the version it was read at."""

    stream_id: str
    expected: int
    project_id: str | None
    events: list[Event]
    actor_id: str


@dataclass
class _Project:
    state: ProjectState
    lists: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    milestones: list[str] = field(default_factory=list)
    todos: list[str] = field(default_factory=list)
    uploads: list[str] = field(default_factory=list)


class Workload:
    """A seeded stream of realistic commands, decided by the domain on in-memory states.

    Commands the domain refuses (a client editing a message, a write to an archived
    project ...) are dropped, as an API would answer them 4xx and append nothing.

    About a third of the projects are French (their texts drawn from a French vocabulary
    with accents), and a project's edits sometimes change its language. Each message body
    holds one rare word (for the search benchmark). Those draws come from a second random
    generator, so the commands and their order are those the first alone decides.

    With ``files_from``, once that many events are made, files come too (uploads, their
    versions and edits, messages and comments with attachments), between the commands the
    first generator decides, drawn from a third one (so those commands stay the same).
    """

    def __init__(
        self, seed: int, *, people: int = 40, max_projects: int = 30, files_from: int | None = None
    ) -> None:
        self.rng = random.Random(seed)
        self.side = random.Random(seed + 1_000_003)
        self.files = random.Random(seed + 2_000_003)
        self.files_from = files_from
        self.now = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
        self.tag = f"{seed:x}"
        self.seed = seed
        self.people: dict[str, PersonState] = {}
        self.projects: dict[str, _Project] = {}
        self.recs: dict[str, RecordingState] = {}
        self.orders: dict[str, list[str]] = {}
        self.claims: dict[str, int] = {}
        self.max_people = people
        self.max_projects = max_projects
        self._n = 0
        self.admin_id = self._id("per")

    def _id(self, prefix: str) -> str:
        """An id of the API's shape (``per_`` and 20 hex digits: routes refuse others with
        404): the seed's low 16 bits, then a counter."""
        self._n += 1
        return f"{prefix}_{self.seed & 0xFFFF:04x}{self._n:016x}"

    def _ctx(self, person_id: str) -> Context:
        if person_id == SYSTEM.person_id:
            return Context(actor=SYSTEM, now=self.now)
        p = self.people[person_id]
        return Context(actor=Viewer(person_id=p.person_id, role=p.role), now=self.now)

    # -------------------------------------------------------------- driving

    def appends(self, events: int) -> Iterator[Append]:
        """Decided appends until about ``events`` events (at least that many)."""
        made = 0
        while made < events:
            self.now += timedelta(seconds=self.rng.expovariate(1 / 90))
            try:
                batch = self._step()
            except CairnError:
                continue
            if self.files_from is not None and made >= self.files_from and batch:
                with contextlib.suppress(CairnError):
                    batch = [*batch, *self._file_step(batch)]
            for append in batch:
                self._evolve(append)
                made += len(append.events)
                yield append

    def _step(self) -> list[Append]:
        if not self.people:
            return self._new_person(SYSTEM.person_id, "admin", self.admin_id)
        if len(self.people) < 6 or (
            len(self.people) < self.max_people and self.rng.random() < 0.01
        ):
            role = self.rng.choice(["member", "member", "member", "client"])
            return self._new_person(self.admin_id, role, self._id("per"))
        if len(self.projects) < 2 or (
            len(self.projects) < self.max_projects and self.rng.random() < 0.005
        ):
            return self._new_project()
        project = self.projects[self.rng.choice(list(self.projects))]
        actions: list[tuple[float, Callable[[_Project], list[Append]]]] = [
            (0.25, self._comment),
            (0.15, self._add_todo),
            (0.12, self._complete_todo),
            (0.06, self._edit_todo),
            (0.06, self._post_message),
            (0.03, self._edit_message),
            (0.04, self._move_todo),
            (0.03, self._create_list),
            (0.02, self._create_milestone),
            (0.02, self._reschedule),
            (0.01, self._complete_milestone),
            (0.02, self._reopen_todo),
            (0.03, self._set_status),
            (0.02, self._set_visibility),
            (0.03, self._subscribe),
            (0.03, self._set_member),
            (0.005, self._remove_member),
            (0.005, self._edit_project),
            (0.004, self._archive_toggle),
            (0.005, self._edit_person),
        ]
        r = self.rng.random() * sum(w for w, _ in actions)
        for weight, action in actions:
            r -= weight
            if r <= 0:
                return action(project)
        return []

    def _evolve(self, a: Append) -> None:
        for e in a.events:
            if a.stream_id.startswith("person-"):
                pid = a.stream_id.removeprefix("person-")
                self.people[pid] = evolve_person(self.people.get(pid), e)
            elif a.stream_id.startswith("project-"):
                pid = a.stream_id.removeprefix("project-")
                if pid not in self.projects:
                    self.projects[pid] = _Project(state=evolve_project(None, e))
                else:
                    p = self.projects[pid]
                    p.state = evolve_project(p.state, e)
            elif a.stream_id.startswith("recording-"):
                rid = a.stream_id.removeprefix("recording-")
                state = evolve_recording(self.recs.get(rid), e)
                self.recs[rid] = state
                if isinstance(e, TodoAdded):
                    self.orders.setdefault(e.todolist_id, []).append(rid)
                    self.projects[state.project_id].todos.append(rid)
                elif isinstance(e, TodoMoved):
                    self.orders[e.from_todolist_id].remove(rid)
                    self.orders.setdefault(e.to_todolist_id, []).insert(e.position - 1, rid)
                elif state.version == 1:
                    p = self.projects[state.project_id]
                    {
                        "message": p.messages,
                        "todolist": p.lists,
                        "milestone": p.milestones,
                        "upload": p.uploads,
                    }.get(state.kind, []).append(rid)
            else:
                self.claims[a.stream_id] = self.claims.get(a.stream_id, 0) + 1

    # -------------------------------------------------------------- helpers

    def _members(self, p: _Project, *, staff: bool = False) -> list[str]:
        return [
            m
            for m, role in p.state.members.items()
            if (not staff or role != "client") and self.people[m].active
        ]

    def _actor(self, p: _Project, *, staff: bool = False) -> str:
        members = self._members(p, staff=staff)
        return self.rng.choice(members) if members else self.admin_id

    def _text(self, words: int, p: _Project | None = None) -> str:
        french = p is not None and p.state.language == "french"
        vocabulary = _VOCABULARY_FR if french else _VOCABULARY
        return " ".join(self.rng.choice(vocabulary) for _ in range(words)).capitalize()

    def rare_word(self) -> str:
        """A word of :data:`_SYLLABLES` found in few documents (from the second generator)."""
        return "".join(self.side.choice(_SYLLABLES) for _ in range(3))

    def _rec(self, ids: list[str]) -> RecordingState | None:
        return self.recs[self.rng.choice(ids)] if ids else None

    def _lineage(self, rec: RecordingState) -> tuple[RecordingState, ...]:
        chain = []
        current = rec
        while (parent := recordings.visibility_parent_id(current)) is not None:
            current = self.recs[parent]
            chain.append(current)
        return tuple(chain)

    def _on_rec(self, rec: RecordingState, events: list[Event], actor: str) -> list[Append]:
        if not events:
            return []
        return [
            Append(recording_stream(rec.recording_id), rec.version, rec.project_id, events, actor)
        ]

    def _on_project(self, p: _Project, events: list[Event], actor: str) -> list[Append]:
        if not events:
            return []
        pid = p.state.project_id
        return [Append(project_stream(pid), p.state.version, pid, events, actor)]

    def _created(self, p: _Project, events: list[Event], actor: str) -> list[Append]:
        rid: str = events[0].recording_id  # type: ignore[attr-defined]
        return [Append(recording_stream(rid), NO_STREAM, p.state.project_id, events, actor)]

    # -------------------------------------------------------------- files

    def _file(self, p: _Project) -> FileRef:
        n = self.files.randrange(1, 40)
        ext, kind = self.files.choice([("pdf", "application/pdf"), ("png", "image/png")])
        return FileRef(
            sha256=f"{self.files.getrandbits(256):064x}",
            size=self.files.randrange(0, 5_000_000),
            content_type=kind,
            name=f"{self._text(2, p)} {n}.{ext}",
        )

    def _file_step(self, before: list[Append]) -> list[Append]:
        """At most one command naming files, in a project ``before`` did not touch (its
        appends are not folded yet)."""
        touched = {a.project_id for a in before}
        free = [pid for pid in self.projects if pid not in touched]
        if not free or self.files.random() > 0.15:
            return []
        p = self.projects[self.files.choice(free)]
        actor = self.files.choice(self._members(p, staff=True) or [self.admin_id])
        ctx = self._ctx(actor)
        what = self.files.random()
        if what < 0.3 or not p.uploads:
            cmd = uploads.CreateUpload(
                recording_id=self._id("rec"),
                file=self._file(p),
                description=f"<p>{self._text(6, p)}</p>" if self.files.random() < 0.5 else None,
                folder=self.files.choice([None, "Specs", "Photos"]),
                visible_to_clients=self.files.random() < 0.5,
            )
            return self._created(p, uploads.decide_create_upload(p.state, cmd, ctx), actor)
        upload = self.recs[self.files.choice(p.uploads)]
        if upload.recording_id in {a.stream_id.removeprefix("recording-") for a in before}:
            return []
        if what < 0.5:
            events = uploads.decide_add_version(p.state, upload, self._file(p), ctx)
            return self._on_rec(upload, events, actor)
        if what < 0.6:
            edit = uploads.EditUpload(folder=self.files.choice([None, "Specs", "Archive"]))
            return self._on_rec(
                upload, uploads.decide_edit_upload(p.state, upload, edit, ctx), actor
            )
        files = [self._file(p) for _ in range(self.files.randrange(0, 4))]
        if what < 0.8:
            cmd2 = messages.PostMessage(
                recording_id=self._id("rec"),
                subject=self._text(4, p),
                body=f"<p>{self._text(10, p)}</p>",
                visible_to_clients=self.files.random() < 0.5,
                attachments=tuple(files),
            )
            return self._created(p, messages.decide_post_message(p.state, cmd2, ctx), actor)
        if not p.messages:
            return []
        message = self.recs[self.files.choice(p.messages)]
        if message.recording_id in {a.stream_id.removeprefix("recording-") for a in before}:
            return []
        if what < 0.9:
            cmd3 = comments.AddComment(
                recording_id=self._id("rec"),
                content=f"<p>{self._text(8, p)}</p>",
                attachments=tuple(files),
            )
            events = comments.decide_add_comment(p.state, message, cmd3, ctx, ())
            return self._created(p, events, actor)
        events = messages.decide_edit_message(p.state, message, messages.EditMessage(), ctx, files)
        return self._on_rec(message, events, actor)

    # -------------------------------------------------------------- commands

    def _new_person(self, actor: str, role: str, person_id: str) -> list[Append]:
        n = len(self.people)
        first = ["Ana", "Bo", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jun"][n % 10]
        email = f"{first.lower()}{n}.{self.tag}@example.com"
        cmd = CreatePerson(
            person_id=person_id,
            name=f"{first} {n}",
            email=email,
            role=role,  # type: ignore[arg-type]
            company="Acme" if role == "client" else None,
        )
        events = decide_create_person(cmd, self._ctx(actor))
        claim = fold_email_claim(email, [])
        return [
            Append(
                email_stream(email), NO_STREAM, None, decide_claim_email(claim, person_id), actor
            ),
            Append(person_stream(person_id), NO_STREAM, None, events, actor),
        ]

    def _new_project(self) -> list[Append]:
        staff = [p for p, s in self.people.items() if s.role != "client" and s.active]
        actor = self.rng.choice(staff)
        pid = self._id("prj")
        cmd = projects.CreateProject(
            project_id=pid, name=f"{self._text(2)} {len(self.projects)}",
            clients_enabled=self.rng.random() < 0.5,
            language="french" if self.side.random() < 0.35 else "english",
        )  # fmt: skip
        events = projects.decide_create_project(cmd, self._ctx(actor))
        return [Append(project_stream(pid), NO_STREAM, pid, events, actor)]

    def _set_member(self, p: _Project) -> list[Append]:
        person = self.people[self.rng.choice(list(self.people))]
        if person.role == "client":
            role = "client"
        else:
            role = self.rng.choice(["member", "member", "owner"])
        owners = [m for m, r in p.state.members.items() if r == "owner"]
        actor = self.rng.choice(owners) if owners else self.admin_id
        cmd = SetMember(person_id=person.person_id, project_role=role)  # type: ignore[arg-type]
        return self._on_project(p, decide_set_member(p.state, person, cmd, self._ctx(actor)), actor)

    def _remove_member(self, p: _Project) -> list[Append]:
        members = list(p.state.members)
        actor = self.admin_id
        cmd = RemoveMember(person_id=self.rng.choice(members))
        return self._on_project(p, decide_remove_member(p.state, cmd, self._ctx(actor)), actor)

    def _edit_project(self, p: _Project) -> list[Append]:
        cmd = projects.EditProject(name=f"{self._text(2)} {self.rng.randrange(1000)}")
        if self.side.random() < 0.3:
            other = "english" if p.state.language == "french" else "french"
            cmd = msgspec.structs.replace(cmd, language=other)
        actor = self.admin_id
        return self._on_project(
            p, projects.decide_edit_project(p.state, cmd, self._ctx(actor)), actor
        )

    def _archive_toggle(self, p: _Project) -> list[Append]:
        actor = self.admin_id
        ctx = self._ctx(actor)
        if p.state.status == "archived":
            events = projects.decide_unarchive_project(p.state, projects.UnarchiveProject(), ctx)
        else:
            events = projects.decide_archive_project(p.state, projects.ArchiveProject(), ctx)
        return self._on_project(p, events, actor)

    def _edit_person(self, p: _Project) -> list[Append]:
        person = self.people[self.rng.choice(list(self.people))]
        cmd = EditPerson(title=self._text(1))
        events = decide_edit_person(person, cmd, self._ctx(self.admin_id))
        if not events:
            return []
        return [
            Append(person_stream(person.person_id), person.version, None, events, self.admin_id)
        ]

    def _post_message(self, p: _Project) -> list[Append]:
        actor = self._actor(p, staff=True)
        cmd = messages.PostMessage(
            recording_id=self._id("rec"),
            subject=self._text(4, p),
            body=f"<p>{self._text(30, p)}</p><p>{self._text(20, p)} {self.rare_word()}</p>",
            visible_to_clients=self.rng.random() < 0.5,
        )
        return self._created(p, messages.decide_post_message(p.state, cmd, self._ctx(actor)), actor)

    def _edit_message(self, p: _Project) -> list[Append]:
        rec = self._rec(p.messages)
        if rec is None:
            return []
        actor = self._actor(p, staff=True)
        cmd = messages.EditMessage(subject=self._text(4, p))
        if self.side.random() < 0.3:
            # A new body with an entity, which only Python decodes (the bulk fills hand those
            # to the domain's functions).
            body = f"<p>{cmd.subject} &amp; {self.rare_word()}</p>"
            cmd = msgspec.structs.replace(cmd, body=body)
        return self._on_rec(
            rec, messages.decide_edit_message(p.state, rec, cmd, self._ctx(actor)), actor
        )

    def _comment(self, p: _Project) -> list[Append]:
        parent = self._rec(p.messages + p.todos + p.milestones)
        if parent is None:
            return []
        actor = self._actor(p)
        cmd = comments.AddComment(
            recording_id=self._id("rec"), content=f"<p>{self._text(12, p)}</p>"
        )
        ctx = self._ctx(actor)
        events = comments.decide_add_comment(p.state, parent, cmd, ctx, self._lineage(parent))
        return self._created(p, events, actor)

    def _create_list(self, p: _Project) -> list[Append]:
        actor = self._actor(p, staff=True)
        cmd = todolists.CreateTodolist(
            recording_id=self._id("rec"),
            name=self._text(3, p),
            visible_to_clients=self.rng.random() < 0.5,
        )
        return self._created(
            p, todolists.decide_create_todolist(p.state, cmd, self._ctx(actor)), actor
        )

    def _add_todo(self, p: _Project) -> list[Append]:
        todolist = self._rec(p.lists)
        if todolist is None:
            return []
        actor = self._actor(p, staff=True)
        staff = self._members(p, staff=True)
        assignees = tuple(self.rng.sample(staff, k=min(len(staff), self.rng.choice([0, 1, 1, 2]))))
        due = (self.now + timedelta(days=self.rng.randrange(-5, 40))).date()
        cmd = todos.AddTodo(
            recording_id=self._id("rec"),
            content=self._text(5, p),
            assignee_ids=assignees,
            due_on=due if self.rng.random() < 0.6 else None,
        )
        return self._created(
            p, todos.decide_add_todo(p.state, todolist, cmd, self._ctx(actor)), actor
        )

    def _todo(self, p: _Project, *, completed: bool | None = None) -> RecordingState | None:
        for _ in range(4):
            rec = self._rec(p.todos)
            if rec is None:
                return None
            if completed is None or rec.completed == completed:
                return rec
        return None

    def _edit_todo(self, p: _Project) -> list[Append]:
        rec = self._todo(p)
        if rec is None:
            return []
        actor = self._actor(p, staff=True)
        if self.rng.random() < 0.5:
            due = (self.now + timedelta(days=self.rng.randrange(1, 30))).date()
            cmd = todos.EditTodo(due_on=due)
        else:
            staff = self._members(p, staff=True)
            cmd = todos.EditTodo(assignee_ids=tuple(self.rng.sample(staff, k=min(1, len(staff)))))
        events = todos.decide_edit_todo(p.state, rec, cmd, self._ctx(actor), self._lineage(rec))
        return self._on_rec(rec, events, actor)

    def _complete_todo(self, p: _Project) -> list[Append]:
        rec = self._todo(p, completed=False)
        if rec is None:
            return []
        actor = (
            self.rng.choice(list(rec.assignee_ids))
            if rec.assignee_ids
            else self._actor(p, staff=True)
        )
        if actor not in p.state.members:
            actor = self._actor(p, staff=True)
        ctx = self._ctx(actor)
        events = todos.decide_complete_todo(
            p.state, rec, todos.CompleteTodo(), ctx, self._lineage(rec)
        )
        return self._on_rec(rec, events, actor)

    def _reopen_todo(self, p: _Project) -> list[Append]:
        rec = self._todo(p, completed=True)
        if rec is None:
            return []
        actor = self._actor(p, staff=True)
        ctx = self._ctx(actor)
        events = todos.decide_reopen_todo(p.state, rec, todos.ReopenTodo(), ctx, self._lineage(rec))
        return self._on_rec(rec, events, actor)

    def _move_todo(self, p: _Project) -> list[Append]:
        rec = self._todo(p)
        if rec is None or rec.todolist_id is None:
            return []
        target = self.recs[self.rng.choice(p.lists)]
        size = len(self.orders.get(target.recording_id, []))
        same = target.recording_id == rec.todolist_id
        position = self.rng.randint(1, size if same else size + 1)
        cmd = todos.MoveTodo(position=position, todolist_id=target.recording_id)
        actor = self._actor(p, staff=True)
        ctx = self._ctx(actor)
        lineage = self._lineage(rec)
        events = todos.decide_move_todo(p.state, rec, target, size, cmd, ctx, lineage)
        return self._on_rec(rec, events, actor)

    def _create_milestone(self, p: _Project) -> list[Append]:
        actor = self._actor(p, staff=True)
        cmd = milestones.CreateMilestone(
            recording_id=self._id("rec"),
            title=self._text(3, p),
            due_on=(self.now + timedelta(days=self.rng.randrange(3, 60))).date(),
            visible_to_clients=self.rng.random() < 0.5,
        )
        return self._created(
            p, milestones.decide_create_milestone(p.state, cmd, self._ctx(actor)), actor
        )

    def _reschedule(self, p: _Project) -> list[Append]:
        rec = self._rec(p.milestones)
        if rec is None:
            return []
        actor = self._actor(p, staff=True)
        due: date = (self.now + timedelta(days=self.rng.randrange(3, 60))).date()
        cmd = milestones.EditMilestone(due_on=due)
        events = milestones.decide_edit_milestone(p.state, rec, cmd, self._ctx(actor))
        return self._on_rec(rec, events, actor)

    def _complete_milestone(self, p: _Project) -> list[Append]:
        rec = self._rec(p.milestones)
        if rec is None:
            return []
        actor = self._actor(p, staff=True)
        ctx = self._ctx(actor)
        if rec.completed:
            events = milestones.decide_reopen_milestone(
                p.state, rec, milestones.ReopenMilestone(), ctx
            )
        else:
            events = milestones.decide_complete_milestone(
                p.state, rec, milestones.CompleteMilestone(), ctx
            )
        return self._on_rec(rec, events, actor)

    def _set_status(self, p: _Project) -> list[Append]:
        rec = self._rec(p.messages + p.todos + p.lists + p.milestones)
        if rec is None:
            return []
        actor = self._actor(p, staff=True)
        trash_or_archive = self.rng.choice(["archived", "trashed"])
        status = "active" if rec.status != "active" else trash_or_archive
        cmd = recordings.SetRecordingStatus(status=status)  # type: ignore[arg-type]
        ctx = self._ctx(actor)
        events = recordings.decide_set_recording_status(p.state, rec, cmd, ctx, self._lineage(rec))
        return self._on_rec(rec, events, actor)

    def _set_visibility(self, p: _Project) -> list[Append]:
        rec = self._rec(p.messages + p.lists + p.milestones)
        if rec is None:
            return []
        actor = self._actor(p, staff=True)
        cmd = recordings.SetClientVisibility(visible_to_clients=not rec.visible_to_clients)
        events = recordings.decide_set_client_visibility(p.state, rec, cmd, self._ctx(actor))
        return self._on_rec(rec, events, actor)

    def _subscribe(self, p: _Project) -> list[Append]:
        rec = self._rec(p.messages + p.todos)
        if rec is None:
            return []
        actor = self._actor(p)
        ctx = self._ctx(actor)
        events = decide_subscribe(p.state, rec, Subscribe(), ctx, self._lineage(rec))
        return self._on_rec(rec, events, actor)


# ------------------------------------------------------------------ loading


_encoder = msgspec.json.Encoder()


def _args(a: Append) -> tuple[Any, ...]:
    items = [
        {
            "type": type_name(type(e)),
            "schema_version": e.schema_version,
            "data": msgspec.Raw(encode_data(e)),
        }
        for e in a.events
    ]
    return (
        a.stream_id,
        a.expected,
        a.project_id,
        _encoder.encode(items).decode(),
        encode_metadata(Metadata(actor=a.actor_id)).decode(),
    )


async def load(
    store: EventStore,
    appends: Iterator[Append],
    *,
    chunk: int = 500,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Append everything through ``cairn_append``, ``chunk`` appends per transaction (one
    pipelined ``executemany``); return the number of events appended."""
    total = 0
    pending: list[tuple[Any, ...]] = []
    count = 0

    async def flush() -> None:
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.executemany(_APPEND, pending)
        store.committed()
        pending.clear()

    for append in appends:
        pending.append(_args(append))
        count += len(append.events)
        if len(pending) >= chunk:
            await flush()
            total = count
            if progress is not None:
                progress(total)
    if pending:
        await flush()
    return count


# ------------------------------------------------------------------ measuring


async def raw_scan(url: str, page: int = 2000) -> tuple[int, float]:
    """Read the whole log in log order, in pages, with plain asyncpg: (events, seconds)."""
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        tx, pos, n = 0, 0, 0
        while True:
            rows = await conn.fetch(
                "SELECT position, tx_id, stream_id, stream_version, project_id, event_type, "
                "schema_version, data, metadata, recorded_at, hash FROM events "
                "WHERE (tx_id, position) > ($1::xid8, $2::bigint) "
                "AND tx_id < pg_snapshot_xmin(pg_current_snapshot()) "
                "ORDER BY tx_id, position LIMIT $3",
                tx, pos, page,
            )  # fmt: skip
            if not rows:
                break
            n += len(rows)
            tx, pos = int(rows[-1]["tx_id"]), rows[-1]["position"]
        return n, time.perf_counter() - started
    finally:
        await conn.close()


async def rebuild_all(url: str) -> tuple[int, float, dict[str, float]]:
    """Rebuild every registered projection together (one read of the log), then each on
    its own: (events, seconds for all, seconds for each)."""
    from service.projections import all_projections
    from service.projections.engine import ProjectionEngine

    store = await EventStore.open(url, min_size=2, max_size=10)
    try:
        engine = ProjectionEngine(store, all_projections())
        await engine.prepare()
        started = time.perf_counter()
        await engine.rebuild_many(list(engine.projections))
        elapsed = time.perf_counter() - started
        each = {}
        for name in engine.projections:
            started = time.perf_counter()
            await engine.rebuild(name)
            each[name] = time.perf_counter() - started
        total = int(await store.pool.fetchval("SELECT count(*) FROM events"))
        return total, elapsed, each
    finally:
        await store.close()


async def _copy_generation(url: str, schema: str) -> float:
    """Copy every table of ``schema`` into a scratch schema (``CREATE TABLE ... AS``, then
    the same indexes), in one transaction; return its seconds. The scratch is dropped."""
    conn = await asyncpg.connect(url)
    scratch = f"floor_{schema}"
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE; CREATE SCHEMA {scratch}")
        tables = [
            r["tablename"]
            for r in await conn.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema
            )
        ]
        indexes = [
            r["indexdef"].replace(f" ON {schema}.", f" ON {scratch}.")
            for r in await conn.fetch(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = $1", schema
            )
        ]
        started = time.perf_counter()
        async with conn.transaction():
            # The settings a rebuild runs with (the bulk fills' work_mem, the store's
            # sessions' JIT off).
            await conn.execute("SET LOCAL work_mem = '256MB'; SET LOCAL jit = off")
            for name in tables:
                await conn.execute(f"CREATE TABLE {scratch}.{name} AS TABLE {schema}.{name}")
            for definition in indexes:
                await conn.execute(definition)
        return time.perf_counter() - started
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
        await conn.close()


async def floor_copy(url: str) -> float:
    """The least a rebuild writes, timed: the live generations of every projection copied
    as they are, rows then indexes, one connection per projection at once (as the rebuild's
    bulk fills run). Nothing is read from the log or computed: whatever a rebuild does, it
    writes at least these rows and builds these indexes. Returns the wall-clock seconds."""
    from service.projections.projection import schema_name

    conn = await asyncpg.connect(url)
    try:
        schemas = [
            schema_name(r["name"], r["generation"])
            for r in await conn.fetch("SELECT name, generation FROM projections ORDER BY name")
        ]
    finally:
        await conn.close()
    started = time.perf_counter()
    await asyncio.gather(*(_copy_generation(url, schema) for schema in schemas))
    return time.perf_counter() - started


async def _latencies(
    client: httpx.AsyncClient, urls: list[str], rounds: int, headers: dict[str, str]
) -> list[float]:
    out = []
    for i in range(rounds):
        url = urls[i % len(urls)]
        started = time.perf_counter()
        r = await client.get(url, headers=headers)
        out.append((time.perf_counter() - started) * 1000)
        if r.status_code != 200:
            raise RuntimeError(f"GET {url}: {r.status_code} {r.text[:200]}")
    return out


async def serve_and_measure(url: str, rounds: int) -> list[tuple[str, str, str]]:
    """Start ``cairn serve`` on ``url`` and time GETs: [(what, p50 ms, p99 ms)]."""
    from service.bootstrap import create_admin

    store = await EventStore.open(url, min_size=1, max_size=2)
    try:
        admin = await create_admin(store, "Bench Admin", f"bench{os.getpid()}@example.com")
        project_ids = [
            r["project_id"] for r in await store.pool.fetch("SELECT project_id FROM projects")
        ]
        list_ids = [
            r["recording_id"]
            for r in await store.pool.fetch(
                "SELECT recording_id FROM recordings WHERE kind = 'todolist' "
                "AND effective_status = 'active' ORDER BY seq LIMIT 30"
            )
        ]
        # The person with the most open assignments, for /v1/my/assignments.
        assignee = await store.pool.fetchval(
            "SELECT a FROM recordings, unnest(assignee_ids) AS a "
            "WHERE kind = 'todo' AND NOT completed GROUP BY a ORDER BY count(*) DESC, a LIMIT 1"
        )
    finally:
        await store.close()
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url}
    child = subprocess.Popen(  # noqa: ASYNC220 - started once, before any timing
        [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
    )
    results = []
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {admin.token}"}, timeout=60
        ) as client:
            for _ in range(600):
                try:
                    if (await client.get("/v1/me")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError("cairn serve did not come up")
            activity = [f"/v1/projects/{p}/activity" for p in project_ids]
            overview = [f"/v1/projects/{p}/overview" for p in project_ids]
            # (what, URLs taken in turn, headers: the admin's token unless given)
            checks: list[tuple[str, list[str], dict[str, str]]] = [
                ("GET project activity page (25)", activity, {}),
                ("GET /v1/activity page (25)", ["/v1/activity"], {}),
                (
                    "GET project activity, kind filter",
                    [u + "?kind=todo_completed" for u in activity],
                    {},
                ),
                ("GET to-do list (its to-dos)", [f"/v1/todolists/{i}" for i in list_ids], {}),
                ("GET /v1/reports/overdue (25)", ["/v1/reports/overdue"], {}),
                ("GET /v1/reports/upcoming?days=14", ["/v1/reports/upcoming?days=14"], {}),
            ]
            probe = await client.get(overview[0])
            if probe.status_code == 404 and "overview" not in probe.text:
                results.append(("GET project overview", "absent", "absent"))
            else:
                checks.append(("GET project overview", overview, {}))
            if assignee is not None:
                made = await client.post(f"/v1/people/{assignee}/tokens", json={"label": "bench"})
                made.raise_for_status()
                mine = {"Authorization": f"Bearer {made.json()['token']}"}
                checks.append(("GET /v1/my/assignments (busiest)", ["/v1/my/assignments"], mine))
            for label, urls, headers in checks:
                await _latencies(client, urls, 10, headers)  # warm-up
                values = await _latencies(client, urls, rounds, headers)
                results.append(
                    (label, f"{percentile(values, 50):.1f}", f"{percentile(values, 99):.1f}")
                )
    finally:
        child.terminate()
        child.wait(timeout=30)
    return results


async def run(events: int, rounds: int, files_from: int | None = None) -> int:
    with postgres_server() as server:
        async with fresh_database(server, "rebuild") as url:
            from service.database.migrate import migrate_url

            await migrate_url(url)
            store = await EventStore.open(url, min_size=2, max_size=4)
            started = time.perf_counter()
            try:
                workload = Workload(seed=7, files_from=files_from)
                n = await load(store, workload.appends(events))
            finally:
                await store.close()
            load_s = time.perf_counter() - started
            print(f"generated {n} events in {load_s:.1f} s ({n / load_s:,.0f}/s)", flush=True)
            conn = await asyncpg.connect(url)
            await conn.execute("VACUUM ANALYZE events")
            await conn.close()
            scan1 = await raw_scan(url)
            rebuilt, rebuild_s, each = await rebuild_all(url)
            scan2 = await raw_scan(url)
            floor_s = min([await floor_copy(url), await floor_copy(url)])
            scan_rate = max(scan1[0] / scan1[1], scan2[0] / scan2[1])
            rebuild_rate = rebuilt / rebuild_s
            ratio = rebuild_rate / scan_rate
            rows = [
                ("raw ordered scan (best of 2)", f"{scan_rate:,.0f}", "1.00"),
                ("rebuild of all projections (target)", f"{rebuild_rate:,.0f}", f"{ratio:.2f}"),
            ]
            rows += [
                (
                    f"rebuild of {name} alone",
                    f"{rebuilt / s:,.0f}",
                    f"{rebuilt / s / scan_rate:.2f}",
                )
                for name, s in each.items()
            ]
            rows.append(
                (
                    "floor: copy of the rebuilt rows + indexes (best of 2)",
                    f"{rebuilt / floor_s:,.0f}",
                    f"{rebuilt / floor_s / scan_rate:.2f}",
                )
            )
            print()
            print(table(["workload", "events/s", "ratio to scan"], rows))
            latencies = await serve_and_measure(url, rounds)
            print()
            print(table(["request", "p50 ms", "p99 ms"], latencies))
            facts = {**machine_facts(), **await server_facts(url)}
            print()
            print(", ".join(f"{k}={v}" for k, v in facts.items()))
            ok = ratio >= TARGET
            print(
                f"\nrebuild/scan ratio {ratio:.2f} {'meets' if ok else 'MISSES'} the target {TARGET}"
            )
            return 0 if ok else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 events, fewer requests")
    parser.add_argument("--events", type=int, help="events to generate (default 200,000)")
    parser.add_argument(
        "--files-from", type=int, help="files from this event on (default: no files)"
    )
    args = parser.parse_args()
    events = args.events or (20_000 if args.quick else 200_000)
    rounds = 100 if args.quick else 400
    sys.exit(asyncio.run(run(events, rounds, args.files_from)))


if __name__ == "__main__":
    main()
