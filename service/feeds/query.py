"""What a feed shows a viewer: the activity items they may see, as feed entries.

**Visibility** is the activity streams' (docs/ACCESS.md): the scope, the SQL filter, the
per-row check with :func:`~service.domain.access.can_see_recording` and the naming of actors
all come from :mod:`service.reads.visibility`. A project's feed knows that project's people; a
person's feed every project they see (an admin's needs no filter at all).

**Stamps.** Whether a feed changed is answered without reading its entries: for a viewer who
sees whole projects, rows never leave their feed, so the newest row's ``seq`` is enough; for
a client, rows can leave (an item hidden from clients), so the stamp is the newest visible
``seq`` together with the number of visible rows, computed over what the client may see only,
so that the stamp does not move when something the client cannot see happens. Names are read
at render time (a rename shows in past sentences), so the people table's size and newest
change are part of the stamp too; recordings' and projects' renames are activity items of
the feed itself.

**Files.** An entry about a message or comment posted with attachments carries them (the
recording's current attachments, as its content is its current body); one about an upload
created or given a new version carries that version's file, at that version's own address
(so an archive page does not change when a later version comes). The files belong to the
entry's recording, so whoever may see the entry may see them: a client's feed never
carries a hidden item's file because it never carries the item.

**Archive pages** (RFC 5005) are counted from the oldest entry the viewer may see: page ``n``
holds the viewer's visible entries ``50(n-1)+1 .. 50n`` (oldest first), and exists once it is
full. New events only ever add entries after the last one, so a full page never changes as
new events arrive. What can change a page: an item hidden from clients later (privacy wins:
a client's later pages shift by the entries they no longer see), a person joining or leaving
a project (their cross-project feed counts over a different set), and renames (sentences
use current names). Counting over the viewer's own visible set, rather than over everything,
is deliberate: pages of a fixed size in a set that includes hidden items would tell a
client how many hidden items there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg
import msgspec

from ..domain.activity import excerpt_for
from ..domain.i18n import SOURCE, Locale
from ..reads.visibility import Scope, changes_of, named
from .render import PAGE_SIZE, Enclosure, Entry, sanitise_html, tag_uri, text_html

_NAMES: Final = "SELECT count(*) AS people, max(updated_at) AS renamed FROM people"
_CHECKPOINTS: Final = "SELECT name, generation, tx_id, position FROM projections ORDER BY name"
_COLUMNS: Final = (
    "a.seq, a.position, a.project_id, a.recording_id, a.recording_kind, a.parent_id, "
    "a.person_id, a.kind, a.actor_id, a.at, a.excerpt, a.changes"
)
# Kinds whose entry content is the recording's (sanitised) body rather than the excerpt.
_BODY_KINDS: Final = frozenset({"message_posted", "comment_added"})
# The rows of named() (newest first) with their files (column ``files``, a JSON array or
# NULL): an attachment is ``{sha256, size, content_type, name}``, an upload's version the
# same with its ``n``.
_WITH_FILES: Final = """
SELECT w.*, CASE
    WHEN w.kind IN ('message_posted', 'comment_added') THEN (
        SELECT f.attachments FROM recordings f WHERE f.recording_id = w.recording_id)
    WHEN w.kind IN ('upload_created', 'upload_version_added') THEN (
        SELECT jsonb_build_array(jsonb_build_object(
                   'sha256', v.sha256, 'size', v.size, 'content_type', v.content_type,
                   'name', v.name, 'n', v.n))
        FROM upload_versions v
        WHERE v.recording_id = w.recording_id AND v.n = CASE w.kind
            WHEN 'upload_created' THEN 1
            ELSE (SELECT (c->>'after')::int FROM jsonb_array_elements(w.changes) c
                  WHERE c->>'field' = 'version' LIMIT 1) END)
    END AS files
FROM ({named}) w
ORDER BY w.seq DESC
"""


class _File(msgspec.Struct, frozen=True):
    sha256: str
    size: int
    content_type: str
    n: int | None = None


_FILES = msgspec.json.Decoder(list[_File])


# ------------------------------------------------------------------ stamps


async def checkpoint(pool: asyncpg.Pool) -> str:
    """The read models' state: every projection's generation and checkpoint, as one string
    that changes whenever any of them moves (see :mod:`service.feeds.cache`)."""
    rows = await pool.fetch(_CHECKPOINTS)
    return ";".join(f"{r['name']}:{r['generation']}:{r['tx_id']}:{r['position']}" for r in rows)


async def project_named(conn: asyncpg.Connection, project_id: str) -> tuple[str, datetime] | None:
    """A project's name and creation time (None: no such project)."""
    row = await conn.fetchrow(
        "SELECT name, created_at FROM projects WHERE project_id = $1", project_id
    )
    return None if row is None else (row["name"], row["created_at"])


async def person_named(conn: asyncpg.Connection, person_id: str) -> tuple[str, datetime] | None:
    """A person's name and creation time (None: no such person)."""
    row = await conn.fetchrow("SELECT name, created_at FROM people WHERE person_id = $1", person_id)
    return None if row is None else (row["name"], row["created_at"])


@dataclass(frozen=True)
class Stamp:
    """Whether a feed changed, known without reading its entries.

    ``last_seq``: the newest visible row's ``seq`` (0 for none). ``visible``: the number of
    visible rows (clients only; None otherwise). ``last_at``: the newest time among the
    newest page of visible rows (None for none). ``names``: the people table's state.
    """

    last_seq: int
    visible: int | None
    last_at: datetime | None
    names: str


