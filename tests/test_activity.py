"""Activity: deriving items from events (pure), and the activity streams over real HTTP."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from service.domain.activity import KnownRecording, activity_of, created_recording
from service.domain.as2 import AS_TYPES
from service.domain.excerpts import clip, plain_text
from service.domain.sentences import sentence
from service.events import people as pe
from service.events import projects as pr
from service.events import recordings as rc
from service.events.base import Event, FieldChange

from .support.api import Api
from .support.scenario import Apollo, person_client, post

T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
TODO = KnownRecording(recording_id="rec_t", kind="todo", project_id="prj_1", parent_id="rec_l")
COMMENT = KnownRecording(
    recording_id="rec_c", kind="comment", project_id="prj_1", parent_id="rec_m"
)
MILESTONE = KnownRecording(recording_id="rec_ms", kind="milestone", project_id="prj_1")
MESSAGE = KnownRecording(recording_id="rec_m", kind="message", project_id="prj_1")


def derive(event: Event, rec: KnownRecording | None = None, *, version: int = 3) -> Any:
    stream = f"recording-{rec.recording_id}" if rec else "project-prj_1"
    if created_recording(event) is not None:
        stream = f"recording-{created_recording(event).recording_id}"  # type: ignore[union-attr]
    return activity_of(
        event,
        stream_id=stream,
        stream_version=version,
        project_id="prj_1",
        actor_id="per_ana",
        recorded_at=T0,
        recording=rec,
    )


# ------------------------------------------------------------------ pure: deriving


@pytest.mark.parametrize(
    ("event", "rec", "kind", "as_type"),
    [
        (
            rc.MessagePosted(
                recording_id="rec_m", project_id="prj_1", creator_id="per_ana", at=T0,
                subject="Kick-off", body="<p>Hello</p>", category=None,
                visible_to_clients=True, subscriber_ids=(),
            ),
            None, "message_posted", "Create",
        ),
        (
            rc.TodoCompleted(at=T0, completer_id="per_ana"),
            TODO, "todo_completed", "Update",
        ),
        (
            rc.TodoMoved(at=T0, from_todolist_id="rec_l", to_todolist_id="rec_l2", position=1),
            TODO, "todo_moved", "Move",
        ),
        (
            rc.MilestoneEdited(
                at=T0, changes=(FieldChange(field="due_on", before="2026-05-01", after="2026-05-08"),)
            ),
            MILESTONE, "milestone_rescheduled", "Update",
        ),
        (
            rc.MilestoneEdited(
                at=T0, changes=(FieldChange(field="title", before="A", after="B"),)
            ),
            MILESTONE, "milestone_edited", "Update",
        ),
        (
            rc.RecordingStatusChanged(at=T0, before="active", after="trashed"),
            MESSAGE, "recording_trashed", "Delete",
        ),
        (
            rc.RecordingStatusChanged(at=T0, before="active", after="archived"),
            MESSAGE, "recording_archived", "Remove",
        ),
        (
            rc.RecordingStatusChanged(at=T0, before="trashed", after="active"),
            MESSAGE, "recording_restored", "Undo",
        ),
        (
            rc.ClientVisibilityChanged(at=T0, before=False, after=True),
            MESSAGE, "recording_shown_to_clients", "Update",
        ),
        (pr.ProjectArchived(), None, "project_archived", "Remove"),
        (
            pr.ProjectMemberAdded(person_id="per_bo", project_role="member"),
            None, "person_added_to_project", "Add",
        ),
        (pr.ProjectMemberRemoved(person_id="per_bo"), None, "person_removed_from_project", "Remove"),
    ],
)  # fmt: skip
def test_each_event_gets_its_kind_and_as2_type(
    event: Event, rec: KnownRecording | None, kind: str, as_type: str
) -> None:
    item = derive(event, rec)
    assert item is not None
    assert (item.kind, item.as_type) == (kind, as_type)
    assert item.project_id == "prj_1"
    assert item.actor_id == "per_ana"


@pytest.mark.parametrize(
    "event",
    [
        pe.EmailClaimed(person_id="per_ana", email="ana@example.com"),
        pe.TokenIssued(token_id="tok_1", token_hash="0" * 64, label="x"),
        pe.PersonCreated(
            person_id="per_ana", name="Ana", email="a@example.com", role="member",
            company=None, title=None,
        ),
        rc.SubscriberAdded(at=T0, person_id="per_bo"),
    ],
)  # fmt: skip
def test_account_and_bookkeeping_events_make_no_activity(event: Event) -> None:
    stream = "person-per_ana" if isinstance(event, pe.PersonCreated | pe.TokenIssued) else "x"
    rec = MESSAGE if isinstance(event, rc.SubscriberAdded) else None
    stream = f"recording-{MESSAGE.recording_id}" if rec else stream
    item = activity_of(
        event,
        stream_id=stream,
        stream_version=1,
        project_id=None if rec is None else "prj_1",
        actor_id="per_ana",
        recorded_at=T0,
        recording=rec,
    )
    assert item is None


def test_the_creators_owner_seat_is_part_of_creating_the_project() -> None:
    seat = pr.ProjectMemberAdded(person_id="per_ana", project_role="owner")
    assert derive(seat, version=2) is None
    assert derive(seat, version=7).kind == "person_added_to_project"


def test_an_event_of_an_unknown_recording_makes_nothing() -> None:
    event = rc.TodoCompleted(at=T0, completer_id="per_ana")
    assert derive(event, None) is None or derive(event, None).recording_id is None
    item = activity_of(
        event,
        stream_id="recording-rec_t",
        stream_version=2,
        project_id="prj_1",
        actor_id="per_ana",
        recorded_at=T0,
        recording=None,
    )
    assert item is None


def test_a_comment_item_names_its_parent_and_excerpts_plain_text() -> None:
    event = rc.CommentAdded(
        recording_id="rec_c", project_id="prj_1", creator_id="per_ana", at=T0,
        parent_id="rec_m", parent_kind="message",
        content="<p>Looks <strong>good</strong> &amp; done</p><p>Ship it</p>", subscriber_ids=(),
    )  # fmt: skip
    item = derive(event)
    assert (item.kind, item.recording_id, item.parent_id) == ("comment_added", "rec_c", "rec_m")
    assert item.excerpt == "Looks good & done Ship it"
    assert item.at == T0


def test_an_edit_keeps_before_and_after_and_describes_them() -> None:
    change = FieldChange(field="due_on", before="2026-05-01", after="2026-05-08")
    item = derive(rc.MilestoneEdited(at=T0, changes=(change,)), MILESTONE)
    assert item.changes == (change,)
    assert item.excerpt == "due_on 2026-05-01 → 2026-05-08"
    body = FieldChange(field="body", before="<p>a</p>", after="<p>b</p>")
    assert derive(rc.MessageEdited(at=T0, changes=(body,)), MESSAGE).excerpt == "body"


def test_todo_edits_name_what_changed() -> None:
    dates = FieldChange(field="due_on", before=None, after="2026-05-08")
    people = FieldChange(field="assignee_ids", before=[], after=["per_bo"])
    content = FieldChange(field="content", before="a", after="b")
    assert derive(rc.TodoEdited(at=T0, changes=(dates,)), TODO).kind == "todo_rescheduled"
    assert derive(rc.TodoEdited(at=T0, changes=(people, dates)), TODO).kind == "todo_assigned"
    assert derive(rc.TodoEdited(at=T0, changes=(content,)), TODO).kind == "todo_edited"


# ------------------------------------------------------------------ pure: sentences


def test_sentences_quote_titles_with_curly_quotes() -> None:
    assert (
        sentence("todo_completed", locale="en", actor="Ana", title="Ship v1")
        == "Ana completed “Ship v1”"
    )
    assert (
        sentence(
            "comment_added", locale="en", actor="Bo", recording_kind="comment", parent="Kick-off"
        )
        == "Bo commented on “Kick-off”"
    )
    assert (
        sentence(
            "recording_trashed", locale="en", actor="Ana", title="Plan", recording_kind="todolist"
        )
        == "Ana put the to-do list “Plan” in the trash"
    )
    assert (
        sentence("person_added_to_project", locale="en", actor="Ana", person="Bo", project="Apollo")
        == "Ana added Bo to “Apollo”"
    )


def test_every_kind_has_a_sentence_without_placeholders() -> None:
    for kind in AS_TYPES:
        text = sentence(
            kind, locale="en", actor="Ana", title="T", parent="P", person="Bo", project="X"
        )
        if kind == "external_item_posted":  # brought in by Cairn: names the feed, no actor
            assert text == "New from “P”: “T”"
            continue
        # Alerts are Cairn's: their sentences name no actor.
        alert = kind.endswith(("_due_soon", "_overdue"))
        assert text.startswith("The ") if alert else text.startswith("Ana ")
        assert "{" not in text
        assert "None" not in text


def test_missing_names_never_read_none() -> None:
    assert (
        sentence("todo_completed", locale="en", actor="", title=None)
        == "Someone completed an untitled item"
    )


def test_excerpts_are_clipped_at_a_word() -> None:
    text = "word " * 100
    clipped = clip(text, 50)
    assert clipped is not None
    assert len(clipped) <= 50
    assert clipped.endswith("…")
    assert clip("   ") is None
    assert plain_text("<p>a</p><ul><li>b</li></ul>") == "a b"


# ------------------------------------------------------------------ over HTTP


class Scenario(Apollo):
    """Apollo (tests/support/scenario.py), then: Ana completes the hidden to-do, posts the kick-off,
    Cleo comments, Ana comments on the hidden list, and makes and reschedules a milestone."""

    async def build(self, api: Api) -> Scenario:
        await super().build(api)
        await post(self.ana, f"/v1/todos/{self.margin['id']}/completion", {})
        await self.kick_off("<p>Hello</p>")
        await post(
            self.ana, f"/v1/recordings/{self.secret['id']}/comments", {"content": "<p>Secret</p>"}
        )
        self.milestone = await post(
            self.ana,
            f"/v1/projects/{self.project_id}/milestones",
            {"title": "Beta", "due_on": "2026-06-01", "visible_to_clients": True},
        )
        r = await self.ana.patch(
            f"/v1/milestones/{self.milestone['id']}", json={"due_on": "2026-06-15"}
        )
        assert r.status_code == 200, r.text
        return self


@pytest.fixture
async def scenario(api: Api) -> Any:
    s = await Scenario().build(api)
    yield s
    await s.close()


async def _all(client: httpx.AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a stream, following rel=next."""
    items: list[dict[str, Any]] = []
    r = await client.get(url, params=params)
    while True:
        assert r.status_code == 200, r.text
        items += r.json()
        nxt = r.links.get("next")
        if nxt is None:
            return items
        r = await client.get(nxt["url"])


