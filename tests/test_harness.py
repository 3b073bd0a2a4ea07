"""The harness's own contracts (``tests/support``): what ``eventually`` promises the tests
that wait with it."""

from __future__ import annotations

import asyncio

import pytest

from .support.waiting import eventually


async def test_eventually_returns_what_the_check_returned_once_it_holds() -> None:
    """Sync and async checks are called until they stop raising AssertionError."""
    calls: list[int] = []

    def third_time() -> str:
        calls.append(1)
        assert len(calls) == 3
        return "held"

    async def at_once() -> int:
        return 7

    assert await eventually(third_time, timeout=5.0, interval=0) == "held"
    assert len(calls) == 3
    assert await eventually(at_once, timeout=5.0) == 7


async def test_eventually_lets_other_errors_through_at_once() -> None:
    """An exception outside ``retry_on`` is a failure, not a "not yet": no retry."""
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        await eventually(broken, timeout=5.0)
    assert calls == [1]

    def unavailable() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionError("down")
        return "up"

    assert await eventually(unavailable, timeout=5.0, interval=0, retry_on=(OSError,)) == "up"


async def test_eventually_raises_the_last_error_when_time_is_up() -> None:
    """Past the timeout the check's last AssertionError is raised, with a note; a first call
    that never returns is cancelled and gives TimeoutError."""
    attempts: list[int] = []

    def never() -> None:
        attempts.append(1)
        raise AssertionError(f"attempt {len(attempts)}")

    with pytest.raises(AssertionError) as failed:
        await eventually(never, timeout=0.05)
    assert str(failed.value) == f"attempt {len(attempts)}"
    assert "0.05 s" in failed.value.__notes__[0]

    cancelled = False

    async def hangs() -> None:
        nonlocal cancelled
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled = True
            raise

    with pytest.raises(TimeoutError):
        await eventually(hangs, timeout=0.05)
    assert cancelled
