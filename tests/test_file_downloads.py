"""Downloads of uploads and attachments over real HTTP, from the PostgreSQL blob store: the
bytes exactly as uploaded (every version), ranges and 304s, the access rules of the
recording that holds a file on every route, signed links that work without a token for
five minutes and never once altered, a second instance serving what the first took, and an
uploaded HTML page served so that it cannot act in Cairn's origin.

Uploads, messages and comments are made with :mod:`service.commands.files` from bytes
stored by ``POST /v1/attachments`` and claimed (:func:`service.blobs.attachables.claim`), as
the create routes do."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from service.blobs import attachables
from service.blobs.store import FileRef
from service.commands import files as commands
from service.commands.caller import Caller, Services
from service.domain.access import Viewer
from service.domain.comments import AddComment
from service.domain.messages import PostMessage
from service.domain.uploads import CreateUpload
from service.events.base import Metadata
from service.events.store import EventStore
from service.events.streams import RECORDING_ID

from .support.api import Api, problem
from .support.servers import FixedClock, another_instance
from .support.teams import Team
from .support.waiting import eventually

MiB = 1 << 20


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime.now(UTC))


@pytest.fixture
def server_settings(clock: FixedClock) -> dict[str, object]:
    """The server tells time by ``clock``, so that a test can let a link expire."""
    return {"clock": clock}


@dataclass
class Files:
    """Files kept on :class:`Team`'s project by its admin, through the command layer."""

    team: Team
    store: EventStore
    clock: FixedClock

    @property
    def c(self) -> httpx.AsyncClient:
        return self.team.c

    def _caller(self) -> Caller:
        admin = self.team.api.admin_id
        services = Services(store=self.store, clock=self.clock)
        return Caller(services, Viewer(person_id=admin, role="admin"), Metadata(actor=admin))

    async def stored(
        self, data: bytes, name: str = "f.bin", media: str = "application/pdf"
    ) -> FileRef:
        """``data`` stored by ``POST /v1/attachments`` and claimed by the admin."""
        posted = await self.c.post(
            "/v1/attachments", params={"name": name}, content=data, headers={"Content-Type": media}
        )
        assert posted.status_code == 201, posted.text
        claimed = await attachables.claim(
            self.store.pool, posted.json()["attachable_id"], self.team.api.admin_id
        )
        assert claimed is not None
        return claimed

    async def upload(self, file: FileRef, *, visible: bool = True) -> str:
        """An upload of ``file``, once the server's read model shows it."""
        caller = self._caller()
        cmd = CreateUpload(
            recording_id=caller.new_id(RECORDING_ID), file=file, visible_to_clients=visible
        )
        upload_id = await commands.create_upload(caller, self.team.project_id, cmd)
        await self._shown(f"/v1/uploads/{upload_id}/versions/1/download")
        return upload_id

    async def version(self, upload_id: str, file: FileRef) -> int:
        n = await commands.add_version(self._caller(), upload_id, file)
        await self._shown(f"/v1/uploads/{upload_id}/versions/{n}/download")
        return n

    async def message(self, *attached: FileRef, visible: bool = True) -> str:
        caller = self._caller()
        cmd = PostMessage(
            recording_id=caller.new_id(RECORDING_ID),
            subject="Files",
            body="<p>Here</p>",
            visible_to_clients=visible,
            attachments=attached,
        )
        message_id = await commands.post_message(caller, self.team.project_id, cmd)
        await self._shown(f"/v1/recordings/{message_id}/attachments/{attached[0].sha256}/download")
        return message_id

    async def comment(self, parent_id: str, *attached: FileRef) -> str:
        caller = self._caller()
        cmd = AddComment(
            recording_id=caller.new_id(RECORDING_ID), content="<p>One</p>", attachments=attached
        )
        comment_id = await commands.add_comment(caller, parent_id, cmd)
        await self._shown(f"/v1/recordings/{comment_id}/attachments/{attached[0].sha256}/download")
        return comment_id

    async def _shown(self, path: str) -> None:
        async def served() -> None:
            got = await self.c.head(path)
            assert got.status_code == 200, got.text

        await eventually(served, timeout=10.0)


@pytest.fixture
async def files(team: Team, clock: FixedClock) -> AsyncIterator[Files]:
    store = await EventStore.open(team.api.server.database_url, min_size=1, max_size=4)
    try:
        yield Files(team, store, clock)
    finally:
        await store.close()


