"""API Gateway rules moto 5.2 does not enforce, in front of moto: the embedded server's WSGI
middleware (:class:`ApiGatewayRules`) and, for moto in process, ``local/inprocess.py`` (both call
:func:`serve`).

**Usage-plan keys.** ``CreateUsagePlanKey`` on AWS answers ``ConflictException`` for a key that is
already in that plan, and for a key already in another plan that covers the same API stage (a key
meets one usage plan per stage). moto adds the key again, silently, so code that crashes on AWS
when it retries a tier change passed every local test. ``DeleteUsagePlanKey`` of a key that is not
in the plan answers ``NotFoundException`` on AWS; moto fails with an internal error.

**Usage plans of a tenant's own** (issue 25). ``DeleteUsagePlan`` of a plan that is gone answers
``NotFoundException`` on AWS (moto: an internal error); of a plan that still covers an API stage,
``BadRequestException`` (moto deletes it). A plan's keys go with it: every ``/usageplans/{id}/keys``
request for a plan that is gone is ``NotFoundException`` on AWS, where moto still lists (and adds
to) the keys of a deleted plan. ``UpdateUsagePlan`` takes a fractional ``/throttle/rateLimit`` (a
double: 10 requests a minute is 0.1666…/s) where moto casts it to an int and fails with an
internal error, and moto keeps an updated ``/quota/limit`` as text: moto applies the patch's other
operations, and the numbers are set on its plan as numbers (the one write into moto's state the
local stack makes, ``_set_plan_numbers``; moto has no operation that stores a fractional rate on
an existing plan).

Locally the template's tier plans carry no API stages (the REST API is the local gateway, not
moto's), and on AWS every tier plan covers the API's one stage: plans without stages are taken to
share it. The refusals read moto's API Gateway state (its backend's plans and plan keys, as the
embedded server's snapshot does) and change nothing: a refused request never reaches moto.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from local.template import ACCOUNT_ID, REGION
from local.wire import APIGATEWAY, Answer, WsgiApp, call, json_error, read_body, respond

_PLAN = re.compile(r"^/usageplans/(?P<plan>[^/]+)/?$")
_PLAN_KEYS = re.compile(r"^/usageplans/(?P<plan>[^/]+)/keys(?:/(?P<key>[^/]+))?/?$")
# The numbers of a plan's limits, as AWS stores them: the rate a double, the others integers.
_NUMBERS: dict[str, Callable[[str], float | int]] = {
    "/throttle/rateLimit": float,
    "/throttle/burstLimit": int,
    "/quota/limit": int,
}

Forward = Callable[[bytes], Answer]


def _backend() -> Any:
    from moto.apigateway.models import apigateway_backends  # noqa: PLC0415 - moto is heavy to import

    return apigateway_backends[ACCOUNT_ID][REGION]


def _stages(plan: Any) -> set[tuple[str, str]]:
    return {(str(stage.get("apiId", "")), str(stage.get("stage", ""))) for stage in plan.api_stages or []}


def _share_a_stage(first: Any, second: Any) -> bool:
    mine, theirs = _stages(first), _stages(second)
    return (not mine and not theirs) or bool(mine & theirs)


def applies_to(path: str) -> bool:
    return path.startswith("/usageplans/")


def serve(method: str, path: str, body: bytes, forward: Forward, backend: Any = None) -> Answer:
    """The answer to one API Gateway request under these rules; ``forward(body)`` has moto answer
    the request, with that body."""
    if not applies_to(path):
        return forward(body)
    state = backend or _backend()
    refused = refusal(method, path, body, state)
    if refused is not None:
        return refused
    if method == "PATCH" and (found := _PLAN.match(path)) is not None:
        return _update_plan(found["plan"], body, forward, state)
    return forward(body)


def refusal(method: str, path: str, body: bytes, backend: Any = None) -> Answer | None:
    """AWS's answer to a usage-plan request moto would wrongly accept; None to let it through."""
    state = backend or _backend()
    if (found := _PLAN_KEYS.match(path)) is not None:
        plan_id, key_id = found["plan"], found["key"]
        if plan_id not in state.usage_plans:
            return _plan_not_found(plan_id)
        if method == "POST" and key_id is None:
            try:
                wanted = json.loads(body or b"{}").get("keyId")
            except (ValueError, AttributeError):
                return None  # moto refuses it as it should
            return _conflict(state, plan_id, str(wanted))
        if method == "DELETE" and key_id is not None and key_id not in state.usage_plan_keys.get(plan_id, {}):
            return json_error(
                APIGATEWAY, "NotFoundException", f"Invalid API Key identifier specified: {key_id}", 404
            )
        return None
    if (found := _PLAN.match(path)) is not None:
        plan = state.usage_plans.get(found["plan"])
        if plan is None and method in ("DELETE", "PATCH"):
            return _plan_not_found(found["plan"])
        if method == "DELETE" and plan.api_stages:
            message = f"Cannot delete Usage Plan {plan.id} with associated API stages"
            return json_error(APIGATEWAY, "BadRequestException", message, 400)
        if method == "PATCH":
            return _malformed_number(body)
    return None


