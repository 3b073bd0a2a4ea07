"""Per-request context: who is calling, the decoded body, query helpers, new ids."""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import HTTPConnection, Request

from ..domain.access import Viewer
from .problems import ApiError, FieldError

if TYPE_CHECKING:
    from ..config import Settings
    from ..domain.projects import ProjectState
    from ..events.store import EventStore
    from ..projections.engine import ProjectionEngine
    from .folds import StreamStates


@dataclass
class Ctx:
    """What a handler gets: the request, the caller, the decoded body and the services."""

    request: Request
    viewer: Viewer | None
    endpoint_path: str
    body: Any = None
    idempotency_key: str | None = None
    idempotency_fingerprint: bytes | None = None
    """The request's method, path and body hashed: what makes a retry the same request."""
    _ids: int = field(default=0)

    @property
    def me(self) -> Viewer:
        """The authenticated caller (handlers of bearer endpoints only)."""
        assert self.viewer is not None
        return self.viewer

    @property
    def store(self) -> EventStore:
        return self.request.state.store  # type: ignore[no-any-return]

    @property
    def engine(self) -> ProjectionEngine:
        return self.request.state.engine  # type: ignore[no-any-return]

    @property
    def settings(self) -> Settings:
        return self.request.state.settings  # type: ignore[no-any-return]

    @property
    def project_states(self) -> StreamStates[ProjectState]:
        """This process's folds of project streams (see folds.py)."""
        return self.request.state.project_states  # type: ignore[no-any-return]

    def path(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    def new_id(self, prefix: str) -> str:
        """A new id like ``prj_3f2a…``. Under an Idempotency-Key the ids are derived from the
        key, so a retried request creates the very same ids (and the store replays it)."""
        self._ids += 1
        if self.idempotency_key is not None and self.viewer is not None:
            seed = f"{self.viewer.person_id}\x00{self.idempotency_key}\x00{prefix}\x00{self._ids}"
            return f"{prefix}_{hashlib.blake2b(seed.encode(), digest_size=10).hexdigest()}"
        return f"{prefix}_{uuid.uuid4().hex[:20]}"

    def store_key(self, suffix: str = "") -> str | None:
        """The event-store idempotency key for this request's appends (None without one)."""
        if self.idempotency_key is None or self.viewer is None:
            return None
        return f"http:{self.viewer.person_id}:{self.idempotency_key}:{suffix}"

    # ------------------------------------------------------------- query parameters

    def query(self, name: str) -> str | None:
        return self.request.query_params.get(name)

    def query_choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """A query parameter that must be one of ``choices``."""
        value = self.request.query_params.get(name, default)
        if value not in choices:
            raise ApiError(
                400,
                f"?{name}= must be one of {', '.join(choices)}",
                field_errors=[FieldError(field=name, detail=f"not one of {', '.join(choices)}")],
            )
        return value

    def query_int(self, name: str, default: int, *, low: int, high: int) -> int:
        """An integer query parameter within [low, high]."""
        raw = self.request.query_params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise ApiError(
                400,
                f"?{name}= must be a whole number from {low} to {high}",
                field_errors=[
                    FieldError(field=name, detail=f"not a whole number in {low}..{high}")
                ],
            )
        return value

    def limit(self) -> int:
        """``?limit=`` (1-100, default 25)."""
        return self.query_int("limit", 25, low=1, high=100)


# ----------------------------------------------------------------- authentication


def hash_secret(secret: str) -> str:
    """How token secrets are stored: hex sha256 (secrets are 256-bit random, so no salt)."""
    return hashlib.sha256(secret.encode()).hexdigest()


_WWW = {"WWW-Authenticate": 'Bearer realm="cairn"'}


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer``, or of ``?access_token=`` (browsers' WebSockets)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "use Authorization: Bearer <token>", headers=_WWW)
        return token.strip()
    return None


class TokenCache:
    """Who holds which API token, remembered briefly so that most requests skip the look-up.

    An entry (keyed by the token's hash) is used only while (a) no other process appended
    to the log since it was read, as far as this one knows: the listener's remote
    generation moves with every NOTIFY of another process (and every reconnect), so a
    revocation, deactivation or role change made elsewhere drops every entry as soon as its
    NOTIFY arrives; (b) no change of a person made by this process finished waiting for the
    read models since (:meth:`written`): an entry read while the read models still lagged
    behind a revocation is dropped once they show it, before that write answers, while this
    process's other writes (messages, to-dos ...) keep the entries; and (c) for at most
    ``ttl`` seconds, which bounds the lag between another instance's NOTIFY and the read
    models showing its change (this process is not told when they do).

    So on the instance that handled it, a revocation holds from its response on, exactly as
    without the cache; on other instances at most ``ttl`` after their read models show it.
    Negative answers are not cached.
    """

    def __init__(self, ttl: float = 1.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._epoch = 0
        self._entries: dict[str, tuple[Viewer, int, int, float]] = {}

    def get(self, token_hash: str, generation: int) -> Viewer | None:
        """The cached holder of ``token_hash`` if still valid at wake-up ``generation``."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        viewer, seen, epoch, expires = entry
        if seen != generation or epoch != self._epoch or time.monotonic() > expires:
            del self._entries[token_hash]
            return None
        return viewer

    def put(self, token_hash: str, viewer: Viewer, generation: int, epoch: int) -> None:
        """Remember ``viewer`` as read at ``generation`` and ``epoch`` (taken before the read)."""
        if len(self._entries) >= self.size:
            self._entries.clear()
        self._entries[token_hash] = (viewer, generation, epoch, time.monotonic() + self.ttl)

    @property
    def epoch(self) -> int:
        """Moves on every :meth:`written`; take it before a look-up, pass it to :meth:`put`."""
        return self._epoch

    def written(self) -> None:
        """A change of a person made by this process is now visible in the read models:
        forget every entry."""
        self._epoch += 1
        self._entries.clear()


async def principal_for_token(request: HTTPConnection, token: str) -> Viewer | None:
    """The active person holding API token ``token``, or None."""
    token_hash = hash_secret(token)
    store = request.state.store
    cache: TokenCache | None = getattr(request.state, "tokens", None)
    # Taken before the read: a commit or write landing during it makes the entry stale.
    generation: int = store.wakeups.remote_generation
    epoch = cache.epoch if cache is not None else 0
    if cache is not None and (hit := cache.get(token_hash, generation)) is not None:
        return hit
    row = await store.pool.fetchrow(
        "SELECT p.person_id, p.role, p.active FROM api_tokens t JOIN people p USING (person_id) "
        "WHERE t.token_hash = $1 AND NOT t.revoked AND p.active",
        token_hash,
    )
    if row is None:
        return None
    viewer = Viewer(person_id=row["person_id"], role=row["role"], active=row["active"])
    if cache is not None:
        cache.put(token_hash, viewer, generation, epoch)
    return viewer


async def authenticate(request: Request) -> Viewer:
    """The caller of a bearer endpoint; 401 when the token is missing, unknown or revoked;
    429 when the caller exceeds the rate limit."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "this endpoint needs Authorization: Bearer <token>", headers=_WWW)
    principal = await principal_for_token(request, token)
    if principal is None:
        raise ApiError(401, "the token is unknown or revoked", headers=_WWW)
    rate_limit(request, principal.person_id)
    return principal


def rate_limit(request: HTTPConnection, person_id: str) -> None:
    """Count one request of ``person_id`` against the app's rate limit; 429 past it."""
    limiter: RateLimiter | None = getattr(request.state, "limiter", None)
    if limiter is not None:
        wait = limiter.take(person_id)
        if wait > 0:
            raise ApiError(
                429,
                f"too many requests; retry in {wait:.1f} s",
                headers={"Retry-After": str(max(1, round(wait)))},
            )


class RateLimiter:
    """Token bucket per person (per instance): ``rate`` requests/s, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take one token; return 0 if allowed, else the seconds until one is available."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        return 0.0


# ----------------------------------------------------------------- bodies


def _is_json(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def read_body(request: Request) -> bytes:
    """The raw body, refusing (413) anything over the configured limit without reading it all."""
    limit: int = request.state.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request bodies are limited to {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request bodies are limited to {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request.state.raw_body = body
    return body


async def decode_body(request: Request, decoder: msgspec.json.Decoder[Any]) -> Any:
    """Decode a JSON body: 415 if not JSON, 413 if too large, 400 if malformed, 422 if it
    does not fit the endpoint's type (unknown fields included)."""
    content_type = request.headers.get("content-type", "")
    if not _is_json(content_type):
        raise ApiError(415, "send the body as application/json")
    body = await read_body(request)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        where = message.rsplit(" - at `", 1)
        field_name = (
            where[1].rstrip("`").removeprefix("$.").removeprefix("$") if len(where) == 2 else ""
        )
        raise ApiError(
            422, message, field_errors=[FieldError(field=field_name or "(body)", detail=where[0])]
        ) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}") from None


# ----------------------------------------------------------------- cursors


def encode_cursor(value: Any) -> str:
    """An opaque pagination cursor."""
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


def decode_cursor(raw: str, kind: Any) -> Any:
    """Decode a cursor made by :func:`encode_cursor`; 400 if it was not."""
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        return msgspec.json.decode(data, type=kind)
    except (ValueError, msgspec.DecodeError):
        raise ApiError(400, "?cursor= is not a cursor this API gave out") from None


def next_link(request: Request, cursor: str | None, rel: str = "next") -> dict[str, str]:
    """A Link header for the page at ``cursor`` (empty if there is none)."""
    if cursor is None:
        return {}
    url = request.url.include_query_params(cursor=cursor)
    return {"Link": f'<{url}>; rel="{rel}"'}