def _etag(data: bytes) -> str:
    return f'"{hashlib.sha256(data).hexdigest()}"'


async def test_bytes_come_back_exactly_as_uploaded(files: Files) -> None:
    """Empty, one-byte and 10 MiB files come back byte for byte from the download route,
    with their length, type and SHA-256 ETag; HEAD tells the same without the body."""
    big = bytes(range(256)) * (10 * MiB // 256)
    for data in (b"", b"\x00", big):
        upload_id = await files.upload(await files.stored(data))
        got = await files.c.get(f"/v1/uploads/{upload_id}/download")
        assert got.status_code == 200, got.text
        assert got.content == data
        assert got.headers["content-length"] == str(len(data))
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["etag"] == _etag(data)
        head = await files.c.head(f"/v1/uploads/{upload_id}/download")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(data))


async def test_every_version_stays_downloadable(files: Files) -> None:
    """Each version of an upload is served at its number, the latest at the plain route;
    a number past the last is a 404."""
    texts = [b"first draft", b"second draft", b"final"]
    upload_id = await files.upload(await files.stored(texts[0], "draft.txt", "text/plain"))
    for data in texts[1:]:
        await files.version(upload_id, await files.stored(data, "draft.txt", "text/plain"))
    for n, data in enumerate(texts, 1):
        got = await files.c.get(f"/v1/uploads/{upload_id}/versions/{n}/download")
        assert (got.status_code, got.content) == (200, data)
    latest = await files.c.get(f"/v1/uploads/{upload_id}/download")
    assert latest.content == texts[-1]
    problem(await files.c.get(f"/v1/uploads/{upload_id}/versions/4/download"), 404)
    problem(await files.c.get(f"/v1/uploads/{upload_id}/versions/0/download"), 404)


async def test_ranges_and_conditional_requests(files: Files) -> None:
    """First byte, last byte, a suffix and several ranges are 206 with the right bytes; a
    malformed range is ignored (200); one past the end is 416; the ETag answers 304."""
    data = bytes(range(256)) * 4
    size = len(data)
    upload_id = await files.upload(await files.stored(data))
    url = f"/v1/uploads/{upload_id}/download"

    async def ranged(spec: str) -> httpx.Response:
        return await files.c.get(url, headers={"Range": spec})

    first = await ranged("bytes=0-0")
    assert (first.status_code, first.content) == (206, data[:1])
    assert first.headers["content-range"] == f"bytes 0-0/{size}"
    last = await ranged(f"bytes={size - 1}-{size - 1}")
    assert (last.status_code, last.content) == (206, data[-1:])
    suffix = await ranged("bytes=-10")
    assert (suffix.status_code, suffix.content) == (206, data[-10:])
    assert suffix.headers["content-range"] == f"bytes {size - 10}-{size - 1}/{size}"

    several = await ranged("bytes=0-1,100-103")
    assert several.status_code == 206
    kind = several.headers["content-type"]
    assert kind.startswith("multipart/byteranges; boundary=")
    boundary = kind.split("boundary=")[1]
    parts = [p for p in several.content.split(f"--{boundary}".encode()) if p.strip(b"\r\n-")]
    bodies = [p.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for p in parts]
    assert bodies == [data[0:2], data[100:104]]
    assert b"Content-Range: bytes 100-103/1024" in parts[1]
    assert several.headers["content-length"] == str(len(several.content))

    for malformed in ("bytes=5-1", "bytes=a-b", "lines=0-1"):
        whole = await ranged(malformed)
        assert (whole.status_code, whole.content) == (200, data)
    unsatisfiable = await ranged(f"bytes={size}-")
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{size}"

    got = await files.c.get(url)
    same = await files.c.get(url, headers={"If-None-Match": got.headers["etag"]})
    assert (same.status_code, same.content) == (304, b"")
    assert same.headers["etag"] == _etag(data)
    other = await files.c.get(url, headers={"If-None-Match": _etag(b"other")})
    assert other.status_code == 200
    # If-Range with another tag: the client holds other bytes, so the whole file.
    stale = await files.c.get(url, headers={"Range": "bytes=0-0", "If-Range": _etag(b"x")})
    assert (stale.status_code, stale.content) == (200, data)


