"""HTTP glue shared by every function: the resolver, error answers, body limits and the caller.

Handlers stay thin: they declare routes on :func:`create_resolver`'s resolver and call the logic
modules. Everything about turning errors into API answers lives here, once.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel

from tenantry import aws, caches, credentials, deadline, jsonguard, retry, routes, settings, streaming
from tenantry.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServiceBusy,
    Unauthorized,
    UnsupportedMediaType,
    error_body,
    validation_message,
)
from tenantry.observability import logger, metrics, tracer

JSON = "application/json"
# What a browser page may send and read (CORS): the request headers the API reads, and the
# response headers a client needs besides the CORS-safelisted ones.
CORS_REQUEST_HEADERS = ["Content-Type", "X-API-Key", "Idempotency-Key", "X-User-Id"]
CORS_EXPOSED_HEADERS = ["Retry-After", "x-amzn-RequestId"]
CORS_MAX_AGE_SECONDS = 600
ANSWERS_EXTENSION = "x-tenantry-answers"
STREAM_EXTENSION = "x-tenantry-stream"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as the authorizer resolved it. The only source of a tenant id."""

    tenant_id: str
    role: str
    tier: str
    key_id: str
    # The tenant's incarnation when the key was issued (empty for keys from before incarnations):
    # writes condition on it, so a request for an offboarded tenant never lands in a new one.
    incarnation: str = ""
    # When the key stops working (epoch seconds), as the authorizer read it; None: no expiry.
    expires_at: int | None = None
    # What the key may call (tenantry.routes.SCOPES); None: every scope.
    scopes: frozenset[str] | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


def created(
    model: Any, description: str = "Created", follow: dict[str, dict[str, str]] | None = None
) -> dict[int, OpenAPIResponse]:
    """A route's ``responses=`` for a 201 answer with ``model`` as its body (a union is a oneOf).

    ``follow`` names what a client (and schemathesis' stateful phase) can do next with the answer,
    as OpenAPI links: ``{"GET /events/{position}": {"position": "$response.body#/position"}}``."""
    response: dict[str, Any] = {"description": description, "content": {JSON: {"model": model}}}
    if follow:
        response["links"] = {
            _link_name(target): {"operationRef": _operation_ref(target), "parameters": parameters}
            for target, parameters in follow.items()
        }
    return {201: cast(OpenAPIResponse, response)}


def _operation_ref(target: str) -> str:
    method, path = target.split(" ", 1)
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method.lower()


def _link_name(target: str) -> str:
    method, path = target.split(" ", 1)
    words = [part.strip("{}") for part in path.split("/") if part]
    return method.capitalize() + "".join(word[:1].upper() + word[1:] for word in words).replace("_", "")


def healthy_or_not(model: Any) -> dict[int, OpenAPIResponse]:
    """``responses=`` of a probe: the same body with 200 when healthy and 503 when not."""
    content: dict[str, Any] = {JSON: {"model": model}}
    return {
        200: {"description": "Healthy", "content": content},
        503: {"description": "A dependency is unreachable", "content": content},
    }


def answers(model: Any, description: str) -> dict[int, OpenAPIResponse]:
    """``responses=`` of a route whose 200 is ``model`` as JSON and whose annotation cannot say so
    (it may also answer a stream, see :func:`streams`)."""
    return {200: {"description": description, "content": {JSON: {"model": model}}}}


def streams(
    description: str,
    *,
    only: bool = False,
    identified: tuple[str, ...] = (),
    **events: type[BaseModel] | None,
) -> dict[str, Any]:
    """A route's ``openapi_extensions=``: its 200 may also be a ``text/event-stream`` of these
    events (name → the model of its JSON ``data``; None: the error body), or with ``only`` is
    nothing else; the events named in ``identified`` carry an ``id:`` line. tooling/openapi.py
    turns it into the stream's documented media type, every event's schema with it."""
    schemas = {
        name: None if model is None else model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, model in events.items()
    }
    declared = {"description": description, "events": schemas, "only": only, "identified": list(identified)}
    return {STREAM_EXTENSION: declared}


def may_answer(*statuses: int) -> dict[str, Any]:
    """A route's ``openapi_extensions=``: the error statuses its own logic can answer, beyond those
    every route shares (gateway, auth, body and parameter checks). tooling/openapi.py turns them
    into documented responses with the error body."""
    return {ANSWERS_EXTENSION: sorted(set(statuses))}


def _request_id(event: dict[str, Any]) -> str:
    return str((event.get("requestContext") or {}).get("requestId", ""))


