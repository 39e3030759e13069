"""What 1M tenant requests cost on AWS, derived line by line from the template's own values and the
dated prices in tenantry.pricing, before and after issue 26; docs/operations.md ("Cost") shows this
table, and the test fails when the two differ (``python -m tests.unit.test_cost_model`` prints it).

Inputs that are not the template's are stated here once: the month's mix, how many tenants send it,
and the billed durations. Everything else (memory sizes, the authorizer's cache TTL, the sampling
rate, log retention, the alarms, the EMF line's size and metric set) is read or measured.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import pytest

from local import template
from tenantry import pricing
from tests.unit.test_metric_dimensions import ALLOWED
from tooling.sam_translate import translated_template

MONTH_SECONDS = 30 * 86_400
REQUESTS = 1_000_000
# The month's mix of tenant requests (LLM tokens excluded: the model's own price is not AWS's).
MIX = {"POST /events": 400_000, "GET /events": 200_000, "GET /me": 300_000, "POST /chat": 100_000}
TENANTS = 100  # active tenants, one key each, their requests spread evenly over the month
TENANT_TIERS = 3  # the mix comes from tenants of every tier (basic, pro, enterprise)
# Billed duration per invocation, warm, arm64 (assumed): a chat turn waits for the model (~2.9 s
# for a short answer) and then stores it; the others are one or two DynamoDB round trips.
CHAT = "POST /chat"
BILLED_MS = {"POST /events": 40, "GET /events": 30, "GET /me": 20, CHAT: 3_000}
AUTHORIZER_MS = 20  # a cache miss: one consistent GetItem
METERING_MS = 30  # one access-log delivery: one transaction
LINES_PER_DELIVERY = 1  # a quiet stack's access log reaches metering about a line at a time
# Lambda's START, END and REPORT lines of one invocation (text format), bytes.
PLATFORM_LOG_BYTES = 330
RESPONSE_BYTES = 600  # body and headers of an answer, out to the internet
NEW_DATA_BYTES = {"POST /events": 200, "POST /chat": 1_500}  # stored per request (event; a turn)
# DynamoDB request units (reads, writes) per route: tenantry.pricing's estimates; metering: a
# transaction of the tenant's day and month counters and the delivery's marker (3 items of at most
# 1 KB, each written twice as a transactional write).
METERING_WRITE_UNITS = 3 * 2
AUTHORIZER_READ_UNITS = 1  # a consistent read of one key item under 4 KB


@dataclass(frozen=True)
class Setup:
    """What differs between the template before and after issue 26."""

    name: str
    custom_metrics: int
    emf_bytes: int
    traced_share_of_requests: float
    traced_metering_batches: float
    alarm_metrics: int


def _typical(expression: str) -> str:
    values = {
        "requestId": "b1d2c3e4-5f60-4a7b-8c9d-0e1f2a3b4c5d",
        "authorizer.tenant_id": "acme-corp",
        "authorizer.tier": "pro",
        "authorizer.role": "tenant",
        "httpMethod": "POST",
        "resourcePath": "/events",
        "status": "201",
        "responseLatency": "48",
        "integrationLatency": "41",
        "responseLength": "600",
        "error.responseType": "-",
        "identity.apiKeyId": "a1b2c3d4e5",
        "requestTimeEpoch": "1796612821393",
    }
    return values[expression]


def access_log_bytes() -> int:
    """One access-log line: the stage's own format with typical values."""
    (stage,) = (
        r for r in translated_template()["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"
    )
    line = re.sub(
        r"\$context\.([A-Za-z_.]+)",
        lambda m: _typical(m.group(1)),
        stage["Properties"]["AccessLogSetting"]["Format"],
    )
    return len(json.dumps(json.loads(line), separators=(",", ":")))


def emf_line(dimensions: dict[str, str]) -> int:
    """The bytes of the EMF line a request publishes (Powertools' format), with these dimensions."""
    blob = {
        "_aws": {
            "Timestamp": 1796612821393,
            "CloudWatchMetrics": [
                {
                    "Namespace": "Tenantry",
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": "Requests", "Unit": "Count"}],
                }
            ],
        },
        **dimensions,
        "Requests": [1.0],
    }
    return len(json.dumps(blob, separators=(",", ":")))


def _memory_gb(logical_id: str) -> float:
    tpl = template.template()
    own = tpl["Resources"][logical_id]["Properties"].get("MemorySize")
    return int(own or tpl["Globals"]["Function"]["MemorySize"]) / 1024


def _route_functions() -> dict[str, str]:
    return {f"{r.method} {r.path}": r.function for r in template.api_routes()}


def _parameter_default(name: str) -> Any:
    return template.template()["Parameters"][name]["Default"]


def _alarm_metrics() -> int:
    count = 0
    for resource in translated_template()["Resources"].values():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            props = resource["Properties"]
            count += 1 if "MetricName" in props else sum("MetricStat" in q for q in props["Metrics"])
    return count


def _authorizer_invocations() -> float:
    """Cache misses: each miss opens a ReauthorizeEvery window its key's later requests reuse."""
    api = template.template()["Resources"]["TenantryApi"]["Properties"]
    ttl = float(api["Auth"]["Authorizers"]["ApiKeyAuthorizer"]["Identity"]["ReauthorizeEvery"])
    per_key_rate = REQUESTS / (TENANTS * MONTH_SECONDS)
    return REQUESTS / (1 + per_key_rate * ttl)


def _xray_default_rule_share() -> float:
    """X-Ray's default rule (the first request of each second, then 5 %) on Poisson arrivals."""
    rate = REQUESTS / MONTH_SECONDS
    at_least_one = 1 - math.exp(-rate)
    return (at_least_one + 0.05 * (rate - at_least_one)) / rate


def setups() -> tuple[Setup, Setup]:
    routes_in_mix = len(MIX)
    before = Setup(
        name="before",
        # Requests and PublishRetries by tier and route, metering's two without dimensions
        custom_metrics=TENANT_TIERS * routes_in_mix + TENANT_TIERS * 1 + 2,
        emf_bytes=emf_line({"tier": "pro", "route": "POST /events"}),
        traced_share_of_requests=_xray_default_rule_share(),
        traced_metering_batches=_xray_default_rule_share(),
        alarm_metrics=2,  # the metering failure queue's depth and the metering function's errors
    )
    after = Setup(
        name="after",
        # ModelKeyUnavailable is published only while the model's key is missing
        custom_metrics=sum(
            TENANT_TIERS if dims else 1 for name, dims in ALLOWED.items() if name != "ModelKeyUnavailable"
        ),
        emf_bytes=emf_line({"tier": "pro"}),
        traced_share_of_requests=float(_parameter_default("TracingSampleRate")),
        traced_metering_batches=0.0,  # MeteringFunction: Tracing PassThrough
        alarm_metrics=_alarm_metrics(),
    )
    return before, after


def lines(setup: Setup) -> list[tuple[str, str, float]]:
    """(line, how it is derived, USD) for 1M requests in a month."""
    gb_second = pricing.LAMBDA_ARM_GB_SECOND.usd
    invocation = pricing.LAMBDA_REQUEST.usd
    functions = _route_functions()
    authorizer = _authorizer_invocations()
    deliveries = REQUESTS / LINES_PER_DELIVERY
    api_gb_s = sum(
        count * _memory_gb(functions[route]) * BILLED_MS[route] / 1000 for route, count in MIX.items()
    )
    reads = sum(count * pricing.route_units(route)[0][0] for route, count in MIX.items())
    writes = sum(count * pricing.route_units(route)[0][1] for route, count in MIX.items())
    log_bytes = (
        REQUESTS * (access_log_bytes() + setup.emf_bytes + PLATFORM_LOG_BYTES)
        + authorizer * PLATFORM_LOG_BYTES
        + deliveries * (PLATFORM_LOG_BYTES + emf_line({}))
    )
    log_gb = log_bytes / 1e9
    retention_months = float(_parameter_default("LogRetentionDays")) / 30
    stored_gb = sum(MIX[route] * size for route, size in NEW_DATA_BYTES.items()) / 1e9
    traces = REQUESTS * setup.traced_share_of_requests + deliveries * setup.traced_metering_batches
    authorizer_gb_s = authorizer * _memory_gb("AuthorizerFunction") * AUTHORIZER_MS / 1000
    metering_gb_s = deliveries * _memory_gb("MeteringFunction") * METERING_MS / 1000
    return [
        (
            "API Gateway REST requests",
            f"{REQUESTS:,} × $3.50/M",
            REQUESTS * pricing.API_GATEWAY_REST_REQUEST.usd,
        ),
        (
            "Authorizer (Lambda + GetItem)",
            f"{authorizer:,.0f} cache misses (TTL 300 s, {TENANTS} keys): invocations, "
            f"{_memory_gb('AuthorizerFunction') * 1024:.0f} MB × {AUTHORIZER_MS} ms, 1 RRU each",
            authorizer * invocation
            + authorizer_gb_s * gb_second
            + authorizer * AUTHORIZER_READ_UNITS * pricing.DYNAMODB_READ_UNIT.usd,
        ),
        (
            "API functions (Lambda)",
            f"{REQUESTS:,} invocations + {api_gb_s:,.0f} GB-s (512 MB; a chat turn {BILLED_MS[CHAT]} ms)",
            REQUESTS * invocation + api_gb_s * gb_second,
        ),
        (
            "DynamoDB, the routes' reads and writes",
            f"{reads:,.0f} RRU + {writes:,.0f} WRU (tenantry.pricing per route)",
            reads * pricing.DYNAMODB_READ_UNIT.usd + writes * pricing.DYNAMODB_WRITE_UNIT.usd,
        ),
        (
            "Metering (Lambda + DynamoDB)",
            f"{deliveries:,.0f} deliveries: invocations, 256 MB × {METERING_MS} ms, "
            f"{METERING_WRITE_UNITS} WRU each",
            deliveries * invocation
            + metering_gb_s * gb_second
            + deliveries * METERING_WRITE_UNITS * pricing.DYNAMODB_WRITE_UNIT.usd,
        ),
        (
            "CloudWatch Logs",
            f"{log_gb:.2f} GB ingested (access line, EMF line of {setup.emf_bytes} B, Lambda's own lines), "
            f"kept {retention_months:.0f} month",
            log_gb * pricing.CLOUDWATCH_LOGS_INGESTED_GB.usd
            + log_gb * retention_months * pricing.CLOUDWATCH_LOGS_STORED_GB_MONTH.usd,
        ),
        (
            "CloudWatch custom metrics (EMF)",
            f"{setup.custom_metrics} metrics a month",
            setup.custom_metrics * pricing.CLOUDWATCH_CUSTOM_METRIC_MONTH.usd,
        ),
        ("X-Ray", f"{traces:,.0f} traces", traces * pricing.XRAY_TRACE_RECORDED.usd),
        (
            "CloudWatch alarms",
            f"{setup.alarm_metrics} alarm metrics",
            setup.alarm_metrics * pricing.CLOUDWATCH_ALARM_METRIC_MONTH.usd,
        ),
        (
            "DynamoDB storage and backups (the month's new data)",
            f"{stored_gb:.2f} GB × ($0.25 + $0.20 PITR)",
            stored_gb * (pricing.DYNAMODB_STORAGE_GB_MONTH.usd + pricing.DYNAMODB_PITR_GB_MONTH.usd),
        ),
        (
            "Data transfer out",
            f"{REQUESTS * RESPONSE_BYTES / 1e9:.2f} GB",
            REQUESTS * RESPONSE_BYTES / 1e9 * pricing.DATA_TRANSFER_OUT_GB.usd,
        ),
    ]


def waf_cost() -> float:
    """The optional web ACL (WafRateLimitPer5Minutes > 0): the ACL, its one rule, every request."""
    return pricing.WAF_WEB_ACL_MONTH.usd + pricing.WAF_RULE_MONTH.usd + REQUESTS * pricing.WAF_REQUEST.usd


def table() -> str:
    before, after = setups()
    rows = ["| line | after: how | before | after |", "|---|---|---:|---:|"]
    totals = [0.0, 0.0]
    for (name, _, usd_before), (_, how, usd_after) in zip(lines(before), lines(after), strict=True):
        rows.append(f"| {name} | {how} | ${usd_before:.2f} | ${usd_after:.2f} |")
        totals[0] += usd_before
        totals[1] += usd_after
    rows.append(f"| **total, 1M requests in a month** | | **${totals[0]:.2f}** | **${totals[1]:.2f}** |")
    rows.append(f"| optional WAF web ACL | $5 + $1 rule + $0.60/M requests | | +${waf_cost():.2f} |")
    return "\n".join(rows)


def totals() -> tuple[float, float]:
    before, after = setups()
    return sum(usd for *_, usd in lines(before)), sum(usd for *_, usd in lines(after))


def test_the_operations_guide_shows_the_derived_cost_model() -> None:
    guide = (template.REPO_ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    shown = guide.split("<!-- cost-model -->")[1].strip()
    assert shown == table(), "docs/operations.md's cost table is stale; paste:\n" + table()


def test_the_changes_made_the_stack_cheaper_per_request() -> None:
    before, after = totals()
    assert after < before
    # X-Ray and custom metrics are no longer a large share of the bill
    after_lines = {name: usd for name, _, usd in lines(setups()[1])}
    assert after_lines["X-Ray"] < 0.1
    assert after_lines["CloudWatch custom metrics (EMF)"] <= 10 * pricing.CLOUDWATCH_CUSTOM_METRIC_MONTH.usd


@pytest.mark.parametrize("route", sorted(MIX))
def test_every_route_of_the_mix_is_priced_and_served(route: str) -> None:
    assert pricing.route_units(route)[1], route
    assert route in _route_functions()


if __name__ == "__main__":
    print(table())
    print(totals())
