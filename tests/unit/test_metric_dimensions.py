"""The EMF metrics stay few and undimensioned: every distinct set of dimension values is a custom
metric CloudWatch bills for each hour it is sent in (docs/operations.md, Cost). Request counts are
API Gateway's own metrics and, per tenant, tier and route, the Usage table's (from the access log);
a new metric or dimension must be a decision, not an accident.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from local import template
from local.gateway.accesslog import subscription_event
from tenantry import edge, routes
from tests.conftest import admin_context, api_event, load_function, tenant_context

# Every metric the code publishes, with its dimension names. Growing this is a cost decision.
ALLOWED: dict[str, tuple[str, ...]] = {
    "PublishRetries": (),
    "ModelKeyUnavailable": (),
    "MeteredLines": (),
    "MalformedLines": (),
}
# The ones an ordinary month sends every hour (each access-log delivery; publishes that raced
# another writer): the cost model bills these. The others are sent only while something is wrong
# (the model's key is missing; the access log's format and the parser part ways).
SENT_EVERY_HOUR = frozenset({"MeteredLines", "PublishRetries"})
SOURCES = [template.REPO_ROOT / "layers" / "core" / "tenantry", template.REPO_ROOT / "functions"]


def _calls(name: str) -> list[tuple[Path, ast.Call]]:
    found = []
    for root in SOURCES:
        for path in root.rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == name
                ):
                    found.append((path, node))
    return found


def _keyword(call: ast.Call, name: str) -> str | None:
    for keyword in call.keywords:
        if keyword.arg == name and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return None


def test_the_code_adds_no_dimension() -> None:
    # Given the deployed code's calls that add dimensions (Powertools' add_dimension, single_metric)
    # Then there are none, and no metric escapes through a single_metric with its own
    assert _calls("add_dimension") == []
    assert _calls("single_metric") == []
    assert _calls("set_default_dimensions") == []
    # And every metric the code publishes is a known one
    published = {_keyword(call, "name") for _, call in _calls("add_metric")}
    assert published == set(ALLOWED), published


@pytest.fixture
def emf(capsys: pytest.CaptureFixture[str]) -> Any:
    def blobs() -> list[dict[str, Any]]:
        lines = capsys.readouterr().out.splitlines()
        return [json.loads(line) for line in lines if line.startswith("{") and '"_aws"' in line]

    return blobs


def test_no_request_publishes_a_metric_and_metering_only_its_own(
    aws: dict[str, str], lambda_context: Any, emf: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge, "flush_authorizer_cache", lambda stage: True)
    functions = {name: load_function(name).lambda_handler for name in ("tenants", "events", "chat", "health")}
    tenants = functions["tenants"]
    tenants(
        api_event(
            "POST",
            "/tenants",
            body={"name": "Acme", "tier": "pro", "tenant_id": "acme"},
            authorizer=admin_context(),
        ),
        lambda_context,
    )
    # When every route of these functions answers a request (as a tenant, an admin, or no one)
    owners = {route: function for route, (function, _) in template_routes().items()}
    sent = 0
    for route, role in sorted(routes.ROLES.items()):
        method, path = route.split(" ", 1)
        function = owners.get(route)
        if function not in functions:
            continue
        authorizer = {"tenant": tenant_context("acme", "pro"), "admin": admin_context()}.get(role)
        concrete = (
            path.replace("{tenant_id}", "acme").replace("{session_id}", "s1").replace("{position}", "1")
        )
        concrete = concrete.replace("{name}", "reader").replace("{key_id}", "key_x")
        functions[function](
            api_event(method, concrete, authorizer=authorizer, headers={"X-User-ID": "alice"}, body={}),
            lambda_context,
        )
        sent += 1
    assert sent >= 20
    # Then no request published a metric line (the hot path writes none)
    assert emf() == []
    # And metering publishes its one hourly metric per delivery, MalformedLines only with some
    metering_function = load_function("metering").lambda_handler
    good = '{"requestId":"r1","tenantId":"acme","status":"200","requestTimeEpoch":"1795492371018"}'
    for lines in ([good], [good, "not an access-log line"]):
        event = subscription_event(lines, log_group="/test/access", log_stream="v1/a", first_id=len(lines))
        metering_function(event, lambda_context)
    blobs = emf()
    published = [
        [metric["Name"] for directive in blob["_aws"]["CloudWatchMetrics"] for metric in directive["Metrics"]]
        for blob in blobs
    ]
    assert published == [["MeteredLines"], ["MeteredLines", "MalformedLines"]]
    for blob in blobs:
        assert all(directive["Dimensions"] in ([], [[]]) for directive in blob["_aws"]["CloudWatchMetrics"])


def test_the_metrics_sent_every_hour_are_allowed_ones() -> None:
    assert set(ALLOWED) >= SENT_EVERY_HOUR


def template_routes() -> dict[str, tuple[str, str]]:
    """``METHOD /path`` → (function directory name, role), from template.yaml."""
    directories = {"TenantsFunction": "tenants", "EventsFunction": "events", "ChatFunction": "chat"}
    directories["HealthFunction"] = "health"
    return {
        f"{route.method} {route.path}": (directories.get(route.function, route.function), "")
        for route in template.api_routes()
    }
