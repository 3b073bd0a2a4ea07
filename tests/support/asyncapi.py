"""The AsyncAPI contract of ``/v1/stream`` in the tests: the official AsyncAPI 3.0.0 JSON
Schema to validate the document with, :class:`Contract`, which says which message of the
served document a frame is, and :class:`Transcript`, a WebSocket client that keeps every frame
for it to judge.

No Python package ships the official schema, so it comes from the AsyncAPI Initiative's own
npm package, ``@asyncapi/specs`` (the source of the schemas published at asyncapi.com),
fetched at test time with ``npm pack`` (npm's cache keeps it for later runs) and checked
against the integrity hash pinned here: the same bytes on every machine, nothing vendored.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Final, Literal

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from websockets.asyncio.client import ClientConnection

from .realtime import frame

SPECS: Final = "@asyncapi/specs@6.11.1"
"""The npm package (and version) holding the official AsyncAPI JSON Schemas."""
SPECS_INTEGRITY: Final = "sha512-A3WBLqAKGoJ2+6FWFtpjBlCQ1oFCcs4GxF7zsIGvNqp/klGUHjlA3aAcZ9XMMpLGE8zPeYDz2x9FmO6DSuKraQ=="
"""Its tarball's integrity, as the npm registry states it (``npm view @asyncapi/specs@6.11.1
dist.integrity``)."""
SCHEMA_PATH: Final = "package/schemas/3.0.0.json"
"""The AsyncAPI 3.0.0 schema inside the tarball (JSON Schema draft 07, all in one file)."""

NPM_TIMEOUT: Final = 300.0
"""Only there to turn a hung download into a failure."""


_NPM_QUIET: Final = {
    "npm_config_update_notifier": "false",
    "npm_config_fund": "false",
    "npm_config_audit": "false",
    "npm_config_loglevel": "error",
}


def official_schema(folder: Path) -> dict[str, Any]:
    """The official JSON Schema of AsyncAPI 3.0.0 documents, packed by npm into ``folder``.

    Raises:
        AssertionError: npm is missing or failed, or the tarball is not the pinned one.
    """
    npm = shutil.which("npm")
    assert npm is not None, f"npm is needed to fetch {SPECS} (the official AsyncAPI schemas)"
    result = subprocess.run(
        [npm, "pack", SPECS, "--json", "--prefer-offline", "--pack-destination", str(folder)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=NPM_TIMEOUT,
        check=False,
        env={**os.environ, **_NPM_QUIET},
    )
    assert result.returncode == 0, f"npm pack {SPECS} failed:\n{result.stderr}"
    (packed,) = json.loads(result.stdout)
    tarball = folder / packed["filename"]
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    assert f"sha512-{digest}" == SPECS_INTEGRITY, f"{tarball.name} is not the pinned {SPECS}"
    with tarfile.open(tarball) as archive:
        member = archive.extractfile(SCHEMA_PATH)
        assert member is not None, f"{SPECS} has no {SCHEMA_PATH}"
        schema: dict[str, Any] = json.load(member)
    return schema


Direction = Literal["send", "receive"]
"""An operation's action in the document, which takes the server's point of view: the
client's frames are ``receive``, the server's ``send``."""


class Contract:
    """A served AsyncAPI document, as a judge of frames.

    Frames are judged strictly: a field that a payload schema does not declare is refused
    even where the document allows extra fields (the server's frames: a client should ignore
    fields added later, but the server must not send any the document does not declare).
    """

    _BASE: Final = "urn:cairn:asyncapi"

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        judged = copy.deepcopy(document)
        for schema in judged["components"]["schemas"].values():
            if "properties" in schema:
                schema.setdefault("additionalProperties", False)
        resource = Resource(contents=judged, specification=DRAFT7)
        self._registry: Registry[Any] = Registry().with_resource(self._BASE, resource)

    def _follow(self, node: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """An object of the document behind its references: (its JSON pointer, it)."""
        pointer = ""
        while "$ref" in node:
            pointer = node["$ref"].removeprefix("#")
            node = self.document
            for part in pointer.lstrip("/").split("/"):
                assert part in node, f"{pointer}: no such object in the document"
                node = node[part]
        return pointer, node

    def messages(self, direction: Direction) -> dict[str, str]:
        """The messages going ``direction``, as the operations (and the replies of those
        going the other way) say: each message's name and the JSON pointer of its object."""
        found: dict[str, str] = {}
        for operation in self.document["operations"].values():
            if operation["action"] == direction:
                refs = operation["messages"]
            else:
                refs = operation.get("reply", {}).get("messages", [])
            for ref in refs:
                pointer, message = self._follow(ref)
                found[message["name"]] = pointer
        return found

    def _payload(self, pointer: str) -> jsonschema.Draft7Validator:
        return jsonschema.Draft7Validator(
            {"$ref": f"{self._BASE}#{pointer}/payload"}, registry=self._registry
        )

    def judge(self, frame: Any, direction: Direction) -> list[str]:
        """The names of the ``direction`` messages whose payload ``frame`` (decoded JSON) is
        valid against: exactly one for a frame the document describes."""
        return [
            name
            for name, pointer in self.messages(direction).items()
            if self._payload(pointer).is_valid(frame)
        ]

    def why_not(self, frame: Any, name: str, direction: Direction) -> str:
        """What makes ``frame`` invalid against message ``name`` (for failure messages)."""
        pointer = self.messages(direction).get(name)
        if pointer is None:
            return f"the document has no {direction} message {name!r}"
        errors = self._payload(pointer).iter_errors(frame)
        return "; ".join(e.message for e in errors)


class Transcript:
    """A WebSocket client that keeps every frame it sends and receives, decoded.

    Frames the server must refuse (``send(..., refused=True)``) are kept apart, in
    :attr:`refused`; text that is not JSON is sent but not kept.
    """

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.sent: list[dict[str, Any]] = []
        self.refused: list[Any] = []
        self.received: list[dict[str, Any]] = []

    async def send(self, message: Any, *, refused: bool = False) -> None:
        """Send ``message`` (a JSON value, or text as it is)."""
        if isinstance(message, str):
            await self.conn.send(message)
            return
        (self.refused if refused else self.sent).append(message)
        await self.conn.send(json.dumps(message))

    async def recv(self) -> dict[str, Any]:
        """The next frame."""
        got = await frame(self.conn)
        self.received.append(got)
        return got

    async def ask(self, message: Any, *, refused: bool = False) -> dict[str, Any]:
        """Send ``message``; the next frame."""
        await self.send(message, refused=refused)
        return await self.recv()

    async def until(self, kind: str) -> list[dict[str, Any]]:
        """The frames up to the next event of ``kind``, which is the last of them."""
        got = [await self.recv()]
        while got[-1].get("kind") != kind:
            got.append(await self.recv())
        return got
