"""The test harness: what the test modules share, one concept a module.

* ``postgres``: the PostgreSQL the tests run on, a fresh database per test.
* ``servers``: Cairn on a real uvicorn in the test's event loop.
* ``waiting``: :func:`~tests.support.waiting.eventually`, for what holds a moment later.
* ``api``: the first admin's HTTP client and the helpers every HTTP test uses.
* ``teams``: the project of the recordings tests and its people.
* ``scenario``: longer stories for the read-side tests (activity, feeds, time travel...).
* ``realtime``: WebSocket clients and the people and projects the real-time tests use.
* ``asyncapi``: the official AsyncAPI schema (from npm) and the stream's frames judged
  against the served document.
* ``actors``: who issues a command, and when, in the pure domain tests.
* ``events``: event types that exist only for the tests.
* ``cli``: the ``cairn`` command as installed.

Fixtures stay in ``tests/conftest.py``; test modules import from here, never from each
other.
"""