async def _routes(files: Files) -> dict[str, tuple[list[str], bytes]]:
    """The download routes of each visibility case: (paths, bytes they serve)."""
    t = files
    shown = await t.stored(b"shown upload", "shown.txt", "text/plain")
    hidden = await t.stored(b"hidden upload", "hidden.txt", "text/plain")
    shown_id = await t.upload(shown, visible=True)
    hidden_id = await t.upload(hidden, visible=False)
    on_shown = await t.stored(b"on a visible message", "a.txt", "text/plain")
    on_hidden = await t.stored(b"on a hidden message", "b.txt", "text/plain")
    under_hidden = await t.stored(b"comment under a hidden message", "c.txt", "text/plain")
    shown_msg = await t.message(on_shown, visible=True)
    hidden_msg = await t.message(on_hidden, visible=False)
    comment = await t.comment(hidden_msg, under_hidden)

    def upload_paths(upload_id: str) -> list[str]:
        return [f"/v1/uploads/{upload_id}/download", f"/v1/uploads/{upload_id}/versions/1/download"]

    def attachment(recording_id: str, file: FileRef) -> list[str]:
        return [f"/v1/recordings/{recording_id}/attachments/{file.sha256}/download"]

    return {
        "visible upload": (upload_paths(shown_id), b"shown upload"),
        "hidden upload": (upload_paths(hidden_id), b"hidden upload"),
        "visible message": (attachment(shown_msg, on_shown), b"on a visible message"),
        "hidden message": (attachment(hidden_msg, on_hidden), b"on a hidden message"),
        "comment on a hidden message": (
            attachment(comment, under_hidden),
            b"comment under a hidden message",
        ),
    }


_SEES = {
    "admin": {"visible upload", "hidden upload", "visible message", "hidden message",
              "comment on a hidden message"},
    "member": {"visible upload", "hidden upload", "visible message", "hidden message",
               "comment on a hidden message"},
    "client": {"visible upload", "visible message"},
    "non-member": set(),
}  # fmt: skip


async def test_who_may_download_what(files: Files) -> None:
    """Admins and members download every file of the project; a client only those of
    recordings visible to clients (a hidden upload, a hidden message's attachment and a
    comment's under it are 404, as the recordings themselves are); a member of the company
    who is not on the project gets 404 for all. The links follow the same rules, and the
    link a viewer may mint serves the bytes without a token."""
    routes = await _routes(files)
    team = files.team
    people: dict[str, dict[str, str] | None] = {
        "admin": None,
        "member": team.mia,
        "client": team.cleo,
        "non-member": team.otto,
    }
    async with httpx.AsyncClient(base_url=team.api.server.base_url) as anonymous:
        for role, headers in people.items():
            for case, (paths, data) in routes.items():
                allowed = case in _SEES[role]
                for path in paths:
                    got = await files.c.get(path, headers=headers)
                    if allowed:
                        assert (got.status_code, got.content) == (200, data), (role, path)
                    else:
                        assert problem(got, 404)["type"] == "urn:cairn:problem:not-found"
                    head = await files.c.head(path, headers=headers)
                    assert head.status_code == (200 if allowed else 404), (role, path)
                if "upload" not in case:
                    continue
                upload_id = paths[0].split("/")[3]
                for link in (
                    f"/v1/uploads/{upload_id}/link",
                    f"/v1/uploads/{upload_id}/versions/1/link",
                ):
                    minted = await files.c.get(link, params={"redirect": "0"}, headers=headers)
                    if not allowed:
                        problem(minted, 404)
                        continue
                    assert minted.status_code == 200, (role, link, minted.text)
                    served = await anonymous.get(minted.json()["url"])
                    assert (served.status_code, served.content) == (200, data), (role, link)
            problem(await anonymous.get(routes["visible upload"][0][0]), 401)


