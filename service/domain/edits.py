"""Merge-patch edits: reading a patch command, diffing it into ``FieldChange``s, applying them.

Edit commands follow JSON merge-patch: a field left ``UNSET`` stays as it is, ``None`` clears it
(where the field may be cleared), any other value replaces it. ``FieldChange`` values are kept
in their JSON form, so :func:`apply_changes` converts them back to the state's field types.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import msgspec

from ..errors import InconsistentStream, InvalidCommand
from ..events.base import FieldChange

S = TypeVar("S", bound=msgspec.Struct)

_ENCODER = msgspec.json.Encoder()


def patch_of(command: msgspec.Struct) -> dict[str, Any]:
    """The fields of ``command`` that are set (not ``UNSET``), by name."""
    return {
        name: value
        for name in command.__struct_fields__
        if (value := getattr(command, name)) is not msgspec.UNSET
    }


def not_null(field: str, value: Any) -> Any:
    """``value``, unless it is ``None`` for a field that cannot be cleared.

    Raises:
        InvalidCommand: ``value`` is ``None``.
    """
    if value is None:
        raise InvalidCommand(field, f"{field} cannot be cleared")
    return value


def json_value(value: Any) -> Any:
    """``value`` as it comes back from JSON (dates as ISO strings, sequences as lists)."""
    return msgspec.json.decode(_ENCODER.encode(value))


def diff(state: msgspec.Struct, updates: Mapping[str, Any]) -> tuple[FieldChange, ...]:
    """The changes ``updates`` (checked, normalised values by field) make to ``state``.

    Fields whose value stays the same are left out, so an empty result means "no change".
    """
    changes = []
    for field, after in updates.items():
        before = json_value(getattr(state, field))
        after_json = json_value(after)
        if before != after_json:
            changes.append(FieldChange(field=field, before=before, after=after_json))
    return tuple(changes)


def apply_changes(state: S, changes: Iterable[FieldChange]) -> S:
    """``state`` with each change's ``after`` value, converted to the field's type.

    Raises:
        InconsistentStream: a change names a field ``state`` does not have, or its value does
            not fit the field (a damaged log, or an event of another aggregate).
    """
    types = {f.name: f.type for f in msgspec.structs.fields(type(state))}
    values: dict[str, Any] = {}
    for change in changes:
        if change.field not in types:
            raise InconsistentStream(f"{type(state).__name__} has no field {change.field!r}")
        try:
            values[change.field] = msgspec.convert(change.after, types[change.field])
        except msgspec.ValidationError as exc:
            raise InconsistentStream(f"bad value for {change.field!r}: {exc}") from exc
    return msgspec.structs.replace(state, **values)
