"""Health and readiness: can this function reach its DynamoDB tables, and how fast.

A result is reused for :data:`CACHE_SECONDS` per sandbox (issue 16): a monitor or load balancer
polling /health learns of a change at most a second late, and a flood of this key-less route costs
DynamoDB at most two DescribeTable calls per second per sandbox instead of two per request.
"""

from __future__ import annotations

import time
from typing import Any

from tenantry import aws, caches, settings

CHECKED_TABLES = (settings.TENANTS_TABLE, settings.API_KEYS_TABLE)
CACHE_SECONDS = 1.0

# The last check: when it ended, what it checked (client and table names) and what it found.
_last: tuple[float, object, tuple[str, ...], dict[str, Any]] | None = None


def check_dynamodb(*, clock: Any = time.monotonic) -> dict[str, Any]:
    """``{"status": "healthy"|"unhealthy", "latency_ms": float, ...}`` from DescribeTable calls,
    or the same answer as a check of the same tables less than :data:`CACHE_SECONDS` ago."""
    global _last  # noqa: PLW0603 - one sandbox's cached result
    client = aws.dynamodb_client()
    tables = tuple(settings.optional_table_name(env_var) or "" for env_var in CHECKED_TABLES)
    now = clock()
    if _last is not None and now - _last[0] < CACHE_SECONDS and _last[1] is client and _last[2] == tables:
        return dict(_last[3])
    result = _describe(client)
    _last = (clock(), client, tables, result)
    return dict(result)


@caches.register
def _forget_last_check() -> None:
    global _last  # noqa: PLW0603
    _last = None


def _describe(client: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        statuses = [
            client.describe_table(TableName=settings.table_name(env_var))["Table"]["TableStatus"]
            for env_var in CHECKED_TABLES
        ]
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable", reported, not raised
        return {
            "status": "unhealthy",
            "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            "error": type(exc).__name__,
        }
    latency_ms = round((time.perf_counter() - started) * 1000, 2)
    not_ready = [status for status in statuses if status not in ("ACTIVE", "UPDATING")]
    if not_ready:
        return {"status": "unhealthy", "latency_ms": latency_ms, "error": f"table status {not_ready[0]}"}
    return {"status": "healthy", "latency_ms": latency_ms}
