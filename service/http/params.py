"""Query and path parameters: declared once per route with their types; query parameters are
checked before the handler runs; both are documented in OpenAPI from the same declaration.

On the ``/v1`` routes a parameter the route does not declare is refused (400 naming it), so
a misspelt filter never silently returns everything; feed routes ignore unknown parameters
(feed readers append cache-busters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import GenericAlias
from typing import Annotated, Any, Final, Literal

import msgspec
from starlette.datastructures import QueryParams

from .problems import ApiError, FieldError


@dataclass(frozen=True)
class Param:
    """A parameter: what it means, its type (a msgspec type, ``str`` by default: the value is
    converted to it, and its JSON Schema is the parameter's schema) and, for a query
    parameter, whether it may be given several times (the handler then gets a list)."""

    description: str
    type: Any = str
    repeated: bool = False

    @property
    def converted(self) -> Any:
        """What a given value is converted to: the type, or a list of it when repeated."""
        return GenericAlias(list, (self.type,)) if self.repeated else self.type


def rfc3339(description: str) -> Param:
    """A time parameter, RFC 3339 with an offset."""
    # Parsed by the handler (it also takes a "+" that arrived as a space); documented as what
    # it accepts.
    return Param(
        description, Annotated[str, msgspec.Meta(extra_json_schema={"format": "date-time"})]
    )


LIMIT: Final = Param("page size, 1-100 (default 25)", Annotated[int, msgspec.Meta(ge=1, le=100)])
CURSOR: Final = Param("where the page starts: from a Link header")
PAGING: Final = {"limit": LIMIT, "cursor": CURSOR}
"""The paging parameters of every list."""
RecordingStatus = Literal["active", "archived", "trashed"]
STATUS: Final = Param("active (default), archived or trashed", RecordingStatus)
SINCE: Final = rfc3339("RFC 3339 time; items at or after it")
UNTIL: Final = rfc3339("RFC 3339 time; items before it")


def query_values(
    query: QueryParams, declared: Mapping[str, Param], *, strict: bool
) -> dict[str, Any]:
    """The declared query parameters given, converted to their types.

    Raises:
        ApiError: 400 naming each parameter that is undeclared (``strict``), repeated
            without being repeatable, or not of its type.
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
            continue
        if len(given) > 1 and not param.repeated:
            problems.append(FieldError(field=name, detail="given more than once"))
            continue
        try:
            values[name] = msgspec.convert(
                given if param.repeated else given[0], param.converted, strict=False
            )
        except msgspec.ValidationError as exc:
            problems.append(FieldError(field=name, detail=str(exc).split(" - at ")[0]))
    if problems:
        names = ", ".join(f"?{p.field}=" for p in problems)
        raise ApiError(400, f"bad query parameters: {names}", field_errors=problems)
    return values
