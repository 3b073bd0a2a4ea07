"""The project most HTTP tests of recordings work in (:class:`Team`), made over HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from .api import Api, bearer, new_person


@dataclass
class Team:
    """A project with clients enabled: the admin created it (owner), Mia is a member, Cleo a
    client; Otto is a member of the company but not of the project."""

    api: Api
    project_id: str
    mia_id: str
    mia: dict[str, str]
    cleo_id: str
    cleo: dict[str, str]
    otto_id: str
    otto: dict[str, str]

    @property
    def c(self) -> httpx.AsyncClient:
        return self.api.client

    async def post(
        self, path: str, body: dict[str, Any], as_: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """POST ``body`` (as the admin unless ``as_`` is given) and expect 201."""
        created = await self.c.post(path, json=body, headers=as_)
        assert created.status_code == 201, created.text
        assert created.headers["location"] == created.json()["url"]
        result: dict[str, Any] = created.json()
        return result

    async def message(self, **fields: Any) -> dict[str, Any]:
        """A message in the project, posted by the admin; ``fields`` add to or replace
        subject "Kick-off" and body "<p>Hello</p>"."""
        body = {"subject": "Kick-off", "body": "<p>Hello</p>", **fields}
        return await self.post(f"/v1/projects/{self.project_id}/messages", body)


async def make_team(api: Api) -> Team:
    """The people and the project of :class:`Team`, created over HTTP."""
    mia_id, mia = await new_person(api, "Mia")
    cleo_id, cleo = await new_person(api, "Cleo", "client", company="Acme")
    otto_id, otto = await new_person(api, "Otto")
    created = await api.client.post(
        "/v1/projects", json={"name": "Launch", "clients_enabled": True}
    )
    assert created.status_code == 201, created.text
    project_id = created.json()["id"]
    for person_id, role in ((mia_id, "member"), (cleo_id, "client")):
        added = await api.client.put(
            f"/v1/projects/{project_id}/people/{person_id}", json={"project_role": role}
        )
        assert added.status_code == 201, added.text
    return Team(api, project_id, mia_id, bearer(mia), cleo_id, bearer(cleo), otto_id, bearer(otto))
