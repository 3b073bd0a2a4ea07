"""schemathesis against the live server's ``/openapi.json``: every operation, every check,
requests generated from the document (valid ones and deliberately invalid ones) with a
fixed seed, as the first admin, among existing people, projects and recordings. No answer
is a 5xx or breaks the document's schemas, the server logs no error, and a valid request
is refused only for one of the reasons listed in :data:`KNOWN_REFUSALS`.

``CAIRN_FUZZ_EXAMPLES`` sets the examples per operation (default 5: some 40 s, for every run
of the suite) and ``CAIRN_FUZZ_SEED`` the seed; the full run of docs/RELIABILITY.md
("Fuzzing") is ``CAIRN_FUZZ_EXAMPLES=100 pytest tests/test_fuzzing.py -s``, which prints its
figures.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.openapi.checks import RejectedPositiveData
from schemathesis.specs.openapi.checks import positive_data_acceptance

from .support.api import Api, new_person
from .support.servers import error_log
from .support.teams import Team, make_team

SEED = int(os.environ.get("CAIRN_FUZZ_SEED", "20260513"))
EXAMPLES = int(os.environ.get("CAIRN_FUZZ_EXAMPLES", "5"))


# ------------------------------------------------------------------ known refusals


@dataclass(frozen=True)
class Refused:
    """A schema-valid request the server refused, as the checks below see it."""

    operation: str
    """``METHOD /path/template``."""
    status: int
    slug: str
    """The problem type's last part (``urn:cairn:problem:<slug>``)."""
    fields: frozenset[str]
    """The fields the problem's ``errors`` name."""
    detail: str
    body: Any


def _integral_float(refused: Refused) -> bool:
    # JSON Schema counts 771.0 as an integer (a number whose fractional part is zero); the
    # server's decoder keeps JSON's integers and floats apart, as typed clients do, and
    # names the field. Only that: a 422 naming an integer field sent as such a float.
    body = refused.body if isinstance(refused.body, dict) else {}
    return (
        refused.status == 422
        and len(refused.fields) == 1
        and isinstance(value := body.get(next(iter(refused.fields))), float)
        and value.is_integer()
    )


