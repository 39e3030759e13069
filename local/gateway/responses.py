"""API Gateway's own answers, rendered from template.yaml's ``GatewayResponses`` as API Gateway does.

A gateway answer (401, 403, 413, 429, 5xx) has a response type. API Gateway looks that type up in
the API's gateway responses, falls back to DEFAULT_4XX or DEFAULT_5XX by status, and otherwise
answers its built-in body. The response's template is a mapping template over ``$context``; the
variables these templates may use are the few below, and a template that uses any other is
refused when the template is loaded, not when a request needs it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# $context variables a gateway response template may use locally.
_VARIABLES = re.compile(r"\$(?:\{context\.([A-Za-z.]+)\}|context\.([A-Za-z.]+[A-Za-z]))")
SUPPORTED = ("requestId", "error.message", "error.messageString", "error.responseType")
# ``$context.authorizer.<key>``: a value of the authorizer's context (empty when it has none).
AUTHORIZER_PREFIX = "authorizer."


class GatewayResponseError(ValueError):
    """A GatewayResponses entry the local gateway cannot render faithfully."""


@dataclass(frozen=True)
class GatewayAnswer:
    """One of API Gateway's own answers (never the handler's) before rendering."""

    status: int
    message: str | None
    error_type: str
    amzn_error_type: str
    # API Gateway's built-in body for this answer when no gateway response applies; ACCESS_DENIED's
    # comes from IAM and spells its key "Message".
    message_key: str = "message"


# The answers the local gateway gives of its own, each with the response type API Gateway uses.
UNAUTHORIZED = GatewayAnswer(401, "Unauthorized", "UNAUTHORIZED", "UnauthorizedException")
MISSING_TOKEN = GatewayAnswer(
    403, "Missing Authentication Token", "MISSING_AUTHENTICATION_TOKEN", "MissingAuthenticationTokenException"
)
EXPLICIT_DENY = GatewayAnswer(
    403,
    "User is not authorized to access this resource with an explicit deny",
    "ACCESS_DENIED",
    "AccessDeniedException",
    message_key="Message",
)
IMPLICIT_DENY = GatewayAnswer(
    403,
    "User is not authorized to access this resource",
    "ACCESS_DENIED",
    "AccessDeniedException",
    message_key="Message",
)
INVALID_API_KEY = GatewayAnswer(403, "Forbidden", "INVALID_API_KEY", "ForbiddenException")
THROTTLED = GatewayAnswer(429, "Too Many Requests", "THROTTLED", "TooManyRequestsException")
QUOTA_EXCEEDED = GatewayAnswer(429, "Limit Exceeded", "QUOTA_EXCEEDED", "LimitExceededException")
AUTHORIZER_FAILURE = GatewayAnswer(
    500, None, "AUTHORIZER_CONFIGURATION_ERROR", "AuthorizerConfigurationException"
)
HANDLER_FAILURE = GatewayAnswer(502, "Internal server error", "DEFAULT_5XX", "InternalServerErrorException")
TOO_LARGE = GatewayAnswer(413, "Request Too Long", "REQUEST_TOO_LARGE", "RequestTooLongException")
BAD_REQUEST = GatewayAnswer(400, "Bad Request", "BAD_REQUEST_BODY", "BadRequestException")
HEADERS_TOO_LARGE = GatewayAnswer(
    431, "Request Header Fields Too Large", "DEFAULT_4XX", "RequestHeaderFieldsTooLargeException"
)
INTEGRATION_TIMEOUT = GatewayAnswer(
    504, "Endpoint request timed out", "INTEGRATION_TIMEOUT", "InternalServerErrorException"
)
GATEWAY_BUG = GatewayAnswer(500, "Internal server error", "DEFAULT_5XX", "InternalServerErrorException")
# Lambda's Invoke API refused the call (here: a tenant-isolated function invoked without
# X-Amz-Tenant-Id); API Gateway logs "Execution failed due to configuration error" and answers 500.
INVOKE_REFUSED = GatewayAnswer(500, "Internal server error", "DEFAULT_5XX", "InternalServerErrorException")


@dataclass(frozen=True)
class GatewayResponseSpec:
    status: int | None
    template: str | None
    headers: tuple[tuple[str, str], ...]


def static_value(name: str, value: Any) -> str:
    """A mapping's static value (``'text'``, quotes included, as API Gateway writes it)."""
    text = str(value)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1]
    raise GatewayResponseError(f"header {name}: only static values ('quoted') are rendered locally")


def parse(raw: dict[str, Any] | None) -> dict[str, GatewayResponseSpec]:
    """The ``GatewayResponses`` property of an ``AWS::Serverless::Api``, checked."""
    specs: dict[str, GatewayResponseSpec] = {}
    for response_type, given in (raw or {}).items():
        entry = given or {}
        templates = entry.get("ResponseTemplates") or {}
        template = templates.get("application/json")
        if template is not None:
            for match in _VARIABLES.finditer(str(template)):
                name = match.group(1) or match.group(2)
                if name not in SUPPORTED and not name.startswith(AUTHORIZER_PREFIX):
                    raise GatewayResponseError(f"{response_type}: $context.{name} is not rendered locally")
        headers = (entry.get("ResponseParameters") or {}).get("Headers") or {}
        status = entry.get("StatusCode")
        specs[str(response_type)] = GatewayResponseSpec(
            status=int(status) if status is not None else None,
            template=None if template is None else str(template),
            headers=tuple((str(name), static_value(str(name), value)) for name, value in headers.items()),
        )
    return specs


def _lookup(specs: dict[str, GatewayResponseSpec], answer: GatewayAnswer) -> GatewayResponseSpec | None:
    found = specs.get(answer.error_type)
    if found is None:
        found = specs.get("DEFAULT_4XX" if answer.status < 500 else "DEFAULT_5XX")
    return found


def render(
    specs: dict[str, GatewayResponseSpec],
    answer: GatewayAnswer,
    request_id: str,
    authorizer: dict[str, str] | None = None,
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of ``answer`` as API Gateway would send them for this API."""
    spec = _lookup(specs, answer)
    if spec is None or spec.template is None:
        body = json.dumps({answer.message_key: answer.message}, separators=(",", ":")).encode()
        headers: list[tuple[str, str]] = []
        status = answer.status if spec is None or spec.status is None else spec.status
    else:
        values = {
            "requestId": request_id,
            "error.message": answer.message or "",
            "error.messageString": json.dumps(answer.message),
            "error.responseType": answer.error_type,
            **{AUTHORIZER_PREFIX + name: value for name, value in (authorizer or {}).items()},
        }
        text = _VARIABLES.sub(lambda match: values.get(match.group(1) or match.group(2), ""), spec.template)
        body = text.encode()
        headers = list(spec.headers)
        status = answer.status if spec.status is None else spec.status
    return status, headers, body