def error_response(
    status: int, body: dict[str, object], request_id: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=JSON,
        body=json.dumps({**body, "request_id": request_id}),
        headers=headers,
    )


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "config", "max_messages")`` → ``config.max_messages``; the source is dropped."""
    parts = [str(part) for part in loc[1:]] if len(loc) > 1 else [str(part) for part in loc]
    return ".".join(parts)


def _validation_answer(exc: RequestValidationError, request_id: str) -> Response[Any]:
    errors = list(exc.errors())
    if any(error.get("type") == "json_invalid" for error in errors):
        return error_response(400, error_body("Malformed JSON body", "malformed_json", "body"), request_id)
    details = [
        {
            "field": _field_of(error.get("loc", ())),
            "message": validation_message(error),
            "type": str(error.get("type", "")),
        }
        for error in errors
    ]
    fields = ", ".join(dict.fromkeys(detail["field"] for detail in details))
    body = error_body(f"Invalid request: {fields}", "validation_error", errors=details)
    return error_response(422, body, request_id)


def cors_config() -> CORSConfig | None:
    """The template's CorsAllowOrigin as Powertools' CORS settings; None when CORS is off.
    API Gateway answers the preflight (OPTIONS) itself; the API's answers carry the header."""
    origin = settings.cors_allow_origin()
    if origin is None:
        return None
    return CORSConfig(
        allow_origin=origin,
        allow_headers=CORS_REQUEST_HEADERS,
        expose_headers=CORS_EXPOSED_HEADERS,
        max_age=CORS_MAX_AGE_SECONDS,
    )


def _cors_headers(event: dict[str, Any]) -> dict[str, str]:
    """The CORS headers Powertools adds to a routed answer, for the answers given before routing."""
    config = cors_config()
    if config is None:
        return {}
    headers = {str(name).lower(): value for name, value in (event.get("headers") or {}).items()}
    origin = config.allowed_origin(str(headers.get("origin") or ""))
    return config.to_dict(origin) if origin else {}


def create_resolver() -> APIGatewayRestResolver:
    app = APIGatewayRestResolver(enable_validation=True, cors=cors_config())

    @app.exception_handler(ApiError)
    def _api_error(exc: ApiError) -> Response[Any]:
        return error_response(exc.status, exc.body(), _request_id(app.current_event.raw_event), exc.headers)

    @app.exception_handler(ClientError)
    def _aws_error(exc: ClientError) -> Response[Any]:
        if not retry.is_lost_race(exc):
            raise exc  # a bug or a misconfiguration: Lambda's error, API Gateway's 502
        # Throttled past botocore's retries (or a write that lost every race in its budget):
        # load that passes, so say when to come back rather than fail.
        logger.warning("AWS call throttled past its retries", extra={"error_code": aws.error_code(exc)})
        busy = ServiceBusy("The service is busy; retry shortly", headers={"Retry-After": "1"})
        return error_response(
            busy.status, busy.body(), _request_id(app.current_event.raw_event), busy.headers
        )

    @app.exception_handler(RequestValidationError)
    def _invalid_request(exc: RequestValidationError) -> Response[Any]:
        return _validation_answer(exc, _request_id(app.current_event.raw_event))

    @app.not_found
    def _no_route(_: Exception) -> Response[Any]:
        return error_response(
            404,
            {"message": "No such route", "error": "route_not_found"},
            _request_id(app.current_event.raw_event),
        )

    return app


def body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(base64.b64decode(body, validate=False))
    return len(body.encode()) if isinstance(body, str) else len(body)


def _content_type(event: dict[str, Any]) -> str:
    for name, value in (event.get("headers") or {}).items():
        if name.lower() == "content-type" and value:
            return str(value).strip()
    return ""


def _is_json(media_type: str) -> bool:
    """``application/json``, optionally with ``charset=utf-8``: nothing else is parsed as JSON.

    Powertools would parse anything starting with ``application/json`` (``application/jsonx``,
    ``charset=latin-1``), so this narrower rule runs first and answers 415 for the rest.
    """
    kind, *params = (part.strip() for part in media_type.split(";"))
    if kind.lower() != JSON:
        return False
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return False
    return True


def _normalize_content_type(event: dict[str, Any]) -> None:
    """Media types are case-insensitive; Powertools compares them case-sensitively."""
    for name in list(event.get("headers") or {}):
        if name.lower() == "content-type":
            event["headers"][name] = JSON
    for name in list(event.get("multiValueHeaders") or {}):
        if name.lower() == "content-type":
            event["multiValueHeaders"][name] = [JSON]


