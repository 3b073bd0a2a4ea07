"""The pure rules of Cairn: states folded from events, decisions on commands, access rules.

No I/O here: these modules never import asyncpg, starlette or websockets, never read a clock
(``Context.now`` is given) and never make ids (commands carry them). Each aggregate module
offers ``evolve_<x>(state, event) -> state``, ``fold_<x>(events) -> state | None`` and
``decide_<command>(states..., cmd, ctx) -> list[Event]``; an empty list means "nothing to
change" (answer with the current state, append nothing). States carry ``version``, the stream
version they were folded to: append with it as the expected version.

Errors: ``NotFound`` (may not see it) before ``Forbidden`` (may not do it) before ``Conflict``
(state forbids it) before ``InvalidCommand`` (bad value), all from :mod:`service.errors`.
"""
