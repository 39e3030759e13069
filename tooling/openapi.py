"""The merged OpenAPI document: every function's Powertools resolver, one spec.

``make openapi`` writes it to docs/openapi.json (a unit test fails when that file is stale), and
the local gateway serves it with Swagger UI at /docs. Which routes need a key comes from
template.yaml, the same place API Gateway learns it.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from local import template
from tenantry import routes
from tenantry.http import ANSWERS_EXTENSION, STREAM_EXTENSION
from tenantry.models.errors import ErrorBody

TITLE = "Tenantry API"
VERSION = "1.0.0"


def _admin_prefixes() -> str:
    """``/tenants and /stats``: the top-level paths of the role table's admin routes, in its order."""
    prefixes = {"/" + route.partition(" ")[2].split("/")[1]: None for route in routes.routes_for("admin")}
    return " and ".join(prefixes)


DESCRIPTION = (
    "Multi-tenant API: the X-API-Key header resolves every request to one tenant. "
    f"Admin keys reach {_admin_prefixes()}; tenant keys reach everything else."
)


# Every operation's tag, described once (the order readers see them in).
TAGS = {
    "tenants": "Admin: onboard, change and offboard tenants",
    "keys": "Admin: issue, list and revoke a tenant's API keys",
    "usage": "Request and token counters: the tenant's own, and every tenant's for admins",
    "tenant": "The calling tenant's own profile",
    "events": "The tenant's event store: publish, read, count, consumer checkpoints",
    "chat": "The tenant's chat with an LLM, in per-user sessions",
    "health": "Probes that need no key",
    "console": "The operator console's page and assets",
}


def _code_dir(resource: dict[str, Any]) -> Path:
    return template.REPO_ROOT / str(resource["Properties"]["CodeUri"]).rstrip("/")


def _load_app(logical_id: str, code_dir: Path) -> Any:
    module_name = f"tenantry_openapi_{logical_id}"
    spec = importlib.util.spec_from_file_location(module_name, code_dir / "app.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {code_dir / 'app.py'}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module.app


def _security(route: template.ApiRoute) -> list[dict[str, list[str]]]:
    return [] if route.auth.get("Authorizer") == "NONE" else [{"ApiKey": []}]


def build_spec() -> dict[str, Any]:
    """Merge every API function's schema; paths sorted so the output is stable."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    security_by_operation: dict[tuple[str, str], list[dict[str, list[str]]]] = {}
    routes = template.api_routes()
    for logical_id, resource in sorted(template.resources_of_type("AWS::Serverless::Function").items()):
        own = [route for route in routes if route.function == logical_id]
        if not own:
            continue
        for route in own:
            security_by_operation[(route.path, route.method.lower())] = _security(route)
        app = _load_app(logical_id, _code_dir(resource))
        schema = json.loads(app.get_openapi_json_schema(title=TITLE, version=VERSION))
        for path, operations in schema.get("paths", {}).items():
            paths.setdefault(path, {}).update(operations)
        schemas.update(schema.get("components", {}).get("schemas", {}))
    for path, operations in paths.items():
        for method, operation in operations.items():
            operation["security"] = security_by_operation.get((path, method), [{"ApiKey": []}])
            _document_scope(f"{method.upper()} {path}", operation)
            _document_answers(operation)
            _document_stream(operation, schemas)
            _bounds_in_json_schema(operation)
    _links_by_operation_id(paths)
    _add_error_schemas(schemas)
    for operations in paths.values():
        for operation in operations.values():
            _add_examples(operation, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": DESCRIPTION},
        "servers": [
            {"url": "/v1", "description": "API Gateway stage"},
            {"url": "/", "description": "make dev"},
        ],
        "tags": [{"name": name, "description": description} for name, description in TAGS.items()],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "ApiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": API_KEY_DESCRIPTION,
                }
            },
            "headers": {"Retry-After": RETRY_AFTER},
        },
    }


SCOPE_EXTENSION = "x-tenantry-scope"


def _document_scope(route: str, operation: dict[str, Any]) -> None:
    """The scope a tenant route needs, from the one scope table (tenantry.routes.SCOPES): in the
    operation's description and as ``x-tenantry-scope`` (``*``: any tenant key)."""
    if routes.role_of(*route.split(" ", 1)) != routes.TENANT:
        return
    scope = routes.SCOPES.get(route)
    operation[SCOPE_EXTENSION] = scope or "*"
    note = (
        f"Needs a tenant key with the scope `{scope}` (a key without scopes has them all); any other "
        "key gets API Gateway's 403."
        if scope
        else "Any tenant key may call it, whatever its scopes."
    )
    operation["description"] = f"{operation.get('description', '').rstrip()}\n\n{note}".strip()


# ---------------------------------------------------------------------------- error answers
API_KEY_DESCRIPTION = (
    "A tenant key (`tnt_live_…`) or an admin key (`tnt_admin_…`), sent once. Missing, unknown, "
    "revoked or expired: 401. A header sent twice with different values: 401."
)
RETRY_AFTER = {
    "description": "Seconds to wait before retrying",
    "schema": {"type": "integer", "minimum": 0},
    "example": 1,
}
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
RETRY_AFTER_REF = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}

