"""End to end: the edge's own 429s reach the usage figures through the access log and metering."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.conftest import DEPLOYED_URL, LocalStack, gateway_error

# Locally metering follows within a second; CloudWatch Logs delivers to it within about a minute.
METERING_WAIT_SECONDS = 10 if DEPLOYED_URL is None else 120


def _wait_for(read: Any, expected_requests: int) -> Any:
    """Metering runs in the background (as on AWS); poll until the lines are in. ``read`` asks for
    two days of history: a test's requests are in yesterday's or today's, wherever midnight fell."""
    deadline = time.monotonic() + METERING_WAIT_SECONDS
    answer = read()
    while _total(answer["days"])["requests"] < expected_requests and time.monotonic() < deadline:
        time.sleep(0.1 if DEPLOYED_URL is None else 2)
        answer = read()
    # An answer reads its month before its days: read again, so that no figure of the answer
    # returned misses a batch that landed between those two reads
    return read()


FIGURES = ("requests", "allowed", "denied")


def _total(days: list[dict[str, Any]], within: str = "") -> dict[str, int]:
    """The figures of the ``days`` inside the period ``within`` (``day#…`` or ``month#…``; every
    day when empty): a period's figures, when these days hold all of a tenant's requests."""
    inside = within.partition("#")[2]
    return {
        name: sum(day[name] for day in days if day["period"].partition("#")[2].startswith(inside))
        for name in FIGURES
    }


def _figures(period: dict[str, Any]) -> dict[str, int]:
    return {name: period[name] for name in FIGURES}


@pytest.mark.local_only("exact token-bucket counts; API Gateway applies usage-plan throttles best effort")
def test_a_burst_shows_exact_allowed_and_denied_counts(gateway: LocalStack) -> None:
    # Given a basic tenant (burst 10)
    tenant_id, key = gateway.create_tenant("basic")
    # When it sends 14 requests at once
    statuses = [gateway.request("GET", "/me", key=key).status for _ in range(14)]
    assert statuses == [200] * 10 + [429] * 4
    # Then its usage shows 10 allowed and 4 denied: the throttled requests never reached a handler
    usage = _wait_for(
        lambda: gateway.request("GET", f"/tenants/{tenant_id}/usage?days=2", key=gateway.admin_key).json, 14
    )
    days = usage["days"]
    assert _total(days) == {"requests": 14, "allowed": 10, "denied": 4}
    # And today and this month hold those of them sent in the day and the month the answer is
    # about: all of them, unless midnight or a month's end fell between the requests and the read
    for period in ("today", "month"):
        assert _figures(usage[period]) == _total(days, within=usage[period]["period"]), period
    # And the admin stats agree, for the month their page is about
    rows: dict[str, tuple[str, dict[str, Any]]] = {}
    token = None
    while True:
        page = gateway.request(
            "GET", "/stats?limit=100" + (f"&next_token={token}" if token else ""), key=gateway.admin_key
        ).json
        rows.update({row["tenant_id"]: (page["period"], row) for row in page["tenants"]})
        token = page["next_token"]
        if not token:
            break
    month, row = rows[tenant_id]
    assert _figures(row) == _total(days, within=month)
    assert (row["avg_latency_ms"] is None) == (row["requests"] == 0)


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
    usage = _wait_for(lambda: gateway.request("GET", "/usage?days=2", key=key).json, 1)
    assert usage["tenant_id"] == tenant_id
    # (its reads of /usage are metered too: at least its /me)
    assert _total(usage["days"])["allowed"] >= 1


def _stats_month(gateway: LocalStack) -> str:
    """The month (``month#YYYY-MM``) /stats is answering about now."""
    return str(gateway.request("GET", "/stats?limit=1", key=gateway.admin_key).json["period"])


def test_prometheus_scrape_over_http_admin_only(gateway: LocalStack) -> None:
    # Given a tenant with one metered request
    tenant_id, key = gateway.create_tenant("pro")
    gateway.request("GET", "/me", key=key)
    days = _wait_for(
        lambda: gateway.request("GET", f"/tenants/{tenant_id}/usage?days=2", key=gateway.admin_key).json, 1
    )["days"]
    # When an admin scrapes both ways, then both answer the text format with the tenant's counter
    # for the month of the scrape: 1, or 0 if a month's end fell between the request and the scrape
    # (the scrape's month is the one /stats names just before it or just after it)
    series = f'tenantry_requests_total{{tenant_id="{tenant_id}",tier="pro",outcome="allowed"}} '
    for path, accept in (("/stats/prometheus", "*/*"), ("/stats", "text/plain;version=0.0.4")):
        before = _stats_month(gateway)
        answer = gateway.request("GET", path, key=gateway.admin_key, headers={"Accept": accept})
        after = _stats_month(gateway)
        assert answer.status == 200
        assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
        lines = [line for line in answer.raw.decode().splitlines() if line.startswith(series)]
        expected = {f"{series}{_total(days, within=month)['allowed']}" for month in (before, after)}
        assert len(lines) == 1 and lines[0] in expected, (lines, expected)
    # And a tenant key is refused at the edge, a missing key is 401
    assert gateway.request("GET", "/stats/prometheus", key=key).status == 403
    assert gateway.request("GET", "/stats/prometheus").status == 401