def _plan_not_found(plan_id: str) -> Answer:
    return json_error(APIGATEWAY, "NotFoundException", f"Invalid Usage Plan ID specified: {plan_id}", 404)


def _conflict(state: Any, plan_id: str, key_id: str) -> Answer | None:
    if key_id in state.usage_plan_keys.get(plan_id, {}):
        message = f"Usage Plan Key {key_id} already exists in usage plan {plan_id}"
        return json_error(APIGATEWAY, "ConflictException", message, 409)
    plan = state.usage_plans.get(plan_id)
    for other_id, members in state.usage_plan_keys.items():
        other = state.usage_plans.get(other_id)
        clash = other_id != plan_id and key_id in members and plan is not None and other is not None
        if clash and _share_a_stage(plan, other):
            message = f"API Key {key_id} cannot reference multiple Usage Plans with the same API Stage"
            return json_error(APIGATEWAY, "ConflictException", message, 409)
    return None


def _operations(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The request and its patch operations; None when it is not one moto could read either."""
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return None
    operations = request.get("patchOperations") if isinstance(request, dict) else None
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        return None
    return request, operations


def _is_number(op: dict[str, Any]) -> bool:
    return op.get("op") in ("add", "replace") and op.get("path") in _NUMBERS


def _malformed_number(body: bytes) -> Answer | None:
    """AWS's 400 for a limit that is not a number of its kind (moto: an internal error)."""
    parsed = _operations(body)
    for op in parsed[1] if parsed is not None else []:
        if not _is_number(op):
            continue
        try:
            value = _NUMBERS[op["path"]](str(op.get("value")))
        except ValueError:
            value = -1
        if not math.isfinite(value) or value < 0:
            message = f"Invalid value for {op['path']}: {op.get('value')!r}"
            return json_error(APIGATEWAY, "BadRequestException", message, 400)
    return None


def _update_plan(plan_id: str, body: bytes, forward: Forward, state: Any) -> Answer:
    parsed = _operations(body)
    if parsed is None:
        return forward(body)
    request, operations = parsed
    numbers = [op for op in operations if _is_number(op)]
    if not numbers:
        return forward(body)
    others = [op for op in operations if not _is_number(op)]
    answer = forward(json.dumps({**request, "patchOperations": others}).encode())
    if answer.status != 200:
        return answer
    plan = state.usage_plans[plan_id]
    _set_plan_numbers(plan, numbers)
    shown = answer.json()
    shown.update({section: dict(getattr(plan, section)) for section in ("throttle", "quota")})
    headers = tuple((name, value) for name, value in answer.headers if name.lower() != "content-length")
    return Answer(answer.status, headers, json.dumps(shown).encode())


def _set_plan_numbers(plan: Any, numbers: list[dict[str, Any]]) -> None:
    """Set the limits on moto's plan as AWS stores them (validated by :func:`_malformed_number`)."""
    for op in numbers:
        section, _, name = str(op["path"]).strip("/").partition("/")
        getattr(plan, section)[name] = _NUMBERS[op["path"]](str(op["value"]))


class ApiGatewayRules:
    """WSGI middleware in front of moto's app, inside the embedded server's lock (the state it
    reads is the state the request would change)."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("PATH_INFO", ""))
        if not applies_to(path):
            return self._app(environ, start_response)

        def forward(body: bytes) -> Answer:
            environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            return call(self._app, environ)

        return respond(start_response, serve(method, path, read_body(environ), forward))
