"""People, their tokens and e-mail claims: pure rules, no database."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

import msgspec
import pytest

from service.domain.access import Viewer
from service.domain.context import Context
from service.domain.emails import (
    decide_claim_email,
    decide_release_email,
    email_change,
    fold_email_claim,
)
from service.domain.people import (
    CreatePerson,
    DeactivatePerson,
    EditPerson,
    PersonState,
    ReactivatePerson,
    decide_create_person,
    decide_deactivate_person,
    decide_edit_person,
    decide_reactivate_person,
    evolve_person,
    fold_person,
)
from service.domain.tokens import (
    IssueToken,
    RevokeToken,
    RotateFeedToken,
    decide_issue_token,
    decide_revoke_token,
    decide_rotate_feed_token,
)
from service.errors import Conflict, Forbidden, InconsistentStream, InvalidCommand, NotFound
from service.events.base import Event, FieldChange, decode_event, encode_data, type_name
from service.events.people import (
    EmailClaimed,
    EmailReleased,
    PersonCreated,
    PersonDeactivated,
    PersonEdited,
    TokenIssued,
    TokenRevoked,
)
from service.events.streams import email_stream

from .support.actors import ADMIN, CLEO, NOW, acting

ANA = acting("ana", "member")
BEN = acting("ben", "member")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _roundtrip(events: Sequence[Event]) -> list[Event]:
    """The events as they come back from the store's codec."""
    return [decode_event(type_name(type(e)), 1, encode_data(e)) for e in events]


def _fold(*batches: Sequence[Event]) -> PersonState:
    state = fold_person(_roundtrip([e for batch in batches for e in batch]))
    assert state is not None
    return state


def _ana() -> PersonState:
    cmd = CreatePerson(person_id="ana", name="Ana", email="ana@example.com", role="member")
    return _fold(decide_create_person(cmd, ADMIN))


def test_admins_create_people_with_trimmed_values() -> None:
    cmd = CreatePerson(
        person_id="p1", name="  Ana Lima ", email=" ana@example.com", role="member", title=" "
    )
    assert decide_create_person(cmd, ADMIN) == [
        PersonCreated(
            person_id="p1",
            name="Ana Lima",
            email="ana@example.com",
            role="member",
            company=None,
            title=None,
        )
    ]


@pytest.mark.parametrize("ctx", [ANA, CLEO])
def test_only_admins_create_people(ctx: Context) -> None:
    cmd = CreatePerson(person_id="p1", name="Ana", email="ana@example.com", role="member")
    with pytest.raises(Forbidden):
        decide_create_person(cmd, ctx)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": " "}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "Ana\nLima"}, "name"),
        ({"email": "not-an-address"}, "email"),
        ({"role": "client"}, "company"),
        ({"title": "t" * 300}, "title"),
    ],
)
def test_bad_people_are_refused_naming_the_field(changes: dict[str, str], field: str) -> None:
    values = {"person_id": "p1", "name": "Ana", "email": "ana@example.com", "role": "member"}
    cmd = CreatePerson(**{**values, **changes})  # type: ignore[arg-type]
    with pytest.raises(InvalidCommand) as error:
        decide_create_person(cmd, ADMIN)
    assert error.value.field == field


def test_people_edit_themselves_but_not_their_role() -> None:
    ana = _ana()
    events = decide_edit_person(ana, EditPerson(name="Ana L.", title="Designer"), ANA)
    assert events == [
        PersonEdited(
            changes=(
                FieldChange(field="name", before="Ana", after="Ana L."),
                FieldChange(field="title", before=None, after="Designer"),
            )
        )
    ]
    state = _fold(decide_create_person(_create_ana(), ADMIN), events)
    assert (state.name, state.title, state.version) == ("Ana L.", "Designer", 2)
    with pytest.raises(Forbidden, match="themselves"):
        decide_edit_person(ana, EditPerson(role="admin"), ANA)


def test_edits_merge_unset_fields_and_clear_with_none() -> None:
    ana = _ana()
    titled = _fold(
        decide_create_person(
            CreatePerson(
                person_id="ana", name="Ana", email="ana@example.com", role="member", title="CTO"
            ),
            ADMIN,
        )
    )
    cleared = decide_edit_person(titled, EditPerson(title=None), ADMIN)
    assert cleared == [
        PersonEdited(changes=(FieldChange(field="title", before="CTO", after=None),))
    ]
    assert decide_edit_person(ana, EditPerson(name="Ana"), ANA) == []
    with pytest.raises(InvalidCommand) as error:
        decide_edit_person(ana, EditPerson(name=None), ANA)  # type: ignore[arg-type]
    assert error.value.field == "name"


