"""Usage answers from the metering counters: a tenant's figures, limits and estimated cost; stats."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tenantry import limits, metering, pricing
from tenantry.errors import Forbidden
from tenantry.models.usage import CostEstimate, PeriodUsage, StatsPage, TenantStats, UsageReport
from tenantry.observability import logger
from tenantry.stores import tenants as tenant_store
from tenantry.stores import usage as usage_store
from tenantry.stores import values
from tenantry.tiers import USAGE_HISTORY, get_tier

COST_NOTE = (
    "An estimate from metered requests, handler time, per-route DynamoDB unit estimates and LLM "
    "tokens, at the list prices in tenantry.pricing; not a bill."
)


def _now() -> datetime:
    """The moment that decides which day and month "today" and "this month" are (tests fix it)."""
    return datetime.now(UTC)


def _average(item: Mapping[str, int]) -> float | None:
    count = values.as_int(item.get("latency_count"))
    return round(values.as_int(item.get("latency_sum_ms")) / count, 2) if count else None


def _figures(item: Mapping[str, int]) -> dict[str, Any]:
    """The figures a period's usage and a tenant's stats row both show, from raw counters."""
    return {
        "requests": values.as_int(item.get("requests")),
        "allowed": values.as_int(item.get("allowed")),
        "denied": values.as_int(item.get("denied")),
        "avg_latency_ms": _average(item),
        "p50_latency_ms": metering.percentile_ms(item, 0.5),
        "p95_latency_ms": metering.percentile_ms(item, 0.95),
        "p99_latency_ms": metering.percentile_ms(item, 0.99),
        "tokens_in": values.as_int(item.get("tokens_in")),
        "tokens_out": values.as_int(item.get("tokens_out")),
    }


def period_usage(period: str, item: Mapping[str, int]) -> PeriodUsage:
    return PeriodUsage(
        period=period,
        client_errors=values.as_int(item.get("client_errors")),
        errors=values.as_int(item.get("errors")),
        **_figures(item),
    )


def estimate_cost(item: Mapping[str, int]) -> CostEstimate:
    api_gateway = values.as_int(item.get("requests")) * pricing.API_GATEWAY_REST_REQUEST.usd
    gb_seconds = values.as_int(item.get("integration_sum_ms")) / 1000 * pricing.FUNCTION_MEMORY_GB
    lambda_compute = (
        gb_seconds * pricing.LAMBDA_ARM_GB_SECOND.usd
        + values.as_int(item.get("integration_count")) * pricing.LAMBDA_REQUEST.usd
    )
    dynamodb = 0.0
    llm = 0.0
    for name, value in item.items():
        if name.startswith("route:"):
            (reads, writes), listed = pricing.route_units(name.removeprefix("route:"))
            if not listed:
                logger.warning(
                    "route missing from the price table: priced as the dearest", extra={"route": name}
                )
            count = values.as_int(value)
            dynamodb += count * (
                reads * pricing.DYNAMODB_READ_UNIT.usd + writes * pricing.DYNAMODB_WRITE_UNIT.usd
            )
        elif name.startswith(usage_store.MODEL_TOKENS_IN):
            llm += (
                values.as_int(value)
                * pricing.model_price(name.removeprefix(usage_store.MODEL_TOKENS_IN))[0]
                / 1e6
            )
        elif name.startswith(usage_store.MODEL_TOKENS_OUT):
            llm += (
                values.as_int(value)
                * pricing.model_price(name.removeprefix(usage_store.MODEL_TOKENS_OUT))[1]
                / 1e6
            )
    return CostEstimate(
        api_gateway=round(api_gateway, 6),
        lambda_compute=round(lambda_compute, 6),
        dynamodb=round(dynamodb, 6),
        llm=round(llm, 6),
        total=round(api_gateway + lambda_compute + dynamodb + llm, 6),
        prices_recorded_on=pricing.RECORDED_ON,
        note=COST_NOTE,
    )


def report(
    tenant_id: str,
    days: int = 1,
    *,
    as_admin: bool = False,
    now: datetime | None = None,
    reader: usage_store.UsageReader = usage_store.DYNAMODB,
    tenants: tenant_store.TenantStore = tenant_store.DYNAMODB,
) -> UsageReport:
    """The tenant's figures for today and this month; with ``days`` > 1, the daily history too
    (for the tenant itself only on tiers with usage history; an admin always sees it)."""
    tenant = tenant_store.require(tenants, tenant_id)
    tier = get_tier(tenant.tier)
    if days > 1 and not as_admin and not tier.has(USAGE_HISTORY):
        raise Forbidden(
            f"Tier {tier.name!r} shows today and this month only; usage history needs a higher tier",
            code="feature_not_in_tier",
            field="days",
        )
    moment = now or _now()
    today = usage_store.day_period(moment)
    month = usage_store.month_period(moment)
    month_item = reader.get_period(tenant_id, month).counters
    history: list[PeriodUsage] | None = None
    if days > 1:
        first = usage_store.day_period(moment - timedelta(days=days - 1))
        items = {found.period: found.counters for found in reader.get_range(tenant_id, first, today)}
        history = [
            period_usage(period, items.get(period, {}))
            for period in (
                usage_store.day_period(moment - timedelta(days=back)) for back in range(days - 1, -1, -1)
            )
        ]
        today_item = items.get(today, {})
    else:
        today_item = reader.get_period(tenant_id, today).counters
    return UsageReport(
        tenant_id=tenant_id,
        tier=tier.name,
        limits=limits.view(tenant.tier, tenant.limits)[0],
        today=period_usage(today, today_item),
        month=period_usage(month, month_item),
        days=history,
        estimated_cost=estimate_cost(month_item),
    )


def _stats_row(tenant: tenant_store.TenantRecord, item: Mapping[str, int]) -> TenantStats:
    return TenantStats(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        tier=tenant.tier,
        status=tenant.status,
        **_figures(item),
        estimated_cost_usd=estimate_cost(item).total,
        limits=limits.view(tenant.tier, tenant.limits)[0],
    )


def stats(
    limit: int,
    next_token: str | None,
    *,
    tier: str | None = None,
    now: datetime | None = None,
    reader: usage_store.UsageReader = usage_store.DYNAMODB,
    tenants: tenant_store.TenantStore = tenant_store.DYNAMODB,
) -> StatsPage:
    """Every tenant's figures this month (requests, allowed, denied, latency, tokens, estimated
    cost) with the limits in force, a page at a time."""
    month = usage_store.month_period(now or _now())
    found, token = tenants.list_page(tier=tier, status=None, limit=limit, next_token=next_token)
    counters = reader.get_periods([tenant.tenant_id for tenant in found], month)
    rows = [_stats_row(tenant, _month_of(counters, tenant, month)) for tenant in found]
    return StatsPage(period=month, tenants=rows, next_token=token)


def _month_of(
    counters: dict[str, usage_store.PeriodCounters], tenant: tenant_store.TenantRecord, month: str
) -> Mapping[str, int]:
    return counters.get(tenant.tenant_id, usage_store.PeriodCounters(tenant.tenant_id, month)).counters


def month_items(
    *,
    tier: str | None = None,
    now: datetime | None = None,
    reader: usage_store.UsageReader = usage_store.DYNAMODB,
    tenants: tenant_store.TenantStore = tenant_store.DYNAMODB,
) -> Iterator[tuple[tenant_store.TenantRecord, Mapping[str, int]]]:
    """Every tenant (of ``tier``, if given) with its month's raw counters, 100 tenants a round."""
    month = usage_store.month_period(now or _now())
    token: str | None = None
    while True:
        found, token = tenants.list_page(tier=tier, status=None, limit=100, next_token=token)
        counters = reader.get_periods([tenant.tenant_id for tenant in found], month)
        for tenant in found:
            yield tenant, _month_of(counters, tenant, month)
        if token is None:
            return
