"""Event types: the base class, the field change every area's edits carry, the registry,
upcasters and the codec.

Schema-evolution rules for stored events (they are forever):

* append fields with defaults; never rename or retype a stored field;
* a change that cannot follow those rules bumps the type's ``schema_version`` and registers
  an upcaster from the old version, which turns old stored data into the new shape;
* never reuse a type name for a different meaning.

Decoding is typed: each registered type gets one ``msgspec`` decoder, built once when the type
is registered. Stored data carries the type tag too, so a stored row decodes on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar, Union

import msgspec

from ..errors import EventDecodeError, UnknownEventType


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True, gc=False):
    """Base of every event type: frozen, keyword-only, tagged with its class name.

    Subclasses name what happened in the past tense (``TodoCompleted``) and set
    ``schema_version`` when their stored shape changes.

    ``gc=False`` (inherited): events, their metadata and recorded envelopes are immutable
    values that never take part in a reference cycle, so the cycle collector need not track
    them. Reading a page of the log creates thousands; untracked, a scan costs ~15 % less.
    """

    schema_version: ClassVar[int] = 1


class FieldChange(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One field of an edit, with its value before and after.

    ``before`` and ``after`` are always in their JSON form (dates as ISO strings, sequences as
    lists), so an event compares equal to itself after a trip through the store.
    """

    field: str
    before: Any
    after: Any


class Metadata(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Who and what caused an append; stored with every event of the append."""

    actor: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    request_id: str | None = None
    idempotency_key: str | None = None


class RecordedEvent(msgspec.Struct, frozen=True, gc=False):
    """An event as stored in the log, with its place in it.

    ``position`` identifies the event in the whole log. Log order is ``(tx_id, position)``,
    which is commit order between transactions; positions alone are not.
    """

    position: int
    tx_id: int
    stream_id: str
    stream_version: int
    project_id: str | None
    event_type: str
    schema_version: int
    event: Event
    metadata: Metadata
    recorded_at: datetime
    hash: bytes

    @property
    def cursor(self) -> tuple[int, int]:
        """The event's place in log order, comparable with other cursors."""
        return (self.tx_id, self.position)


E = TypeVar("E", bound=type[Event])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_TYPES: dict[str, type[Event]] = {}
_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {}
# Per type name: its current schema version and decoder, for decoding pages of the log.
_CURRENT: dict[str, tuple[int, msgspec.json.Decoder[Any]]] = {}
# The decoder of any registered type, with each class's name (rebuilt after a registration).
_ANY: list[tuple[msgspec.json.Decoder[Any], dict[type[Event], str]]] = []
_UPCASTERS: dict[tuple[str, int], Upcaster] = {}
_METADATA_DECODER = msgspec.json.Decoder(Metadata)
_ENCODER = msgspec.json.Encoder()


def register(cls: E) -> E:
    """Class decorator: make ``cls`` a storable event type (its name is its stored type).

    Raises:
        UnknownEventType: another class already registered the same name.
    """
    name = type_name(cls)
    existing = _TYPES.get(name)
    if existing is not None and existing is not cls:
        if existing.__module__ == cls.__module__ and existing.__qualname__ == cls.__qualname__:
            # The same module imported twice (e.g. as a script and as a module).
            pass
        else:
            raise UnknownEventType(f"event type {name!r} is registered twice")
    _TYPES[name] = cls
    _DECODERS[name] = msgspec.json.Decoder(cls)
    _CURRENT[name] = (cls.schema_version, _DECODERS[name])
    _ANY.clear()
    return cls


def upcaster(event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Decorator: register a function turning ``event_type`` data of ``from_version`` into
    the shape of ``from_version + 1``. Chains run until the current version is reached."""

    def decorate(fn: Upcaster) -> Upcaster:
        _UPCASTERS[(event_type, from_version)] = fn
        return fn

    return decorate


def type_name(cls: type[Event]) -> str:
    """The stored name of an event class (its msgspec tag)."""
    tag = cls.__struct_config__.tag
    return tag if isinstance(tag, str) else cls.__name__


def event_class(name: str) -> type[Event]:
    """The registered class for stored type ``name``.

    Raises:
        UnknownEventType: nothing is registered under ``name``.
    """
    try:
        return _TYPES[name]
    except KeyError:
        raise UnknownEventType(f"no event type is registered as {name!r}") from None


def registered_types() -> dict[str, type[Event]]:
    """A copy of the registry: stored name to class."""
    return dict(_TYPES)


def encode_data(event: Event) -> bytes:
    """The JSON bytes stored in the ``data`` column for ``event``.

    Raises:
        UnknownEventType: the event's class is not registered.
    """
    name = type_name(type(event))
    if _TYPES.get(name) is not type(event):
        raise UnknownEventType(f"event class {type(event).__qualname__} is not registered")
    return _ENCODER.encode(event)


def decode_event(name: str, schema_version: int, data: str | bytes) -> Event:
    """Decode stored ``data`` of type ``name`` written at ``schema_version``, upcasting old shapes.

    Raises:
        UnknownEventType: the type is not registered.
        EventDecodeError: the data does not fit the type (after upcasting).
    """
    cls = event_class(name)
    try:
        if schema_version == cls.schema_version:
            return _DECODERS[name].decode(data)  # type: ignore[no-any-return]
        if schema_version > cls.schema_version:
            raise EventDecodeError(
                f"{name} v{schema_version} is newer than this code (v{cls.schema_version})"
            )
        raw: dict[str, Any] = msgspec.json.decode(data)
        for version in range(schema_version, cls.schema_version):
            step = _UPCASTERS.get((name, version))
            if step is None:
                raise EventDecodeError(f"no upcaster for {name} from v{version} to v{version + 1}")
            raw = step(raw)
        raw["type"] = name
        return msgspec.convert(raw, cls)
    except msgspec.ValidationError as exc:
        raise EventDecodeError(f"stored {name} v{schema_version} does not decode: {exc}") from exc


def current_decoders() -> dict[str, tuple[int, msgspec.json.Decoder[Any]]]:
    """Per registered type name: its current schema version and its decoder (read-only)."""
    return _CURRENT


def any_event_decoder() -> tuple[msgspec.json.Decoder[Any], dict[type[Event], str]]:
    """One decoder for stored data of any registered type (the tag in the data picks it), and
    each class's stored name. Built once per set of registered types."""
    if not _ANY:
        types = tuple(_TYPES.values())
        _ANY.append((msgspec.json.Decoder(Union[types]), {cls: type_name(cls) for cls in types}))  # noqa: UP007
    return _ANY[0]


def decode_metadata(data: str | bytes) -> Metadata:
    """Decode the stored metadata column; unknown keys are ignored (written by newer code)."""
    return _METADATA_DECODER.decode(data)


def encode_metadata(metadata: Metadata) -> bytes:
    """The JSON bytes stored in the ``metadata`` column."""
    return _ENCODER.encode(metadata)