# What each status means, with an example body (message, error). The gateway's own (401, 403, 413,
# 429, 500, 502, 504) come from template.yaml's GatewayResponses and keep API Gateway's text.
ANSWERS: dict[int, tuple[str, str | None, str]] = {
    400: (
        "Malformed JSON, NaN/Infinity, a key twice in one object (duplicate_key, naming it), a body "
        "that is not UTF-8, or a bad page token",
        "Malformed JSON body: Expecting value: line 1 column 1 (char 0)",
        "malformed_json",
    ),
    401: ("API Gateway: no key, or an unknown, revoked or expired one", "Unauthorized", "unauthorized"),
    403: (
        "API Gateway: the key's role may not call this route (access_denied), or its tenant is "
        "suspended (tenant_suspended); or a "
        "feature outside the tenant's tier; or tenant_offboarded: the tenant was offboarded after "
        "the request was authorized, and nothing was written",
        "User is not authorized to access this resource with an explicit deny",
        "access_denied",
    ),
    404: ("Not found (another tenant's data does not exist for you)", "Not found", "not_found"),
    409: (
        "Conflict: the id exists (tenant_exists), or is still being offboarded "
        "(tenant_offboarding, with Retry-After), or a request with this Idempotency-Key is in progress; "
        "or the stream's last position is not `expected_position` (wrong_expected_position, with "
        "`current_position`: nothing was stored)",
        "Tenant acme already exists",
        "conflict",
    ),
    413: (
        "The body is over 256 KB (API Gateway: over 10 MB)",
        "Request body exceeds 262144 bytes",
        "payload_too_large",
    ),
    415: (
        "A body whose Content-Type is not application/json (charset utf-8 at most)",
        "Bodies are JSON: send Content-Type: application/json (got text/plain)",
        "unsupported_media_type",
    ),
    422: (
        "A field is invalid; `errors` names each one, `field` the first (nesting over 32 levels, "
        "lone surrogates, booleans or fractions for integers included)",
        "Invalid request: tier",
        "validation_error",
    ),
    431: (
        "The request line and headers are over API Gateway's 10 KB",
        "Request Header Fields Too Large",
        "client_error",
    ),
    429: (
        "API Gateway: the tier's rate (throttled, with Retry-After) or monthly quota "
        "(quota_exceeded) is spent; or the tenant's LLM token budget (with Retry-After)",
        "Too Many Requests",
        "throttled",
    ),
    500: (
        "API Gateway: the authorizer failed; or (POST /chat) the request's tokens are billed but no "
        "turn holds it (turn_not_stored: the answer is not acknowledged as stored)",
        None,
        "server_error",
    ),
    502: (
        "API Gateway: the function failed; or the LLM answered an error",
        "Internal server error",
        "server_error",
    ),
    503: (
        "DynamoDB throttled past every retry (service_busy), too many concurrent writers "
        "(write_contention), or the model unavailable: retry after Retry-After",
        "The service is busy; retry shortly",
        "service_busy",
    ),
    504: (
        "API Gateway: the function did not answer in 29 s; or chat's model did not answer in time",
        "Endpoint request timed out",
        "integration_timeout",
    ),
}
# Any integrated route: the gateway's (431, 502, 504) and 503 `service_busy` (DynamoDB throttled past
# every retry), which every function answers from one exception handler in tenantry.http.
GATEWAY_ANSWERS = (431, 502, 503, 504)
AUTHORIZED_ANSWERS = (401, 403, 429, 500)  # routes behind the authorizer and a usage plan
BODY_ANSWERS = (400, 413, 415, 422)  # routes that read a JSON body
RETRY_AFTER_ANSWERS = (409, 429, 503, 504)


def _error_response(status: int) -> dict[str, Any]:
    description, message, code = ANSWERS[status]
    example: dict[str, Any] = {"message": message, "error": code, "request_id": EXAMPLE_REQUEST_ID}
    if status == 422:
        example["field"] = "tier"
        example["errors"] = [{"field": "tier", "message": "Field required", "type": "missing"}]
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": ERROR_REF, "example": example}},
    }
    if status in RETRY_AFTER_ANSWERS:
        response["headers"] = dict(RETRY_AFTER_REF)
    return response


