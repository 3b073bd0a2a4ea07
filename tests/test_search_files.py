"""Search finds files by name: a message or comment by its attachments' names, an upload by
its name (its title too) and description; the names follow edits, new versions and renames;
a match in a title ranks above one in a file's name.

Messages and comments are searched over HTTP (``GET /v1/search``); uploads through the read
side the route calls (:func:`service.reads.search.find`), until uploads have their JSON
envelope (another part of the files work).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from service.commands import files as commands
from service.commands.caller import Caller
from service.domain.access import Viewer
from service.domain.comments import AddComment
from service.domain.messages import EditMessage, PostMessage
from service.domain.uploads import CreateUpload, EditUpload
from service.reads.search import Query, find
from service.reads.visibility import viewer_scope

from .support.api import Api
from .support.files import caller, file, services


@dataclass
class Desk:
    """Project "Files", written by the admin through the file commands."""

    api: Api
    admin: Caller
    project_id: str

    async def message(self, subject: str, *files: str) -> str:
        return await commands.post_message(
            self.admin,
            self.project_id,
            PostMessage(
                recording_id=self.admin.new_id("rec"),
                subject=subject,
                body="<p>-</p>",
                attachments=tuple(file(name) for name in files),
            ),
        )

    async def upload(self, name: str, description: str | None = None) -> str:
        return await commands.create_upload(
            self.admin,
            self.project_id,
            CreateUpload(
                recording_id=self.admin.new_id("rec"), file=file(name), description=description
            ),
        )

    async def ids(self, q: str) -> list[str]:
        return [r["recording"]["id"] for r in await self.search(q)]

    async def found(self, q: str) -> list[tuple[str, float]]:
        """The hits of ``q`` for the admin, read side: (id, rank), best first."""
        pool = self.admin.store.pool
        scope = await viewer_scope(pool, Viewer(person_id=self.api.admin_id, role="admin"))
        hits, _, _ = await find(pool, scope, Query(text=q), after=None, limit=50)
        return [(hit.row["recording_id"], hit.rank) for hit in hits]

    async def found_ids(self, q: str) -> list[str]:
        return [rid for rid, _ in await self.found(q)]

    async def search(self, q: str) -> list[dict[str, Any]]:
        """The results of ``GET /v1/search?q=`` (checked to be a 200)."""
        found = await self.api.client.get("/v1/search", params={"q": q})
        assert found.status_code == 200, found.text
        results: list[dict[str, Any]] = found.json()
        return results


@pytest.fixture
async def desk(api: Api) -> AsyncIterator[Desk]:
    created = await api.client.post("/v1/projects", json={"name": "Files"})
    assert created.status_code == 201, created.text
    async with services(api) as svc:
        yield Desk(api, caller(svc, api.admin_id, "admin"), created.json()["id"])


async def test_a_message_and_a_comment_are_found_by_their_attachments_names(desk: Desk) -> None:
    """A message with "Quarterly-Forecast.xlsx" is found by "forecast" (a word of the name)
    and by the whole name; a comment by its picture's name; replacing the attachments
    replaces what finds the message."""
    message = await desk.message("Weekly notes", "Quarterly-Forecast.xlsx")
    comment = await commands.add_comment(
        desk.admin,
        message,
        AddComment(
            recording_id=desk.admin.new_id("rec"),
            content="<p>see</p>",
            attachments=(file("whiteboard_photo.png"),),
        ),
    )
    assert await desk.ids("forecast") == [message]
    assert await desk.ids("Quarterly-Forecast.xlsx") == [message]
    assert await desk.ids("whiteboard") == [comment]
    await commands.edit_message(
        desk.admin, message, EditMessage(), attachments=[file("Invoice March.pdf")]
    )
    assert await desk.ids("forecast") == []
    assert await desk.ids("invoice") == [message]


async def test_an_upload_is_found_by_its_name_description_and_new_names(desk: Desk) -> None:
    """An upload is found by its name and its description; a new version (which names it
    after its file) and a rename change the name it is found by."""
    upload = await desk.upload("Roadmap-2026.pdf", "<p>The <b>milestones</b> ahead</p>")
    assert await desk.found_ids("roadmap") == [upload]
    assert await desk.found_ids("Roadmap-2026.pdf") == [upload]
    assert await desk.found_ids("milestones") == [upload]
    await commands.add_version(desk.admin, upload, file("Timeline.pdf"))
    assert await desk.found_ids("timeline") == [upload]
    assert await desk.found_ids("roadmap") == []
    await commands.edit_upload(desk.admin, upload, EditUpload(name="Budget plan.pdf"))
    assert await desk.found_ids("budget") == [upload]
    assert await desk.found_ids("timeline") == []


async def test_a_title_ranks_above_an_attachments_name(desk: Desk) -> None:
    """The same word in a message's subject ranks above it in another's attachment name,
    and an upload's name (its title) ranks above an attachment's name as well."""
    in_file = await desk.message("Odds and ends", "contract.pdf")
    in_title = await desk.message("Contract")
    upload = await desk.upload("Contract.docx")
    found = await desk.found("contract")
    assert {rid for rid, _ in found[:2]} == {in_title, upload}
    assert found[2][0] == in_file
    assert found[1][1] > found[2][1] > 0
