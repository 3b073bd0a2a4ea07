"""Search (``GET /v1/search``) over real HTTP: languages and accents, the query syntax, ranking
and pages, the access rules and redaction of lists, trash; and snippets, as pure code."""

from __future__ import annotations

from typing import Any

from service.domain.search import BETWEEN, START, STOP, searchable, snippet

from .support.api import Api, all_pages, problem
from .support.teams import Team


async def _project(api: Api, name: str, language: str = "en", **fields: Any) -> str:
    created = await api.client.post(
        "/v1/projects", json={"name": name, "language": language, **fields}
    )
    assert created.status_code == 201, created.text
    project_id: str = created.json()["id"]
    return project_id


async def _message(
    api: Api, project_id: str, subject: str, body: str = "<p>-</p>", **more: Any
) -> str:
    posted = await api.client.post(
        f"/v1/projects/{project_id}/messages", json={"subject": subject, "body": body, **more}
    )
    assert posted.status_code == 201, posted.text
    message_id: str = posted.json()["id"]
    return message_id


async def _search(
    api: Api, q: str, headers: dict[str, str] | None = None, **params: str
) -> list[dict[str, Any]]:
    """The results of one page of a search (checked to be a 200)."""
    found = await api.client.get("/v1/search", params={"q": q, **params}, headers=headers)
    assert found.status_code == 200, found.text
    results: list[dict[str, Any]] = found.json()
    return results


async def _ids(api: Api, q: str, headers: dict[str, str] | None = None, **params: str) -> list[str]:
    return [r["recording"]["id"] for r in await _search(api, q, headers, **params)]


# ------------------------------------------------------------------ languages


async def test_an_english_plural_finds_the_singular_and_back(api: Api) -> None:
    """In an English project, "meetings" finds a "meeting" and "meeting" finds "meetings"."""
    pid = await _project(api, "Ops")
    one = await _message(api, pid, "Weekly meeting")
    many = await _message(api, pid, "Notes", "<p>Two meetings a week</p>")
    assert set(await _ids(api, "meetings")) == {one, many}
    assert set(await _ids(api, "meeting")) == {one, many}


async def test_french_words_are_found_whatever_their_accents_and_endings(api: Api) -> None:
    """In a French project, "réunions" finds "réunion", "tache" finds "tâche" and "tâches"
    finds "tache": accents and plurals do not matter."""
    pid = await _project(api, "Équipe", "fr")
    meeting = await _message(api, pid, "Réunion de lundi")
    task = await _message(api, pid, "Liste", "<p>Une tâche à finir</p>")
    plain = await _message(api, pid, "Sans accent", "<p>Une tache</p>")
    assert await _ids(api, "réunions") == [meeting]
    assert await _ids(api, "reunion") == [meeting]
    assert set(await _ids(api, "tache")) == {task, plain}
    assert set(await _ids(api, "tâches")) == {task, plain}


async def test_a_search_across_projects_parses_the_query_in_each_ones_language(api: Api) -> None:
    """One query over an English and a French project finds in each by its own language:
    "chevaux" is "cheval" to the French project's documents and "chevaux" to the English."""
    english = await _project(api, "Stables")
    french = await _project(api, "Écuries", "fr")
    in_english = await _message(api, english, "Chevaux", "<p>The chevaux of the show</p>")
    in_french = await _message(api, french, "Le cheval", "<p>Un beau cheval</p>")
    assert set(await _ids(api, "chevaux")) == {in_english, in_french}
    assert await _ids(api, "chevaux", project_id=english) == [in_english]


async def test_changing_a_projects_language_indexes_its_documents_again(api: Api) -> None:
    """A French text in an English project is not found by its French stem until the
    project is made French; then it is, at once (the PATCH waits for the index)."""
    pid = await _project(api, "Misfiled")
    horses = await _message(api, pid, "Les chevaux")
    assert await _ids(api, "cheval") == []
    edited = await api.client.patch(f"/v1/projects/{pid}", json={"language": "fr"})
    assert edited.status_code == 200, edited.text
    assert await _ids(api, "cheval") == [horses]
    added = await _message(api, pid, "Deux chevaux")
    assert set(await _ids(api, "cheval")) == {horses, added}


