"""GET /usage, GET /tenants/{id}/usage and GET /stats through the tenants function."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tenantry import aws as clients
from tenantry import metering, tenancy, usage
from tenantry.models.tenants import TENANT_ID_PATTERN, CreateTenantRequest
from tenantry.stores import usage as usage_store
from tenantry.stores.tenants import TenantRecord
from tests.conftest import (
    MONTH_END,
    MONTH_END_MS,
    HandlerClient,
    add_tokens,
    admin_context,
    load_function,
    tenant_context,
)
from tests.fakes.tenants import InMemoryTenants
from tests.fakes.usage import InMemoryUsage

TIERS = {"acme": "basic", "globex": "pro"}


class TenantsApi(HandlerClient):
    def as_tenant(self, tenant: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, answer, _ = self.invoke(
            "GET", path, authorizer=tenant_context(tenant, TIERS[tenant]), **kwargs
        )
        return status, answer

    def as_admin(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        status, answer, _ = self.invoke("GET", path, authorizer=admin_context(), **kwargs)
        return status, answer


@pytest.fixture
def api(aws: dict[str, str], lambda_context: Any, fixed_clock: datetime) -> Iterator[TenantsApi]:
    """The tenants function, its clock stopped at MONTH_END, where meter() stamps its requests."""
    for tenant_id, tier in TIERS.items():
        tenancy.create_tenant(CreateTenantRequest(name=tenant_id.title(), tier=tier, tenant_id=tenant_id))
    yield TenantsApi(load_function("tenants").lambda_handler, lambda_context)


def access_line(tenant: str, status: int, latency: int, number: int, route: str = "/me") -> str:
    return json.dumps(
        {
            "requestId": f"{tenant}-{number}",
            "tenantId": tenant,
            "httpMethod": "GET",
            "resourcePath": route,
            "status": str(status),
            "responseLatency": str(latency),
            "integrationLatency": "-" if status == 429 else str(latency),
            "requestTimeEpoch": str(MONTH_END_MS),
        }
    )


def meter(tenant: str, allowed: int, denied: int) -> None:
    lines = [access_line(tenant, 200, 20, number) for number in range(allowed)]
    lines += [access_line(tenant, 429, 1, allowed + number) for number in range(denied)]
    metering.ingest_lines(lines)


def test_tenant_sees_its_own_figures_limits_and_cost(api: TenantsApi) -> None:
    # Given metered traffic for acme and chat tokens on its month
    meter("acme", allowed=10, denied=3)
    add_tokens("acme", usage_store.month_period(MONTH_END), 1000, 500, "claude-haiku-4-5")
    # When acme asks for its usage
    status, answer = api.as_tenant("acme", "/usage")
    # Then today and this month show the exact counts, its tier's limits and an estimated cost
    assert status == 200
    for period in ("today", "month"):
        assert (answer[period]["requests"], answer[period]["allowed"], answer[period]["denied"]) == (
            13,
            10,
            3,
        )
    assert answer["month"]["tokens_in"] == 1000 and answer["month"]["tokens_out"] == 500
    assert answer["today"]["avg_latency_ms"] == round((10 * 20 + 3 * 1) / 13, 2)
    assert answer["today"]["p95_latency_ms"] == pytest.approx(20, rel=0.0725)  # 20 ms, the 13th of 13
    assert answer["limits"]["requests_per_minute"] == 10
    cost = answer["estimated_cost"]
    assert cost["api_gateway"] == pytest.approx(13 * 3.5 / 1e6, abs=1e-6)
    assert cost["llm"] == pytest.approx((1000 * 1.0 + 500 * 5.0) / 1e6, abs=1e-6)
    assert cost["lambda_compute"] > 0 and cost["dynamodb"] > 0
    assert cost["total"] == pytest.approx(
        cost["api_gateway"] + cost["lambda_compute"] + cost["dynamodb"] + cost["llm"], abs=1e-5
    )
    assert answer["days"] is None


def test_another_tenants_usage_is_never_shown(api: TenantsApi) -> None:
    meter("acme", allowed=5, denied=0)
    status, answer = api.as_tenant("globex", "/usage")
    assert status == 200
    assert answer["tenant_id"] == "globex"
    assert answer["month"]["requests"] == 0
    # And a tenant key cannot reach the admin route for another tenant
    assert api.as_tenant("globex", "/tenants/acme/usage")[0] == 403


def test_usage_history_is_a_tier_feature(api: TenantsApi) -> None:
    meter("globex", allowed=2, denied=0)
    status, answer = api.as_tenant("acme", "/usage", query={"days": "7"})
    assert status == 403
    assert answer["error"] == "feature_not_in_tier"
    status, history = api.as_tenant("globex", "/usage", query={"days": "3"})
    assert status == 200
    assert [day["requests"] for day in history["days"]] == [0, 0, 2]
    # An admin sees any tenant's history
    assert len(api.as_admin("/tenants/acme/usage", query={"days": "7"})[1]["days"]) == 7


@pytest.mark.parametrize("days", ["0", "32", "x"])
def test_bad_days_is_422(api: TenantsApi, days: str) -> None:
    assert api.as_tenant("globex", "/usage", query={"days": days})[0] == 422


def test_admin_reads_any_tenants_usage_and_unknown_is_404(api: TenantsApi) -> None:
    meter("acme", allowed=4, denied=1)
    status, answer = api.as_admin("/tenants/acme/usage")
    assert status == 200
    assert answer["month"]["denied"] == 1
    assert api.as_admin("/tenants/nobody-here/usage")[0] == 404


def test_stats_lists_every_tenant_and_pages(api: TenantsApi) -> None:
    meter("acme", allowed=7, denied=2)
    meter("globex", allowed=1, denied=0)
    status, first = api.as_admin("/stats", query={"limit": "1"})
    assert status == 200
    assert len(first["tenants"]) == 1 and first["next_token"]
    _, second = api.as_admin("/stats", query={"limit": "1", "next_token": first["next_token"]})
    rows = {row["tenant_id"]: row for row in first["tenants"] + second["tenants"]}
    assert (rows["acme"]["requests"], rows["acme"]["allowed"], rows["acme"]["denied"]) == (9, 7, 2)
    assert rows["acme"]["avg_latency_ms"] == round((7 * 20 + 2 * 1) / 9, 2)
    assert rows["globex"]["requests"] == 1


def test_tenant_key_on_stats_is_403(api: TenantsApi) -> None:
    status, answer = api.as_tenant("acme", "/stats")
    assert status == 403
    assert answer["error"] == "admin_only"


def test_offboarding_purges_usage(api: TenantsApi) -> None:
    meter("acme", allowed=3, denied=1)
    result = tenancy.offboard_tenant("acme", None)
    assert result.items_deleted["UsageTable"] == 2  # the day and the month item
    assert usage_store.DYNAMODB.get_period("acme", usage_store.month_period(MONTH_END)).counters == {}
    assert usage_store.DYNAMODB.get_period("globex", usage_store.month_period(MONTH_END)).counters == {}


# ----------------------------------------------------------------- the store boundary (UsageReader)


def test_history_lists_every_day_in_order_across_a_month_with_zeros_where_nothing_was_counted() -> None:
    # Given globex (pro: usage history), a fixed clock on 2 March, and counters in memory for two
    # of its last five days, the month, and a day of another tenant: no DynamoDB at all
    tenants = InMemoryTenants()
    tenants.create(TenantRecord("globex", "Globex", "pro", "active", created_at="", updated_at=""))
    now = datetime(2026, 3, 2, 12, tzinfo=UTC)
    counters = InMemoryUsage()
    counters.add("globex", "day#2026-02-27", requests=3, allowed=3)
    counters.add("globex", "day#2026-03-02", requests=5, allowed=4, denied=1)
    counters.add("globex", "month#2026-03", requests=5, allowed=4, denied=1)
    counters.add("acme", "day#2026-03-01", requests=9, allowed=9)
    # When its five-day report is asked for
    report = usage.report("globex", 5, now=now, reader=counters, tenants=tenants)
    # Then every day is there, oldest first, across February's end; only its own counts show
    assert report.days is not None
    assert [day.period for day in report.days] == [
        "day#2026-02-26",
        "day#2026-02-27",
        "day#2026-02-28",
        "day#2026-03-01",
        "day#2026-03-02",
    ]
    assert [day.requests for day in report.days] == [0, 3, 0, 0, 5]
    assert (report.today.allowed, report.today.denied) == (4, 1)
    assert report.month.period == "month#2026-03" and report.month.requests == 5


def test_the_in_memory_reader_answers_as_the_dynamodb_one(aws: dict[str, str]) -> None:
    # Given the same counters written to the Usage table (as metering writes them) and to the fake
    fake = InMemoryUsage()
    writes = [
        ("acme", "day#2026-03-01", {"requests": 2, "route:GET /me": 2}),
        ("acme", "day#2026-03-02", {"requests": 1}),
        ("acme", "month#2026-03", {"requests": 3}),
        ("globex", "month#2026-03", {"requests": 7}),
    ]
    for tenant_id, period, amounts in writes:
        update = usage_store.counter_update(tenant_id, period, amounts)["Update"]
        clients.dynamodb().meta.client.update_item(**update)
        fake.add(tenant_id, period, **amounts)
    # When each is read the three ways the usage logic reads
    for reader in (usage_store.DYNAMODB, fake):
        # Then both answer the same plain ints, and nothing for what was never counted
        assert reader.get_period("acme", "month#2026-03") == usage_store.PeriodCounters(
            "acme", "month#2026-03", {"requests": 3}
        )
        assert reader.get_period("initech", "month#2026-03").counters == {}
        assert sorted(reader.get_periods(["acme", "globex", "initech"], "month#2026-03")) == [
            "acme",
            "globex",
        ]
        assert [found.period for found in reader.get_range("acme", "day#2026-03-01", "day#2026-03-31")] == [
            "day#2026-03-01",
            "day#2026-03-02",
        ]
        assert reader.get_range("acme", "day#2026-03-01", "day#2026-03-01")[0].get("route:GET /me") == 2


def test_the_in_memory_writer_applies_a_batch_once_as_the_dynamodb_one(aws: dict[str, str]) -> None:
    # Given additions for two tenants, and a marker kept until a given time
    additions = [
        usage_store.CounterAdditions("acme", "month#2026-03", {"requests": 2, "route:GET /me": 2}),
        usage_store.CounterAdditions("globex", "month#2026-03", {"requests": 1}),
    ]
    expires_at = 1_800_000_000
    for writer in (usage_store.DYNAMODB, InMemoryUsage()):
        # When a batch is applied, the same batch again, then another batch for one tenant
        first = writer.add_once("b1#0", additions, expires_at)
        again = writer.add_once("b1#0", additions, expires_at)
        other = writer.add_once("b2#0", additions[:1], expires_at)
        # Then the repeat added nothing, and both writers hold the same sums
        assert (first, again, other) == (True, False, True)
        assert writer.get_period("acme", "month#2026-03").counters == {"requests": 4, "route:GET /me": 4}
        assert writer.get_period("globex", "month#2026-03").counters == {"requests": 1}
    # And DynamoDB's marker is an item of its own, with its expiry, under a partition no tenant id
    # can take
    marker = clients.dynamodb().Table(usage_store.table_name()).get_item(Key=usage_store.marker_key("b1#0"))
    assert marker["Item"]["expires_at"] == expires_at
    assert re.fullmatch(TENANT_ID_PATTERN, usage_store.MARKER_PARTITION) is None


def test_metering_counts_a_redelivered_batch_once_on_the_in_memory_writer() -> None:
    # Given access-log lines of 2026-03-01, metered into the fake (no DynamoDB)
    writer = InMemoryUsage()
    lines = [
        json.dumps(
            {
                "requestId": f"r{number}",
                "tenantId": "acme",
                "httpMethod": "GET",
                "resourcePath": "/me",
                "status": "200",
                "responseLatency": "12",
                "integrationLatency": "10",
                "requestTimeEpoch": "1772323200000",
            }
        )
        for number in range(3)
    ]
    # When the same lines are delivered twice
    first = metering.ingest_lines(lines, writer=writer)
    again = metering.ingest_lines(lines, writer=writer)
    # Then they count once, on the day and the month of the requests
    assert (first["chunks_applied"], again["duplicate_chunks"]) == (1, 1)
    assert writer.get_period("acme", "month#2026-03").get("requests") == 3
    assert writer.get_period("acme", "day#2026-03-01").get("route:GET /me") == 3
