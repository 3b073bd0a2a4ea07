"""Mail to an address rather than to a person of Cairn's notices: sign-in links, password
reset links and invitations, the rows of table ``sign_in_mail`` (migrations 0012, 0014;
docs/OPERATIONS.md "Sign-in mail").

Each step claims due rows in one short transaction (``FOR UPDATE SKIP LOCKED``: instances
share the work and never send a row twice), drops the expired ones unsent, sends each in
its recipient's language (:func:`.compose.direct`: plain text and HTML, ``Auto-Submitted``,
no ``List-Unsubscribe``: asked-for mail), and deletes each row sent in that transaction,
so a row is gone once handed over. A temporary failure keeps the row for another try
after ``CAIRN_MAIL_RETRY_SECONDS`` (doubled each time) until ``CAIRN_MAIL_MAX_ATTEMPTS``;
a permanent one drops it. The SMTP connection is the e-mail sender's
(:class:`~.sender.MailOut` runs these steps in its loop, through its ``_send``).

The token is in the mail and nowhere else: never logged, never in an error detail.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, Protocol

import asyncpg

from ..commands.caller import Services
from ..config import Settings
from ..domain.i18n import Translator, locale_or, translator
from . import compose
from .outbox import LEASE, retry_delay


class Outcome(Protocol):
    """What became of a try at a mail (the sender's ``Outcome``): ``sent``, ``retry`` or
    ``failed``, and why."""

    @property
    def state(self) -> str: ...

    @property
    def detail(self) -> str: ...


_log = logging.getLogger(__name__)

BATCH: Final = 20
"""Rows claimed at a time."""

# Claimed in one statement, leased (``next_at``) until LEASE from now, so that no other
# instance takes them while they are sent and no transaction stays open over SMTP (the
# log's readers wait on the oldest open transaction).
_CLAIM: Final = """
WITH claimed AS (
    UPDATE sign_in_mail SET next_at = $3
    WHERE mail_id IN (
        SELECT mail_id FROM sign_in_mail
        WHERE expires_at > $1 AND (next_at IS NULL OR next_at <= $1)
        ORDER BY mail_id LIMIT $2
        FOR UPDATE SKIP LOCKED
    )
    RETURNING *
)
SELECT m.mail_id, m.purpose, m.person_id, m.email, m.token, m.name, m.locale, m.inviter,
       m.project, m.attempts, p.name AS person_name, p.locale AS person_locale,
       p.active AS person_active
FROM claimed m LEFT JOIN people p ON p.person_id = m.person_id
ORDER BY m.mail_id
"""
_DELETE: Final = "DELETE FROM sign_in_mail WHERE mail_id = $1"

_DROP_EXPIRED: Final = """
DELETE FROM sign_in_mail WHERE mail_id IN (
    SELECT mail_id FROM sign_in_mail WHERE expires_at <= $1 FOR UPDATE SKIP LOCKED
)
"""


@dataclass
class DirectMail:
    """Sends the rows of ``sign_in_mail``.

    Args:
        services: the store (its pool) and clock (a fixed one in tests: expiry is by it).
        settings: the instance's (link template, default language, retries).
        send: hands ``(message, to address)`` to the SMTP server (the sender's connection).
        sender: the ``From``.
        domain: of ``Message-ID``s.
    """

    services: Services
    settings: Settings
    send: Callable[[bytes, str], Awaitable[Outcome]]
    sender: str
    domain: str

    async def step(self) -> bool:
        """Send what is due now; whether there was anything."""
        now = self.services.clock()
        pool = self.services.store.pool
        await pool.execute(_DROP_EXPIRED, now)
        rows = await pool.fetch(_CLAIM, now, BATCH, now + LEASE)
        # Each row is deleted once handed over; a crash in between leaves it leased, to be
        # sent again when the lease ends: at most once more, like other mail.
        for row in rows:
            await self._one(pool, row)
        return bool(rows)

    async def _one(self, pool: asyncpg.Pool, row: asyncpg.Record) -> None:
        mail_id = row["mail_id"]
        if row["purpose"] != "invitation" and not row["person_active"]:
            await pool.execute(_DELETE, mail_id)
            return
        outcome = await self.send(self.compose(row), row["email"])
        attempts = row["attempts"] + 1
        if outcome.state == "retry" and attempts < self.settings.mail_max_attempts:
            await pool.execute(
                "UPDATE sign_in_mail SET attempts = $2, next_at = $3 WHERE mail_id = $1",
                mail_id,
                attempts,
                self.services.clock() + retry_delay(self.settings.mail_retry_seconds, attempts),
            )
            _log.info("%s mail %s not sent yet: %s", row["purpose"], mail_id, outcome.detail)
            return
        if outcome.state != "sent":
            _log.warning("%s mail %s failed: %s", row["purpose"], mail_id, outcome.detail)
        await pool.execute(_DELETE, mail_id)

    def link(self, purpose: str, token: str) -> str:
        """The front end's page for ``token`` (``CAIRN_LINK_URL``)."""
        return self.settings.link_url.format(purpose=purpose, token=token)

    def compose(self, row: asyncpg.Record) -> bytes:
        """The mail of one row of ``sign_in_mail``, in its recipient's language."""
        purpose = row["purpose"]
        locale = locale_or(row["locale"] or row["person_locale"], self.settings.locale)
        name = row["person_name"] or row["name"] or ""
        to = compose.Recipient(row["person_id"] or "", name, row["email"], locale)
        digest = hashlib.sha256(f"{purpose}.{row['mail_id']}".encode()).hexdigest()[:20]
        env = compose.Envelope(
            sender=self.sender,
            message_id=f"<{purpose}.{row['mail_id']}.{digest}@{self.domain}>",
            unsubscribe_url="",
        )
        t = translator(locale)
        url = self.link(purpose, row["token"])
        at = self.services.clock()
        hello = [_hello(t, name)]
        if purpose == "sign_in":
            return compose.direct(
                to,
                t.gettext("Your sign-in link to Cairn"),
                [
                    *hello,
                    t.gettext(
                        "Open this link to sign in to Cairn. It works once, within 15 minutes:"
                    ),
                ],
                (url, t.gettext("Sign in to Cairn")),
                [t.gettext("If you did not ask for it, ignore this e-mail.")],
                env,
                at,
            )
        if purpose == "reset":
            return compose.direct(
                to,
                t.gettext("Choose a new Cairn password"),
                [
                    *hello,
                    t.gettext(
                        "Open this link to choose a new password. It works once, within 15 minutes:"
                    ),
                ],
                (url, t.gettext("Choose a new password")),
                [t.gettext("If you did not ask for it, ignore this e-mail: your password stays.")],
                env,
                at,
            )
        inviter, project = row["inviter"] or "", row["project"]
        if project:
            subject = t.gettext("{actor} invited you to {project}").format(
                actor=inviter, project=project
            )
            intro = t.gettext("{actor} invited you to {project}.").format(
                actor=inviter, project=project
            )
        else:
            subject = t.gettext("{actor} invited you to Cairn").format(actor=inviter)
            intro = t.gettext("{actor} invited you to Cairn.").format(actor=inviter)
        return compose.direct(
            to,
            subject,
            [
                *hello,
                intro,
                t.gettext("Accept the invitation (the link works once, within 7 days):"),
            ],
            (url, t.gettext("Accept the invitation")),
            [t.gettext("If you do not know why you got it, ignore this e-mail.")],
            env,
            at,
        )


def _hello(t: Translator, name: str) -> str:
    return t.gettext("Hello {name},").format(name=name) if name else t.gettext("Hello,")