# ------------------------------------------------------------------ the query


async def test_quotes_minus_and_or_work_as_on_the_web(api: Api) -> None:
    """A quoted phrase finds its words in that order only, ``-word`` leaves out what holds
    the word, ``or`` finds either; stop words alone or exclusions alone find nothing."""
    pid = await _project(api, "Syntax")
    phrase = await _message(api, pid, "Budget review on Monday")
    apart = await _message(api, pid, "Review", "<p>the budget is late</p>")
    logo = await _message(api, pid, "Logo draft", "<p>budget too</p>")
    invoice = await _message(api, pid, "Invoice sent")
    assert await _ids(api, '"budget review"') == [phrase]
    assert set(await _ids(api, "budget")) == {phrase, apart, logo}
    assert set(await _ids(api, "budget -logo")) == {phrase, apart}
    assert set(await _ids(api, "logo or invoice")) == {logo, invoice}
    assert await _ids(api, "the") == []
    assert await _ids(api, "-budget") == []


async def test_a_match_in_a_title_ranks_above_one_in_a_body(api: Api) -> None:
    """The same word once in a title ranks above it once in a body, whichever came first."""
    pid = await _project(api, "Ranks")
    in_body = await _message(api, pid, "Something else", "<p>our roadmap</p>")
    in_title = await _message(api, pid, "Roadmap", "<p>nothing to see</p>")
    found = await _search(api, "roadmap")
    assert [r["recording"]["id"] for r in found] == [in_title, in_body]
    assert 1 > found[0]["rank"] > found[1]["rank"] > 0


async def test_pages_follow_the_rank_and_never_repeat_a_hit(api: Api) -> None:
    """Eight hits in pages of three: each once, best first, ``X-Total-Count`` on every page;
    a cursor the API did not give out is a 400 naming ``cursor``."""
    pid = await _project(api, "Pages")
    made = set()
    for i in range(8):
        body = "<p>" + " ".join(["sprint"] * (i % 3 + 1)) + f" {i}</p>"
        made.add(await _message(api, pid, f"Item {i}", body))
    seen, totals = await all_pages(api.client, "/v1/search?q=sprint&limit=3")
    ids = [r["recording"]["id"] for r in seen]
    assert sorted(ids) == sorted(made)
    assert totals == [8, 8, 8]
    ranks = [r["rank"] for r in seen]
    assert ranks == sorted(ranks, reverse=True)
    for bad in ("WzEuNSwicmVjXzAwMDAwMDAwMDAwMDAwMDAwMDAwIl0", "WzE1XQ", "bm9wZQ"):
        refused = problem(await api.client.get(f"/v1/search?q=sprint&cursor={bad}"), 400)
        assert [e["field"] for e in refused["errors"]] == ["cursor"]


async def test_filters_and_malformed_parameters(team: Team) -> None:
    """``type`` and ``creator_id`` narrow the hits; a missing or blank ``q``, an unknown type
    and ids of the wrong shape are 400s naming the parameter."""
    c, pid = team.c, team.project_id
    message = await team.message(subject="Launch checklist")
    todolist = await team.post(f"/v1/projects/{pid}/todolists", {"name": "Launch"})
    todo = await team.post(
        f"/v1/todolists/{todolist['id']}/todos", {"content": "Launch day"}, as_=team.mia
    )
    assert set(await _ids(team.api, "launch")) == {message["id"], todolist["id"], todo["id"]}
    assert await _ids(team.api, "launch", type="todo") == [todo["id"]]
    assert await _ids(team.api, "launch", creator_id=team.mia_id) == [todo["id"]]
    for query, field in (
        ("", "q"),
        ("q=", "q"),
        ("q=%20%20", "q"),
        ("q=x&type=note", "type"),
        ("q=x&creator_id=per_1", "creator_id"),
        ("q=x&project_id=nope", "project_id"),
        ("q=x&status=gone", "status"),
    ):
        refused = problem(await c.get(f"/v1/search?{query}"), 400)
        assert [e["field"] for e in refused["errors"]] == [field], query


# ------------------------------------------------------------------ who finds what


