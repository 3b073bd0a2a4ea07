"""Languages (``service/domain/i18n.py``): the catalogs are complete and shipped, the
language is chosen from ``Accept-Language`` or the owner's, and sentences, excerpts, feeds
and their numbers and dates are written in it, over real HTTP and PostgreSQL."""

from __future__ import annotations

import fnmatch
import io
import re
import shlex
import subprocess
import sys
import tomllib
import typing
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from service.config import Settings
from service.domain.activity import excerpt_for
from service.domain.excerpts import describe_changes
from service.domain.i18n import LOCALES, SOURCE, Locale, negotiate, translator
from service.domain.sentences import sentence
from service.events.base import FieldChange

from .support.api import Api, add_admin, bearer, known_token
from .support.scenario import Apollo, post
from .support.tree import ROOT, copy_of_the_package

CATALOGS = ROOT / "service" / "locale"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TRANSLATED = [locale for locale in LOCALES if locale != SOURCE]
NBSP, NNBSP = "\u00a0", "\u202f"

SAME_AS_ENGLISH: dict[str, dict[tuple[str | None, str], str]] = {
    "fr": {
        (None, "Cairn"): "a proper name",
        (None, "{before} → {after}"): "an arrow between two values reads the same",
        ("field", "description"): "the same word in French",
        ("field", "notes"): "the same word in French",
        ("role", "client"): "the same word in French",
    },
}
"""Reviewed messages whose translation is the English text, by language (and why)."""
PLURAL_FORM: dict[str, dict[int, int]] = {"fr": {0: 0, 1: 0, 2: 1}}
"""Which plural form each language takes for 0, 1 and 2 things (French: the singular for 0
and 1)."""
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]|\{(\w*)\}")

Key = tuple[str | None, str | tuple[str, ...]]


def _placeholders(text: str) -> set[str]:
    return {a or b for a, b in _PLACEHOLDER.findall(text)}


def _code_messages() -> set[Key]:
    """Every message marked in the code, as ``pybabel extract -F pyproject.toml`` finds them."""
    method_map = [(m["pattern"], m["method"]) for m in PYPROJECT["tool"]["babel"]["mappings"]]
    return {
        (context, message)
        for _file, _line, message, _comments, context in extract_from_dir(
            str(ROOT / "service"), method_map, keywords=DEFAULT_KEYWORDS
        )
    }


def _catalog(locale: str) -> Catalog:
    with (CATALOGS / locale / "LC_MESSAGES" / "cairn.po").open("rb") as po:
        return read_po(po, locale=locale)


def _entries(catalog: Catalog) -> dict[Key, Message]:
    return {(m.context, m.id): m for m in catalog if m.id}


# ------------------------------------------------------------------ the catalogs


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_message_of_the_code_is_in_the_catalog_and_nothing_else(locale: str) -> None:
    """Each language's catalog holds exactly the messages the code marks: none missing, none
    left over from older code."""
    code = _code_messages()
    catalog = set(_entries(_catalog(locale)))
    assert code, "no message found in the code"
    assert sorted(map(str, code - catalog)) == [], "missing: run the README's Translations"
    assert sorted(map(str, catalog - code)) == [], "no longer in the code"


@pytest.mark.parametrize("locale", TRANSLATED)
def test_every_entry_is_translated_with_the_same_placeholders(locale: str) -> None:
    """No entry is empty, fuzzy, left in English (but the reviewed few) or has other
    placeholders than its English; plural entries fill every form."""
    catalog = _catalog(locale)
    assert not catalog.fuzzy
    problems = []
    for (context, msgid), message in _entries(catalog).items():
        english = list(msgid) if isinstance(msgid, tuple) else [msgid]
        forms = list(message.string) if isinstance(message.string, tuple) else [message.string]
        name = f"{context}|{english[0]}" if context else english[0]
        if message.fuzzy:
            problems.append(f"fuzzy: {name}")
        if not all(forms) or len(forms) != (catalog.num_plurals if len(english) > 1 else 1):
            problems.append(f"empty: {name}")
            continue
        allowed = (context, english[0]) in SAME_AS_ENGLISH[locale]
        if any(form in english for form in forms) and not allowed:
            problems.append(f"left in English: {name}")
        wanted = [_placeholders(text) for text in english]
        for form in forms:
            if _placeholders(form) not in wanted:
                problems.append(f"placeholders of {form!r} differ from {name!r}")
    assert problems == []


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_reviewed_english_translations_are_still_in_the_catalog(locale: str) -> None:
    """The allow-list of translations equal to their English names only entries that exist
    (it cannot silently cover a message that is gone)."""
    entries = _entries(_catalog(locale))
    assert set(SAME_AS_ENGLISH[locale]) <= set(entries)