KNOWN_REFUSALS: dict[str, Callable[[Refused], bool]] = {
    # A cursor is opaque: any string is schema-valid (the document can only narrow it to
    # base64url), but only the cursors the server gave out are keys of a list (400 naming
    # cursor, docs/API.md).
    "cursor not given out": lambda r: r.status == 400 and r.fields == {"cursor"},
    # If-Match holding tags of another version (any string is a valid header): 412 by RFC
    # 9110 §13.1.1. Only the conditional operations declare If-Match.
    "If-Match of another version": lambda r: r.status == 412 and r.slug == "precondition-failed",
    # An Idempotency-Key used before for another request (the generator reuses short keys):
    # 422 by design (docs/API.md).
    "Idempotency-Key reused": lambda r: r.status == 422 and r.slug == "idempotency-key-reused",
    # The snapshot takes exactly one of position and at; both are optional parameters, and
    # OpenAPI cannot say "exactly one of two query parameters".
    "snapshot: position and at": lambda r: (
        r.operation == "GET /v1/projects/{project_id}/snapshot"
        and r.status == 400
        and r.fields == {"position"}
    ),
    # Rules that depend on state, which no schema of one request can know:
    # - an assignee or a responsible person must be on the project, and a client among
    #   them must see the item (and the list a to-do moves to);
    "assignee who cannot be one": lambda r: (
        r.status == 422
        and r.detail.endswith(
            (
                "is not on the project",
                "is a client and cannot see this item",
                "a client is assigned; that list is hidden from clients",
            )
        )
    ),
    # - a to-do's due date is not before its start date, either of them perhaps the one
    #   stored (JSON Schema compares no two values);
    "due before start": lambda r: (
        r.status == 422
        and r.fields == {"due_on"}
        and r.detail == "due_on must not be before starts_on"
    ),
    # - a person's role and company go together: a PATCH making someone a client who has
    #   no company (POST /v1/people says it in its schema: a client's company is required);
    "a client needs a company": lambda r: (
        r.operation == "PATCH /v1/people/{person_id}"
        and r.status == 422
        and r.fields == {"company"}
    ),
    # - a member's project role follows their role (clients are a project's clients,
    #   members its owners or members);
    "project role of the person's role": lambda r: (
        r.operation == "PUT /v1/projects/{project_id}/people/{person_id}"
        and r.status == 422
        and r.fields == {"project_role"}
    ),
    # - a time zone is a name of the IANA database: the document gives the names' shape,
    #   not the list of them, which generated clients cannot take as an enum (Etc/GMT+0 and
    #   Etc/GMT-0 make the same constant);
    "time zone outside the IANA database": lambda r: (
        r.operation in {"POST /v1/people", "PATCH /v1/people/{person_id}", "PATCH /v1/me"}
        and r.status == 422
        and r.fields == {"time_zone"}
        and r.detail == "time_zone must be an IANA time zone, such as Europe/Paris"
    ),
    # - quiet hours that start when they end (no length) are refused: a schema cannot say
    #   that two fields differ;
    "quiet hours of no length": lambda r: (
        r.operation == "PUT /v1/me/notifications"
        and r.status == 422
        and r.fields == {"quiet_hours"}
        and r.detail == "quiet hours must not start when they end"
    ),
    # - a to-do's position is within its list, however long the list is now;
    "position beyond the list": lambda r: (
        r.operation == "PUT /v1/todos/{id}/position"
        and r.status == 422
        and r.fields == {"position"}
        and r.detail.startswith("position must be between")
    ),
    # - the kind of recording an id names: a comment is not commented on (its parent is),
    #   and the generic PATCH takes the edit of whichever kind it meets (its body is any of
    #   them, anyOf), so fields of another kind are unknown to it, and a field another kind
    #   may clear (a to-do's due_on: null) is refused where it may not (a milestone's).
    "a comment's comments": lambda r: (
        r.operation == "POST /v1/recordings/{id}/comments"
        and r.status == 422
        and r.fields == {"parent_id"}
    ),
    "generic PATCH meets another kind": lambda r: (
        r.operation == "PATCH /v1/recordings/{id}"
        and r.status == 422
        and (
            r.detail.startswith("Object contains unknown field")
            or (len(r.fields) == 1 and r.detail.startswith("Expected `date`, got `null`"))
        )
    ),
    # - a file uploaded as a raw body needs ?name=, one in a multipart part may take its
    #   part's filename instead: the parameter is optional, required for raw bodies only;
    "upload without a name": lambda r: (
        r.operation == "POST /v1/attachments"
        and r.status == 400
        and r.fields == {"name"}
        and r.detail.endswith("is required (or a multipart part with a filename)")
    ),
    # - a file is named by an attachable its caller uploaded (POST /v1/attachments);
    "attachable not the caller's": lambda r: (
        r.status == 422
        and r.fields in ({"attachable_id"}, {"attachment_ids"})
        and r.detail.endswith("which is no file you uploaded")
    ),
    # - a password is not one of the most common ones (a bundled list of 30,000: the
    #   document gives the lengths, not the list);
    "a common password": lambda r: (
        r.status == 422
        and r.fields == {"password"}
        and r.detail.endswith("is among the most common ones (breached): choose another")
    ),
    # - a password change names the current password once one is set (the first needs none);
    "current password once one is set": lambda r: (
        r.operation == "PUT /v1/me/password"
        and r.status == 422
        and r.fields == {"current_password"}
    ),
    "integer sent as 771.0": _integral_float,
    # - a service account's owner is an active admin (an id the generator makes up names
    #   nobody); nobody becomes or stops being a service account, which has no e-mail;
    "service account's owner": lambda r: (
        r.operation == "POST /v1/people" and r.status == 422 and r.fields == {"owner_id"}
    ),
    "service account's role and e-mail": lambda r: (
        r.operation in {"PATCH /v1/people/{person_id}", "PATCH /v1/me"}
        and r.status == 422
        and (r.fields == {"role"} or r.detail == "a service account has no e-mail address")
    ),
    # - an invitation to an address someone already has is of that person's kind (a
    #   client's address invited as a client, any other as a member or an admin);
    "invited address of another kind": lambda r: (
        r.operation == "POST /v1/invitations" and r.status == 422 and r.fields == {"role"}
    ),
    # - a picture is checked by its content (a PNG, JPEG, GIF or WebP signature): the
    #   document can only say "bytes";
    # - a webhook's URL must be one Cairn may send to (https unless http is allowed, no
    #   credentials, no private or loopback address...): the document gives its scheme, not
    #   the outbound policy, which depends on the settings; and a project has at most 20;
    "webhook URL Cairn may not send to": lambda r: (
        r.operation
        in {
            "POST /v1/projects/{project_id}/webhooks",
            "POST /v1/webhooks",
            "PATCH /v1/webhooks/{webhook_id}",
        }
        and r.status == 422
        and r.fields == {"url"}
    ),
    "a picture that is no raster image": lambda r: (
        r.operation == "PUT /v1/me/avatar" and r.status == 415
    ),
}
"""Why a schema-valid request may be refused, each in exactly the cases it names: what the
document cannot express. Anything else the server refuses is a failure."""


