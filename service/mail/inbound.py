"""Mail in: the LMTP (or SMTP) listener of ``cairn mail serve``, turning replies to
notifications into comments and mail forwarded to a project's address into messages.

Who may post what is decided as for the API, through :mod:`service.commands` as the person
the mail is from, on the streams (this process runs no read models):

* ``RCPT TO``: the address must be ours (``CAIRN_MAIL_DOMAIN``, any case) and carry a token
  whose signature checks (:func:`~service.domain.mail_addresses.parse_local_part`). For a
  reply address, its person must still be active and may still comment on its recording
  (the very decision of the command, tried without appending: a person no longer a member,
  a client and the recording hidden from clients, an archived or trashed project or
  recording are refused); for a project address, the project must be active. Refusals are
  ``550`` (or ``553`` for an address that is not one of ours) with a plain reason.
* ``DATA``: a message whose ``Authentication-Results`` say ``dmarc=fail`` is refused. The
  envelope sender and the ``From`` header must both be the reply address's person (a reply)
  or a person of Cairn who may post in the project (a forward); then the comment or message
  is made as them. LMTP answers per recipient; SMTP gives one answer (the first refusal,
  if any: the others were delivered, and a resend delivers nothing twice).
* Idempotent on the mail's ``Message-ID``: the command runs under an idempotency key made
  of it and the address, so a mail delivered again (a retry after a lost answer, the same
  mail resent) creates nothing new. A mail without one is keyed by its bytes.

Failures of our own (the database unreachable) answer ``451``: the sending server keeps the
mail and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.utils
import hashlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any, Final

import asyncpg
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from ..blobs import attachables
from ..blobs.postgres import PostgresBlobStore
from ..blobs.store import FileRef
from ..commands import files
from ..commands.caller import Caller, Idempotency, Services
from ..commands.folds import StreamStates
from ..commands.recordings import load, load_project
from ..config import Settings
from ..domain.access import SYSTEM, Action, Viewer, check
from ..domain.comments import AddComment, decide_add_comment
from ..domain.emails import fold_email_claim
from ..domain.mail_addresses import ProjectTarget, ReplyTarget, key_id_of, parse_local_part
from ..domain.messages import PostMessage
from ..domain.people import PersonState, evolve_person, fold_person
from ..domain.projects import evolve_project, project_facts, require_writable
from ..errors import (
    CairnError,
    Conflict,
    Forbidden,
    IdempotencyKeyReused,
    InvalidCommand,
    NotFound,
    TooLarge,
)
from ..events.base import Metadata
from ..events.recordings import MAX_ATTACHMENTS
from ..events.store import EventStore
from ..events.streams import ATTACHABLE_ID, RECORDING_ID, email_stream, person_stream
from ..reads.mail_keys import MailKeyCache
from .replies import body_text, forward_subject, reply_text, to_html

log = logging.getLogger(__name__)

CHANNEL: Final = "mail"
"""The idempotency channel of mail in (a key is the address's target and the Message-ID)."""
_DMARC_FAIL: Final = re.compile(r"\bdmarc\s*=\s*fail\b", re.IGNORECASE)
_PROBE: Final = f"{RECORDING_ID}_{'0' * 20}"


class Refused(Exception):
    """A recipient or a mail refused: ``reply`` is the SMTP answer (code, enhanced code,
    reason)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


@dataclass(frozen=True)
class Accepted:
    """A recipient accepted at ``RCPT TO``: the address and what it is for."""

    address: str
    target: ReplyTarget | ProjectTarget


class Inbound:
    """What the listeners run: recipients checked, mails turned into comments and messages.

    Args:
        services: the commands' services (no read models: writes do not wait for them).
        domain: ``CAIRN_MAIL_DOMAIN``.
        max_upload: the largest attachment kept (``CAIRN_MAX_UPLOAD``); a mail with a larger
            one is refused.
    """

    def __init__(self, services: Services, *, domain: str, max_upload: int) -> None:
        self.services = services
        self.domain = domain.strip().lower()
        self.max_upload = max_upload
        self.keys = MailKeyCache()
        self.blobs = PostgresBlobStore(services.store.pool)

    @property
    def _pool(self) -> asyncpg.Pool:
        return self.services.store.pool

    # ------------------------------------------------------------------ RCPT TO

    async def recipient(self, address: str) -> Accepted:
        """Raises:
        Refused: not an address of ours, a forged or malformed token, or what it names may
            not be posted to (by its person, for a reply address).
        """
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at or not self.domain or domain.lower() != self.domain:
            raise Refused("553 5.1.2 not an address of this Cairn")
        keyring = await self.keys.checking(self._pool, key_id_of(local))
        target = parse_local_part(keyring, local)
        if target is None:
            raise Refused("550 5.1.1 no such address here (unknown, malformed or forged)")
        if isinstance(target, ReplyTarget):
            person = await self._person(target.person_id)
            await self._may_comment(person, target.recording_id)
        else:
            await self._project_open(target.project_id)
        return Accepted(address=address, target=target)

    async def _person(self, person_id: str) -> PersonState:
        states = self.services.person_states
        stream = person_stream(person_id)
        if states is not None:
            _, person = await states.load(self.services.store, stream)
        else:
            person = fold_person(e.event for e in await self.services.store.read_stream(stream))
        if person is None or not person.active:
            raise Refused("550 5.7.1 this address's person may no longer post in Cairn")
        return person

    def _caller(self, person: PersonState, once: Idempotency | None = None) -> Caller:
        viewer = Viewer(person_id=person.person_id, role=person.role, active=person.active)
        request_id = f"mail-{uuid.uuid4().hex[:12]}"
        return Caller(
            services=self.services,
            actor=viewer,
            metadata=Metadata(
                actor=person.person_id,
                request_id=request_id,
                correlation_id=request_id,
                idempotency_key=None if once is None else once.key[:200],
            ),
            idempotency=once,
        )

    async def _may_comment(self, person: PersonState, recording_id: str) -> None:
        """The decision adding a comment, taken without appending anything."""
        caller = self._caller(person)
        try:
            parent = await load(caller, recording_id)
            decide_add_comment(
                parent.project,
                parent.recording,
                AddComment(recording_id=_PROBE, content="<p>-</p>"),
                caller.context(),
                parent.lineage,
            )
        except CairnError as exc:
            raise _refusal(exc) from None

    async def _project_open(self, project_id: str) -> None:
        try:
            require_writable(await load_project(self._caller_system(), project_id))
        except CairnError as exc:
            raise _refusal(exc) from None

    def _caller_system(self) -> Caller:
        return Caller(services=self.services, actor=SYSTEM, metadata=Metadata())

    # --------------------------------------------------------------------- DATA

    async def deliver(self, accepted: Accepted, mail_from: str | None, content: bytes) -> str:
        """Turn the mail ``content`` (from envelope sender ``mail_from``) to ``accepted`` into
        a comment or a message; the SMTP answer (``250`` or a refusal)."""
        try:
            message = email.message_from_bytes(content, policy=policy.default)
            assert isinstance(message, EmailMessage)
            for result in message.get_all("Authentication-Results", []):
                if _DMARC_FAIL.search(str(result)):
                    raise Refused("550 5.7.1 refused: the sender's domain fails DMARC")
            sender = _sender(mail_from, message)
            target = accepted.target
            if isinstance(target, ReplyTarget):
                return await self._reply(target, sender, message, content)
            return await self._forward(target, sender, message, content)
        except Refused as exc:
            return exc.reply
        except CairnError as exc:
            return _refusal(exc).reply
        except Exception:
            log.exception("mail in: delivery failed")
            return "451 4.3.0 could not take the mail now; try again later"

    def _once(
        self, person_id: str, target: str, message: EmailMessage, content: bytes
    ) -> Idempotency:
        message_id = str(message.get("Message-ID") or "").strip()
        if not message_id:
            message_id = "sha256:" + hashlib.sha256(content).hexdigest()
        key = f"{target}:{message_id}"
        return Idempotency(
            channel=CHANNEL,
            owner=person_id,
            key=key,
            fingerprint=hashlib.sha256(f"mail\n{key}".encode()).digest(),
        )

    async def _reply(
        self, target: ReplyTarget, sender: str, message: EmailMessage, content: bytes
    ) -> str:
        person = await self._person(target.person_id)
        if sender != person.email.strip().lower():
            raise Refused("550 5.7.1 the sender is not the person this reply address is for")
        text = reply_text(body_text(message))
        if not text:
            raise Refused("550 5.6.0 the reply is empty (nothing above the quoted mail)")
        caller = self._caller(
            person, self._once(person.person_id, target.recording_id, message, content)
        )
        cmd = AddComment(recording_id=caller.new_id(RECORDING_ID), content=to_html(text))
        comment_id = await files.add_comment(caller, target.recording_id, cmd)
        return f"250 2.0.0 comment {comment_id} added"

    async def _forward(
        self, target: ProjectTarget, sender: str, message: EmailMessage, content: bytes
    ) -> str:
        claim = fold_email_claim(
            sender, (e.event for e in await self.services.store.read_stream(email_stream(sender)))
        )
        if claim.person_id is None:
            raise Refused("550 5.7.1 the sender is nobody in this Cairn")
        person = await self._person(claim.person_id)
        caller = self._caller(
            person, self._once(person.person_id, target.project_id, message, content)
        )
        recording_id = caller.new_id(RECORDING_ID)
        parts = list(message.iter_attachments())
        if len(parts) > MAX_ATTACHMENTS:
            raise Refused(f"552 5.3.4 a mail may bring at most {MAX_ATTACHMENTS} attachments")
        project = await load_project(caller, target.project_id)
        # Whether they may post, before any file is stored.
        try:
            check(caller.actor, Action.CREATE_RECORDING, project_facts(project))
            require_writable(project)
        except CairnError as exc:
            raise _refusal(exc) from None
        refs = [await self._attach(caller, person.person_id, part) for part in parts]
        cmd = PostMessage(
            recording_id=recording_id,
            subject=forward_subject(str(message.get("Subject") or "")) or "(no subject)",
            body=to_html(body_text(message)) or "<p></p>",
            attachments=tuple(refs),
        )
        message_id = await files.post_message(caller, target.project_id, cmd)
        return f"250 2.0.0 message {message_id} posted"

    async def _attach(self, caller: Caller, person_id: str, part: EmailMessage) -> FileRef:
        """A mail's attachment stored and claimed as the sender's, as an upload would be."""
        data = part.get_content()
        if isinstance(data, str):
            data = data.encode(part.get_content_charset() or "utf-8")
        if not isinstance(data, bytes):
            data = part.get_payload(decode=True) or b""
        if len(data) > self.max_upload:
            raise Refused(f"552 5.3.4 an attachment is larger than {self.max_upload} bytes")

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        try:
            blob = await self.blobs.put(chunks(), max_size=self.max_upload)
        except TooLarge:
            raise Refused(
                f"552 5.3.4 an attachment is larger than {self.max_upload} bytes"
            ) from None
        attachable_id = caller.new_id(ATTACHABLE_ID)
        name = part.get_filename() or "attachment"
        # The same mail delivered again finds its attachable there already.
        with contextlib.suppress(asyncpg.UniqueViolationError):
            await attachables.create(
                self._pool,
                attachable_id,
                blob,
                name=name,
                content_type=part.get_content_type(),
                created_by=person_id,
            )
        ref = await attachables.claim(self._pool, attachable_id, person_id)
        assert ref is not None
        return ref


def _sender(mail_from: str | None, message: EmailMessage) -> str:
    """The one address the mail is from: the envelope's, which the ``From`` header must
    repeat (any case).

    Raises:
        Refused: no sender, several, or the two disagree.
    """
    envelope = (mail_from or "").strip().strip("<>").lower()
    headers = email.utils.getaddresses([str(v) for v in message.get_all("From", [])])
    addresses = {address.strip().lower() for _, address in headers if address}
    if not envelope or addresses != {envelope}:
        raise Refused("550 5.7.1 the envelope sender and the From header must be one address")
    return envelope


def _refusal(exc: CairnError) -> Refused:
    if isinstance(exc, (NotFound, Forbidden)):
        return Refused(f"550 5.7.1 not allowed: {exc}")
    if isinstance(exc, Conflict):
        return Refused(f"550 5.7.1 read-only: {exc}")
    if isinstance(exc, (InvalidCommand, IdempotencyKeyReused)):
        return Refused(f"550 5.6.0 refused: {exc}")
    if isinstance(exc, TooLarge):
        return Refused(f"552 5.3.4 {exc}")
    raise exc


# ------------------------------------------------------------------------ listeners


class Handler:
    """aiosmtpd's handler: recipients checked at ``RCPT TO``, mails delivered at ``DATA``."""

    def __init__(self, inbound: Inbound, *, lmtp: bool) -> None:
        self.inbound = inbound
        self.lmtp = lmtp
        self._accepted: dict[int, list[Accepted]] = {}

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        self._accepted[id(envelope)] = []
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        try:
            accepted = await self.inbound.recipient(address)
        except Refused as exc:
            return exc.reply
        except Exception:
            log.exception("mail in: checking a recipient failed")
            return "451 4.3.0 could not check the address now; try again later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        self._accepted.setdefault(id(envelope), []).append(accepted)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        accepted = self._accepted.pop(id(envelope), [])
        content = envelope.original_content or b""
        answers = [await self.inbound.deliver(a, envelope.mail_from, content) for a in accepted]
        if self.lmtp:
            # One answer per accepted recipient, in their order (RFC 2033).
            return "\r\n".join(answers) if answers else "554 5.5.1 no valid recipients"
        refused = [a for a in answers if not a.startswith("2")]
        return refused[0] if refused else (answers[0] if answers else "554 5.5.1 no recipients")

    async def handle_RSET(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self._accepted.pop(id(envelope), None)
        return "250 OK"


@dataclass
class Listener:
    """A listening LMTP or SMTP server (:func:`listen`)."""

    server: asyncio.Server
    host: str
    port: int

    async def close(self) -> None:
        self.server.close()
        await self.server.wait_closed()


async def listen(inbound: Inbound, host: str, port: int, *, lmtp: bool) -> Listener:
    """Listen on ``host``:``port`` in this event loop (port 0: any free one), speaking LMTP
    or SMTP. Mails larger than ``max_upload`` are refused (``552``) as they arrive."""
    handler = Handler(inbound, lmtp=lmtp)
    protocol: type[SMTP] = LMTP if lmtp else SMTP
    options: dict[str, Any] = {
        "data_size_limit": inbound.max_upload,
        "enable_SMTPUTF8": True,
        "decode_data": False,
        "hostname": inbound.domain or None,
    }
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: protocol(handler, **options), host, port)
    bound = server.sockets[0].getsockname()
    return Listener(server=server, host=str(bound[0]), port=int(bound[1]))


def parse_endpoint(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:24`` for IPv6) as (host, port).

    Raises:
        ValueError: not so.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"not HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


__all__: Sequence[str] = [
    "Accepted",
    "Handler",
    "Inbound",
    "Listener",
    "Refused",
    "listen",
    "parse_endpoint",
    "serve",
]


async def serve(
    settings: Settings,
    endpoints: Sequence[tuple[str, str, int]],
    *,
    started: Callable[[list[tuple[str, Listener]]], None] | None = None,
) -> None:
    """``cairn mail serve``: listen on each (``"lmtp"`` or ``"smtp"``, host, port) against
    the database ``settings`` name, until cancelled (Ctrl-C, SIGTERM). No read models run
    here: commands answer once appended."""
    store = await EventStore.open(
        settings.database_url, min_size=1, max_size=10, timeout=settings.db_timeout
    )
    services = Services(
        store=store,
        project_states=StreamStates(evolve_project),
        person_states=StreamStates(evolve_person),
        wait_timeout=settings.ryw_timeout,
        time_zone=settings.time_zone,
    )
    inbound = Inbound(services, domain=settings.mail_domain, max_upload=settings.max_upload)
    listeners: list[tuple[str, Listener]] = []
    try:
        for kind, host, port in endpoints:
            listeners.append((kind, await listen(inbound, host, port, lmtp=kind == "lmtp")))
        if started is not None:
            started(listeners)
        await asyncio.Event().wait()
    finally:
        for _, listener in listeners:
            await listener.close()
        await store.close()