@pytest.mark.parametrize("locale", TRANSLATED)
def test_plural_forms_follow_the_language(locale: str) -> None:
    """The catalog's plural rule picks each language's form for 0, 1 and 2 things (French:
    the singular for 0 and 1), and so does every plural entry through the translator."""
    catalog = _catalog(locale)
    rule = _plural_rule(catalog.plural_expr)
    assert {n: rule(n) for n in (0, 1, 2)} == PLURAL_FORM[locale]
    t = translator(typing.cast(Locale, locale))
    for (_context, msgid), message in _entries(catalog).items():
        if isinstance(msgid, tuple):
            singular, plural = msgid[0], msgid[1]
            for n, form in PLURAL_FORM[locale].items():
                assert t.ngettext(singular, plural, n) == message.string[form]


def _plural_rule(expression: str) -> Any:
    import gettext

    return gettext.c2py(expression)


@pytest.mark.parametrize("locale", TRANSLATED)
def test_the_committed_mo_is_the_po_compiled(locale: str) -> None:
    """The compiled catalog shipped in the package is exactly what ``pybabel compile`` makes
    of its ``.po`` now."""
    compiled = io.BytesIO()
    write_mo(compiled, _catalog(locale))
    shipped = (CATALOGS / locale / "LC_MESSAGES" / "cairn.mo").read_bytes()
    assert shipped == compiled.getvalue(), "stale .mo: run pybabel compile (README)"


def test_the_package_ships_every_compiled_catalog() -> None:
    """Each language's ``.mo`` matches the package data of pyproject.toml, so wheels and
    installs carry it."""
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["service"]
    package = ROOT / "service"
    for locale in TRANSLATED:
        path = (CATALOGS / locale / "LC_MESSAGES" / "cairn.mo").relative_to(package)
        assert any(fnmatch.fnmatch(str(path), pattern) for pattern in patterns), path


def test_the_languages_of_the_setting_are_the_languages_cairn_writes() -> None:
    """The ``locale`` setting accepts exactly :data:`LOCALES`, and defaults to English."""
    hints = typing.get_type_hints(Settings, include_extras=True)
    literal = typing.get_args(hints["locale"])[0]
    assert typing.get_args(literal) == LOCALES
    assert Settings(database_url="postgresql://").locale == "en"


@pytest.fixture
def copy_of_the_project(tmp_path: Path) -> Path:
    """The package and pyproject.toml, copied, for the README's commands to change."""
    return copy_of_the_package(tmp_path)