def _body_text(event: dict[str, Any]) -> str | None:
    """The body as text; None when its bytes are not UTF-8 (the local gateway, like API Gateway
    with binary media types, hands such bytes on base64-encoded)."""
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(body)
    try:
        return base64.b64decode(body, validate=False).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _refuse_body(event: dict[str, Any]) -> dict[str, Any] | None:
    """A 4xx for a body no handler should see; the event's body is normalized to text otherwise."""
    media_type = _content_type(event)
    if media_type and not _is_json(media_type):
        unsupported = UnsupportedMediaType(
            f"Bodies are JSON: send Content-Type: application/json (got {media_type})", field="Content-Type"
        )
        return _plain_response(415, unsupported.body(), _request_id(event))
    if media_type:
        _normalize_content_type(event)
    if body_size(event) > settings.MAX_BODY_BYTES:
        too_large = PayloadTooLarge(f"Request body exceeds {settings.MAX_BODY_BYTES} bytes", field="body")
        return _plain_response(413, too_large.body(), _request_id(event))
    text = _body_text(event)
    if text is None:
        bad = BadRequest("The body is not valid UTF-8", code="invalid_encoding", field="body")
        return _plain_response(400, bad.body(), _request_id(event))
    event["body"], event["isBase64Encoded"] = text, False
    problem = jsonguard.check(text)
    if problem is not None:
        body = error_body(problem.message, problem.code, problem.field)
        return _plain_response(problem.status, body, _request_id(event))
    return None


def caller_from_event(event: dict[str, Any]) -> Caller | None:
    context = (event.get("requestContext") or {}).get("authorizer") or {}
    tenant_id = context.get("tenant_id")
    if not tenant_id:
        return None
    return Caller(
        tenant_id=str(tenant_id),
        role=str(context.get("role", "tenant")),
        tier=str(context.get("tier", "")),
        key_id=str(context.get("key_id", "")),
        incarnation=str(context.get("incarnation", "")),
        expires_at=_epoch(context.get("expires_at")),
        scopes=routes.scopes_from_text(str(context.get("scopes") or "")),
    )


