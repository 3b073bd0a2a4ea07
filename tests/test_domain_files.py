"""Uploads and attachments: pure rules, no database."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import msgspec
import pytest

from service.blobs.store import FileRef
from service.domain.activity import KnownRecording, activity_of, created_recording, excerpt_for
from service.domain.comments import AddComment, EditComment, decide_add_comment, decide_edit_comment
from service.domain.context import Context
from service.domain.messages import (
    EditMessage,
    PostMessage,
    decide_edit_message,
    decide_post_message,
)
from service.domain.projects import ProjectState
from service.domain.recordings import (
    RecordingState,
    SetRecordingStatus,
    decide_set_recording_status,
    fold_recording,
    recording_facts,
)
from service.domain.sentences import quoted, sentence
from service.domain.uploads import (
    CreateUpload,
    EditUpload,
    decide_add_version,
    decide_create_upload,
    decide_edit_upload,
)
from service.errors import Conflict, Forbidden, InvalidCommand
from service.events.base import Event, FieldChange, decode_event, encode_data, type_name
from service.events.recordings import (
    MAX_ATTACHMENTS,
    CommentAdded,
    MessagePosted,
    StoredFile,
    UploadVersionAdded,
)
from service.events.streams import recording_stream

from .support.actors import CLEO, MAX, NOW, OLGA

LATER = NOW + timedelta(hours=1)
OLGA_LATER = Context(actor=OLGA.actor, now=LATER)
PROJECT = ProjectState(
    project_id="prj",
    name="Launch",
    description=None,
    clients_enabled=True,
    members={"olga": "owner", "max": "member", "cleo": "client"},
    version=4,
)


def _ref(name: str = "plan.pdf", byte: str = "a", size: int = 10) -> FileRef:
    return FileRef(sha256=byte * 64, size=size, content_type="application/pdf", name=name)


def _fold(*batches: Sequence[Event]) -> RecordingState:
    """Fold events after a trip through the store's codec (which must not change them)."""
    events = [e for batch in batches for e in batch]
    stored = [decode_event(type_name(type(e)), 1, encode_data(e)) for e in events]
    assert stored == events
    state = fold_recording(stored)
    assert state is not None
    return state


def _upload(**fields: object) -> tuple[list[Event], RecordingState]:
    cmd = CreateUpload(recording_id="upl", file=_ref(), **fields)  # type: ignore[arg-type]
    events = decide_create_upload(PROJECT, cmd, MAX)
    return events, _fold(events)


def test_the_stored_file_is_the_blob_stores_file_ref_field_for_field() -> None:
    """Events restate FileRef (they sit beside the blob store): the keys must stay the same."""
    assert StoredFile.__struct_fields__ == FileRef.__struct_fields__
    ref = _ref()
    assert msgspec.convert(msgspec.structs.asdict(ref), StoredFile) == StoredFile(
        sha256=ref.sha256, size=ref.size, content_type=ref.content_type, name=ref.name
    )


def test_an_upload_is_a_recording_with_its_first_version() -> None:
    events, upload = _upload(description="<p>The <script>x</script>plan</p>", folder=" Specs ")
    assert upload.kind == "upload"
    assert upload.name == "plan.pdf"
    assert upload.description == "<p>The plan</p>"
    assert upload.folder == "Specs"
    assert upload.file == StoredFile(
        sha256="a" * 64, size=10, content_type="application/pdf", name="plan.pdf"
    )
    assert [(v.n, v.creator_id, v.created_at) for v in upload.versions] == [(1, "max", NOW)]
    assert upload.subscriber_ids == ("max", "olga")  # hidden from clients: Cleo is left out
    assert b'"sha256":"' + b"a" * 64 in encode_data(events[0])  # what the blob collector scans


def test_versions_are_numbered_kept_and_rename_the_upload() -> None:
    created, upload = _upload()
    second = decide_add_version(PROJECT, upload, _ref("plan-v2.pdf", "b", 20), OLGA_LATER)
    b = StoredFile(sha256="b" * 64, size=20, content_type="application/pdf", name="plan-v2.pdf")
    assert second == [UploadVersionAdded(at=LATER, adder_id="olga", n=2, file=b)]
    upload = _fold(created, second)
    third = decide_add_version(PROJECT, upload, _ref("plan-v3.pdf", "a"), MAX)
    upload = _fold(created, second, third)
    assert [(v.n, v.file.name, v.creator_id) for v in upload.versions] == [
        (1, "plan.pdf", "max"),
        (2, "plan-v2.pdf", "olga"),
        (3, "plan-v3.pdf", "max"),
    ]
    assert upload.name == "plan-v3.pdf"
    assert upload.file is not None
    assert upload.file.sha256 == "a" * 64
    assert upload.updated_at == NOW  # the third version came at NOW, after LATER's second
    assert upload.version == 3


