"""The price table behind the estimated cost per tenant: one place, each price with its source.

Prices are us-east-1 list prices in USD as recorded on ``RECORDED_ON`` from the pages named in
``source``; check them there before relying on an estimate. DynamoDB request units per route are
estimates of what each route's handler reads and writes (see docs/decisions.md, Metering), not
measurements.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

RECORDED_ON: Final = "2026-11-24"


@dataclass(frozen=True, slots=True)
class Price:
    usd: float
    per: str
    source: str


API_GATEWAY_REST_REQUEST: Final = Price(
    3.50 / 1_000_000,
    "REST API request (first 333 million a month)",
    "https://aws.amazon.com/api-gateway/pricing/",
)
LAMBDA_ARM_GB_SECOND: Final = Price(
    0.0000133334, "GB-second, arm64", "https://aws.amazon.com/lambda/pricing/"
)
LAMBDA_REQUEST: Final = Price(0.20 / 1_000_000, "invocation", "https://aws.amazon.com/lambda/pricing/")
DYNAMODB_WRITE_UNIT: Final = Price(
    0.625 / 1_000_000, "on-demand write request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
)
DYNAMODB_READ_UNIT: Final = Price(
    0.125 / 1_000_000, "on-demand read request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
)
# The rest of what a deployed stack pays for, beside the per-tenant estimate: docs/operations.md's
# cost model (tests/unit/test_cost_model.py derives it from these and the template). Recorded on
# OPERATIONS_RECORDED_ON, us-east-1, without the free tier (it is per account, not per stack).
OPERATIONS_RECORDED_ON: Final = "2026-12-07"
CLOUDWATCH_LOGS_INGESTED_GB: Final = Price(
    0.50, "GB of log data ingested (standard class)", "https://aws.amazon.com/cloudwatch/pricing/"
)
CLOUDWATCH_LOGS_STORED_GB_MONTH: Final = Price(
    0.03, "GB-month of log data stored", "https://aws.amazon.com/cloudwatch/pricing/"
)
CLOUDWATCH_CUSTOM_METRIC_MONTH: Final = Price(
    0.30,
    "custom metric a month (first 10,000); EMF metrics included",
    "https://aws.amazon.com/cloudwatch/pricing/",
)
CLOUDWATCH_ALARM_METRIC_MONTH: Final = Price(
    0.10,
    "standard-resolution alarm metric a month (each metric of a metric-math alarm counts)",
    "https://aws.amazon.com/cloudwatch/pricing/",
)
XRAY_TRACE_RECORDED: Final = Price(5.00 / 1_000_000, "trace recorded", "https://aws.amazon.com/xray/pricing/")
DATA_TRANSFER_OUT_GB: Final = Price(
    0.09, "GB out to the internet (first 10 TB a month)", "https://aws.amazon.com/ec2/pricing/on-demand/"
)
DYNAMODB_STORAGE_GB_MONTH: Final = Price(
    0.25, "GB-month of table storage (standard class)", "https://aws.amazon.com/dynamodb/pricing/on-demand/"
)
DYNAMODB_PITR_GB_MONTH: Final = Price(
    0.20,
    "GB-month of continuous backup (point-in-time recovery)",
    "https://aws.amazon.com/dynamodb/pricing/on-demand/",
)
WAF_WEB_ACL_MONTH: Final = Price(5.00, "web ACL a month", "https://aws.amazon.com/waf/pricing/")
WAF_RULE_MONTH: Final = Price(1.00, "rule a month", "https://aws.amazon.com/waf/pricing/")
WAF_REQUEST: Final = Price(0.60 / 1_000_000, "request inspected", "https://aws.amazon.com/waf/pricing/")
ANTHROPIC_SOURCE: Final = "https://www.anthropic.com/pricing#api"
# (input, output) USD per million tokens.
MODEL_TOKEN_PRICES: Final[dict[str, tuple[float, float]]] = {
    "echo-1": (0.0, 0.0),
    "claude-haiku-4-5": (1.00, 5.00),
    "claude-sonnet-4-6": (3.00, 15.00),
    "claude-opus-4-5": (5.00, 25.00),
}
# Memory the template gives the functions that serve tenant routes, for GB-seconds.
FUNCTION_MEMORY_GB: Final = 0.5
# Estimated DynamoDB request units per route: (read units, write units).
ROUTE_REQUEST_UNITS: Final[dict[str, tuple[float, float]]] = {
    "POST /events": (0.0, 4.0),  # transaction: HEAD update + event put, doubled for transactions
    "GET /events": (2.0, 0.0),
    # A subscription open its whole 895 s: HEAD read once a second, the tenant's record every 5 s
    # (docs/operations.md, "What a subscription costs"); the events it delivers besides.
    "GET /events/stream": (1075.0, 0.0),
    "GET /events/{position}": (1.0, 0.0),
    "GET /metrics": (1.0, 0.0),
    "PUT /consumers/{name}": (1.0, 1.0),
    "GET /consumers/{name}": (1.0, 0.0),
    "POST /chat": (5.0, 10.0),  # batch get, window query, transaction: turn, session, bill marker, month, day
    "GET /sessions": (2.0, 0.0),
    "GET /sessions/{session_id}": (3.0, 0.0),
    "DELETE /sessions/{session_id}": (2.0, 4.0),
    "GET /me": (1.0, 0.0),
    # Self-service keys: the tenant's item and its keys read, a key put and activated, the count.
    "POST /me/keys": (3.0, 4.0),
    "GET /me/keys": (3.0, 0.0),
    "DELETE /me/keys/{key_id}": (3.0, 2.0),
    "GET /usage": (2.0, 0.0),
    # Admin routes (metered to the admin pseudo-tenant; for a tenant key they end at the edge, 403).
    "POST /tenants": (1.0, 6.0),  # tenant put, key put, the tenant's key list, usage plan records
    "GET /tenants": (5.0, 0.0),  # one page of the tenants table
    "GET /tenants/{tenant_id}": (1.0, 0.0),
    "PATCH /tenants/{tenant_id}": (3.0, 3.0),  # tenant update, its keys re-tiered
    "DELETE /tenants/{tenant_id}": (20.0, 20.0),  # offboarding: every tenant table's partition
    "POST /tenants/{tenant_id}/keys": (2.0, 4.0),  # rotation: new key, old key's expiry, key list
    "GET /tenants/{tenant_id}/keys": (2.0, 0.0),
    "DELETE /tenants/{tenant_id}/keys/{key_id}": (2.0, 2.0),
    "GET /tenants/{tenant_id}/usage": (2.0, 0.0),
    "GET /stats": (10.0, 0.0),  # a page of tenants and their month
    "GET /stats/prometheus": (10.0, 0.0),
    # Public routes: no tenant, no data read (/ready describes tables, which costs no units).
    "GET /health": (0.0, 0.0),
    "GET /ready": (0.0, 0.0),
    "GET /console": (0.0, 0.0),
    "GET /console/{asset}": (0.0, 0.0),
}
# Every route of tenantry.routes is above (a unit test checks it); one that is not is priced like
# the dearest, never as free.
_DEAREST_ROUTE: Final = max(
    ROUTE_REQUEST_UNITS.values(),
    key=lambda units: units[0] * DYNAMODB_READ_UNIT.usd + units[1] * DYNAMODB_WRITE_UNIT.usd,
)


def route_units(route: str) -> tuple[tuple[float, float], bool]:
    """``METHOD /path``'s estimated (read units, write units), and whether the table lists it."""
    units = ROUTE_REQUEST_UNITS.get(route)
    return (units, True) if units is not None else (_DEAREST_ROUTE, False)


def model_price(model: str) -> tuple[float, float]:
    """Per-million-token (input, output) price; unknown models are priced like the dearest known."""
    return MODEL_TOKEN_PRICES.get(model, max(MODEL_TOKEN_PRICES.values()))