async def stamp(pool: asyncpg.Pool, scope: Scope) -> Stamp:
    """The stamp of ``scope``'s feed: one query."""
    where, args, joins = scope.where()
    n = len(args) + 1
    if joins:
        sql = f"""
        WITH v AS MATERIALIZED (SELECT a.seq, a.at FROM activity a {joins} WHERE {where}),
             newest AS (SELECT seq, at FROM v ORDER BY seq DESC LIMIT ${n})
        SELECT (SELECT max(seq) FROM newest) AS last_seq,
               (SELECT max(at) FROM newest) AS last_at,
               (SELECT count(*) FROM v) AS visible,
               names.people, names.renamed
        FROM ({_NAMES}) names
        """
    else:
        sql = f"""
        WITH newest AS (SELECT a.seq, a.at FROM activity a WHERE {where}
                        ORDER BY a.seq DESC LIMIT ${n})
        SELECT (SELECT max(seq) FROM newest) AS last_seq,
               (SELECT max(at) FROM newest) AS last_at,
               NULL::bigint AS visible,
               names.people, names.renamed
        FROM ({_NAMES}) names
        """
    row = await pool.fetchrow(sql, *args, PAGE_SIZE)
    assert row is not None
    renamed = row["renamed"].isoformat() if row["renamed"] is not None else "-"
    return Stamp(
        last_seq=row["last_seq"] or 0,
        visible=row["visible"],
        last_at=row["last_at"],
        names=f"{row['people']}@{renamed}",
    )


async def count(pool: asyncpg.Pool, scope: Scope, known: Stamp | None = None) -> int:
    """How many entries ``scope``'s viewer may see in the feed (all pages)."""
    if known is not None and known.visible is not None:
        return known.visible
    where, args, joins = scope.where()
    sql = f"SELECT count(*) FROM activity a {joins}WHERE {where}"
    return int(await pool.fetchval(sql, *args))


# ------------------------------------------------------------------ entries


async def newest(pool: asyncpg.Pool, scope: Scope) -> list[asyncpg.Record]:
    """The newest :data:`PAGE_SIZE` visible rows, newest first."""
    return await _rows(pool, scope, "DESC", 0)


async def archive_page(pool: asyncpg.Pool, scope: Scope, page: int) -> list[asyncpg.Record]:
    """Archive page ``page`` (1-based): visible rows ``50(page-1)+1 .. 50 page`` counted
    from the oldest, newest first."""
    return await _rows(pool, scope, "ASC", (page - 1) * PAGE_SIZE)


async def _rows(pool: asyncpg.Pool, scope: Scope, order: str, offset: int) -> list[asyncpg.Record]:
    where, args, joins = scope.where()
    n = len(args)
    inner = (
        f"SELECT {_COLUMNS} FROM activity a {joins}WHERE {where} "
        f"ORDER BY a.seq {order} LIMIT ${n + 1} OFFSET ${n + 2}"
    )
    sql = _WITH_FILES.format(named=named(inner, "DESC", content=True))
    rows = await pool.fetch(sql, *args, PAGE_SIZE, offset)
    return [row for row in rows if scope.may_see(row)]


@dataclass(frozen=True)
class Links:
    """What entries link to and how their ids are made: ``api_base`` is the API's origin
    (and root path) files are downloaded from."""

    authority: str
    app_url_template: str
    api_base: str = ""
    download_query: str = ""
    """What download addresses carry for the feed's reader (``token=<feed token>`` when the
    feed was read with ``?token=``: a feed reader holds nothing else)."""


def entry_of(scope: Scope, row: asyncpg.Record, links: Links, locale: Locale) -> Entry:
    """A feed entry for an activity row (a row of :func:`newest` or :func:`archive_page`),
    written in ``locale``."""
    actor = scope.actor(row, locale)
    kind = row["kind"]
    recording_kind = row["recording_kind"]
    project_id = row["project_id"]
    title = scope.sentence(row, actor, locale)
    if row["recording_id"] is not None:
        link = links.app_url_template.format(
            type=recording_kind, id=row["recording_id"], project_id=project_id
        )
    else:
        link = links.app_url_template.format(type="project", id=project_id, project_id=project_id)
    if kind in _BODY_KINDS and row["content"]:
        content = sanitise_html(row["content"])
    elif locale == SOURCE:
        content = text_html(row["excerpt"])
    else:
        content = text_html(excerpt_for(kind, row["excerpt"], changes_of(row), locale))
    return Entry(
        id=tag_uri(links.authority, row["at"], f"event/{row['position']}"),
        title=title,
        content_html=content,
        author=actor.name,
        link=link,
        category=kind,
        at=row["at"],
        enclosures=enclosures_of(row, links.api_base, links.download_query),
    )


def enclosures_of(
    row: asyncpg.Record, base: str, download_query: str = ""
) -> tuple[Enclosure, ...]:
    """The files an entry's row carries, as enclosures downloaded from ``base`` (an
    upload's version at ``/v1/uploads/{id}/versions/{n}/download``, an attachment at
    ``/v1/recordings/{id}/attachments/{sha256}/download``), each address with
    ``download_query`` (the reader's ``token=``, if any)."""
    raw = row.get("files")
    if not raw or row["recording_id"] is None:
        return ()
    rid = row["recording_id"]
    after = f"?{download_query}" if download_query else ""
    return tuple(
        Enclosure(
            url=(
                f"{base}/v1/uploads/{rid}/versions/{f.n}/download"
                if f.n is not None
                else f"{base}/v1/recordings/{rid}/attachments/{f.sha256}/download"
            )
            + after,
            length=f.size,
            type=f.content_type,
        )
        for f in _FILES.decode(raw)
    )


def entries_of(
    scope: Scope, rows: Sequence[asyncpg.Record], links: Links, locale: Locale
) -> list[Entry]:
    """Entries for ``rows``, in their order, written in ``locale``."""
    return [entry_of(scope, row, links, locale) for row in rows]