def test_the_readme_commands_for_translators_run_and_change_no_translation(
    copy_of_the_project: Path,
) -> None:
    """The extract, update and compile commands of the README's "Translations" run as
    written, and on this tree they leave every translation as it is."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Translations", 1)[1]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert [c[:2] for c in commands] == [
        ["pybabel", "extract"],
        ["pybabel", "update"],
        ["pybabel", "compile"],
    ]
    pybabel = str(Path(sys.executable).with_name("pybabel"))
    for command in commands:
        done = subprocess.run(
            [pybabel, *command[1:]],
            cwd=copy_of_the_project,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
    for locale in TRANSLATED:
        folder = copy_of_the_project / "service" / "locale" / locale / "LC_MESSAGES"
        with (folder / "cairn.po").open("rb") as po:
            updated = read_po(po, locale=locale)

        def translations(catalog: Catalog) -> dict[Key, Any]:
            return {k: (m.string, m.fuzzy) for k, m in _entries(catalog).items()}

        assert translations(updated) == translations(_catalog(locale))
        assert (folder / "cairn.mo").stat().st_size > 0


# ------------------------------------------------------------------ choosing the language


@pytest.mark.parametrize(
    ("header", "chosen"),
    [
        (None, None),
        ("", None),
        ("fr", "fr"),
        ("fr-CA", "fr"),
        ("FR-ca, en;q=0.5", "fr"),
        ("en-GB,en;q=0.9,fr;q=0.8", "en"),
        ("de, fr;q=0.3", "fr"),
        ("en;q=0.4, fr;q=0.7", "fr"),
        ("fr;q=0, en;q=0.1", "en"),
        ("de, es", None),
        ("*", None),
        ("*;q=0.9, fr;q=0.5", None),
        ("fr;q=abc, en", "en"),
        ("fr;q=2, en", "en"),
        ("@@@, fr", "fr"),
        ("fr_FR", "fr"),
        ("de," * 40 + "fr", None),
    ],
)
def test_accept_language_chooses_among_the_languages_cairn_writes(
    header: str | None, chosen: str | None
) -> None:
    """Weights decide, then order; a region falls back to its language; unknown languages,
    refused ones (q=0) and unreadable ranges name nothing (the caller's default applies)."""
    assert negotiate(header) == chosen


def test_translators_are_made_once_per_language() -> None:
    """Asking for a language's translator again gives the same one (catalogs read once)."""
    assert translator("fr") is translator("fr")
    assert translator("en") is translator("en")


# ------------------------------------------------------------------ writing in a language


def test_numbers_and_dates_are_written_for_the_language() -> None:
    """French groups digits with a narrow no-break space and names the month; English keeps
    the digits and ISO dates it has always written."""
    assert translator("fr").number(1234) == f"1{NNBSP}234"
    assert translator("en").number(1234) == "1234"
    assert translator("fr").date(date(2026, 5, 1)) == "1 mai 2026"
    assert translator("en").date(date(2026, 5, 1)) == "2026-05-01"


def test_a_french_sentence_quotes_with_guillemets() -> None:
    """French sentences use their own word order, articles and « » with no-break spaces."""
    assert (
        sentence(
            "recording_trashed", locale="fr", actor="Ana", title="Plan", recording_kind="todolist"
        )
        == f"Ana a mis la liste de tâches «{NBSP}Plan{NBSP}» à la corbeille"
    )
    assert (
        sentence("project_role_changed", locale="fr", actor="Ana", person="Bo", project="Apollo")
        == f"Ana a modifié le rôle de Bo dans «{NBSP}Apollo{NBSP}»"
    )
    assert sentence("todo_completed", locale="fr", actor="", title=None) == (
        "Quelqu’un a terminé un élément sans titre"
    )


def test_excerpt_fragments_are_written_again_in_the_readers_language() -> None:
    """The words Cairn wrote in an excerpt (positions, dates, none/yes/no, statuses, roles)
    are written in French from the item's changes; English gets the stored text unchanged."""
    moved = [
        FieldChange(field="todolist_id", before="rec_a", after="rec_b"),
        FieldChange(field="position", before=None, after=1234),
    ]
    assert excerpt_for("todo_moved", "to position 1234", moved, "fr") == (
        f"à la position 1{NNBSP}234"
    )
    assert excerpt_for("todo_moved", "to position 1234", moved, "en") == "to position 1234"
    dates = [
        FieldChange(field="due_on", before=None, after="2026-06-15"),
        FieldChange(field="clients_enabled", before=True, after=False),
        FieldChange(field="notes", before="<p>a</p>", after="<p>b</p>"),
    ]
    stored = describe_changes(dates, "en")
    assert stored == "due_on none → 2026-06-15; clients_enabled yes → no; notes"
    assert excerpt_for("todo_rescheduled", stored, dates, "fr") == (
        f"échéance{NBSP}: vide → 15 juin 2026{NNBSP}; accès des clients{NBSP}: oui → non"
        f"{NNBSP}; notes"
    )
    status = [FieldChange(field="status", before="active", after="trashed")]
    assert excerpt_for("recording_trashed", "active → trashed", status, "fr") == (
        "actif → à la corbeille"
    )
    role = [FieldChange(field="project_role", before=None, after="member")]
    assert excerpt_for("person_added_to_project", "as member", role, "fr") == ("en tant que membre")
    assert excerpt_for("milestone_created", "Beta (due 2026-06-01)", [], "fr") == (
        f"Beta (échéance{NBSP}: 1 juin 2026)"
    )
    # What people wrote stays as they wrote it.
    assert excerpt_for("comment_added", "Great!", [], "fr") == "Great!"


# ------------------------------------------------------------------ over HTTP


class Story(Apollo):
    """Apollo (tests/support/scenario.py) with its kick-off, a milestone due 2026-06-01
    rescheduled to 2026-06-15, and "Ship v1" moved to the hidden list."""

    async def build(self, api: Api) -> Story:
        await super().build(api)
        await self.kick_off("<p>Hello</p>")
        milestone = await post(
            self.ana,
            f"/v1/projects/{self.project_id}/milestones",
            {"title": "Beta", "due_on": "2026-06-01", "visible_to_clients": True},
        )
        r = await self.ana.patch(f"/v1/milestones/{milestone['id']}", json={"due_on": "2026-06-15"})
        assert r.status_code == 200, r.text
        r = await self.ana.put(
            f"/v1/todos/{self.ship['id']}/position",
            json={"position": 1, "todolist_id": self.secret["id"]},
        )
        assert r.status_code == 200, r.text
        return self


@pytest.fixture
async def story(api: Api) -> AsyncIterator[Story]:
    s = await Story().build(api)
    yield s
    await s.close()


FRENCH_STORY = [
    f"Ana a déplacé «{NBSP}Ship v1{NBSP}» vers «{NBSP}Pricing{NBSP}»",
    f"Ana a replanifié le jalon «{NBSP}Beta{NBSP}»",
    f"Ana a fixé le jalon «{NBSP}Beta{NBSP}»",
    f"Cleo a commenté «{NBSP}Kick-off{NBSP}»",
    f"Ana a publié le message «{NBSP}Kick-off{NBSP}»",
]


async def test_an_activity_stream_read_in_french_answers_in_french(story: Story) -> None:
    """With Accept-Language: fr the stream's sentences and Cairn's words in excerpts are
    French, dates written the French way, and the answer says so (Content-Language, Vary)."""
    url = f"/v1/projects/{story.project_id}/activity"
    r = await story.admin.get(url, params={"limit": 5}, headers={"Accept-Language": "fr-CA"})
    assert r.status_code == 200, r.text
    assert r.headers["content-language"] == "fr"
    assert "accept-language" in r.headers["vary"].lower()
    assert [i["sentence"] for i in r.json()] == FRENCH_STORY
    moved, rescheduled, created, comment, _ = r.json()
    assert moved["excerpt"] == "à la position 1"
    assert rescheduled["excerpt"] == f"échéance{NBSP}: 1 juin 2026 → 15 juin 2026"
    assert created["excerpt"] == f"Beta (échéance{NBSP}: 1 juin 2026)"
    assert comment["excerpt"] == "Great!"
    # Machine fields stay as they are.
    assert rescheduled["kind"] == "milestone_rescheduled"
    assert rescheduled["changes"] == [
        {"field": "due_on", "before": "2026-06-01", "after": "2026-06-15"}
    ]


@pytest.mark.parametrize("header", [None, "de", "en-US", "*"])
async def test_an_activity_stream_without_french_asked_answers_in_english(
    story: Story, header: str | None
) -> None:
    """No Accept-Language, an unknown language or English gives the default (English), as
    before, saying so with Content-Language."""
    headers = {} if header is None else {"Accept-Language": header}
    url = f"/v1/projects/{story.project_id}/activity"
    r = await story.admin.get(url, params={"limit": 2}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-language"] == "en"
    assert [i["sentence"] for i in r.json()] == [
        "Ana moved “Ship v1” to “Pricing”",
        "Ana rescheduled the milestone “Beta”",
    ]
    assert r.json()[1]["excerpt"] == "due_on 2026-06-01 → 2026-06-15"


async def test_activity_streams_2_0_in_french(story: Story) -> None:
    """An AS2 page asked for in French has French summaries and Content-Language: fr; the
    same page in English keeps its English ones and a different ETag."""
    url = f"/v1/projects/{story.project_id}/activity"
    as2 = {"Accept": "application/activity+json"}
    fr = await story.admin.get(url, params={"limit": 5}, headers={**as2, "Accept-Language": "fr"})
    en = await story.admin.get(url, params={"limit": 5}, headers=as2)
    assert fr.status_code == en.status_code == 200
    assert fr.headers["content-language"] == "fr"
    assert {"accept", "accept-language"} <= {
        v.strip().lower() for v in fr.headers["vary"].split(",")
    }
    assert [a["summary"] for a in fr.json()["orderedItems"]] == FRENCH_STORY
    assert en.json()["orderedItems"][0]["summary"] == "Ana moved “Ship v1” to “Pricing”"
    assert fr.headers["etag"] != en.headers["etag"]


async def test_the_overview_in_french_names_hidden_people_in_french(story: Story) -> None:
    """The overview read in French has French sentences, and a person the client may not be
    told about is "Quelqu’un" there; the same client's recordings stay data ("Someone")."""
    pid = story.project_id
    fr = await story.cleo.get(f"/v1/projects/{pid}/overview", headers={"Accept-Language": "fr"})
    assert fr.status_code == 200, fr.text
    assert fr.headers["content-language"] == "fr"
    assert "accept-language" in fr.headers["vary"].lower()
    sentences = [a["sentence"] for a in fr.json()["activity"]]
    assert f"Cleo a commenté «{NBSP}Kick-off{NBSP}»" in sentences
    # Cleo (a client) is told about the people of her projects only: not a staff-only admin.
    await _outsider_posts_a_message(story)
    fr = await story.cleo.get(f"/v1/projects/{pid}/overview", headers={"Accept-Language": "fr"})
    creator = fr.json()["latest_messages"][0]["creator"]
    assert creator == {"id": None, "name": "Quelqu’un"}
    en = await story.cleo.get(f"/v1/projects/{pid}/overview")
    assert en.json()["latest_messages"][0]["creator"] == {"id": None, "name": "Someone"}
    message_id = en.json()["latest_messages"][0]["id"]
    resource = await story.cleo.get(f"/v1/messages/{message_id}", headers={"Accept-Language": "fr"})
    assert resource.json()["creator"] == {"id": None, "name": "Someone"}
    assert "content-language" not in resource.headers


async def _outsider_posts_a_message(story: Story) -> None:
    """A second admin, on none of Apollo's teams, posts a message shown to clients."""
    outsider = await add_admin(story.api.server.database_url, "Olga Outsider", "olga@example.com")
    async with httpx.AsyncClient(
        base_url=story.api.server.base_url, headers=bearer(outsider.token), timeout=30
    ) as olga:
        await known_token(olga, timeout=5.0)
        await post(
            olga,
            f"/v1/projects/{story.project_id}/messages",
            {"subject": "Notice", "body": "<p>Hi</p>", "visible_to_clients": True},
        )


async def test_problem_details_stay_in_english(story: Story) -> None:
    """A refusal asked for in French is the same English problem+json, with no
    Content-Language claiming otherwise."""
    missing = "prj_" + "0" * 20  # the shape of a project's id; no project has it
    r = await story.admin.get(f"/v1/projects/{missing}/activity", headers={"Accept-Language": "fr"})
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["title"] == "Not found"
    assert r.json()["detail"] == "there is no such project"
    assert "content-language" not in r.headers


@pytest.mark.parametrize("server_settings", [{"locale": "fr"}])
async def test_a_feed_is_written_in_the_default_language(story: Story) -> None:
    """With French as the default language (CAIRN_LOCALE=fr) a person's feed is French:
    its title, subtitle and entries, declared in the document and by Content-Language."""
    token = (await story.admin.post("/v1/me/feed_token")).json()["token"]
    anon = httpx.AsyncClient(base_url=story.api.server.base_url, timeout=30)
    story.clients.append(anon)
    for fmt in ("atom", "rss"):
        r = await anon.get(
            f"/feeds/projects/{story.project_id}.{fmt}",
            params={"token": token},
            headers={"Accept-Language": "en"},
        )
        assert r.status_code == 200, r.text
        assert r.headers["content-language"] == "fr"
        parsed = feedparser.parse(r.content)
        assert not parsed.bozo
        assert parsed.feed.language == "fr"
        assert parsed.feed.subtitle == "Activité du projet Apollo"
        assert [e.title for e in parsed.entries[:5]] == FRENCH_STORY
        rescheduled = parsed.entries[1]
        text = rescheduled.content[0].value if fmt == "atom" else rescheduled.summary
        assert f"échéance{NBSP}: 1 juin 2026 → 15 juin 2026" in text
    everything = await anon.get("/feeds/activity.atom", params={"token": token})
    parsed = feedparser.parse(everything.content)
    assert parsed.feed.title == "Activité visible par Ada Admin"
    assert parsed.feed.subtitle == "Tout ce que Ada Admin peut voir dans Cairn"
    # The API still follows Accept-Language, and the setting where it names nothing.
    url = f"/v1/projects/{story.project_id}/activity"
    r = await story.admin.get(url, params={"limit": 1}, headers={"Accept-Language": "en"})
    assert r.json()[0]["sentence"] == "Ana moved “Ship v1” to “Pricing”"
    r = await story.admin.get(url, params={"limit": 1}, headers={"Accept-Language": "de"})
    assert r.headers["content-language"] == "fr"
    assert r.json()[0]["sentence"] == FRENCH_STORY[0]


async def test_a_persons_own_language_writes_their_feeds_and_unasked_answers(story: Story) -> None:
    """Ana chooses French with PATCH /v1/me (the default stays English): her feed turns
    French (a new ETag: a reader holding the English one gets the French document), API
    answers that ask for no language are French, and Accept-Language still wins. Ada, who
    chose nothing, keeps the default."""
    token = (await story.ana.post("/v1/me/feed_token")).json()["token"]
    anon = httpx.AsyncClient(base_url=story.api.server.base_url, timeout=30)
    story.clients.append(anon)
    feed = f"/feeds/projects/{story.project_id}.atom"
    english = await anon.get(feed, params={"token": token})
    assert english.status_code == 200, english.text
    assert english.headers["content-language"] == "en"

    r = await story.ana.patch("/v1/me", json={"locale": "fr"})
    assert r.status_code == 200, r.text
    assert r.json()["locale"] == "fr"

    french = await anon.get(
        feed, params={"token": token}, headers={"If-None-Match": english.headers["etag"]}
    )
    assert french.status_code == 200, french.text
    assert french.headers["content-language"] == "fr"
    parsed = feedparser.parse(french.content)
    assert parsed.feed.language == "fr"
    assert [e.title for e in parsed.entries[:5]] == FRENCH_STORY

    url = f"/v1/projects/{story.project_id}/activity"
    mine = await story.ana.get(url, params={"limit": 1})
    assert mine.headers["content-language"] == "fr"
    assert mine.json()[0]["sentence"] == FRENCH_STORY[0]
    asked = await story.ana.get(url, params={"limit": 1}, headers={"Accept-Language": "en"})
    assert asked.json()[0]["sentence"] == "Ana moved “Ship v1” to “Pricing”"
    others = await story.admin.get(url, params={"limit": 1})
    assert others.headers["content-language"] == "en"

    r = await story.ana.patch("/v1/me", json={"locale": None})
    assert r.status_code == 200, r.text
    back = await story.ana.get(url, params={"limit": 1})
    assert back.headers["content-language"] == "en"
