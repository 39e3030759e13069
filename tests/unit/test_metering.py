"""Metering math on crafted access-log batches: outcomes, latency, duplicates, malformed lines."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from tenantry import aws as clients
from tenantry import metering
from tenantry.stores import usage as usage_store
from tests.conftest import REPO_ROOT, load_function

EPOCH_MS = 1_795_492_371_018  # 2026-11-24T03:52:51Z
DAY = "day#2026-11-24"
MONTH = "month#2026-11"


def line(
    tenant: str = "acme", status: int = 200, latency: int = 40, request: str | None = None, **extra: Any
) -> str:
    record = {
        "requestId": request or f"r-{tenant}-{status}-{latency}-{len(extra)}-{id(extra)}",
        "tenantId": tenant,
        "tier": "basic",
        "role": "tenant",
        "httpMethod": "GET",
        "resourcePath": "/me",
        "status": str(status),
        "responseLatency": str(latency),
        "integrationLatency": "-" if status == 429 else str(max(latency - 5, 0)),
        "errorType": "-",
        "apiKeyId": "k1",
        "requestTimeEpoch": str(EPOCH_MS),
    }
    record.update(extra)
    return json.dumps(record)


def counters(tenant: str, period: str) -> dict[str, int]:
    return dict(usage_store.DYNAMODB.get_period(tenant, period).counters)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        "{}",
        json.dumps({"requestId": "x", "status": "abc", "requestTimeEpoch": "1"}),
        '{"status": "200"}',
    ],
)
def test_malformed_lines_parse_to_none(text: str) -> None:
    assert metering.parse_line(text) is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "allowed"), (201, "allowed"), (302, "allowed"), (404, "client_errors"), (403, "client_errors"),
     (429, "denied"), (500, "errors"), (502, "errors")],
)  # fmt: skip
def test_outcomes(status: int, outcome: str) -> None:
    assert metering.outcome(status) == outcome


def test_a_batch_adds_exact_counters_for_day_and_month(aws: dict[str, str]) -> None:
    # Given a crafted batch: 3 allowed, 2 denied, 1 client error, 1 server error for acme; 1 for globex
    batch = [
        line(status=200, latency=3),
        line(status=201, latency=40),
        line(status=302, latency=120),
        line(status=429, latency=1),
        line(status=429, latency=2),
        line(status=404, latency=9),
        line(status=500, latency=3000),
        line("globex", 200, 7),
    ]
    # When it is metered
    result = metering.ingest_lines(batch)
    # Then every count is exact, on the day and the month item alike
    assert result["metered"] == 8
    assert result["tenants"] == 2
    for period in (DAY, MONTH):
        got = counters("acme", period)
        assert got["requests"] == 7
        assert (got["allowed"], got["denied"], got["client_errors"], got["errors"]) == (3, 2, 1, 1)
        assert got["latency_sum_ms"] == 3 + 40 + 120 + 1 + 2 + 9 + 3000
        assert got["latency_count"] == 7
        assert got["lat_le_0005"] == 3 and got["lat_le_0010"] == 1 and got["lat_le_0050"] == 1
        assert got["lat_le_0250"] == 1 and got["lat_le_5000"] == 1
        assert got["integration_count"] == 5  # the 429s never reached a handler
        assert got["route:GET /me"] == 7
    assert counters("globex", MONTH)["requests"] == 1


def test_a_redelivered_batch_counts_once(aws: dict[str, str]) -> None:
    batch = [line(status=200), line(status=429)]
    first = metering.ingest_lines(batch)
    again = metering.ingest_lines(batch)
    assert first["chunks_applied"] == 1
    assert again["chunks_applied"] == 0 and again["duplicate_chunks"] == 1
    assert counters("acme", MONTH)["requests"] == 2


def test_malformed_and_tenantless_lines_are_skipped_and_counted(aws: dict[str, str]) -> None:
    batch = [line(status=200), "garbage {", "", line("-", 401), line("_admin", 200), '{"half": "a line"}']
    result = metering.ingest_lines(batch)
    assert result["skipped_malformed"] == 2
    assert result["skipped_without_tenant"] == 2
    assert result["metered"] == 1
    assert counters("acme", MONTH)["requests"] == 1


def test_a_large_batch_is_applied_in_chunks_exactly_once_even_after_a_partial_failure(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 150 tenants in one batch: 300 tenant-periods, four transactions of up to 99 updates
    batch = [line(f"t{number:03d}", request=f"r{number}") for number in range(150)]
    real = clients.dynamodb_client().transact_write_items
    calls = {"n": 0}

    def fail_third(**kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("Lambda timed out here")
        return real(**kwargs)

    # When the first delivery dies after two chunks
    monkeypatch.setattr(clients.dynamodb_client(), "transact_write_items", fail_third)
    with pytest.raises(RuntimeError):
        metering.ingest_lines(batch)
    monkeypatch.setattr(clients.dynamodb_client(), "transact_write_items", real)
    # And CloudWatch Logs redelivers the batch
    result = metering.ingest_lines(batch)
    # Then the missing chunks are applied and the others are not applied twice
    assert (result["chunks_applied"], result["duplicate_chunks"]) == (2, 2)
    assert all(counters(f"t{number:03d}", MONTH)["requests"] == 1 for number in range(150))


def _histogram(latencies: list[int]) -> dict[str, int]:
    """A Usage item's latency attributes after metering ``latencies``."""
    item: dict[str, int] = {}
    for latency in latencies:
        for name in (
            metering.BUCKET_ATTRIBUTES[metering.latency_bucket(latency)],
            metering.fine_attribute(metering.fine_bucket(latency)),
        ):
            item[name] = item.get(name, 0) + 1
    return item


