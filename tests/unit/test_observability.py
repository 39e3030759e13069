"""A full request cycle's logs and metrics: context on every line, no secret and no chat text."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from tenantry import edge, keys, metering
from tests.conftest import admin_context, api_event, load_function, response_json, tenant_context
from tests.unit.test_no_secrets_in_logs import captured_logs  # noqa: F401 - a shared fixture

CHAT_SECRET = "the launch code is 7-alpha-ZULU"
EVENT_SECRET = "card 4111-1111-1111-1111"


def test_a_full_cycle_logs_context_and_no_secrets(
    aws: dict[str, str],
    lambda_context: Any,
    captured_logs: io.StringIO,  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(edge, "flush_authorizer_cache", lambda stage: True)
    tenants = load_function("tenants").lambda_handler
    # Given a tenant onboarded by an admin, its key authorized at the edge
    created = response_json(
        tenants(api_event("POST", "/tenants", body={"name": "Acme", "tier": "pro", "tenant_id": "acme"},
                          authorizer=admin_context()), lambda_context)
    )  # fmt: skip
    api_key = created["api_key"]
    load_function("authorizer").lambda_handler(
        {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:api/v1/POST/chat",
         "headers": {"X-API-Key": api_key}},
        lambda_context,
    )  # fmt: skip
    context = tenant_context("acme", "pro")
    # When it chats, publishes an event, reads its usage, and its access log is metered
    chat = load_function("chat").lambda_handler(
        api_event(
            "POST", "/chat", body={"message": CHAT_SECRET}, headers={"X-User-ID": "alice"}, authorizer=context
        ),
        lambda_context,
    )
    events = load_function("events").lambda_handler(
        api_event(
            "POST", "/events", body={"type": "card.added", "data": {"card": EVENT_SECRET}}, authorizer=context
        ),
        lambda_context,
    )
    usage = tenants(api_event("GET", "/usage", authorizer=context), lambda_context)
    metering.ingest_lines(
        ['{"requestId":"r1","tenantId":"acme","status":"200","requestTimeEpoch":"1795492371018"}']
    )
    assert (chat["statusCode"], events["statusCode"], usage["statusCode"]) == (200, 201, 200)

    # Then nothing secret reached a log line
    logged = captured_logs.getvalue() + capsys.readouterr().out
    for secret in (api_key, keys.hash_key(api_key), CHAT_SECRET, "echo: " + CHAT_SECRET, EVENT_SECRET):
        assert secret not in logged
    # And every handler's line carries the tenant, its tier and the correlation id
    lines = [json.loads(text) for text in logged.splitlines() if text.startswith("{")]
    handler_lines = [line for line in lines if "function_request_id" in line]
    tenant_lines = [line for line in handler_lines if line.get("tenant_id") == "acme"]
    assert {line["message"] for line in tenant_lines} >= {"chat turn"}
    for line in tenant_lines:
        assert line["tier"] == "pro"
        assert line["correlation_id"]
    # And no request wrote a metric line: request counts are API Gateway's and the Usage table's
    # (tests/unit/test_metric_dimensions.py checks every route and metering's own metrics)
    assert [line for line in lines if "_aws" in line] == []


def test_each_function_logs_under_the_service_name_its_template_env_gives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    from local import template

    # Given the service name the template sets for the chat function
    env = template.template()["Resources"]["ChatFunction"]["Properties"]["Environment"]["Variables"]
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", env["POWERTOOLS_SERVICE_NAME"])
    # When the observability module is loaded afresh, as in the function's own sandbox
    spec = importlib.util.find_spec("tenantry.observability")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # Then its logger and tracer carry that name, not a shared hard-coded one
    assert module.logger.service == "chat"
    assert module.tracer.service == "chat"