def test_others_may_not_edit_a_person() -> None:
    ana = _ana()
    with pytest.raises(Forbidden):
        decide_edit_person(ana, EditPerson(name="X"), BEN)
    with pytest.raises(NotFound):
        decide_edit_person(ana, EditPerson(name="X"), CLEO)


def test_admins_change_roles_unless_memberships_contradict_them() -> None:
    ana = _ana()
    events = decide_edit_person(ana, EditPerson(role="client", company="Acme"), ADMIN)
    state = _fold(decide_create_person(_create_ana(), ADMIN), events)
    assert (state.role, state.company, state.version) == ("client", "Acme", 2)
    with pytest.raises(Conflict):
        decide_edit_person(
            ana, EditPerson(role="client", company="Acme"), ADMIN, memberships={"prj": "member"}
        )
    with pytest.raises(InvalidCommand) as error:
        decide_edit_person(ana, EditPerson(role="client"), ADMIN)
    assert error.value.field == "company"


def _create_ana() -> CreatePerson:
    return CreatePerson(person_id="ana", name="Ana", email="ana@example.com", role="member")


def test_an_email_change_is_visible_to_the_caller_for_claiming() -> None:
    events = decide_edit_person(_ana(), EditPerson(email="ana@new.example"), ANA)
    assert email_change(events) == FieldChange(
        field="email", before="ana@example.com", after="ana@new.example"
    )
    assert email_change(decide_edit_person(_ana(), EditPerson(name="A"), ANA)) is None


def test_email_claims_make_addresses_unique_regardless_of_case() -> None:
    assert email_stream(" Ana@Example.COM") == "email-ana@example.com"
    fresh = fold_email_claim("Ana@Example.com", [])
    assert (fresh.person_id, fresh.version) == (None, 0)
    claimed = decide_claim_email(fresh, "ana")
    assert claimed == [EmailClaimed(person_id="ana", email="ana@example.com")]
    held = fold_email_claim("ana@example.com", _roundtrip(claimed))
    assert (held.person_id, held.version) == ("ana", 1)
    assert decide_claim_email(held, "ana") == []
    with pytest.raises(Conflict, match="already in use"):
        decide_claim_email(held, "ben")
    assert decide_release_email(held, "ben") == []
    released = decide_release_email(held, "ana")
    assert released == [EmailReleased(person_id="ana")]
    free = fold_email_claim("ana@example.com", [*claimed, *released])
    assert (free.person_id, free.version) == (None, 2)
    assert decide_claim_email(free, "ben") == [EmailClaimed(person_id="ben", email=free.email)]


def test_tokens_are_issued_and_revoked_by_the_person_or_an_admin() -> None:
    ana = _ana()
    issued = decide_issue_token(ana, IssueToken(token_id="t1", token_hash=_hash("s")), ANA)
    assert issued == [TokenIssued(token_id="t1", token_hash=_hash("s"), label="")]
    with pytest.raises(Forbidden):
        decide_issue_token(ana, IssueToken(token_id="t2", token_hash=_hash("s")), BEN)
    with pytest.raises(InvalidCommand):
        decide_issue_token(ana, IssueToken(token_id="t2", token_hash="secret"), ANA)
    state = _fold(decide_create_person(_create_ana(), ADMIN), issued)
    assert [t.token_id for t in state.active_tokens] == ["t1"]
    with pytest.raises(Conflict):
        decide_issue_token(state, IssueToken(token_id="t1", token_hash=_hash("x")), ADMIN)
    revoked = decide_revoke_token(state, RevokeToken(token_id="t1"), ADMIN)
    assert revoked == [TokenRevoked(token_id="t1", reason="revoked")]
    after = _fold(decide_create_person(_create_ana(), ADMIN), issued, revoked)
    assert after.active_tokens == []
    with pytest.raises(Conflict):
        decide_revoke_token(after, RevokeToken(token_id="t1"), ANA)
    with pytest.raises(NotFound):
        decide_revoke_token(after, RevokeToken(token_id="nope"), ANA)


