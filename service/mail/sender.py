"""E-mail out for one instance (:class:`MailOut`): the ``mail`` planner (:mod:`.outbox`) and
a sender loop that claims due rows, checks access again, composes (:mod:`.compose`) and
sends them over SMTP with ``aiosmtplib``, reusing one connection while there is work. The
same loop and connection send the mail to an address of :mod:`.direct` (sign-in links,
password resets, invitations).

At send time the recipient is read again (active? e-mail of that kind still on?) and so is
every recording the mail names, through the one access check: a mail about something the
recipient may no longer see is skipped, and names they may not be told are redacted
(:mod:`service.domain.redaction`). Files are linked through the authenticated download
route, never through a signed link that would expire in a mailbox.

Failures: a 5xx answer to a mail is permanent (the row is ``failed``); a 4xx, a refused or
lost connection, a timeout, or any failure to connect, start TLS or log in is temporary: retried after ``CAIRN_MAIL_RETRY_SECONDS``, doubled
at each try (at most an hour), until ``CAIRN_MAIL_MAX_ATTEMPTS``.

**At most once more**: rows are claimed (``sending``, leased for :data:`LEASE`) before their
mail is sent, and marked ``sent`` after the server accepted it, in one statement for the
claimed batch (a commit per mail cost more than the mail). An instance dying in between
leaves the batch ``sending``; once its lease has run out another instance claims those rows
and sends each mail again, once, with the same ``Message-ID`` (derived from the notice and
the recipient), so receiving servers and clients drop the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any, Final

import aiosmtplib
import asyncpg

from ..commands.caller import Services
from ..config import Settings, smtp_target
from ..domain import redaction, text
from ..domain.access import (
    ProjectFacts,
    Viewer,
    can_see_person,
    can_see_project,
    can_see_recording,
)
from ..domain.i18n import Locale, locale_or
from ..domain.mail_addresses import reply_local_part
from ..domain.people import PersonState
from ..domain.preferences import mailed
from ..domain.signing import Keyring
from ..domain.unsubscribe import ALL, sign
from ..errors import InvalidCommand
from ..events.wakeup import TRANSIENT_ERRORS
from ..metrics import Worker
from ..reads import directory
from ..reads.access import projects_facts, recording_facts
from ..reads.mail_keys import MailKeyCache
from ..reads.recordings import rows_by_id
from . import compose, outbox
from .direct import DirectMail
from .outbox import LEASE, Row, retry_delay

_log = logging.getLogger(__name__)

BATCH: Final = 100
"""Rows claimed at a time."""
PREPARED: Final = 8
"""Mails composed ahead of the one being sent."""
IDLE_CLOSE: Final = 5.0
"""An SMTP connection idle this long (s) is closed."""
UNSUBSCRIBE_PATH: Final = "/v1/mail/unsubscribe"


@dataclass
class _Facts:
    people: dict[str, PersonState]
    projects: dict[str, ProjectFacts]
    recordings: dict[str, asyncpg.Record]
    names: dict[str, str]
    project_names: dict[str, str]


class _NotYet(Exception):
    """A recording a notice names is not in the read models yet."""


@dataclass
class _Mail:
    """A mail ready to go: the rows it tells of, its bytes, its Message-ID."""

    ids: list[int]
    to: str
    raw: bytes
    message_id: str
    attempts: int


@dataclass
class Outcome:
    """What became of one try at a mail: ``sent``, ``retry`` (temporary) or ``failed``."""

    state: str
    detail: str = ""


@dataclass
class MailOut:
    """E-mail out of one instance. Runs only when ``CAIRN_SMTP_URL`` and
    ``CAIRN_MAIL_DOMAIN`` are both set (:attr:`configured`); otherwise nothing is planned
    nor sent.

    Args:
        services: store, clock, default time zone, the fold cache of people.
        settings: the instance's settings.
        poll: how often (s) the sender looks for due rows when nothing wakes it (rows
            delayed by quiet hours, digests, retries, other instances' plans).
    """

    services: Services
    settings: Settings
    poll: float = 1.0
    keys: MailKeyCache = field(default_factory=MailKeyCache)

    def __post_init__(self) -> None:
        self.wake = asyncio.Event()
        self.planner = outbox.Planner(
            self.services, digest_hour=self.settings.digest_hour, wake=self.wake
        )
        self._task: asyncio.Task[None] | None = None
        self._smtp: aiosmtplib.SMTP | None = None
        self._worker = Worker("mail")
        self.direct = DirectMail(
            services=self.services,
            settings=self.settings,
            send=self._send,
            sender=self.sender,
            domain=self.domain,
        )

    @property
    def configured(self) -> bool:
        """Whether this instance sends mail."""
        return bool(self.settings.smtp_url and self.settings.mail_domain)

    @property
    def running(self) -> bool:
        """Whether the sender loop runs."""
        return self._task is not None and not self._task.done()

    @property
    def domain(self) -> str:
        return self.settings.mail_domain

    @property
    def sender(self) -> str:
        """The ``From`` of every mail."""
        return self.settings.mail_from or f"Cairn <cairn@{self.domain}>"

    @property
    def public_url(self) -> str:
        """Where people reach the API, for links."""
        given = self.settings.public_url.rstrip("/")
        return given or f"http://{self.settings.host}:{self.settings.port}"

    def unsubscribe_url(self, keyring: Keyring, person_id: str, kind: str) -> str:
        """The one-click link that turns ``person_id``'s mail of ``kind`` off."""
        return f"{self.public_url}{UNSUBSCRIBE_PATH}?token={sign(keyring, person_id, kind)}"

    # ----------------------------------------------------------- running

    async def start(self) -> None:
        """Plan and send in tasks until :meth:`stop` (nothing when not configured)."""
        if not self.configured:
            return
        await self.planner.reader.start_at_head()
        self.planner.reader.start()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="mail-sender")

    async def stop(self) -> None:
        """Stop planning and sending; a mail being sent is finished or left ``sending``."""
        await self.planner.reader.stop()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._close()

    async def _run(self) -> None:
        idle_since: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            self.wake.clear()
            try:
                busy = await self.step()
            except TRANSIENT_ERRORS as exc:
                _log.info("mail sender lost PostgreSQL (%s); retrying", exc)
                await asyncio.sleep(0.2)
                continue
            except Exception:
                _log.exception("mail sender failed; retrying in 1 s")
                await asyncio.sleep(1.0)
                continue
            if busy:
                idle_since = None
                continue
            if idle_since is None:
                idle_since = loop.time()
            elif loop.time() - idle_since > IDLE_CLOSE:
                await self._close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll)

    async def step(self) -> bool:
        """Claim what is due now, send it; whether there was anything.

        Composing a mail costs about as much CPU as sending one costs waiting: a task
        composes the next few while this one waits for the SMTP server's answers."""
        # Mail to an address first (sign-in links, resets, invitations: someone waits for
        # it), on the same connection, then notices.
        direct = await self.direct.step()
        pool = self.services.store.pool
        now = self.services.clock()
        rows = await outbox.claim(pool, now, now + LEASE, BATCH)
        groups = [[r] for r in rows]
        gathered = await outbox.claim_digest(pool, now, now + LEASE)
        if gathered:
            groups.append(gathered)
        if not groups:
            return direct
        facts = await self._facts([r for g in groups for r in g])
        keyring = await self.keys.get(pool)
        ready: asyncio.Queue[_Mail | None] = asyncio.Queue(maxsize=PREPARED)

        async def prepare() -> None:
            try:
                for group in groups:
                    mail = await self._prepare(group, facts, keyring)
                    if mail is not None:
                        await ready.put(mail)
                    await asyncio.sleep(0)  # let the sending side read its answer meanwhile
            finally:
                # Also after an error (raised again by ``await preparing``): the sending
                # side stops at None instead of waiting for ever.
                await ready.put(None)

        preparing = asyncio.get_running_loop().create_task(prepare())
        sent: list[tuple[int, str]] = []
        try:
            while (mail := await ready.get()) is not None:
                outcome = await self._send(mail.raw, mail.to)
                if outcome.state == "sent":
                    sent += [(i, mail.message_id) for i in mail.ids]
                else:
                    await self._not_sent(mail, outcome)
            await preparing
        finally:
            preparing.cancel()
            # One statement (one commit) for the batch: a commit per mail would cost more
            # than the mail. A crash before it leaves the batch "sending": each of its mails
            # goes once more after the lease, with its Message-ID (see the module's doc).
            await outbox.sent(pool, sent, self.services.clock())
        return True

    # ----------------------------------------------------------- facts

    async def _facts(self, rows: Sequence[Row]) -> _Facts:
        pool = self.services.store.pool
        people = await outbox.people(self.services, [r.person_id for r in rows])
        projects = await projects_facts(pool, list({r.project_id for r in rows}))
        ids = {i for r in rows for i in (r.recording_id, r.thread_id) if i is not None}
        recordings = await rows_by_id(pool, list(ids))
        actors = [r.actor_id for r in rows if r.actor_id is not None]
        names = await directory.names(pool, list(dict.fromkeys(actors))) if actors else {}
        project_names = {r["project_id"]: r["project_name"] for r in recordings.values()}
        for project_id in {r.project_id for r in rows} - set(project_names):
            found = await directory.project(pool, project_id)
            if found is not None:
                project_names[project_id] = found["name"]
        return _Facts(people, projects, recordings, names, project_names)

    def _item(self, row: Row, viewer: Viewer, locale: Locale, facts: _Facts) -> compose.Item | None:
        """The notice as ``viewer`` may be told it; None when they may not be told of it.

        Raises:
            _NotYet: a recording it names is not in the read models yet (the notice worker
                waits for them before telling anyone, so only a read model being rebuilt
                or lagging on another path): the mail is tried again later.
        """
        project = facts.projects.get(row.project_id)
        if project is None or not can_see_project(viewer, project):
            return None
        shown: list[asyncpg.Record] = []
        for rid in dict.fromkeys(i for i in (row.thread_id, row.recording_id) if i is not None):
            found = facts.recordings.get(rid)
            if found is None:
                # Recordings are never deleted: the read model has not shown it yet.
                raise _NotYet(rid)
            if not can_see_recording(viewer, project, recording_facts(found)):
                return None
            shown.append(found)
        actor = self._actor(row.actor_id, viewer, project, locale, facts)
        project_name = facts.project_names.get(row.project_id, "")
        if not shown:  # an invitation: the project itself
            link = self.settings.app_url.format(
                type="project", id=row.project_id, project_id=row.project_id
            )
            return compose.Item(
                row.position, row.kind, project_name, actor, "", link, row.noticed_at
            )
        thread = shown[0]
        own = facts.recordings[row.recording_id] if row.recording_id else thread
        link = self.settings.app_url.format(
            type=thread["kind"], id=thread["recording_id"], project_id=row.project_id
        )
        body = _sanitised(own["content"]) if row.kind in ("message", "comment") else None
        return compose.Item(
            position=row.position,
            kind=row.kind,
            project=project_name,
            actor=actor,
            title=thread["title"],
            link=link,
            at=row.noticed_at,
            body_html=body,
            due_on=own["due_on"],
            files=self._files(own),
        )

    def _shown_or_none(
        self, row: Row, viewer: Viewer, locale: Locale, facts: _Facts
    ) -> compose.Item | None:
        """:meth:`_item`, with what the read models do not show yet left out (a digest does
        not wait for one item)."""
        try:
            return self._item(row, viewer, locale, facts)
        except _NotYet:
            return None

    def _actor(
        self,
        actor_id: str | None,
        viewer: Viewer,
        project: ProjectFacts,
        locale: Locale,
        facts: _Facts,
    ) -> str:
        if actor_id is None or actor_id == redaction.CAIRN_ID:
            return redaction.cairn(locale)
        if not can_see_person(viewer, actor_id, [project]):
            return redaction.someone(locale)
        return facts.names.get(actor_id) or redaction.someone(locale)

    def _files(self, row: asyncpg.Record) -> tuple[tuple[str, str], ...]:
        raw: Any = row["attachments"]
        files = json.loads(raw) if isinstance(raw, str) else (raw or [])
        base = f"{self.public_url}/v1/recordings/{row['recording_id']}/attachments"
        return tuple((f["name"], f"{base}/{f['sha256']}/download") for f in files)

    # ----------------------------------------------------------- delivering

    async def _prepare(self, group: list[Row], facts: _Facts, keyring: Keyring) -> _Mail | None:
        """The mail of one row (or of a digest's rows), composed and flattened; None when
        there is none to send (the rows marked skipped here)."""
        pool = self.services.store.pool
        first = group[0]
        ids = [r.id for r in group]
        person = facts.people.get(first.person_id)
        if person is None or not person.active:
            await outbox.finish(pool, ids, "skipped", "the person is gone or deactivated")
            return None
        viewer = Viewer(person_id=person.person_id, role=person.role, active=person.active)
        locale = locale_or(person.locale, self.settings.locale)
        to = compose.Recipient(person.person_id, person.name, person.email, locale)
        if first.digest_day is None:
            if not mailed(person.notifications, first.kind):
                await outbox.finish(pool, ids, "skipped", "e-mail of this kind is off")
                return None
            try:
                item = self._item(first, viewer, locale, facts)
            except _NotYet as missing:
                await self._not_sent(
                    _Mail(ids, person.email, b"", "", first.attempts),
                    Outcome("retry", f"{missing.args[0]} is not in the read models yet"),
                )
                return None
            if item is None:
                await outbox.finish(pool, ids, "skipped", "not visible to the person")
                return None
            thread = first.thread_id or first.recording_id
            root = facts.recordings.get(thread) if thread else None
            env = compose.Envelope(
                sender=self.sender,
                message_id=compose.message_id(first.position, to.person_id, self.domain),
                unsubscribe_url=self.unsubscribe_url(keyring, to.person_id, first.kind),
                reply_to=(
                    f"{reply_local_part(keyring, to.person_id, thread)}@{self.domain}"
                    if thread
                    else None
                ),
                thread_id=(
                    compose.message_id(root["seq"], to.person_id, self.domain)
                    if root is not None
                    else None
                ),
            )
            msg = compose.single(to, item, env)
        else:
            items = [
                i
                for r in group
                if mailed(person.notifications, r.kind)
                and (i := self._shown_or_none(r, viewer, locale, facts)) is not None
            ]
            if not items:
                await outbox.finish(pool, ids, "skipped", "nothing left to tell")
                return None
            env = compose.Envelope(
                sender=self.sender,
                message_id=compose.digest_id(
                    first.digest_day, min(r.position for r in group), to.person_id, self.domain
                ),
                unsubscribe_url=self.unsubscribe_url(keyring, to.person_id, ALL),
            )
            msg = compose.digest(to, items, first.digest_day, env, self.services.clock())
        return _Mail(
            ids=ids,
            to=person.email,
            raw=msg,
            message_id=env.message_id,
            attempts=max(r.attempts for r in group),
        )

    async def _not_sent(self, mail: _Mail, outcome: Outcome) -> None:
        pool = self.services.store.pool
        now = self.services.clock()
        if outcome.state == "retry" and mail.attempts < self.settings.mail_max_attempts:
            wait = retry_delay(self.settings.mail_retry_seconds, mail.attempts)
            await outbox.retry(pool, mail.ids, now + wait, outcome.detail)
        else:
            await outbox.finish(pool, mail.ids, "failed", outcome.detail, mail.message_id)

    async def _send(self, raw: bytes, to: str) -> Outcome:
        self._worker.attempted()
        try:
            smtp = await self._connection()
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # Connecting, STARTTLS or logging in: the server's or the settings' fault, never
            # the mail's, even with a 5xx (a wrong password): tried again, not failed.
            self._worker.failed()
            await self._close()
            return Outcome("retry", f"connecting: {type(exc).__name__}: {exc}"[:500])
        try:
            await smtp.sendmail(parseaddr(self.sender)[1], [to], raw)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._worker.failed()
            code = min(e.code for e in exc.recipients)
            return self._refused(code, "; ".join(str(e) for e in exc.recipients))
        except aiosmtplib.SMTPResponseException as exc:
            self._worker.failed()
            await self._close()
            return self._refused(exc.code, f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._worker.failed()
            await self._close()
            return Outcome("retry", f"{type(exc).__name__}: {exc}"[:500])
        return Outcome("sent")

    @staticmethod
    def _refused(code: int, detail: str) -> Outcome:
        return Outcome("failed" if 500 <= code < 600 else "retry", detail[:500])

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        target = smtp_target(self.settings.smtp_url)
        smtp = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.implicit_tls,
            start_tls=target.starttls,
            timeout=30,
        )
        self._smtp = smtp  # closed by _close() if connecting fails half-way
        await smtp.connect()
        return smtp

    async def _close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None or not smtp.is_connected:
            return
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            smtp.close()

    # ----------------------------------------------------------- status

    async def backlog(self) -> tuple[int, int]:
        """Mails waiting and mails failed (from the outbox, every instance's)."""
        return await outbox.backlog(self.services.store.pool)


@functools.lru_cache(maxsize=256)  # one notice's body, for each of its recipients
def _sanitised(content: str | None) -> str | None:
    """A body as the API sanitises HTML (None: none, or nothing left)."""
    if not content:
        return None
    try:
        return text.optional_html("body", content)
    except InvalidCommand:
        return None
