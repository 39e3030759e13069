"""Models of usage: a tenant's counters, its limits, an estimated cost, and the admin stats."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tenantry.models.tenants import Limits

LATENCY_PERCENTILE = (
    "The {} percentile of the period's latencies (ms), within 7.2 % of the true value; for a period "
    "that began before the fine histogram, the upper bound of its coarse bucket"
)


class Figures(BaseModel):
    """The figures a period's usage and a tenant's stats row share."""

    requests: int
    allowed: int = Field(description="2xx and 3xx answers")
    denied: int = Field(description="429s: throttled or over quota at the edge")
    avg_latency_ms: float | None
    p50_latency_ms: float | None = Field(default=None, description=LATENCY_PERCENTILE.format("50th"))
    p95_latency_ms: float | None = Field(description=LATENCY_PERCENTILE.format("95th"))
    p99_latency_ms: float | None = Field(default=None, description=LATENCY_PERCENTILE.format("99th"))
    tokens_in: int
    tokens_out: int


class PeriodUsage(Figures):
    period: str = Field(description="day#YYYY-MM-DD or month#YYYY-MM")
    client_errors: int = Field(description="4xx answers other than 429")
    errors: int = Field(description="5xx answers")


class CostEstimate(BaseModel):
    currency: str = "USD"
    api_gateway: float
    lambda_compute: float
    dynamodb: float
    llm: float
    total: float
    prices_recorded_on: str
    note: str


class UsageReport(BaseModel):
    tenant_id: str
    tier: str
    limits: Limits = Field(description="The limits in force: the tier's, or the tenant's overrides")
    today: PeriodUsage
    month: PeriodUsage
    days: list[PeriodUsage] | None = Field(
        default=None, description="Daily history (tiers with usage history)"
    )
    estimated_cost: CostEstimate


class TenantStats(Figures):
    tenant_id: str
    name: str
    tier: str
    status: str
    estimated_cost_usd: float = Field(description="This month's estimated cost (see /tenants/{id}/usage)")
    limits: Limits = Field(description="The limits in force: the tier's, or the tenant's overrides")


class StatsPage(BaseModel):
    period: str
    tenants: list[TenantStats]
    next_token: str | None