def test_edits_carry_before_and_after() -> None:
    created, upload = _upload(folder="Specs")
    edit = EditUpload(name="Plan (final).pdf", description="<p>Final</p>", folder=None)
    events = decide_edit_upload(PROJECT, upload, edit, OLGA_LATER)
    assert [(c.field, c.before, c.after) for c in events[0].changes] == [  # type: ignore[attr-defined]
        ("name", "plan.pdf", "Plan (final).pdf"),
        ("description", None, "<p>Final</p>"),
        ("folder", "Specs", None),
    ]
    upload = _fold(created, events)
    assert (upload.name, upload.folder, upload.updated_at) == ("Plan (final).pdf", None, LATER)
    assert decide_edit_upload(PROJECT, upload, EditUpload(folder=" "), MAX) == []


@pytest.mark.parametrize(
    ("ref", "field"),
    [
        (FileRef(sha256="a" * 64, size=1, content_type="text/plain", name=""), "file.name"),
        (FileRef(sha256="a" * 64, size=1, content_type="text/plain", name="a\x00b"), "file.name"),
        (FileRef(sha256="a" * 64, size=1, content_type="text/plain", name="x" * 256), "file.name"),
        (FileRef(sha256="nothex", size=1, content_type="text/plain", name="a"), "file"),
        (FileRef(sha256="a" * 64, size=-1, content_type="text/plain", name="a"), "file"),
    ],
)
def test_bad_files_are_refused_naming_the_field(ref: FileRef, field: str) -> None:
    with pytest.raises(InvalidCommand) as caught:
        decide_create_upload(PROJECT, CreateUpload(recording_id="upl", file=ref), MAX)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"folder": "x" * 256}, "folder"),
        ({"folder": "a\x00b"}, "folder"),
        ({"description": "x" * 100_001}, "description"),
    ],
)
def test_bad_folders_and_descriptions_are_refused(fields: dict[str, str], field: str) -> None:
    cmd = CreateUpload(recording_id="upl", file=_ref(), **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidCommand) as caught:
        decide_create_upload(PROJECT, cmd, MAX)
    assert caught.value.field == field


def test_a_content_type_is_kept_bare_and_an_odd_one_is_octet_stream() -> None:
    ref = FileRef(sha256="a" * 64, size=1, content_type="Text/HTML; charset=utf-8", name="a")
    upload = _fold(decide_create_upload(PROJECT, CreateUpload(recording_id="u", file=ref), MAX))
    assert upload.file is not None
    assert upload.file.content_type == "text/html"
    odd = msgspec.structs.replace(ref, content_type="not a type")
    upload = _fold(decide_create_upload(PROJECT, CreateUpload(recording_id="u", file=odd), MAX))
    assert upload.file is not None
    assert upload.file.content_type == "application/octet-stream"


def test_clients_neither_upload_nor_replace_and_trashed_uploads_are_read_only() -> None:
    with pytest.raises(Forbidden):
        decide_create_upload(PROJECT, CreateUpload(recording_id="u", file=_ref()), CLEO)
    created, upload = _upload(visible_to_clients=True)
    assert recording_facts(upload).visible_to_clients
    with pytest.raises(Forbidden):
        decide_add_version(PROJECT, upload, _ref(), CLEO)
    trashed = decide_set_recording_status(
        PROJECT, upload, SetRecordingStatus(status="trashed"), MAX
    )
    upload = _fold(created, trashed)
    with pytest.raises(Conflict):
        decide_add_version(PROJECT, upload, _ref(), MAX)
    with pytest.raises(Conflict):
        decide_edit_upload(PROJECT, upload, EditUpload(folder="x"), MAX)


