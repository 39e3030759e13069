"""The EMF metrics' dimension sets stay small: every distinct set of dimension values is a custom
metric CloudWatch bills each month (docs/operations.md, Cost). Per-route counts come from the access
log, per-tenant ones from the Usage table; a new dimension must be a decision, not an accident.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

from local import template
from tenantry import edge, metering, routes
from tenantry.tiers import TIERS
from tests.conftest import admin_context, api_event, load_function, tenant_context

# Every metric the code publishes, with its dimension names. Growing this is a cost decision.
ALLOWED: dict[str, tuple[str, ...]] = {
    "Requests": ("tier",),
    "PublishRetries": ("tier",),
    "ModelKeyUnavailable": ("tier",),
    "MeteredLines": (),
    "MalformedLines": (),
}
# The values the tier dimension takes: the tier table's, the admin role's and "none" (no caller).
TIER_VALUES = {*TIERS, "admin", "none"}
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


def test_the_code_adds_no_dimension_but_the_tier() -> None:
    # Given every dimension the deployed code adds (Powertools' add_dimension, single_metric)
    dimensions = {_keyword(call, "name") for _, call in _calls("add_dimension")}
    # Then it is the tier only, and no metric escapes through a single_metric with its own
    assert dimensions == {"tier"}, dimensions
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


def test_a_request_on_every_route_publishes_only_the_allowed_series(
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
    metering.ingest_lines(
        ['{"requestId":"r1","tenantId":"acme","status":"200","requestTimeEpoch":"1795492371018"}']
    )
    assert sent >= 20
    # Then every metric is an allowed one, with exactly its allowed dimensions
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for blob in emf():
        for directive in blob["_aws"]["CloudWatchMetrics"]:
            (dimension_names,) = directive["Dimensions"] or [[]]
            for metric in directive["Metrics"]:
                assert tuple(dimension_names) == ALLOWED[metric["Name"]], (metric["Name"], dimension_names)
                values = tuple((name, str(blob[name])) for name in dimension_names)
                series.add((metric["Name"], values))
    # And the tier takes only the tier table's values (never a tenant id or a route)
    assert {value for _, values in series for name, value in values if name == "tier"} <= TIER_VALUES
    # So the whole stack publishes at most this many custom metrics, whatever its traffic
    bound = sum(len(TIER_VALUES) if dims else 1 for dims in ALLOWED.values())
    assert len(series) <= bound == 3 * len(TIER_VALUES) + 2


def template_routes() -> dict[str, tuple[str, str]]:
    """``METHOD /path`` → (function directory name, role), from template.yaml."""
    directories = {"TenantsFunction": "tenants", "EventsFunction": "events", "ChatFunction": "chat"}
    directories["HealthFunction"] = "health"
    return {
        f"{route.method} {route.path}": (directories.get(route.function, route.function), "")
        for route in template.api_routes()
    }