async def test_project_activity_tells_the_story_newest_first(scenario: Scenario) -> None:
    """A project's stream lists what happened, newest first, in sentences with current titles."""
    s = scenario
    items = await _all(s.admin, f"/v1/projects/{s.project_id}/activity", limit=100)
    sentences = [i["sentence"] for i in items]
    assert sentences == [
        "Ana rescheduled the milestone “Beta”",
        "Ana set the milestone “Beta”",
        "Ana commented on “Pricing”",
        *Scenario.KICK_OFF,
        "Ana completed “Set margin”",
        *Scenario.STORY,
    ]
    seqs = [i["seq"] for i in items]
    assert seqs == sorted(seqs, reverse=True)
    first = items[0]
    assert first["kind"] == "milestone_rescheduled"
    assert first["actor"]["id"] == s.ana_id
    assert first["actor"]["name"] == "Ana"
    assert first["target"]["id"] == s.milestone["id"]
    assert first["target"]["type"] == "milestone"
    assert first["target"]["url"].endswith(f"/v1/milestones/{s.milestone['id']}")
    assert first["project"] == {
        "id": s.project_id,
        "name": "Apollo",
        "url": first["project"]["url"],
    }
    assert first["changes"] == [{"field": "due_on", "before": "2026-06-01", "after": "2026-06-15"}]
    assert first["excerpt"] == "due_on 2026-06-01 → 2026-06-15"
    comment = items[3]
    assert comment["kind"] == "comment_added"
    assert comment["excerpt"] == "Great!"
    assert comment["parent"]["id"] == s.message["id"]