def test_messages_and_comments_carry_attachments_and_edits_record_the_lists() -> None:
    files = (_ref("a.png", "a"), _ref("b.txt", "b"), _ref("again.png", "a"))
    cmd = PostMessage(recording_id="msg", subject="S", body="<p>B</p>", attachments=files)
    posted = decide_post_message(PROJECT, cmd, MAX)
    message = _fold(posted)
    assert [f.name for f in message.attachments] == ["a.png", "b.txt"]  # one per SHA-256
    edited = decide_edit_message(PROJECT, message, EditMessage(), OLGA_LATER, [_ref("c", "c")])
    change = edited[0].changes[0]  # type: ignore[attr-defined]
    assert change.field == "attachments"
    assert [f["name"] for f in change.before] == ["a.png", "b.txt"]
    assert [f["name"] for f in change.after] == ["c"]
    message = _fold(posted, edited)
    assert [f.name for f in message.attachments] == ["c"]
    assert decide_edit_message(PROJECT, message, EditMessage(), MAX, [_ref("c", "c")]) == []
    assert decide_edit_message(PROJECT, message, EditMessage(subject="T"), MAX)[0].changes == (  # type: ignore[attr-defined]
        FieldChange(field="subject", before="S", after="T"),
    )

    add = AddComment(recording_id="com", content="<p>See</p>", attachments=(_ref(),))
    added = decide_add_comment(PROJECT, message, add, OLGA)
    comment = fold_recording([*added])
    assert comment is not None
    assert [f.name for f in comment.attachments] == ["plan.pdf"]
    cleared = decide_edit_comment(PROJECT, comment, EditComment(), OLGA, [message], [])
    assert fold_recording([*added, *cleared]).attachments == ()  # type: ignore[union-attr]


def test_attachments_are_bounded() -> None:
    many = tuple(_ref(str(i), format(i, "x")[-1], i) for i in range(MAX_ATTACHMENTS + 1))
    many = tuple(msgspec.structs.replace(r, sha256=f"{i:064x}") for i, r in enumerate(many))
    cmd = PostMessage(recording_id="msg", subject="S", body="<p>B</p>", attachments=many)
    with pytest.raises(InvalidCommand) as caught:
        decide_post_message(PROJECT, cmd, MAX)
    assert caught.value.field == "attachments"
    ok = PostMessage(recording_id="msg", subject="S", body="<p>B</p>", attachments=many[:-1])
    assert len(_fold(decide_post_message(PROJECT, ok, MAX)).attachments) == MAX_ATTACHMENTS


def test_events_without_attachments_are_stored_as_before() -> None:
    """Old MessagePosted and CommentAdded data (no attachments key) decode unchanged, and new
    events without files write exactly the old shape."""
    posted = decide_post_message(
        PROJECT, PostMessage(recording_id="msg", subject="S", body="<p>B</p>"), MAX
    )[0]
    data = encode_data(posted)
    assert b"attachments" not in data
    assert decode_event("MessagePosted", 1, data) == posted
    old_comment = (
        b'{"type":"CommentAdded","recording_id":"c","project_id":"p","creator_id":"max",'
        b'"at":"2026-03-02T09:30:00Z","parent_id":"m","parent_kind":"message",'
        b'"content":"<p>x</p>","subscriber_ids":["max"]}'
    )
    comment = decode_event("CommentAdded", 1, old_comment)
    assert isinstance(comment, CommentAdded)
    assert comment.attachments == ()
    assert isinstance(posted, MessagePosted)


def test_upload_activity_reads_in_both_languages() -> None:
    created, upload = _upload()
    version = decide_add_version(PROJECT, upload, _ref("plan-v2.pdf", "b"), OLGA_LATER)
    known: KnownRecording | None = None
    items = []
    for n, event in enumerate([*created, *version], start=1):
        item = activity_of(
            event,
            stream_id=recording_stream("upl"),
            stream_version=n,
            project_id="prj",
            actor_id=None,
            recorded_at=NOW,
            recording=known,
        )
        assert item is not None
        items.append(item)
        known = known or created_recording(event)
    made, replaced = items
    assert (made.kind, made.as_type, made.actor_id, made.excerpt) == (
        "upload_created",
        "Create",
        "max",
        "plan.pdf",
    )
    assert (replaced.kind, replaced.as_type, replaced.actor_id) == (
        "upload_version_added",
        "Update",
        "olga",
    )
    assert replaced.excerpt == "now at version 2"
    assert excerpt_for(replaced.kind, replaced.excerpt, replaced.changes, "fr") == (
        "désormais en version 2"
    )
    assert sentence("upload_created", locale="en", actor="Ana", title="plan.pdf") == (
        "Ana uploaded “plan.pdf”"
    )
    assert sentence("upload_version_added", locale="en", actor="Ana", title="plan.pdf") == (
        "Ana replaced “plan.pdf” with a new version"
    )
    assert sentence("upload_version_added", locale="fr", actor="Ana", title="plan.pdf") == (
        f"Ana a remplacé {quoted('plan.pdf', 'fr')} par une nouvelle version"
    )
    trashed = sentence(
        "recording_trashed", locale="en", actor="Ana", title="plan.pdf", recording_kind="upload"
    )
    assert trashed == "Ana put the file “plan.pdf” in the trash"
