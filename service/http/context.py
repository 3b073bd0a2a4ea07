"""Per-request context: who is calling, the app's resources, query helpers, and the
application layer's :class:`~service.commands.caller.Caller` for this request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from ..commands.calendar import today_for
from ..commands.caller import Caller, Idempotency, Services
from ..config import Settings
from ..domain.access import Viewer
from ..domain.calendar import Today
from ..domain.i18n import Locale, negotiate
from ..events.base import Metadata
from ..events.store import EventStore
from ..reads.locales import locale_of
from .accesslog import request_id_of
from .conditions import precondition
from .logs import request_id
from .state import State

IDEMPOTENCY_CHANNEL = "http"
"""The channel of store idempotency keys made by HTTP requests (``http:<person>:<key>:…``)."""


@dataclass
class Ctx:
    """What a handler gets: the request, the caller, the app's state, and what the request
    carried (its raw body, its idempotency key)."""

    request: Request
    viewer: Viewer | None
    state: State
    params: dict[str, Any] = field(default_factory=dict)
    """The route's query parameters given, converted to their declared types."""
    raw_body: bytes = b""
    idempotency: Idempotency | None = None
    replay_body: bytes | None = None
    """A different body to save for replays of this POST (e.g. without a one-time secret)."""
    _caller: Caller | None = field(default=None, repr=False)
    _request_id: str | None = field(default=None, repr=False)
    _locale: Locale | None = field(default=None, repr=False)
    _today: Today | None = field(default=None, repr=False)

    @property
    def me(self) -> Viewer:
        """The authenticated caller (handlers of bearer endpoints only)."""
        assert self.viewer is not None
        return self.viewer

    @property
    def services(self) -> Services:
        return self.state["services"]

    @property
    def store(self) -> EventStore:
        return self.state["services"].store

    @property
    def settings(self) -> Settings:
        return self.state["settings"]

    @property
    def request_id(self) -> str:
        """The request's id (:mod:`~service.http.accesslog`: its sane ``X-Request-Id``, or a
        new id), as logged and answered; the same for every append of the request."""
        if self._request_id is None:
            self._request_id = request_id.get() or request_id_of(self.request.scope["headers"])
        return self._request_id

    @property
    def caller(self) -> Caller:
        """This request as the application layer's caller: the authenticated person, the
        metadata of its appends (actor, request id, correlation id) and its idempotency key."""
        if self._caller is None:
            self._caller = Caller(
                services=self.services,
                actor=self.me,
                metadata=Metadata(
                    actor=self.me.person_id,
                    request_id=self.request_id,
                    correlation_id=(
                        self.request.headers.get("x-correlation-id") or self.request_id
                    )[:200],
                    idempotency_key=None if self.idempotency is None else self.idempotency.key,
                ),
                idempotency=self.idempotency,
                precondition=precondition(self.request),
            )
        return self._caller

    async def locale(self) -> Locale:
        """The language of this answer's text: the one ``Accept-Language`` prefers among
        those Cairn writes, else the caller's own (:func:`~service.reads.locales.locale_of`).
        Answers written in it say so with ``Content-Language`` and ``Vary: Accept-Language``
        (:meth:`language_headers`)."""
        if self._locale is None:
            chosen = negotiate(self.request.headers.get("accept-language"))
            if chosen is None:
                chosen = await locale_of(self.store.pool, self.me, self.settings.locale)
            self._locale = chosen
        return self._locale

    async def language_headers(self) -> dict[str, str]:
        """``Content-Language`` of an answer written in :meth:`locale`, and ``Vary`` naming
        the header that chose it."""
        return {"Content-Language": await self.locale(), "Vary": "Accept-Language"}

    async def today(self) -> Today:
        """Today for the caller, in their time zone (else the default zone): what "today",
        "late", "due soon" and "this week" are measured by. The same for the whole request."""
        if self._today is None:
            self._today = await today_for(self.services, self.me.person_id)
        return self._today

    def new_id(self, prefix: str) -> str:
        """A new id (see :meth:`Caller.new_id`)."""
        return self.caller.new_id(prefix)

    def path(self, name: str) -> str:
        """A path parameter, of its type (checked before the handler runs)."""
        return str(self.request.path_params[name])

    # ------------------------------------------------------------- query parameters

    def param(self, name: str, default: Any = None) -> Any:
        """Query parameter ``name`` as its declared type (``default`` when not given)."""
        return self.params.get(name, default)

    def limit(self) -> int:
        """``?limit=`` (1-100, default 25)."""
        limit: int = self.params.get("limit", 25)
        return limit