def _epoch(value: Any) -> int | None:
    try:
        return int(float(value)) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def run(app: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext) -> dict[str, Any] | None:
    """Resolve one API Gateway event: enforce the body limit, tag logs and traces with the caller.

    On a streamed route (tenantry.routes.STREAMED) every answer goes out through the invocation's
    response stream (tenantry.streaming) and this returns None; such a route's budget is the
    function's whole Timeout, where any other answer is useless after the integration timeout."""
    streamed = routes.is_streamed(str(event.get("httpMethod", "")), str(event.get("resource", "")))

    def finish(resolve: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
        if streamed:
            return streaming.answer(context, lambda: _with_cors(event, resolve()))
        return _with_cors(event, resolve())

    with deadline.budget(context, cap_seconds=None if streamed else deadline.integration_timeout()):
        return _run(app, event, context, finish)


Finish = Callable[[Callable[[], dict[str, Any]]], dict[str, Any] | None]


def _with_cors(event: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """Powertools adds the CORS headers to what a route answers; the answers given before routing
    (a refused body, no such route) or by an exception handler get the same ones here."""
    cors = _cors_headers(event)
    maps = (answer.get("headers") or {}, answer.get("multiValueHeaders") or {})
    present = {str(name).lower() for names in maps for name in names}
    if cors and "access-control-allow-origin" not in present:
        answer["headers"] = {**(answer.get("headers") or {}), **cors}
    return answer


def _run(
    app: APIGatewayRestResolver, event: dict[str, Any], context: LambdaContext, finish: Finish
) -> dict[str, Any] | None:
    caller = caller_from_event(event)
    if caller is not None and caller.expired(time.time()):
        # API Gateway cached the authorizer's answer before the key's grace (or own expiry) ended:
        # refuse it here, as the authorizer would now, instead of for the rest of the cache's TTL.
        refused = _plain_response(
            401, {"message": "Unauthorized", "error": "unauthorized"}, _request_id(event)
        )
        return finish(lambda: refused)
    if caller is not None:
        logger.append_keys(tenant_id=caller.tenant_id, tier=caller.tier, role=caller.role)
        tracer.put_annotation("tenant_id", caller.tenant_id)
        tracer.put_annotation("tier", caller.tier)
    else:
        logger.append_keys(tenant_id="-", tier="-")
    # One dimension, the tier: every distinct dimension set is a billed custom metric. Per-route
    # counts come from the access log (metering), per-tenant ones live in the Usage table.
    metrics.add_dimension(name="tier", value=caller.tier if caller is not None and caller.tier else "none")
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    wrong_role = role_refusal(event, caller)
    if wrong_role is not None:
        refused = _plain_response(
            wrong_role.status, wrong_role.body(), _request_id(event), wrong_role.headers
        )
        return finish(lambda: refused)
    if event.get("body"):
        body_refused = _refuse_body(event)
        if body_refused is not None:
            return finish(lambda: body_refused)
    mismatch = _isolation_mismatch(caller, context)
    if mismatch is not None:
        mismatched = _plain_response(500, mismatch.body(), _request_id(event))
        return finish(lambda: mismatched)
    # The one place a request's data access is chosen: a tenant's request reads and writes with
    # credentials IAM limits to its partition key; every store takes its client from aws.data_*.
    # A streamed answer is produced inside this scope too (finish runs its producer).
    try:
        scoped = credentials.scoped_access(caller.tenant_id) if caller and caller.role == "tenant" else None
    except ApiError as exc:
        unscoped = _plain_response(exc.status, exc.body(), _request_id(event), exc.headers)
        return finish(lambda: unscoped)
    with aws.tenant_scope(scoped):
        return finish(lambda: app.resolve(event, context))


# The tenant Lambda reported at this sandbox's first tenant-isolated invocation.
_environment_tenant: dict[str, str] = {}


@caches.register
def _forget_environment_tenant() -> None:
    _environment_tenant.clear()


class TenantMismatch(ApiError):
    status = 500
    code = "tenant_mismatch"


def _isolation_mismatch(caller: Caller | None, context: LambdaContext) -> TenantMismatch | None:
    """Under Lambda's tenant isolation mode the runtime reports which tenant this execution
    environment belongs to; it must be the authorizer's tenant, or the walls disagree."""
    lambda_tenant = getattr(context, "tenant_id", None)
    if not lambda_tenant:
        return None
    logger.append_keys(lambda_tenant_id=lambda_tenant)
    first = _environment_tenant.setdefault("tenant_id", lambda_tenant)
    if first == lambda_tenant and not _environment_tenant.get("logged"):
        _environment_tenant["logged"] = "yes"
        logger.info("this execution environment is dedicated to one tenant (Lambda tenant isolation mode)")
    elif first != lambda_tenant:
        logger.error(
            "Lambda reported another tenant in an environment it had dedicated", extra={"first": first}
        )
    if caller is not None and caller.tenant_id != lambda_tenant:
        logger.error(
            "Lambda's tenant differs from the authorizer's", extra={"lambda_tenant_id": lambda_tenant}
        )
        return TenantMismatch("This execution environment belongs to another tenant")
    return None


def _plain_response(
    status: int, body: dict[str, object], request_id: str, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": JSON, **(headers or {})},
        "body": json.dumps({**body, "request_id": request_id}),
        "isBase64Encoded": False,
    }


def request_id(app: APIGatewayRestResolver) -> str:
    """API Gateway's id of the request being handled (every error body carries it)."""
    return _request_id(app.current_event.raw_event)


def caller(app: APIGatewayRestResolver) -> Caller:
    found = caller_from_event(app.current_event.raw_event)
    if found is None:
        raise Unauthorized("No tenant in the authorizer context")
    return found


def role_refusal(event: dict[str, Any], who: Caller | None) -> ApiError | None:
    """The route's role and scope (tenantry.routes, the one table) against the caller's, before any
    handler runs: the authorizer's policy already keeps each key to its routes on API Gateway; this
    is the same table checked again where a handler could otherwise be reached (tests, a policy
    cached from an older table). A route the table does not know is not the API's: 404."""
    method, resource = str(event.get("httpMethod", "")), str(event.get("resource", ""))
    role = routes.role_of(method, resource)
    if role is None:
        return NotFound("No such route", code="route_not_found")
    if role == routes.PUBLIC:
        return None
    if who is None:
        return Unauthorized("No tenant in the authorizer context")
    if who.role != role:
        if role == routes.ADMIN:
            return Forbidden("This route needs an admin key", code="admin_only")
        return Forbidden("This route needs a tenant key", code="tenant_only")
    if role == routes.TENANT and not routes.allows(who.scopes, f"{method.upper()} {resource}"):
        return Forbidden(
            f"This key lacks the scope {routes.scope_of(method, resource)!r} this route needs",
            code="scope_missing",
        )
    return None
