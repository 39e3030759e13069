"""End to end: the edge's own 429s reach the usage figures through the access log and metering."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import DEPLOYED_URL, LocalStack, gateway_error

# Locally metering follows within a second; CloudWatch Logs delivers to it within about a minute.
METERING_WAIT_SECONDS = 10 if DEPLOYED_URL is None else 120


def _wait_for(read: Any, expected_requests: int) -> Any:
    """Metering runs in the background (as on AWS); poll until the lines are in."""
    deadline = time.monotonic() + METERING_WAIT_SECONDS
    answer = read()
    while answer["month"]["requests"] < expected_requests and time.monotonic() < deadline:
        time.sleep(0.1 if DEPLOYED_URL is None else 2)
        answer = read()
    return answer


@pytest.mark.local_only("exact token-bucket counts; API Gateway applies usage-plan throttles best effort")
def test_a_burst_shows_exact_allowed_and_denied_counts(gateway: LocalStack) -> None:
    # Given a basic tenant (burst 10)
    tenant_id, key = gateway.create_tenant("basic")
    # When it sends 14 requests at once
    statuses = [gateway.request("GET", "/me", key=key).status for _ in range(14)]
    assert statuses == [200] * 10 + [429] * 4
    # Then its usage shows 10 allowed and 4 denied: the throttled requests never reached a handler
    usage = _wait_for(
        lambda: gateway.request("GET", f"/tenants/{tenant_id}/usage", key=gateway.admin_key).json, 14
    )
    for period in ("today", "month"):
        figures = usage[period]
        assert (figures["requests"], figures["allowed"], figures["denied"]) == (14, 10, 4)
    # And the admin stats agree
    stats: dict[str, Any] = {}
    token = None
    while True:
        page = gateway.request(
            "GET", "/stats?limit=100" + (f"&next_token={token}" if token else ""), key=gateway.admin_key
        ).json
        stats.update({row["tenant_id"]: row for row in page["tenants"]})
        token = page["next_token"]
        if not token:
            break
    row = stats[tenant_id]
    assert (row["requests"], row["allowed"], row["denied"]) == (14, 10, 4)
    assert row["avg_latency_ms"] is not None


def test_a_tenant_key_on_stats_is_refused_at_the_edge(gateway: LocalStack) -> None:
    _, key = gateway.create_tenant("pro")
    answer = gateway.request("GET", "/stats", key=key)
    assert answer.status == 403
    assert answer.json == gateway_error(
        answer, "User is not authorized to access this resource with an explicit deny", "access_denied"
    )


def test_a_tenant_reads_its_own_usage(gateway: LocalStack) -> None:
    tenant_id, key = gateway.create_tenant("pro")
    gateway.request("GET", "/me", key=key)
    usage = _wait_for(lambda: gateway.request("GET", "/usage", key=key).json, 1)
    assert usage["tenant_id"] == tenant_id
    assert usage["month"]["allowed"] >= 1


def test_prometheus_scrape_over_http_admin_only(gateway: LocalStack) -> None:
    # Given a tenant with one metered request
    tenant_id, key = gateway.create_tenant("pro")
    gateway.request("GET", "/me", key=key)
    _wait_for(lambda: gateway.request("GET", f"/tenants/{tenant_id}/usage", key=gateway.admin_key).json, 1)
    # When an admin scrapes both ways, then both answer the text format with the tenant's counter
    line = f'tenantry_requests_total{{tenant_id="{tenant_id}",tier="pro",outcome="allowed"}} 1'
    for path, accept in (("/stats/prometheus", "*/*"), ("/stats", "text/plain;version=0.0.4")):
        answer = gateway.request("GET", path, key=gateway.admin_key, headers={"Accept": accept})
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert line in answer.raw.decode().splitlines()
    # And a tenant key is refused at the edge, a missing key is 401
    assert gateway.request("GET", "/stats/prometheus", key=key).status == 403
    assert gateway.request("GET", "/stats/prometheus").status == 401
