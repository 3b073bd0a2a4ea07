"""Query and path parameters: declared once per route with their types, checked before the
handler runs, and documented in OpenAPI from the same declaration.

This is the one place where text from a URL becomes a value, with the same rules for every
route (docs/API.md, "Requests"):

* no value holds a control character (PostgreSQL text cannot hold NUL);
* ids are of their kind's shape (:data:`PATH_IDS`: ``prj_`` and 20 hex digits...);
* integers are ASCII digits (``isdigit()`` also takes "¹") within their declared bounds;
* times are RFC 3339 with an offset, converted to UTC (a conversion that overflows is
  refused here, not by the database).

A query parameter that breaks a rule is a 400 naming it: the resource exists, the request is
malformed. A path parameter that breaks one is a 404, as an unknown id is: the URL names
nothing, and an id either names something or does not (RFC 9110 §15.5.5).

On the ``/v1`` routes a query parameter the route does not declare is refused (400 naming
it), so a misspelt filter never silently returns everything; feed routes ignore unknown
parameters (feed readers append cache-busters).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import GenericAlias
from typing import Annotated, Any, Final, Literal

import msgspec
from starlette.datastructures import QueryParams

from ..events.streams import PERSON_ID, PROJECT_ID, RECORDING_ID, TOKEN_ID, id_pattern
from .problems import ApiError, FieldError

INT64_MAX: Final = 2**63 - 1
"""The largest integer PostgreSQL's ``bigint`` holds (log positions, ``seq``)."""

_CONTROLS: Final = r"\x00-\x1f\x7f"
_CONTROL: Final = re.compile(f"[{_CONTROLS}]")
_DIGITS: Final = re.compile(r"[0-9]+")

Text = Annotated[str, msgspec.Meta(pattern=f"^[^{_CONTROLS}]*$")]
"""Text in a URL: no control characters (what a parameter is unless declared otherwise)."""


@dataclass(frozen=True)
class Param:
    """A parameter: what it means, its type (a msgspec type, :data:`Text` by default: the
    value is converted to it, and its JSON Schema is the parameter's schema), for a query
    parameter whether it may be given several times (the handler then gets a list), and
    ``parse``: what turns a value of the type into what the handler gets, raising
    ``ValueError`` (whose message says why) for a value it refuses; ``required``: a query
    parameter the route cannot do without (missing: 400 naming it)."""

    description: str
    type: Any = Text
    repeated: bool = False
    parse: Callable[[Any], Any] | None = None
    required: bool = False

    @property
    def converted(self) -> Any:
        """What a given value is converted to: the type, or a list of it when repeated."""
        return GenericAlias(list, (self.type,)) if self.repeated else self.type

    def value(self, raw: str) -> Any:
        """One given value as the handler gets it.

        Raises:
            ValueError: the value breaks a rule (:func:`from_text`), or ``parse`` refuses it;
                the message says why.
        """
        value = from_text(raw, self.type)
        return value if self.parse is None else self.parse(value)


def from_text(raw: str, kind: Any) -> Any:
    """``raw`` (text from a URL: a parameter, a cursor's column) as a value of ``kind`` (a
    msgspec type), by the rules of this module's docstring.

    Raises:
        ValueError: a control character, an integer not in ASCII digits, or a value that
            does not fit ``kind`` (its bounds, pattern, or closed set); the message says why.
    """
    if _CONTROL.search(raw):
        raise ValueError("must not contain control characters")
    base = typing.get_args(kind)[0] if typing.get_origin(kind) is Annotated else kind
    if base is int and not _DIGITS.fullmatch(raw):
        raise ValueError("must be a whole number in ASCII digits")
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc).split(" - at ")[0]) from None


_RFC3339: Final = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]([0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?)"
    r"([Zz]|[+\- ][0-9]{2}:[0-9]{2})"
)