async def test_sentences_use_current_names_and_titles(scenario: Scenario) -> None:
    """Renaming a to-do or a person renames them in every past sentence."""
    s = scenario
    r = await s.ana.patch(f"/v1/todos/{s.ship['id']}", json={"content": "Ship v1.0"})
    assert r.status_code == 200, r.text
    r = await s.admin.patch(f"/v1/people/{s.ana_id}", json={"name": "Ana María"})
    assert r.status_code == 200, r.text
    items = await _all(s.admin, f"/v1/projects/{s.project_id}/activity", kind="todo_completed")
    assert [i["sentence"] for i in items] == [
        "Ana María completed “Set margin”",
        "Ana María completed “Ship v1.0”",
    ]


async def test_a_client_never_sees_activity_about_hidden_items(scenario: Scenario) -> None:
    """The client's streams leave out hidden lists, their to-dos and comments under them."""
    s = scenario
    for url in (
        f"/v1/projects/{s.project_id}/activity",
        "/v1/activity",
        f"/v1/people/{s.ana_id}/activity",
    ):
        items = await _all(s.cleo, url, limit=100)
        text = " ".join(i["sentence"] + " " + (i["excerpt"] or "") for i in items)
        for hidden in ("Pricing", "margin", "Secret"):
            assert hidden not in text, url
        ids = {i["target"]["id"] for i in items}
        assert s.secret["id"] not in ids
        assert s.margin["id"] not in ids
    items = await _all(s.cleo, f"/v1/projects/{s.project_id}/activity", limit=100)
    assert "Ana completed “Ship v1”" in [i["sentence"] for i in items]
    assert "Cleo commented on “Kick-off”" in [i["sentence"] for i in items]
    # Hiding the list now hides its whole past from the client.
    r = await s.ana.put(
        f"/v1/recordings/{s.public['id']}/client_visibility", json={"visible_to_clients": False}
    )
    assert r.status_code == 200, r.text
    items = await _all(s.cleo, f"/v1/projects/{s.project_id}/activity", limit=100)
    assert not any("Ship v1" in i["sentence"] or "Launch" in i["sentence"] for i in items)
    staff = await _all(s.ana, f"/v1/projects/{s.project_id}/activity", limit=100)
    assert staff[0]["kind"] == "recording_hidden_from_clients"