def _document_answers(operation: dict[str, Any]) -> None:
    """Every status the operation can answer, each with the one error body.

    The shared ones follow from what the route is (behind the authorizer, reads a body, has
    parameters); the route's own come from its ``may_answer`` declaration in the handler."""
    statuses: set[int] = set(GATEWAY_ANSWERS)
    if operation.get("security"):
        statuses.update(AUTHORIZED_ANSWERS)
    if "requestBody" in operation:
        statuses.update(BODY_ANSWERS)
    parameters = operation.get("parameters") or []
    if parameters:
        statuses.add(422)
    if any(parameter.get("in") == "path" for parameter in parameters):
        statuses.add(404)  # a value the route's own pattern cannot hold matches no route
    statuses.update(operation.pop(ANSWERS_EXTENSION, []))
    responses = operation["responses"]
    responses.pop("422", None)
    responses.pop(422, None)
    declared = {str(status) for status in responses}  # the route's own (e.g. /ready's 503) win
    for status in sorted(statuses):
        if str(status) not in declared:
            responses[str(status)] = _error_response(status)
    operation["responses"] = {str(status): responses[status] for status in sorted(responses, key=int)}


# ---------------------------------------------------------------------------- streams
EVENT_STREAM = "text/event-stream"
STREAM_FORMAT = (
    "Server-Sent Events, UTF-8: each event is an `event:` line naming it and one `data:` line of "
    "JSON, then a blank line; lines starting with `:` are keep-alive comments. The schema is each "
    "event's, `{event, data}` (as OpenAPI 3.2's `itemSchema`), its `data` JSON described by "
    "`contentSchema`."
)


# An event's `id:` line: the position of the stream it stands at (what Last-Event-ID sends back).
STREAM_EVENT_ID = {"type": "string", "pattern": "^(0|[1-9][0-9]*)$", "description": "A position"}


# The last variant of a stream-only 200: the body as text, for clients that read it whole.
STREAM_TEXT = {
    "type": "string",
    "title": "the stream as text",
    "description": "The whole body as text, for a client that reads it whole rather than event by event",
}