def utc_time(text: str) -> datetime:
    """An RFC 3339 time with an offset (``Z``, ``z`` or ``±hh:mm``; a ``+`` left unescaped in
    a query string arrives as a space), as an aware UTC datetime.

    Raises:
        ValueError: not such a time, or one whose UTC conversion leaves the calendar
            (``0001-01-01T00:00:00+14:00``).
    """
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError("must be an RFC 3339 time with an offset, like 2026-05-01T09:00:00Z")
    day, clock, offset = match.groups()
    offset = "+00:00" if offset in "Zz" else offset.replace(" ", "+")
    whole, _, fraction = clock.partition(".")
    clock = f"{whole}.{fraction[:6]}" if fraction else whole
    try:
        return datetime.fromisoformat(f"{day}T{clock}{offset}").astimezone(UTC)
    except ValueError:
        raise ValueError(
            "must be an RFC 3339 time with an offset, like 2026-05-01T09:00:00Z"
        ) from None
    except OverflowError:
        raise ValueError("is out of range: in UTC it falls outside the years 1-9999") from None


def rfc3339(description: str) -> Param:
    """A time parameter, RFC 3339 with an offset; the handler gets it as a UTC datetime
    (:func:`utc_time`)."""
    return Param(
        description,
        Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})],
        parse=utc_time,
    )


# Ids of each kind as they arrive in a URL, of the shape service.events.streams gives them
# (prj_ and 20 hex digits...).
ProjectIdText = Annotated[str, msgspec.Meta(pattern=id_pattern(PROJECT_ID))]
PersonIdText = Annotated[str, msgspec.Meta(pattern=id_pattern(PERSON_ID))]
RecordingIdText = Annotated[str, msgspec.Meta(pattern=id_pattern(RECORDING_ID))]
TokenIdText = Annotated[str, msgspec.Meta(pattern=id_pattern(TOKEN_ID))]

PATH_IDS: Final = {
    "project_id": Param("a project's id", ProjectIdText),
    "person_id": Param("a person's id", PersonIdText),
    "token_id": Param("an API token's id", TokenIdText),
    "id": Param("a recording's id", RecordingIdText),
}
"""The type of each path parameter a route does not declare itself, by name."""

LIMIT: Final = Param("page size, 1-100 (default 25)", Annotated[int, msgspec.Meta(ge=1, le=100)])
Cursor = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_-]*$")]
"""A cursor as the API gives them out (base64url); which of those are keys of a list only
decoding says (:mod:`.paging`)."""
CURSOR: Final = Param("where the page starts: from a Link header", Cursor)
PAGING: Final = {"limit": LIMIT, "cursor": CURSOR}
"""The paging parameters of every list."""
RecordingStatus = Literal["active", "archived", "trashed"]
STATUS: Final = Param("active (default), archived or trashed", RecordingStatus)
SINCE: Final = rfc3339("RFC 3339 time; items at or after it")
UNTIL: Final = rfc3339("RFC 3339 time; items before it")


def query_values(
    query: QueryParams, declared: Mapping[str, Param], *, strict: bool
) -> dict[str, Any]:
    """The declared query parameters given, as their handlers get them (:meth:`Param.value`).

    Raises:
        ApiError: 400 naming each parameter that is undeclared (``strict``), missing while
            required, repeated without being repeatable, or whose value breaks a rule.
    """
    problems: list[FieldError] = []
    if strict:
        problems += [
            FieldError(field=name, detail="not a parameter of this route")
            for name in dict.fromkeys(query.keys())
            if name not in declared
        ]
    values: dict[str, Any] = {}
    for name, param in declared.items():
        given = query.getlist(name)
        if not given:
            if param.required:
                problems.append(FieldError(field=name, detail="is required"))
            continue
        if len(given) > 1 and not param.repeated:
            problems.append(FieldError(field=name, detail="given more than once"))
            continue
        try:
            converted = [param.value(raw) for raw in given]
        except ValueError as exc:
            problems.append(FieldError(field=name, detail=str(exc)))
            continue
        values[name] = converted if param.repeated else converted[0]
    if problems:
        names = ", ".join(f"?{p.field}=" for p in problems)
        raise ApiError(400, f"bad query parameters: {names}", field_errors=problems)
    return values


def check_path(path: str, values: Mapping[str, Any], declared: Mapping[str, Param]) -> None:
    """Check the parameters ``values`` of ``path`` against their types ``declared``.

    Raises:
        ApiError: 404, a value breaks a rule: the path names nothing, as with an unknown id.
    """
    for name, param in declared.items():
        try:
            param.value(str(values[name]))
        except ValueError:
            raise ApiError(
                404, f"nothing is at {path}: {{{name}}} is not {param.description}"
            ) from None
