"""Calling a Lambda handler in process, as API Gateway and Lambda would (tests, benches): a context
with what the handlers and Powertools read of one, and a REST API (payload v1) proxy event."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from tenantry import routes


class StubLambdaContext:
    function_name = "test-function"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"

    def __init__(self) -> None:
        self.aws_request_id = str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def api_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
    authorizer: dict[str, str] | None = None,
    resource: str | None = None,
    path_parameters: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A REST API (payload v1) proxy event as API Gateway sends it after the authorizer ran."""
    text = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
    resource = resource or template_resource(method, path)
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    request_context: dict[str, Any] = {
        "requestId": str(uuid.uuid4()),
        "apiId": "testapi",
        "stage": "v1",
        "httpMethod": method,
        "path": f"/v1{path}",
        "resourcePath": resource or path,
        "identity": {"sourceIp": "127.0.0.1", "userAgent": "tenantry-in-process"},
        "accountId": "123456789012",
    }
    if authorizer is not None:
        request_context["authorizer"] = {"principalId": authorizer.get("tenant_id", ""), **authorizer}
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": all_headers,
        "multiValueHeaders": {name: [value] for name, value in all_headers.items()},
        "queryStringParameters": query or None,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": request_context,
        "body": text,
        "isBase64Encoded": False,
    }


def template_resource(method: str, path: str) -> str:
    """The template route ``path`` matches (``/tenants/acme/keys`` → ``/tenants/{tenant_id}/keys``),
    as API Gateway sets an event's ``resource``; the path itself when no route matches."""
    for route in routes.ROLES:
        route_method, _, pattern = route.partition(" ")
        if route_method == method.upper() and re.fullmatch(re.sub(r"\{[^}/]+\}", "[^/]+", pattern), path):
            return pattern
    return path
