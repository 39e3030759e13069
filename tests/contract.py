"""docs/openapi.json as a checker of real answers: is this (route, status) documented, and does
the body validate against the documented schema?"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from jsonschema import Draft202012Validator

from tests.conftest import REPO_ROOT

SPEC_FILE = REPO_ROOT / "docs" / "openapi.json"


@dataclass(frozen=True)
class Observed:
    method: str
    path: str
    status: int
    content_type: str
    raw: bytes


class Contract:
    def __init__(self, spec: dict[str, Any] | None = None) -> None:
        self.spec = spec if spec is not None else json.loads(SPEC_FILE.read_text(encoding="utf-8"))
        self._routes = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"), template)
            for template in self.spec["paths"]
        ]
        # Literal paths first, as the gateway matches them: /stats/prometheus is not /stats/{x}.
        self._routes.sort(key=lambda route: route[1].count("{"))

    def route(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        """The documented (template, operation) this request is, or None (not an API operation)."""
        clean = unquote(urlsplit(path).path)
        for pattern, template in self._routes:
            if pattern.match(clean):
                operation = self.spec["paths"][template].get(method.lower())
                return (template, operation) if operation is not None else None
        return None

    def problems(self, seen: Observed) -> list[str]:
        """What in this answer the document does not say; empty when it conforms."""
        found = self.route(seen.method, seen.path)
        if found is None:
            return []
        template, operation = found
        where = f"{seen.method} {template} → {seen.status}"
        response = operation["responses"].get(str(seen.status))
        if response is None:
            return [f"{where}: status not documented (documented: {', '.join(operation['responses'])})"]
        content = response.get("content") or {}
        if not seen.raw:
            return [] if not content else [f"{where}: empty body, documented {', '.join(content)}"]
        media_type = _bare(seen.content_type)
        documented = {_bare(name): value for name, value in content.items()}
        if media_type not in documented:
            return [f"{where}: Content-Type {media_type!r} not documented ({', '.join(content)})"]
        schema = documented[media_type].get("schema")
        if media_type == "text/event-stream" and schema is not None and "oneOf" in schema:
            # A stream: each event against the documented events, its data decoded (contentSchema).
            schema, body = {"type": "array", "items": decoded_event_schema(schema)}, decoded_events(seen.raw)
        elif media_type != "application/json" or schema is None:
            return []
        else:
            try:
                body = json.loads(seen.raw)
            except ValueError:
                return [f"{where}: body is not JSON: {seen.raw[:80]!r}"]
        validator = Draft202012Validator({**schema, "components": self.spec["components"]})
        return [
            f"{where}: {'/'.join(str(part) for part in error.absolute_path) or 'body'}: {error.message}"
            for error in validator.iter_errors(body)
        ]


def decoded_event_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of an event whose JSON ``data`` is decoded: each variant's ``data`` is the
    ``contentSchema`` its string's content must fit."""
    variants = []
    for variant in schema["oneOf"]:
        if "properties" not in variant:
            variants.append(variant)  # the stream-only answer's text variant: no event matches it
            continue
        properties = dict(variant["properties"])
        properties["data"] = properties["data"]["contentSchema"]
        variants.append({**variant, "properties": properties})
    return {"oneOf": variants}


def decoded_events(raw: bytes) -> list[dict[str, Any]]:
    """A Server-Sent Events body as its events, ``{event, data}`` (and ``id`` when the event has
    one) with each ``data`` decoded from JSON (a line that is not JSON stays text, and fails the
    schema); comments are skipped."""
    events: list[dict[str, Any]] = []
    for block in raw.decode("utf-8", errors="replace").replace("\r\n", "\n").split("\n\n"):
        name, data, identity = "message", [], {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                identity = {"id": value}
        if data:
            text = "\n".join(data)
            try:
                events.append({"event": name, "data": json.loads(text), **identity})
            except ValueError:
                events.append({"event": name, "data": text, **identity})
    return events


def _bare(media_type: str) -> str:
    return media_type.split(";", maxsplit=1)[0].strip().lower()
