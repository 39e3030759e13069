"""Prometheus text exposition (format 0.0.4) of this month's per-tenant counters.

The figures are the Usage table's month items, the same ones /stats and /tenants/{id}/usage answer
from, so a scrape and the JSON never disagree. Counters restart at each month's first request;
Prometheus' ``rate()`` and ``increase()`` treat that as a counter reset. Latency buckets are the
metering histogram's own bounds (``tenantry.metering.LATENCY_BUCKETS_MS``), in seconds, cumulative.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Final, get_args

from tenantry import metering
from tenantry.errors import Unprocessable
from tenantry.models.tenants import TenantStatus
from tenantry.stores import values
from tenantry.stores.tenants import TenantRecord
from tenantry.tiers import TIERS
from tenantry.usage import estimate_cost, month_items

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES: Final = ("allowed", "denied", "client_errors", "errors")
# Lambda's response payload limit is 6 MB; about 2 KB a tenant puts this near 2,500 tenants a scrape.
MAX_BODY_BYTES: Final = 5_500_000


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in labels.items()) + "}"


def _seconds(milliseconds: float) -> str:
    return repr(milliseconds / 1000)


class _Family:
    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]

    def add(self, name: str, labels: str, value: int | float | str) -> None:
        self.lines.append(f"{name}{labels} {value}")


def render(rows: Iterable[tuple[TenantRecord, Mapping[str, int]]]) -> str:
    """``rows``: (tenant, month counters) pairs, as :func:`tenantry.usage.month_items`."""
    requests = _Family("tenantry_requests_total", "counter", "Requests this month by outcome (429 = denied)")
    tokens = _Family("tenantry_llm_tokens_total", "counter", "LLM tokens this month by direction")
    latency = _Family(
        "tenantry_request_latency_seconds", "histogram", "API Gateway response latency this month"
    )
    cost = _Family("tenantry_estimated_cost_usd", "gauge", "Estimated cost this month (not a bill)")
    by_tier_status: Counter[tuple[str, str]] = Counter()
    for tenant, item in rows:
        tenant_id, tier = tenant.tenant_id, tenant.tier
        by_tier_status[(tier, tenant.status)] += 1
        for outcome in OUTCOMES:
            requests.add(
                "tenantry_requests_total",
                _labels(tenant_id=tenant_id, tier=tier, outcome=outcome),
                values.as_int(item.get(outcome)),
            )
        for direction, attribute in (("input", "tokens_in"), ("output", "tokens_out")):
            tokens.add(
                "tenantry_llm_tokens_total",
                _labels(tenant_id=tenant_id, tier=tier, direction=direction),
                values.as_int(item.get(attribute)),
            )
        running = 0
        for bound, attribute in zip(metering.LATENCY_BUCKETS_MS, metering.BUCKET_ATTRIBUTES, strict=False):
            running += values.as_int(item.get(attribute))
            latency.add(
                "tenantry_request_latency_seconds_bucket",
                _labels(tenant_id=tenant_id, tier=tier, le=_seconds(bound)),
                running,
            )
        total = sum(values.as_int(item.get(attribute)) for attribute in metering.BUCKET_ATTRIBUTES)
        latency.add(
            "tenantry_request_latency_seconds_bucket",
            _labels(tenant_id=tenant_id, tier=tier, le="+Inf"),
            total,
        )
        latency.add(
            "tenantry_request_latency_seconds_sum",
            _labels(tenant_id=tenant_id, tier=tier),
            _seconds(values.as_int(item.get("latency_sum_ms"))),
        )
        latency.add("tenantry_request_latency_seconds_count", _labels(tenant_id=tenant_id, tier=tier), total)
        cost.add(
            "tenantry_estimated_cost_usd", _labels(tenant_id=tenant_id, tier=tier), estimate_cost(item).total
        )
    tenants = _Family("tenantry_tenants", "gauge", "Tenants by tier and status")
    # Every known tier and status, zeros included, so a series never vanishes when it reaches 0.
    tiers = sorted(set(TIERS) | {tier for tier, _ in by_tier_status})
    statuses = sorted(set(get_args(TenantStatus)) | {status for _, status in by_tier_status})
    for tier in tiers:
        for status in statuses:
            tenants.add("tenantry_tenants", _labels(tier=tier, status=status), by_tier_status[(tier, status)])
    families = (requests, tokens, latency, cost, tenants)
    return "\n".join(line for family in families for line in family.lines) + "\n"


def scrape(tier: str | None = None) -> str:
    """The exposition of every tenant (of ``tier``); a 422 naming ``tier`` when it would not fit in
    one Lambda response, so an operator shards the scrape by tier instead of getting a 502."""
    body = render(month_items(tier=tier))
    if len(body.encode()) > MAX_BODY_BYTES:
        raise Unprocessable(
            f"The exposition exceeds {MAX_BODY_BYTES} bytes: scrape each tier separately with ?tier=",
            code="exposition_too_large",
            field="tier",
        )
    return body


def _media_ranges(accept: str) -> dict[str, float]:
    ranges: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if media:
            ranges[media.lower()] = max(quality, ranges.get(media.lower(), 0.0))
    return ranges


def wants_text(accept: str | None) -> bool:
    """True when ``Accept`` prefers the text format (what Prometheus sends) over JSON. JSON wins
    ties, ``*/*`` and a missing header, so existing JSON clients see no change."""
    ranges = _media_ranges(accept or "")
    text = max(ranges.get("text/plain", 0.0), ranges.get("application/openmetrics-text", 0.0))
    json = ranges.get("application/json", ranges.get("application/*", ranges.get("*/*", 0.0)))
    return text > 0 and text > json
