"""The rate limits of signing in, per instance: :class:`SignInLimits`."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request

from .problems import ApiError
from .ratelimit import RateLimiter

MAX_KEYS: Final = 100_000
"""Addresses and client addresses remembered, at most, before the buckets start again."""


class SignInLimits:
    """Rate limits of signing in (and of asking for sign-in or reset mail), per instance: a
    token bucket per address (``burst`` attempts, ``per_minute`` back each minute) and one per
    client address (five times both)."""

    def __init__(self, burst: float, per_minute: float) -> None:
        self._rate = per_minute / 60 if burst > 0 else 0.0
        self._burst = burst
        self._fresh()

    def _fresh(self) -> None:
        self.addresses = RateLimiter(self._rate, self._burst)
        self.clients = RateLimiter(self._rate * 5, self._burst * 5)

    def take(self, request: Request, email: str | None) -> None:
        """Count one attempt; 429 with ``Retry-After`` past either limit."""
        if len(self.addresses) + len(self.clients) > MAX_KEYS:
            # Addresses are the caller's to choose: memory stays bounded (a flood of
            # made-up addresses forgets the buckets; the lockout, in the database, stays).
            self._fresh()
        client = request.client.host if request.client is not None else "?"
        wait = self.clients.take(client)
        if email is not None:
            wait = max(wait, self.addresses.take(email.lower()))
        if wait > 0:
            raise too_many(wait)


def too_many(wait: float) -> ApiError:
    """The 429 of the API's limiter (:func:`.auth.rate_limit`), waiting ``wait`` seconds."""
    return ApiError(
        429,
        f"too many requests; retry in {wait:.1f} s",
        headers={"Retry-After": str(max(1, round(wait)))},
    )
