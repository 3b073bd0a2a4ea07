"""Waiting for something that holds a moment later: a read model that follows the log, a
server that answers once it has started, a database that comes back."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T] | T],
    *,
    # Not asyncio.timeout around the call: on expiry the caller gets the check's last
    # error (what still did not hold), not a bare TimeoutError.
    timeout: float,  # noqa: ASYNC109
    interval: float = 0.01,
    retry_on: tuple[type[BaseException], ...] = (AssertionError,),
) -> T:
    """Call ``check`` until it returns without raising; return what it returned.

    ``check`` takes no argument and may be a coroutine function or a plain one. It says
    "not yet" by raising one of ``retry_on`` (by default ``AssertionError``, so a check is
    a few ``assert`` statements); any other exception is a failure and propagates at once.
    Between calls ``eventually`` waits ``interval`` seconds: a poll, for conditions that
    nothing in the test can wait on directly.

    Args:
        check: the condition, or an action to retry.
        timeout: seconds from the first call after which ``eventually`` gives up; a call
            still running then is cancelled.
        interval: seconds between calls.
        retry_on: the exceptions that mean "not yet".

    Raises:
        The last "not yet" exception, with a note saying how long it was tried, once
        ``timeout`` has passed; ``TimeoutError`` if the first call was still running then.
    """
    last: BaseException | None = None
    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            while True:
                try:
                    result = check()
                    if inspect.isawaitable(result):
                        return await result  # type: ignore[no-any-return]
                    return result  # type: ignore[return-value]
                except retry_on as exc:
                    last = exc
                await asyncio.sleep(interval)
    except TimeoutError:
        if not deadline.expired() or last is None:
            raise
        last.add_note(f"(still so after {timeout} s of retrying)")
        raise last from None