async def test_a_signed_link_works_for_five_minutes_and_never_altered(files: Files) -> None:
    """/link answers 303 to a signed URL of the version it resolved "latest" to, which
    serves the bytes without a token (and goes on serving that version after a new one);
    the same URL with its signature, expiry or version changed, or five minutes later, is
    refused (403 link-refused)."""
    upload_id = await files.upload(await files.stored(b"version one", "v.txt", "text/plain"))
    minted = await files.c.get(f"/v1/uploads/{upload_id}/link")
    assert minted.status_code == 303, minted.text
    assert minted.headers["cache-control"] == "no-store"
    url = minted.headers["location"]
    assert minted.json()["url"] == url
    assert re.search(rf"/files/{upload_id}/versions/1\?expires=\d+&signature=\w+\.[\w-]+$", url)
    await files.version(upload_id, await files.stored(b"version two", "v.txt", "text/plain"))

    async with httpx.AsyncClient() as anonymous:
        served = await anonymous.get(url)
        assert (served.status_code, served.content) == (200, b"version one")
        assert served.headers["referrer-policy"] == "no-referrer"
        assert (await anonymous.head(url)).status_code == 200

        signature = url.rsplit("signature=", 1)[1]
        flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
        expires = int(re.search(r"expires=(\d+)", url)[1])  # type: ignore[index]
        tampered = [
            url.replace(signature, flipped),
            url.replace("/versions/1?", "/versions/2?"),
            url.replace(f"expires={expires}", f"expires={expires + 60}"),
            url.split("&signature=")[0],
            url.split("?")[0],
        ]
        for bad in tampered:
            refused = problem(await anonymous.get(bad), 403)
            assert refused["type"] == "urn:cairn:problem:link-refused", bad

        latest = await files.c.get(f"/v1/uploads/{upload_id}/link", params={"redirect": "0"})
        assert latest.status_code == 200
        assert "/versions/2?" in latest.json()["url"]
        assert (await anonymous.get(latest.json()["url"])).content == b"version two"

        files.clock.now += timedelta(seconds=301)
        problem(await anonymous.get(url), 403)


async def test_a_second_instance_serves_what_the_first_took(files: Files, api: Api) -> None:
    """Another server on the same database downloads a file uploaded through the first,
    and serves a link the first signed."""
    data = bytes(range(256)) * 1000
    upload_id = await files.upload(await files.stored(data))
    link = await files.c.get(f"/v1/uploads/{upload_id}/link", params={"redirect": "0"})
    path = link.json()["url"].removeprefix(api.server.base_url)
    async with another_instance(api.server.database_url, api.admin_token) as other:

        async def served() -> httpx.Response:
            got = await other.get(f"/v1/uploads/{upload_id}/download")
            assert got.status_code == 200, got.text
            return got

        got = await eventually(served, timeout=10.0)
        assert got.content == data
        async with httpx.AsyncClient(base_url=other.base_url) as anonymous:
            signed = await anonymous.get(path)
        assert (signed.status_code, signed.content) == (200, data)


async def test_an_uploaded_page_is_downloaded_never_rendered(files: Files) -> None:
    """An HTML file is served as itself, but as an attachment, with nosniff and the
    sandboxing CSP, at its download route and through a signed link alike."""
    page = b"<!doctype html><script>fetch('/v1/me')</script>"
    upload_id = await files.upload(await files.stored(page, "page.html", "text/html"))
    link = await files.c.get(f"/v1/uploads/{upload_id}/link", params={"redirect": "0"})
    async with httpx.AsyncClient() as anonymous:
        for got in (
            await files.c.get(f"/v1/uploads/{upload_id}/download"),
            await anonymous.get(link.json()["url"]),
        ):
            assert got.status_code == 200
            assert got.content == page
            assert got.headers["content-type"].startswith("text/html")
            assert got.headers["content-disposition"].startswith("attachment")
            assert 'filename="page.html"' in got.headers["content-disposition"]
            assert got.headers["x-content-type-options"] == "nosniff"
            assert got.headers["content-security-policy"] == "default-src 'none'; sandbox"


async def test_malformed_paths_and_parameters_are_refused(files: Files) -> None:
    """An id, version or SHA-256 of the wrong shape is a 404; an unknown ?redirect= a 400."""
    upload_id = await files.upload(await files.stored(b"x"))
    for path in (
        "/v1/uploads/nope/download",
        f"/v1/uploads/{upload_id}/versions/one/download",
        f"/v1/recordings/{upload_id}/attachments/ABC/download",
        f"/v1/recordings/{upload_id}/attachments/{'0' * 64}/download",
    ):
        problem(await files.c.get(path), 404)
    problem(await files.c.get(f"/v1/uploads/{upload_id}/link", params={"redirect": "no"}), 400)
    problem(await files.c.get(f"/v1/uploads/{upload_id}/link", params={"other": "1"}), 400)