def _document_stream(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """A route declared with ``http.streams``: its 200 also answers ``text/event-stream``, every
    event's ``data`` schema in the components (an error's is ErrorBody)."""
    declared = operation.pop(STREAM_EXTENSION, None)
    if declared is None:
        return
    variants: list[dict[str, Any]] = []
    for name, schema in declared["events"].items():
        if schema is None:
            payload: dict[str, Any] = ERROR_REF
        else:
            schemas.update(schema.pop("$defs", {}))
            schemas[schema["title"]] = schema
            payload = {"$ref": f"#/components/schemas/{schema['title']}"}
        data = {"type": "string", "contentMediaType": "application/json", "contentSchema": payload}
        properties: dict[str, Any] = {"event": {"const": name}, "data": data}
        required = ["event", "data"]
        if name in declared.get("identified", ()):
            properties["id"] = STREAM_EVENT_ID
            required.append("id")
        variants.append(
            {"type": "object", "title": f"{name} event", "properties": properties, "required": required}
        )
    media_type = {"schema": {"description": f"{declared['description']}. {STREAM_FORMAT}", "oneOf": variants}}
    answer = operation["responses"]["200"]
    if declared.get("only"):
        # The route answers nothing but the stream: no JSON variant of its 200. A code generator
        # that reads no events (openapi-python-client) hands over the body's text: that is the
        # one variant it can build from a text/event-stream body. No event is a string, so it
        # never competes with the events' own variants.
        answer["content"] = {}
        answer["description"] = declared["description"]
        variants.append(STREAM_TEXT)
    answer.setdefault("content", {})[EVENT_STREAM] = media_type


def _stream_example(media_type: dict[str, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    """An example event, as the schema describes one: the first declared, its data as JSON text
    (on the wire: ``event: <name>``, then ``data: <that text>``)."""
    variant = media_type["schema"]["oneOf"][0]
    payload = _example(variant["properties"]["data"]["contentSchema"], schemas)
    example = {
        "event": variant["properties"]["event"]["const"],
        "data": json.dumps(payload, separators=(",", ":")),
    }
    if "id" in variant["properties"]:
        example["id"] = str(payload.get("position", 1)) if isinstance(payload, dict) else "1"
    return example


# Powertools writes a parameter's bounds under pydantic's names when its type carries a validator
# of its own (tenantry.models.numbers.QueryInt); JSON Schema's names are these.
_JSON_SCHEMA_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _bounds_in_json_schema(operation: dict[str, Any]) -> None:
    for parameter in operation.get("parameters") or []:
        schema = parameter.get("schema") or {}
        # An optional parameter (``QueryInt | None``) carries them in its anyOf's integer member.
        for member in [schema, *schema.get("anyOf", [])]:
            for pydantic_name, json_schema_name in _JSON_SCHEMA_BOUNDS.items():
                if pydantic_name in member:
                    member[json_schema_name] = member.pop(pydantic_name)


def _links_by_operation_id(paths: dict[str, Any]) -> None:
    """Links name their target by ``operationId``: a JSON-pointer ``operationRef`` to a templated
    path holds ``{`` and ``}``, which a URI reference may not (Spectral's ``oas3-schema``), and
    every generator and schemathesis resolve an id alike."""
    ids = {
        "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method: operation["operationId"]
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    for operations in paths.values():
        for operation in operations.values():
            for response in operation["responses"].values():
                for link in (response.get("links") or {}).values():
                    reference = link.pop("operationRef", None)
                    if reference is not None:
                        link["operationId"] = ids[reference]


def _add_error_schemas(schemas: dict[str, Any]) -> None:
    # Powertools' own validation shapes: the API never answers them (its 422 is ErrorBody).
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    error = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs", {}))
    schemas["ErrorBody"] = error


# ---------------------------------------------------------------------------- examples
EXAMPLE_REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"
_EXAMPLE_STRINGS = {"date-time": "2026-11-24T10:00:00.000Z", "date": "2026-11-24"}
# Example values of string properties by name, so built examples read like real answers.
_EXAMPLE_BY_NAME: dict[str, Any] = {
    "tenant_id": "acme",
    "tenant": "acme",
    "name": "Acme Corp",
    "tier": "pro",
    "role": "tenant",
    "key_id": "key_3f9a0c1d2e4b5a69",
    "api_key": "tnt_live_5Hd9kQ2mXw7rTz3pLc8vN1bYf4sJ6gA2eU9oR3iK7hM5dQ2xZ4",
    "hint": "tnt_…Zx4q",
    "session_id": "s_01HZY3J8Q4",
    "type": "order.placed",
    "model": "echo",
    "response": "Hello! How can I help?",
    "content": "Hello",
    "title": "Hello",
    "period": "day#2026-11-24",
    "currency": "USD",
    "prices_recorded_on": "2026-11-01",
    "status": "active",
    "text": "Hello",
    "stop_reason": "end_turn",
}


def _example(schema: dict[str, Any], schemas: dict[str, Any], depth: int = 0) -> Any:
    """A value that fits ``schema``: its own example if it has one, else one built from its types."""
    if "$ref" in schema:
        return _example(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas, depth)
    if schema.get("examples"):
        return schema["examples"][0]
    if "example" in schema:
        return schema["example"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("oneOf", "anyOf"):
        options = [option for option in schema.get(combinator, []) if option.get("type") != "null"]
        if options:
            return _example(options[0], schemas, depth)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: _named_example(name, prop, schemas, depth + 1)
            for name, prop in schema.get("properties", {}).items()
            if depth < 6
        }
    if kind == "array":
        return [_example(schema.get("items", {}), schemas, depth + 1)] if depth < 6 else []
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    if kind == "string":
        return _EXAMPLE_STRINGS.get(str(schema.get("format")), "string")
    return None


def _named_example(name: str, schema: dict[str, Any], schemas: dict[str, Any], depth: int) -> Any:
    value = _example(schema, schemas, depth)
    if isinstance(value, str) and "format" not in schema and "enum" not in schema:
        if name.endswith("_at") or name == "timestamp":
            return _EXAMPLE_STRINGS["date-time"]
        return _EXAMPLE_BY_NAME.get(name, value)
    return value


def _add_examples(operation: dict[str, Any], schemas: dict[str, Any]) -> None:
    """An example on every body: the model's own, or one built from its schema."""
    bodies = [operation.get("requestBody", {}), *operation["responses"].values()]
    for body in bodies:
        for media_type, content in (body.get("content") or {}).items():
            if media_type == EVENT_STREAM:
                content.setdefault("example", _stream_example(content, schemas))
                continue
            if "schema" not in content and media_type != "application/json":
                content["schema"] = {"type": "string"}
                content.setdefault("example", f"(the {media_type} text)")
            if "example" in content or "examples" in content or "schema" not in content:
                continue
            value = _example(content["schema"], schemas)
            if media_type != "application/json" and not isinstance(value, str):
                continue
            content["example"] = value


def render() -> str:
    return json.dumps(build_spec(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description="Write the merged OpenAPI document")
    parser.add_argument("--write", type=Path, help="output file (default: stdout)")
    args = parser.parse_args()
    text = render()
    if args.write:
        args.write.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
