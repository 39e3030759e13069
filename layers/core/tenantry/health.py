"""Health and readiness: can this function reach its DynamoDB tables, and how fast."""

from __future__ import annotations

import time
from typing import Any

from tenantry import aws, settings

CHECKED_TABLES = (settings.TENANTS_TABLE, settings.API_KEYS_TABLE)


def check_dynamodb() -> dict[str, Any]:
    """``{"status": "healthy"|"unhealthy", "latency_ms": float, ...}`` from DescribeTable calls."""
    started = time.perf_counter()
    try:
        statuses = [
            aws.dynamodb_client().describe_table(TableName=settings.table_name(env_var))["Table"][
                "TableStatus"
            ]
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
