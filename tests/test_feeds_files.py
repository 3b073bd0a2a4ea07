"""Files in Atom and RSS feeds: messages, comments and upload versions carry their files as
enclosures (Atom: each file; RSS: the first), at the download addresses, and a client's
feed never carries the file of an item hidden from clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from service.commands import files as commands
from service.domain.comments import AddComment
from service.domain.messages import PostMessage
from service.domain.uploads import CreateUpload

from .support.api import Api
from .support.files import caller, file, services
from .support.scenario import Apollo
from .test_feeds import check_feed

SPEC = file("spec.pdf", 1234)
PLAN = file("plan.txt", 56, "text/plain")
NOTE = file("note.png", 78, "image/png")
DECK = file("deck.pdf", 900)
DECK2 = file("deck-v2.pdf", 950)
SECRET = file("salaries.xlsx", 4321, "application/vnd.ms-excel")


class Story(Apollo):
    """Apollo, then Ana posts "Specs" (shown to clients) with two files, Cleo comments on it
    with a picture, Ana uploads a deck (shown to clients) and its second version, and a
    spreadsheet hidden from clients."""

    async def build(self, api: Api) -> Story:
        await super().build(api)
        self.base = api.server.base_url.rstrip("/")
        async with services(api) as svc:
            ana = caller(svc, self.ana_id)
            cleo = caller(svc, self.cleo_id, "client")
            self.specs = await commands.post_message(
                ana,
                self.project_id,
                PostMessage(
                    recording_id=ana.new_id("rec"),
                    subject="Specs",
                    body="<p>Attached</p>",
                    visible_to_clients=True,
                    attachments=(SPEC, PLAN),
                ),
            )
            self.comment = await commands.add_comment(
                cleo,
                self.specs,
                AddComment(
                    recording_id=cleo.new_id("rec"), content="<p>Look</p>", attachments=(NOTE,)
                ),
            )
            self.deck = await commands.create_upload(
                ana,
                self.project_id,
                CreateUpload(recording_id=ana.new_id("rec"), file=DECK, visible_to_clients=True),
            )
            await commands.add_version(ana, self.deck, DECK2)
            self.secret = await commands.create_upload(
                ana, self.project_id, CreateUpload(recording_id=ana.new_id("rec"), file=SECRET)
            )
        self.tokens = {}
        for who, client in (("ana", self.ana), ("cleo", self.cleo)):
            made = await client.post("/v1/me/feed_token")
            assert made.status_code == 200, made.text
            self.tokens[who] = made.json()["token"]
        return self

    async def feed(self, path: str, who: str) -> Any:
        fmt = path.rsplit(".", 1)[1]
        r = await self.ana.get(
            path, params={"token": self.tokens[who]}, headers={"Authorization": ""}
        )
        assert r.status_code == 200, r.text
        parsed, _ = check_feed(r.content, fmt)
        return parsed

    def attachment(self, recording_id: str, sha256: str) -> str:
        return f"{self.base}/v1/recordings/{recording_id}/attachments/{sha256}/download"

    def version(self, upload_id: str, n: int) -> str:
        return f"{self.base}/v1/uploads/{upload_id}/versions/{n}/download"


@pytest.fixture
async def story(api: Api) -> AsyncIterator[Story]:
    s = await Story().build(api)
    yield s
    await s.close()


def _enclosures(parsed: Any) -> dict[str, list[tuple[str, str, str]]]:
    """Each entry's enclosures (href without its query, length, type) by the entry's
    category. The feeds here are read with ``?token=``: every href carries it too."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    for entry in parsed.entries:
        hrefs = [e["href"].partition("?") for e in entry.get("enclosures", [])]
        assert all(query.startswith("token=") for _, _, query in hrefs), hrefs
        files = [
            (href, e["length"], e["type"])
            for (href, _, _), e in zip(hrefs, entry.get("enclosures", []), strict=True)
        ]
        found.setdefault(entry.tags[0].term, []).extend(files)
    return found


async def test_an_atom_feed_carries_every_file_of_its_entries(story: Story) -> None:
    """Atom: the message's two files in order, the comment's picture, each upload version's
    own file at its version's address; entries without files carry none."""
    s = story
    parsed = await s.feed(f"/feeds/projects/{s.project_id}.atom", "ana")
    files = _enclosures(parsed)
    assert files["message_posted"] == [
        (s.attachment(s.specs, SPEC.sha256), "1234", "application/pdf"),
        (s.attachment(s.specs, PLAN.sha256), "56", "text/plain"),
    ]
    assert files["comment_added"] == [(s.attachment(s.comment, NOTE.sha256), "78", "image/png")]
    assert files["upload_version_added"] == [(s.version(s.deck, 2), "950", "application/pdf")]
    assert sorted(files["upload_created"]) == sorted(
        [
            (s.version(s.deck, 1), "900", "application/pdf"),
            (s.version(s.secret, 1), "4321", "application/vnd.ms-excel"),
        ]
    )
    assert files["todo_added"] == []


async def test_an_rss_item_carries_its_first_file(story: Story) -> None:
    """RSS allows one enclosure per item: the message's first file, the upload's version."""
    s = story
    parsed = await s.feed(f"/feeds/projects/{s.project_id}.rss", "ana")
    files = _enclosures(parsed)
    assert files["message_posted"] == [
        (s.attachment(s.specs, SPEC.sha256), "1234", "application/pdf")
    ]
    assert files["upload_version_added"] == [(s.version(s.deck, 2), "950", "application/pdf")]


@pytest.mark.parametrize("fmt", ["atom", "rss"])
async def test_a_clients_feeds_never_carry_a_hidden_items_file(story: Story, fmt: str) -> None:
    """Cleo (a client) gets the files of what clients see, in the project's feed and her
    own; the spreadsheet hidden from clients is in neither."""
    s = story
    for path in (f"/feeds/projects/{s.project_id}.{fmt}", f"/feeds/activity.{fmt}"):
        parsed = await s.feed(path, "cleo")
        hrefs = [href for files in _enclosures(parsed).values() for href, _, _ in files]
        assert s.version(s.deck, 2) in hrefs
        assert s.attachment(s.specs, SPEC.sha256) in hrefs
        assert not any(s.secret in href for href in hrefs)
        assert "salaries" not in str(parsed)