def _true_percentile(latencies: list[int], quantile: float) -> int:
    ordered = sorted(latencies)
    return ordered[max(1, math.ceil(quantile * len(ordered))) - 1]


@pytest.mark.parametrize("seed", range(40))
def test_percentiles_are_within_ten_percent_of_the_true_value(seed: int) -> None:
    # Given latencies of many shapes: fast, slow, long-tailed, a handful or thousands
    generator = random.Random(seed)
    scale = generator.choice([1, 3, 20, 293, 2500, 28000])
    count = generator.choice([1, 2, 7, 100, 5000])
    latencies = [max(0, int(generator.lognormvariate(0, 1.2) * scale)) for _ in range(count)]
    # When they are metered into the histogram
    item = _histogram(latencies)
    # Then p50, p95 and p99 are each within 10 % (7.2 % by construction) of the true percentile
    for quantile in (0.5, 0.95, 0.99):
        true = _true_percentile(latencies, quantile)
        reported = metering.percentile_ms(item, quantile)
        assert reported is not None
        assert abs(reported - true) <= 0.0725 * true, (quantile, true, reported)


def test_a_293_ms_request_is_reported_near_293_not_at_its_coarse_bound() -> None:
    assert metering.percentile_ms(_histogram([293]), 0.95) == pytest.approx(293, rel=0.0725)


def test_items_metered_before_the_fine_histogram_keep_their_coarse_answer() -> None:
    # Given a period metered only into the coarse buckets (stored before the upgrade)
    old = {"lat_le_0010": 90, "lat_le_0100": 5, "lat_le_1000": 5}
    # Then it still answers, the way it always did: the bucket's upper bound
    assert metering.percentile_ms(old, 0.95) == 100
    assert metering.percentile_ms({"lat_gt_10000": 1}, 0.95) == 10000
    assert metering.percentile_ms({}, 0.95) is None
    # And a period that straddles the upgrade (fewer fine counts than coarse) stays coarse
    mixed = {**old, **_histogram([7])}
    mixed["lat_le_0010"] = old["lat_le_0010"] + 1
    assert metering.percentile_ms(mixed, 0.95) == 100


def test_subscription_event_through_the_metering_function(aws: dict[str, str], lambda_context: Any) -> None:
    # Given the sample subscription event (3 lines of tenant sample, 1 without tenant, 1 malformed)
    event = json.loads((REPO_ROOT / "events" / "metering-logs.json").read_text())
    handler = load_function("metering").lambda_handler
    # When it is delivered twice
    first = handler(event, lambda_context)
    second = handler(event, lambda_context)
    # Then it is metered once
    assert first["metered"] == 3 and first["skipped_malformed"] == 1 and first["skipped_without_tenant"] == 1
    assert second["duplicate_chunks"] == 1
    got = counters("sample", MONTH)
    assert (got["requests"], got["allowed"], got["denied"]) == (3, 2, 1)
    assert got["route:POST /events"] == 1