def _refused(response: Any, case: Any) -> Refused:
    try:
        problem = response.json()
    except ValueError:
        problem = {}
    problem = problem if isinstance(problem, dict) else {}
    return Refused(
        operation=case.operation.label,
        status=response.status_code,
        slug=str(problem.get("type", "")).rsplit(":", 1)[-1],
        fields=frozenset(e.get("field") for e in problem.get("errors") or []),
        detail=str(problem.get("detail", "")),
        body=case.body,
    )


EXCLUDED: Counter[str] = Counter()
"""How many refusals each of :data:`KNOWN_REFUSALS` let through in this process's run."""


@schemathesis.check
def valid_data_accepted_unless_known(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' ``positive_data_acceptance`` (which the run disables), except for the
    refusals of :data:`KNOWN_REFUSALS`."""
    try:
        return positive_data_acceptance(ctx, response, case)
    except RejectedPositiveData:
        refused = _refused(response, case)
        reason = next((why for why, known in KNOWN_REFUSALS.items() if known(refused)), None)
        if reason is None:
            raise
        EXCLUDED[reason] += 1
        return None


INVALID_REFUSED = [400, 401, 403, 404, 405, 406, 409, 412, 413, 415, 422, 428, 429]
"""The answers that refuse a schema-violating request: schemathesis' default list, less
5xx (``not_a_server_error`` fails those), with 412 (a request both schema-violating and
holding an If-Match of another version may be refused for either) and 413 (a body made
invalid by a string past the body limit, 1 MiB)."""


# ------------------------------------------------------------------ the run


@dataclass
class Figures:
    """What a run did: cases, answers by status, failures by check, errors of the run."""

    operations: set[str] = field(default_factory=set)
    checks: set[str] = field(default_factory=set)
    """The checks that ran."""
    cases: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)
    """Seconds per phase (examples, coverage, fuzzing, stateful)."""

    def record(self, finished: events.ScenarioFinished) -> None:
        recorder = finished.recorder
        self.operations.add(recorder.label)
        for interaction in recorder.interactions.values():
            self.cases += 1
            if interaction.response is not None:
                self.statuses[interaction.response.status_code] += 1
        for case_id, checks in recorder.checks.items():
            for check in checks:
                self.checks.add(check.name)
                if check.failure_info is not None:
                    interaction = recorder.interactions.get(case_id)
                    response = None if interaction is None else interaction.response
                    answer = (
                        ""
                        if response is None
                        else f"{response.status_code} {response.content[:300]!r}"
                    )
                    self.failures.append(
                        f"{check.name} on {recorder.label}: {check.failure_info.failure.title}\n"
                        f"{check.failure_info.code_sample[:600]}\n-> {answer}"
                    )


def _config(token: str, ids: dict[str, list[str]]) -> SchemathesisConfig:
    bound = {
        # Half of the ids are existing ones: operations get past their 404s.
        f"{where}.{name}": {"dictionary": kind, "probability": 0.5}
        for where, name, kind in [
            ("path", "project_id", "projects"),
            ("path", "person_id", "people"),
            ("path", "id", "recordings"),
            ("path", "token_id", "tokens"),
            ("query", "actor_id", "people"),
            ("query", "assignee_id", "people"),
            ("body", "todolist_id", "todolists"),
            ("body", "responsible_id", "people"),
        ]
    }
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "headers": {"Authorization": f"Bearer {token}"},
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "dictionaries": {kind: {"values": values} for kind, values in ids.items()},
            "parameters": bound,
            "checks": {
                # Replaced by valid_data_accepted_unless_known (every other check stays on).
                "positive_data_acceptance": {"enabled": False},
                "negative_data_rejection": {"expected-statuses": INVALID_REFUSED},
            },
            "operations": [
                {
                    # A recording's subscription is a view of who follows it, there as long
                    # as the recording is: DELETE takes the caller off it (GET then says
                    # "subscribed": false), it deletes nothing that GET could no longer find.
                    "include-path": "/v1/recordings/{id}/subscription",
                    "checks": {"use_after_free": {"enabled": False}},
                }
            ],
        }
    )


def _run(base_url: str, config: SchemathesisConfig) -> Figures:
    figures = Figures()
    started = time.monotonic()
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            figures.record(event)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            figures.errors.append(repr(event))
        elif isinstance(event, events.PhaseStarted):
            figures.phases[event.phase.name.value] = -event.timestamp
        elif isinstance(event, events.PhaseFinished):
            figures.phases[event.phase.name.value] += event.timestamp
    figures.seconds = time.monotonic() - started
    return figures


async def _ids(api: Api, team: Team) -> dict[str, list[str]]:
    """Existing ids of every kind, made over HTTP (tokens: not the admin's, which the run
    uses)."""
    c = team.c
    message = await team.message()
    comment = await team.post(f"/v1/recordings/{message['id']}/comments", {"content": "<p>Hi</p>"})
    todolist = await team.post(f"/v1/projects/{team.project_id}/todolists", {"name": "Plan"})
    todo = await team.post(
        f"/v1/todolists/{todolist['id']}/todos", {"content": "Ship", "assignee_ids": [team.mia_id]}
    )
    milestone = await team.post(
        f"/v1/projects/{team.project_id}/milestones", {"title": "Beta", "due_on": "2030-01-01"}
    )
    archived = await c.post("/v1/projects", json={"name": "Old"})
    assert archived.status_code == 201, archived.text
    tokens = await c.get(f"/v1/people/{team.mia_id}/tokens")
    assert tokens.status_code == 200, tokens.text
    ivan_id, _ = await new_person(api, "Ivan")
    return {
        "projects": [team.project_id, archived.json()["id"]],
        "people": [team.mia_id, team.cleo_id, team.otto_id, ivan_id],
        "recordings": [r["id"] for r in (message, comment, todolist, todo, milestone)],
        "todolists": [todolist["id"]],
        "tokens": [t["id"] for t in tokens.json()],
    }


@pytest.fixture
def server_settings() -> dict[str, object]:
    """No rate limit: the run would spend most of its requests on 429s."""
    return {"rate_limit": 0}


@pytest.fixture(autouse=True)
def _hypothesis_home(tmp_path: Path) -> Iterator[None]:
    """Hypothesis keeps its caches under the test's folder, not in the checkout (it keeps
    them even with no example database)."""
    set_hypothesis_home_dir(tmp_path / "hypothesis")
    yield
    set_hypothesis_home_dir(None)


def _operations(document: dict[str, Any]) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method in operations
    }


async def test_schemathesis_finds_no_5xx_no_schema_violation_and_no_logged_error(
    api: Api,
) -> None:
    """Every operation of the OpenAPI document, fuzzed by schemathesis with all its checks:
    no 5xx, no response outside the document, no unhandled exception in the server's log,
    and valid requests refused only for the reasons of :data:`KNOWN_REFUSALS`."""
    team = await make_team(api)
    ids = await _ids(api, team)
    document = (await api.client.get("/openapi.json")).json()
    EXCLUDED.clear()
    with error_log() as logged:
        figures = await asyncio.to_thread(_run, api.server.base_url, _config(api.admin_token, ids))
    print(
        f"\nschemathesis: {len(figures.operations)} operations, {figures.cases} cases,"
        f" {EXAMPLES} examples per operation, seed {SEED}, {figures.seconds:.1f} s"
        f" ({', '.join(f'{name} {s:.1f} s' for name, s in figures.phases.items())});"
        f" checks {sorted(figures.checks)};"
        f" statuses {dict(sorted(figures.statuses.items()))};"
        f" failures {len(figures.failures)}; excluded {dict(EXCLUDED)};"
        f" server errors logged {len(logged)}"
    )
    assert figures.errors == []
    assert figures.failures == [], "\n\n".join(figures.failures)
    assert not [status for status in figures.statuses if status >= 500]
    assert [record.getMessage() for record in logged] == []
    # Every operation was tested (besides them, the stateful phase's scenario is a label),
    # by every check there is but the one replaced.
    assert _operations(document) <= figures.operations
    assert figures.checks == set(CHECKS.get_all_names()) - {"positive_data_acceptance"}
