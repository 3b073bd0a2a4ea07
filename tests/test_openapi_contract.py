"""The served OpenAPI document is valid OpenAPI 3.1, as strict as the server, and good enough
for a generated client: ``openapi-python-client`` builds one without a warning, and that client
works against a live server (create, page with the Link header, a typed 404)."""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from openapi_spec_validator import OpenAPIV31SpecValidator

from .support.api import Api

GENERATOR = Path(sys.executable).with_name("openapi-python-client")


@pytest.fixture
async def spec(api: Api) -> dict[str, Any]:
    document: dict[str, Any] = (await api.client.get("/openapi.json")).json()
    return document


def _operation(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    operation: dict[str, Any] = spec["paths"][path][method]
    return operation


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [p for p in operation["parameters"] if p["name"] == name]
    return found


async def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    """openapi-spec-validator finds no error (path parameters inside a segment included)."""
    errors = [str(e).splitlines()[0] for e in OpenAPIV31SpecValidator(spec).iter_errors()]
    assert errors == []


async def test_component_names_are_unique_and_plain(spec: dict[str, Any]) -> None:
    """No two types share a name (msgspec then falls back to dotted module paths, which
    generators drop), and recording unions carry a ``type`` discriminator."""
    names = list(spec["components"]["schemas"])
    assert [n for n in names if "." in n] == []
    titles = [s.get("title", n) for n, s in spec["components"]["schemas"].items()]
    assert len(titles) == len(set(titles))
    recording = _operation(spec, "get", "/v1/recordings/{id}")["responses"]["200"]
    schema = recording["content"]["application/json"]["schema"]
    assert schema["discriminator"]["propertyName"] == "type"


async def test_parameters_and_fields_are_typed_as_the_server_checks_them(
    spec: dict[str, Any],
) -> None:
    """Integers with their bounds, closed sets as enums, times as date-time, the limits the
    server enforces on text, typed path parameters of feeds, and a typed PATCH body."""
    todos = _operation(spec, "get", "/v1/todolists/{id}/todos")
    assert _parameter(todos, "limit")["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}
    assert set(_parameter(todos, "status")["schema"]["enum"]) == {
        "open",
        "completed",
        "all",
        "archived",
        "trashed",
    }
    upcoming = _operation(spec, "get", "/v1/reports/upcoming")
    assert _parameter(upcoming, "days")["schema"]["maximum"] == 365
    snapshot = _operation(spec, "get", "/v1/projects/{project_id}/snapshot")
    assert _parameter(snapshot, "position")["schema"]["type"] == "integer"
    assert _parameter(snapshot, "at")["schema"]["format"] == "date-time"
    schemas = spec["components"]["schemas"]
    assert schemas["Todo"]["properties"]["created_at"]["format"] == "date-time"
    subject = schemas["NewMessage"]["properties"]["subject"]
    assert subject["maxLength"] == 255
    assert "pattern" in subject
    assert schemas["NewMessage"]["properties"]["body"]["maxLength"] == 100_000
    assert schemas["MoveTodo"]["properties"]["position"]["minimum"] == 1
    feed = _operation(spec, "get", "/feeds/projects/{project_id}/archive/{page}.{fmt}")
    assert _parameter(feed, "fmt")["schema"]["enum"] == ["atom", "rss"]
    assert _parameter(feed, "page")["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 999_999_999,
    }
    patch = _operation(spec, "patch", "/v1/recordings/{id}")["requestBody"]
    kinds = patch["content"]["application/json"]["schema"]["anyOf"]
    assert {k["$ref"].rsplit("/", 1)[1] for k in kinds} == {
        "EditMessage",
        "EditComment",
        "EditTodolist",
        "EditTodo",
        "EditMilestone",
        "EditUpload",
    }
    assert spec["servers"]


async def test_response_headers_are_declared(spec: dict[str, Any]) -> None:
    """Lists declare Link and X-Total-Count, reads an ETag, creations a Location, and 429 a
    Retry-After, so that generated clients can page and retry."""
    listed = _operation(spec, "get", "/v1/projects")["responses"]["200"]["headers"]
    assert {"Link", "X-Total-Count", "ETag"} <= set(listed)
    created = _operation(spec, "post", "/v1/projects")["responses"]["201"]["headers"]
    assert "Location" in created
    limited = _operation(spec, "get", "/v1/projects")["responses"]["429"]["headers"]
    assert "Retry-After" in limited
    edit = _operation(spec, "patch", "/v1/projects/{project_id}")
    assert "412" in edit["responses"]
    assert _parameter(edit, "If-Match")["in"] == "header"


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[Path]:
    """A folder to generate a client into (removed from ``sys.modules`` afterwards)."""
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("cairn_api_client")]:
        del sys.modules[name]
    if str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


async def test_a_generated_client_works_against_the_server(
    api: Api, spec: dict[str, Any], generated: Path
) -> None:
    """openapi-python-client generates a client with no warning; with it: create a project, a
    list and to-dos, page through the to-dos by the Link header, and read a 404 as a typed
    Problem."""
    document = generated / "openapi.json"
    document.write_text(json.dumps(spec))
    assert shutil.which(str(GENERATOR)) is not None
    made = await asyncio.to_thread(
        subprocess.run,
        [str(GENERATOR), "generate", "--path", str(document), "--meta", "none"],
        cwd=generated,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert made.returncode == 0, made.stdout + made.stderr
    output = (made.stdout + made.stderr).strip().splitlines()
    assert [line for line in output if not line.startswith("Generating ")] == []
    sys.path.insert(0, str(generated))
    client_module = importlib.import_module("cairn_api_client")
    create_project = importlib.import_module("cairn_api_client.api.projects.create_project")
    post_todolist = importlib.import_module("cairn_api_client.api.to_dos.post_todolist")
    post_todo = importlib.import_module("cairn_api_client.api.to_dos.post_todo")
    list_todos = importlib.import_module("cairn_api_client.api.to_dos.list_todos")
    get_todo = importlib.import_module("cairn_api_client.api.to_dos.get_todo")
    models = importlib.import_module("cairn_api_client.models")

    client = client_module.AuthenticatedClient(base_url=api.server.base_url, token=api.admin_token)
    async with client:
        project = await create_project.asyncio(
            client=client, body=models.NewProject(name="Generated")
        )
        assert isinstance(project, models.Project), project
        todolist = await post_todolist.asyncio(
            project.id, client=client, body=models.NewTodolist(name="Steps")
        )
        assert isinstance(todolist, models.Todolist), todolist
        for n in range(5):
            todo = await post_todo.asyncio(
                todolist.id, client=client, body=models.NewTodo(content=f"Step {n}")
            )
            assert isinstance(todo, models.Todo), todo
        seen: list[str] = []
        cursor = None
        while True:
            kwargs: dict[str, Any] = {"limit": 2}
            if cursor is not None:
                kwargs["cursor"] = cursor
            page = await list_todos.asyncio_detailed(todolist.id, client=client, **kwargs)
            assert page.status_code == 200
            assert int(page.headers["x-total-count"]) == 5
            seen += [t.content for t in page.parsed]
            following = _next_cursor(page.headers.get("link"))
            if following is None:
                break
            cursor = following
        assert seen == [f"Step {n}" for n in range(5)]
        missing = await get_todo.asyncio("rec_missing", client=client)
        assert isinstance(missing, models.Problem)
        assert missing.status == 404


def _next_cursor(link: str | None) -> str | None:
    if not link or 'rel="next"' not in link:
        return None
    url = link.split(";", 1)[0].strip("<> ")
    return parse_qs(urlsplit(url).query)["cursor"][0]


async def test_docs_are_served_from_this_server(api: Api) -> None:
    """``/docs`` is Swagger UI reading ``/openapi.json``, with every asset served here (no
    CDN: users run offline), in a version that reads OpenAPI 3.1."""
    page = await api.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '"/openapi.json"' in html
    assert "https://" not in html
    assert "http://" not in html
    assets = [a for a in ("swagger-ui.css", "swagger-ui-bundle.js") if f"/docs/assets/{a}" in html]
    assert len(assets) == 2
    for asset in assets:
        served = await api.client.get(f"/docs/assets/{asset}")
        assert served.status_code == 200, asset
    bundle = (await api.client.get("/docs/assets/swagger-ui-bundle.js")).text
    assert "OpenAPI31" in bundle
