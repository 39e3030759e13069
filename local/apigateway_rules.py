"""API Gateway rules moto 5.2 does not enforce, in front of moto: the embedded server's WSGI
middleware (:class:`ApiGatewayRules`) and, for moto in process, ``local/inprocess.py`` (both ask
:func:`refusal`).

``CreateUsagePlanKey`` on AWS answers ``ConflictException`` for a key that is already in that plan,
and for a key already in another plan that covers the same API stage (a key meets one usage plan
per stage). moto adds the key again, silently, so code that crashes on AWS when it retries a tier
change passed every local test. ``DeleteUsagePlanKey`` of a key that is not in the plan answers
``NotFoundException`` on AWS; moto fails with an internal error.

Locally the template's tier plans carry no API stages (the REST API is the local gateway, not
moto's), and on AWS every tier plan covers the API's one stage: plans without stages are taken to
share it. The decision reads moto's API Gateway state (its backend's plans and plan keys, as the
embedded server's snapshot does) and changes nothing: a refused request never reaches moto.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from local.template import ACCOUNT_ID, REGION
from local.wire import APIGATEWAY, Answer, WsgiApp, json_error, read_body, respond

_PLAN_KEYS = re.compile(r"^/usageplans/(?P<plan>[^/]+)/keys/?$")
_PLAN_KEY = re.compile(r"^/usageplans/(?P<plan>[^/]+)/keys/(?P<key>[^/]+)/?$")


def _backend() -> Any:
    from moto.apigateway.models import apigateway_backends  # noqa: PLC0415 - moto is heavy to import

    return apigateway_backends[ACCOUNT_ID][REGION]


def _stages(plan: Any) -> set[tuple[str, str]]:
    return {(str(stage.get("apiId", "")), str(stage.get("stage", ""))) for stage in plan.api_stages or []}


def _share_a_stage(first: Any, second: Any) -> bool:
    mine, theirs = _stages(first), _stages(second)
    return (not mine and not theirs) or bool(mine & theirs)


def refusal(method: str, path: str, body: bytes, backend: Any = None) -> Answer | None:
    """AWS's answer to a usage-plan-key request moto would wrongly accept; None to let it through."""
    if method == "POST" and (found := _PLAN_KEYS.match(path)) is not None:
        try:
            key_id = json.loads(body or b"{}").get("keyId")
        except (ValueError, AttributeError):
            return None  # moto refuses it as it should
        return _conflict(backend or _backend(), found["plan"], str(key_id))
    if method == "DELETE" and (found := _PLAN_KEY.match(path)) is not None:
        state = backend or _backend()
        plan_id, key_id = found["plan"], found["key"]
        if key_id not in state.usage_plan_keys.get(plan_id, {}):
            return json_error(
                APIGATEWAY, "NotFoundException", f"Invalid API Key identifier specified: {key_id}", 404
            )
    return None


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


class ApiGatewayRules:
    """WSGI middleware in front of moto's app, inside the embedded server's lock (the state it
    reads is the state the request would change)."""

    def __init__(self, app: WsgiApp) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET"))
        path = str(environ.get("PATH_INFO", ""))
        if method not in ("POST", "DELETE") or not path.startswith("/usageplans/"):
            return self._app(environ, start_response)
        answer = refusal(method, path, read_body(environ))
        if answer is None:
            return self._app(environ, start_response)
        return respond(start_response, answer)