async def test_non_members_get_404(scenario: Scenario, api: Api) -> None:
    """Someone who may not see the project or the person gets 404, as if it did not exist."""
    s = scenario
    outsider_id, outsider = await person_client(api, "Olga", "member")
    s.clients.append(outsider)
    r = await outsider.get(f"/v1/projects/{s.project_id}/activity")
    assert r.status_code == 404
    assert (await outsider.get("/v1/activity")).json() == []
    r = await s.cleo.get(f"/v1/people/{outsider_id}/activity")
    assert r.status_code == 404


async def test_filters(scenario: Scenario) -> None:
    """kind (repeated or comma list), type, actor_id, since and until narrow the stream."""
    s = scenario
    url = f"/v1/projects/{s.project_id}/activity"
    both = await _all(s.admin, url, kind="todo_completed,comment_added")
    assert [i["kind"] for i in both] == [
        "comment_added",
        "comment_added",
        "todo_completed",
        "todo_completed",
    ]
    r = await s.admin.get(url, params=[("kind", "todo_completed"), ("kind", "comment_added")])
    assert [i["kind"] for i in r.json()] == [i["kind"] for i in both]
    assert r.headers["X-Total-Count"] == "4"
    r = await s.cleo.get(url, params={"kind": "todo_completed,comment_added"})
    assert r.headers["X-Total-Count"] == str(len(r.json())) == "2"
    todos = await _all(s.admin, url, type="todo")
    assert {i["target"]["type"] for i in todos} == {"todo"}
    assert len(todos) == 4
    project_level = await _all(s.admin, url, type="project")
    assert {i["kind"] for i in project_level} == {"project_created", "person_added_to_project"}
    by_cleo = await _all(s.admin, url, actor_id=s.cleo_id)
    assert [i["sentence"] for i in by_cleo] == ["Cleo commented on “Kick-off”"]
    assert await _all(s.admin, f"/v1/people/{s.cleo_id}/activity") == by_cleo
    everything = await _all(s.admin, url, limit=100)
    middle = everything[5]["at"]
    newer = await _all(s.admin, url, since=middle, limit=100)
    older = await _all(s.admin, url, until=middle, limit=100)
    assert len(newer) + len(older) == len(everything)
    r = await s.admin.get(url, params={"since": middle, "type": "todo"})
    assert r.headers["X-Total-Count"] == str(len(r.json()))
    assert all(i["at"] >= middle for i in newer)
    assert all(i["at"] < middle for i in older)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert await _all(s.admin, url, since=future) == []


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("since", "yesterday"),
        ("since", "2026-05-01"),
        ("until", "2026-05-01T09:00:00"),
        ("kind", "todo_exploded"),
        ("type", "folder"),
        ("limit", "101"),
        ("cursor", "garbage"),
    ],
)
async def test_bad_parameters_get_400(api: Api, param: str, value: str) -> None:
    """Malformed times (or naive ones), unknown kinds or types, and bad cursors get 400."""
    r = await api.client.get("/v1/activity", params={param: value})  # type: ignore[attr-defined]
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_since_accepts_rfc3339_forms(api: Api) -> None:
    """Z, lower-case z, offsets and fractional seconds are all RFC 3339 and name the same
    instant: ``since`` that instant keeps the item at it, a microsecond later drops it."""
    c = api.client
    created = await c.post("/v1/projects", json={"name": "Since"})  # type: ignore[attr-defined]
    assert created.status_code == 201, created.text
    items = (await c.get("/v1/activity")).json()  # type: ignore[attr-defined]
    assert len(items) == 1
    at = datetime.fromisoformat(items[0]["at"].replace("Z", "+00:00"))
    forms = (
        at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        at.strftime("%Y-%m-%dt%H:%M:%S.%fz"),
        at.astimezone(timezone(timedelta(hours=2))).isoformat(),
    )
    for value in forms:
        r = await c.get("/v1/activity", params={"since": value})  # type: ignore[attr-defined]
        assert r.status_code == 200, (value, r.text)
        assert [i["position"] for i in r.json()] == [items[0]["position"]], value
    later = (at + timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    r = await c.get("/v1/activity", params={"since": later})  # type: ignore[attr-defined]
    assert r.json() == []


async def test_paging_is_stable_while_new_activity_arrives(scenario: Scenario) -> None:
    """Following rel=next while others write neither repeats nor skips an item; rel=prev
    leads back to newer ones."""
    s = scenario
    url = f"/v1/projects/{s.project_id}/activity"
    before = await _all(s.admin, url, limit=100)
    seen: list[dict[str, Any]] = []
    r = await s.admin.get(url, params={"limit": 3})
    pages = [r]
    n = 0
    while True:
        assert r.status_code == 200
        seen += r.json()
        # New activity lands between every two page reads.
        n += 1
        await post(
            s.ana, f"/v1/recordings/{s.message['id']}/comments", {"content": f"<p>more {n}</p>"}
        )
        nxt = r.links.get("next")
        if nxt is None:
            break
        r = await s.admin.get(nxt["url"])
        pages.append(r)
    assert [i["seq"] for i in seen] == [i["seq"] for i in before]
    assert int(pages[0].headers["X-Total-Count"]) == len(before)
    # From the second page, rel=prev gives back the first page as it was cut.
    prev = pages[1].links["prev"]["url"]
    back = await s.admin.get(prev)
    assert [i["seq"] for i in back.json()] == [i["seq"] for i in pages[0].json()]
    # And from the first page of before, prev now shows the comments added meanwhile.
    top = pages[0].links.get("prev")
    assert top is None
    newest = await _all(s.admin, url, limit=100)
    assert len(newest) == len(before) + n


async def test_activity_streams_2_0(scenario: Scenario) -> None:
    """With Accept: application/activity+json the same page is an AS2 OrderedCollectionPage."""
    s = scenario
    url = f"/v1/projects/{s.project_id}/activity"
    plain = await s.admin.get(url, params={"limit": 5})
    r = await s.admin.get(url, params={"limit": 5}, headers={"Accept": "application/activity+json"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/activity+json")
    assert "Accept" in r.headers["vary"]
    page = r.json()
    assert page["@context"] == "https://www.w3.org/ns/activitystreams"
    assert page["type"] == "OrderedCollectionPage"
    assert page["next"] == plain.links["next"]["url"]
    assert "prev" not in page
    items = page["orderedItems"]
    assert [a["summary"] for a in items] == [i["sentence"] for i in plain.json()]
    reschedule = items[0]
    assert reschedule["type"] == "Update"
    assert reschedule["actor"] == {
        "type": "Person",
        "id": plain.json()[0]["actor"]["url"],
        "name": "Ana",
    }
    assert reschedule["object"]["type"] == "Event"
    assert reschedule["object"]["name"] == "Beta"
    assert reschedule["context"]["type"] == "Group"
    assert datetime.fromisoformat(reschedule["published"]).tzinfo is not None
    comment = next(a for a in items if a["object"]["type"] == "Note" and "inReplyTo" in a["object"])
    assert comment["type"] == "Create"
    # ETag and 304 hold for this representation too.
    again = await s.admin.get(
        url,
        params={"limit": 5},
        headers={"Accept": "application/activity+json", "If-None-Match": r.headers["etag"]},
    )
    assert again.status_code == 304
    # Later pages link back with prev.
    second = await s.admin.get(page["next"], headers={"Accept": "application/activity+json"})
    assert second.json()["prev"]


async def test_as2_types_of_moves_restores_and_membership(scenario: Scenario) -> None:
    """A move is a Move from one list to another, a restore an Undo of the Delete, joining an Add."""
    s = scenario
    r = await s.ana.put(
        f"/v1/todos/{s.ship['id']}/position", json={"position": 1, "todolist_id": s.secret["id"]}
    )
    assert r.status_code == 200, r.text
    for status in ("trashed", "active"):
        r = await s.ana.put(f"/v1/recordings/{s.message['id']}/status", json={"status": status})
        assert r.status_code == 200, r.text
    r = await s.admin.get(
        f"/v1/projects/{s.project_id}/activity",
        params={"limit": 100},
        headers={"Accept": "application/activity+json"},
    )
    items = r.json()["orderedItems"]
    restore, trash, move = items[0], items[1], items[2]
    assert trash["type"] == "Delete"
    assert trash["object"]["type"] == "Note"
    assert restore["type"] == "Undo"
    assert restore["object"]["type"] == "Delete"
    assert restore["object"]["object"]["id"] == trash["object"]["id"]
    assert move["type"] == "Move"
    assert move["origin"]["id"].endswith(s.public["id"])
    assert move["target"]["id"].endswith(s.secret["id"])
    joins = [a for a in items if a["type"] == "Add"]
    assert {a["object"]["type"] for a in joins} == {"Person"}
    assert all(a["target"]["type"] == "Group" for a in joins)


async def test_a_write_shows_in_activity_at_once(scenario: Scenario) -> None:
    """Read-your-writes: the activity projection is among those a write waits for."""
    s = scenario
    await post(s.ana, f"/v1/recordings/{s.message['id']}/comments", {"content": "<p>now</p>"})
    r = await s.ana.get(f"/v1/projects/{s.project_id}/activity", params={"limit": 1})
    assert r.json()[0]["excerpt"] == "now"


async def test_people_activity_counts_only_the_persons_actions(scenario: Scenario) -> None:
    """``/v1/people/{id}/activity`` is what that person did, across projects."""
    s = scenario
    before = datetime.now(UTC).date()
    other = await post(s.ana, "/v1/projects", {"name": "Zephyr"})
    after = datetime.now(UTC).date()
    items = await _all(s.admin, f"/v1/people/{s.ana_id}/activity", limit=100)
    assert {i["actor"]["id"] for i in items} == {s.ana_id}
    assert items[0]["project"]["id"] == other["id"]
    assert items[0]["sentence"] == "Ana created the project “Zephyr”"
    assert sum(1 for i in items if i["project"]["id"] == s.project_id) == 10
    assert before <= date.fromisoformat(items[0]["at"][:10]) <= after


async def test_items_arrive_concurrently_without_gaps(scenario: Scenario) -> None:
    """Concurrent writers get dense, distinct seqs in log order."""
    s = scenario
    await asyncio.gather(
        *(
            post(s.ana, f"/v1/recordings/{s.message['id']}/comments", {"content": f"<p>c{i}</p>"})
            for i in range(10)
        )
    )
    items = await _all(s.admin, "/v1/activity", limit=100)
    seqs = sorted(i["seq"] for i in items)
    assert seqs == list(range(1, len(seqs) + 1))