def test_deactivation_revokes_every_token_and_the_feed_token() -> None:
    created = decide_create_person(_create_ana(), ADMIN)
    tokens = [
        *decide_issue_token(_ana(), IssueToken(token_id="t1", token_hash=_hash("1")), ANA),
        *decide_issue_token(_ana(), IssueToken(token_id="t2", token_hash=_hash("2")), ANA),
    ]
    feed = decide_rotate_feed_token(_ana(), RotateFeedToken(token_hash=_hash("f")), ANA)
    state = _fold(created, tokens, feed)
    assert state.feed_token_hash == _hash("f")
    with pytest.raises(Forbidden):
        decide_deactivate_person(state, DeactivatePerson(), ANA)
    deactivation = decide_deactivate_person(state, DeactivatePerson(), ADMIN)
    assert deactivation == [
        TokenRevoked(token_id="t1", reason="deactivated"),
        TokenRevoked(token_id="t2", reason="deactivated"),
        PersonDeactivated(),
    ]
    gone = _fold(created, tokens, feed, deactivation)
    assert (gone.active, gone.active_tokens, gone.feed_token_hash) == (False, [], None)
    with pytest.raises(Conflict):
        decide_deactivate_person(gone, DeactivatePerson(), ADMIN)
    with pytest.raises(Conflict):
        decide_issue_token(gone, IssueToken(token_id="t3", token_hash=_hash("3")), ADMIN)
    with pytest.raises(Conflict):
        decide_rotate_feed_token(gone, RotateFeedToken(token_hash=_hash("g")), ADMIN)
    back = _fold(
        created,
        tokens,
        feed,
        deactivation,
        decide_reactivate_person(gone, ReactivatePerson(), ADMIN),
    )
    assert (back.active, back.active_tokens, back.version) == (True, [], 8)
    with pytest.raises(Conflict):
        decide_reactivate_person(back, ReactivatePerson(), ADMIN)


def test_a_deactivated_actor_can_do_nothing() -> None:
    gone = Context(actor=Viewer(person_id="ana", role="member", active=False), now=NOW)
    with pytest.raises(Forbidden):
        decide_edit_person(_ana(), EditPerson(name="X"), gone)


def test_streams_that_do_not_start_with_creation_do_not_fold() -> None:
    assert fold_person([]) is None
    with pytest.raises(InconsistentStream):
        evolve_person(None, PersonDeactivated())
    created = decide_create_person(_create_ana(), ADMIN)
    with pytest.raises(InconsistentStream):
        fold_person([*created, *created])


def test_a_context_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        Context(actor=ADMIN.actor, now=datetime(2026, 1, 1))


def test_people_choose_their_locale_and_time_zone_and_may_clear_them() -> None:
    """A person sets their own locale and IANA time zone, and clears them back to the defaults."""
    ana = _ana()
    assert (ana.locale, ana.time_zone) == (None, None)
    chosen = decide_edit_person(ana, EditPerson(locale="fr", time_zone="Pacific/Kiritimati"), ANA)
    assert chosen == [
        PersonEdited(
            changes=(
                FieldChange(field="locale", before=None, after="fr"),
                FieldChange(field="time_zone", before=None, after="Pacific/Kiritimati"),
            )
        )
    ]
    state = _fold(decide_create_person(_create_ana(), ADMIN), chosen)
    assert (state.locale, state.time_zone, state.version) == ("fr", "Pacific/Kiritimati", 2)
    cleared = decide_edit_person(state, EditPerson(locale=None, time_zone=None), ANA)
    back = _fold(decide_create_person(_create_ana(), ADMIN), chosen, cleared)
    assert (back.locale, back.time_zone) == (None, None)
    assert decide_edit_person(state, EditPerson(time_zone="Pacific/Kiritimati"), ADMIN) == []


def test_admins_create_people_with_their_preferences() -> None:
    """``PersonCreated`` carries the locale and time zone an admin gives a new person."""
    cmd = msgspec.structs.replace(_create_ana(), locale="en", time_zone="Pacific/Pago_Pago")
    state = _fold(decide_create_person(cmd, ADMIN))
    assert (state.locale, state.time_zone) == ("en", "Pacific/Pago_Pago")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("time_zone", "Mars/Olympus"),
        ("time_zone", "pacific/kiritimati"),
        ("time_zone", "localtime"),
        ("time_zone", "Europe"),
        ("time_zone", ""),
        ("locale", "de"),
        ("locale", "EN"),
    ],
)
def test_unknown_locales_and_time_zones_are_refused_naming_the_field(
    field: str, value: str
) -> None:
    """Only IANA zone names and the locales en and fr are taken, on creation and on edits."""
    with pytest.raises(InvalidCommand) as edited:
        decide_edit_person(_ana(), EditPerson(**{field: value}), ANA)
    assert edited.value.field == field
    with pytest.raises(InvalidCommand) as created:
        decide_create_person(msgspec.structs.replace(_create_ana(), **{field: value}), ADMIN)
    assert created.value.field == field


def test_people_created_before_preferences_existed_have_none() -> None:
    """A ``PersonCreated`` stored without locale and time zone decodes with both ``None``."""
    stored = (
        b'{"type":"PersonCreated","person_id":"ana","name":"Ana","email":"ana@example.com",'
        b'"role":"member","company":null,"title":null}'
    )
    event = decode_event("PersonCreated", 1, stored)
    assert isinstance(event, PersonCreated)
    state = fold_person([event])
    assert state is not None
    assert (state.locale, state.time_zone) == (None, None)