async def test_clients_find_only_what_clients_see(team: Team) -> None:
    """A client finds the messages and lists shown to clients, and the to-dos and comments
    under them; never a hidden message, a hidden list's to-dos or a comment under a hidden
    item. A member finds all of them."""
    pid = team.project_id
    shown = await team.message(subject="Release plan", visible_to_clients=True)
    hidden = await team.message(subject="Release costs")
    open_list = await team.post(
        f"/v1/projects/{pid}/todolists", {"name": "Release", "visible_to_clients": True}
    )
    inner = await team.post(f"/v1/projects/{pid}/todolists", {"name": "Internal"})
    public_todo = await team.post(
        f"/v1/todolists/{open_list['id']}/todos", {"content": "Release notes"}
    )
    secret_todo = await team.post(
        f"/v1/todolists/{inner['id']}/todos", {"content": "Release bonus"}
    )
    on_shown = await team.post(
        f"/v1/recordings/{shown['id']}/comments", {"content": "release soon"}
    )
    on_hidden = await team.post(
        f"/v1/recordings/{hidden['id']}/comments", {"content": "release cost"}
    )
    on_secret = await team.post(
        f"/v1/recordings/{secret_todo['id']}/comments", {"content": "release bonus paid"}
    )
    seen_by_client = {shown["id"], open_list["id"], public_todo["id"], on_shown["id"]}
    everything = seen_by_client | {hidden["id"], secret_todo["id"], on_hidden["id"]}
    everything |= {on_secret["id"]}
    assert set(await _ids(team.api, "release", team.cleo)) == seen_by_client
    assert set(await _ids(team.api, "release", team.cleo, project_id=pid)) == seen_by_client
    assert set(await _ids(team.api, "release", team.mia)) == everything
    assert inner["id"] not in everything
    listed = await team.c.get("/v1/search?q=release&limit=2", headers=team.cleo)
    assert listed.headers["x-total-count"] == str(len(seen_by_client))


async def test_someone_not_on_the_project_finds_nothing_of_it(team: Team) -> None:
    """A member of the company who is not on the project finds nothing of it, and naming the
    project is a 404, as for a project that does not exist."""
    await team.message(subject="Budget", visible_to_clients=True)
    assert await _ids(team.api, "budget", team.otto) == []
    problem(
        await team.c.get(f"/v1/search?q=budget&project_id={team.project_id}", headers=team.otto),
        404,
    )
    assert len(await _ids(team.api, "budget", team.mia)) == 1


async def test_people_a_client_may_not_be_told_about_are_redacted(team: Team) -> None:
    """Once Mia has left the project, a client finds her message with its creator as
    "Someone", and filtering by her id finds nothing for the client (the admin finds it)."""
    mid = (await team.message(subject="Handover notes", visible_to_clients=True))["id"]
    by_mia = await team.post(
        f"/v1/projects/{team.project_id}/messages",
        {"subject": "Handover plan", "body": "<p>x</p>", "visible_to_clients": True},
        as_=team.mia,
    )
    left = await team.c.delete(f"/v1/projects/{team.project_id}/people/{team.mia_id}")
    assert left.status_code == 204, left.text
    found = {
        r["recording"]["id"]: r["recording"] for r in await _search(team.api, "handover", team.cleo)
    }
    assert set(found) == {mid, by_mia["id"]}
    assert found[by_mia["id"]]["creator"] == {"id": None, "name": "Someone"}
    assert found[mid]["creator"]["id"] == team.api.admin_id
    assert await _ids(team.api, "handover", team.cleo, creator_id=team.mia_id) == []
    assert await _ids(team.api, "handover", creator_id=team.mia_id) == [by_mia["id"]]


async def test_trashed_items_are_found_only_in_the_trash(team: Team) -> None:
    """A trashed message, and a to-do of a trashed list, are found only with
    ``status=trashed``; the items of an archived project only with ``status=archived``."""
    c, pid = team.c, team.project_id
    kept = await team.message(subject="Invoice March")
    binned = await team.message(subject="Invoice April")
    todolist = await team.post(f"/v1/projects/{pid}/todolists", {"name": "Invoices"})
    todo = await team.post(f"/v1/todolists/{todolist['id']}/todos", {"content": "Invoice May"})
    for rid in (binned["id"], todolist["id"]):
        trashed = await c.put(f"/v1/recordings/{rid}/status", json={"status": "trashed"})
        assert trashed.status_code == 200, trashed.text
    assert await _ids(team.api, "invoice") == [kept["id"]]
    assert set(await _ids(team.api, "invoice", status="trashed")) == {
        binned["id"],
        todolist["id"],
        todo["id"],
    }
    assert (await c.post(f"/v1/projects/{pid}/archive")).status_code == 200
    assert await _ids(team.api, "invoice") == []
    assert await _ids(team.api, "invoice", status="archived") == [kept["id"]]


