"""Stream names and ids: how each aggregate's stream is named, defined once.

| stream | aggregate |
|---|---|
| ``person-<id>`` | a person, their tokens and feed token |
| ``email-<lowercased address>`` | the uniqueness claim of an e-mail address |
| ``project-<id>`` | a project, its settings, status and memberships |
| ``recording-<id>`` | one recording: message, comment, to-do list, to-do, milestone |
| ``notice-<position>`` | who was told of the event at ``position`` (:mod:`.notices`) |
| ``inbox-<person id>`` | a person marking their notifications read |
| ``invitation-<id>`` | an invitation: sent, accepted, revoked |
| ``webhook-<id>`` | a webhook endpoint: created, edited, rotated, disabled, deleted |

Ids are opaque strings made by the application layer: a type prefix (:data:`PROJECT_ID`…),
an underscore and 20 hex digits (``prj_3f2a…``). Code that names a stream or recognises one
goes through this module; SQL that filters streams by kind uses the prefixes (``stream_id
^@ 'recording-'``) through :data:`PERSON` and the others.
"""

from __future__ import annotations

from typing import Final, NewType

StreamId = NewType("StreamId", str)
"""The name of a stream (``project-prj_…``)."""
PersonId = NewType("PersonId", str)
ProjectId = NewType("ProjectId", str)
RecordingId = NewType("RecordingId", str)
TokenId = NewType("TokenId", str)
AttachableId = NewType("AttachableId", str)

PERSON: Final = "person-"
"""Prefix of a person's stream."""
EMAIL: Final = "email-"
"""Prefix of an e-mail address's claim stream."""
PROJECT: Final = "project-"
"""Prefix of a project's stream."""
RECORDING: Final = "recording-"
"""Prefix of a recording's stream."""

NOTICE: Final = "notice-"
"""Prefix of a notice's stream (the people told of one event of the log)."""
INBOX: Final = "inbox-"
"""Prefix of a person's inbox stream (their notifications marked read)."""
INVITATION: Final = "invitation-"
"""Prefix of an invitation's stream."""
WEBHOOK: Final = "webhook-"
"""Prefix of a webhook endpoint's stream."""

PERSON_ID: Final = "per"
PROJECT_ID: Final = "prj"
RECORDING_ID: Final = "rec"
TOKEN_ID: Final = "tok"
ATTACHABLE_ID: Final = "att"
NOTIFICATION_ID: Final = "ntf"
INVITATION_ID: Final = "inv"
WEBHOOK_ID: Final = "whk"
"""Prefixes of new ids, by what they name."""
ID_DIGITS: Final = 20
"""How many lower-case hex digits follow an id's prefix and underscore."""


def id_pattern(prefix: str) -> str:
    """The shape of the ids made with ``prefix``, as a regular expression anchored at both
    ends: ``^prj_[0-9a-f]{20}$`` for :data:`PROJECT_ID`."""
    return f"^{prefix}_[0-9a-f]{{{ID_DIGITS}}}$"


def recording_id_sql(column: str) -> str:
    """SQL reading the recording id out of a recording stream's name in ``column``."""
    return f"substr({column}, {len(RECORDING) + 1})"


def project_id_sql(column: str) -> str:
    """SQL reading the project id out of a project stream's name in ``column``."""
    return f"substr({column}, {len(PROJECT) + 1})"


def person_stream(person_id: str) -> StreamId:
    """The stream of person ``person_id``."""
    return StreamId(PERSON + person_id)


def email_stream(email: str) -> StreamId:
    """The claim stream of an e-mail address (case-insensitive)."""
    return StreamId(EMAIL + email.strip().lower())


def project_stream(project_id: str) -> StreamId:
    """The stream of project ``project_id``."""
    return StreamId(PROJECT + project_id)


def recording_stream(recording_id: str) -> StreamId:
    """The stream of recording ``recording_id``."""
    return StreamId(RECORDING + recording_id)


def notice_stream(position: int) -> StreamId:
    """The stream of the notice of the event at log ``position``."""
    return StreamId(f"{NOTICE}{position}")


def inbox_stream(person_id: str) -> StreamId:
    """The inbox stream of person ``person_id``."""
    return StreamId(INBOX + person_id)


def invitation_stream(invitation_id: str) -> StreamId:
    """The stream of invitation ``invitation_id``."""
    return StreamId(INVITATION + invitation_id)


def webhook_stream(webhook_id: str) -> StreamId:
    """The stream of webhook endpoint ``webhook_id``."""
    return StreamId(WEBHOOK + webhook_id)


def is_person_stream(stream_id: str) -> bool:
    """Whether ``stream_id`` is a person's stream (their role, activity and tokens)."""
    return stream_id.startswith(PERSON)


def is_project_stream(stream_id: str) -> bool:
    """Whether ``stream_id`` is a project's stream."""
    return stream_id.startswith(PROJECT)


def person_id_of(stream_id: str) -> PersonId | None:
    """The person whose stream ``stream_id`` is (None for another stream)."""
    return PersonId(stream_id.removeprefix(PERSON)) if stream_id.startswith(PERSON) else None


def project_id_of(stream_id: str) -> ProjectId | None:
    """The project whose stream ``stream_id`` is (None for another stream)."""
    return ProjectId(stream_id.removeprefix(PROJECT)) if stream_id.startswith(PROJECT) else None


def recording_id_of(stream_id: str) -> RecordingId | None:
    """The recording whose stream ``stream_id`` is (None for another stream)."""
    if stream_id.startswith(RECORDING):
        return RecordingId(stream_id.removeprefix(RECORDING))
    return None