async def test_a_comment_is_found_as_itself_under_its_parent(team: Team) -> None:
    """A comment's text finds the comment, shown with its parent, not the parent itself."""
    message = await team.message(subject="Kick-off")
    comment = await team.post(
        f"/v1/recordings/{message['id']}/comments", {"content": "<p>Bring the slides</p>"}
    )
    found = await _search(team.api, "slides")
    assert [r["recording"]["id"] for r in found] == [comment["id"]]
    assert found[0]["recording"]["type"] == "comment"
    assert found[0]["recording"]["parent"]["id"] == message["id"]


async def test_snippets_are_escaped_text_with_the_matches_marked(api: Api) -> None:
    """A snippet is the text as written, accents kept, every character escaped (markup
    written as text shows as text), the matches alone in ``<mark>``."""
    pid = await _project(api, "Safe", "fr")
    await _message(
        api,
        pid,
        "Compte rendu",
        "<p>Tom &amp; Jerry écrivent &lt;script&gt;alert(1)&lt;/script&gt; "
        "<b>avant</b> la réunion</p>",
    )
    (found,) = await _search(api, "reunion")
    assert found["snippet"] == (
        "Tom &amp; Jerry écrivent &lt;script&gt;alert(1)&lt;/script&gt; avant la "
        "<mark>réunion</mark>"
    )


# ------------------------------------------------------------------ snippets (pure)


def test_searchable_text_loses_its_accents_and_keeps_its_length() -> None:
    """Accented Latin letters (French, Polish, Vietnamese, letters with a stroke) become
    their letter, one for one; accents written apart are composed first; other text is
    left as it is."""
    assert (
        searchable("Réunions, tâche, ÉQUIPE, naïve, cœur") == "Reunions, tache, EQUIPE, naive, cœur"
    )
    assert searchable("Łódź, Øre, Việt Nam") == "Lodz, Ore, Viet Nam"
    assert searchable("re\u0301union") == "reunion"
    for text in ("Réunion à 10 h", "Đà Nẵng", "日本語 and ascii"):
        assert len(searchable(text)) == len(text)
    assert searchable("plain <b> ascii") == "plain <b> ascii"


def test_a_snippet_moves_the_marks_back_onto_the_text_as_written() -> None:
    """Marks found in the unaccented text land on the same characters of the text as
    written; fragments are joined by an ellipsis; everything is escaped."""
    written = "Déjà vu <à> la réunion, puis une autre réunion"
    unaccented = "Deja vu  a> la reunion, puis une autre reunion"
    headline = f"la {START}reunion{STOP}, puis{BETWEEN}autre {START}reunion{STOP}"
    assert snippet(written, unaccented, headline) == (
        "la <mark>réunion</mark>, puis … autre <mark>réunion</mark>"
    )
    assert snippet(written, unaccented, "Deja vu  a> la") == "Déjà vu &lt;à&gt; la"


def test_a_snippet_that_cannot_line_up_is_shown_as_indexed_and_escaped() -> None:
    """A text edited since it was indexed, or a fragment not found in it, is shown as
    indexed (without accents), escaped all the same."""
    assert snippet("abc", "abc", f"<i>{START}x{STOP}</i>") == "&lt;i&gt;<mark>x</mark>&lt;/i&gt;"
    edited = snippet("Une réunion <b>", "Une reunion  b>", f"Une {START}reunion{STOP}  b>")
    assert edited == "Une <mark>réunion</mark> &lt;b&gt;"
    stale = snippet("Une réunion demain", "Une reunion  b>", f"Une {START}reunion{STOP}  b>")
    assert stale == "Une <mark>reunion</mark>  b&gt;"
