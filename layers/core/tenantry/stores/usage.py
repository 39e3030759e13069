"""The Usage table: per-tenant counters under partition key tenant_id, sort key ``period``.

``period`` is ``day#YYYY-MM-DD`` or ``month#YYYY-MM``. LLM tokens are counted on the month item
(``tokens_in``, ``tokens_out``); the chat turn adds them inside its own write transaction through
:func:`token_update`, so a turn and its metering land together.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tenantry import aws, settings


def month_period(moment: datetime | None = None) -> str:
    return f"month#{(moment or datetime.now(UTC)).strftime('%Y-%m')}"


def day_period(moment: datetime | None = None) -> str:
    return f"day#{(moment or datetime.now(UTC)).strftime('%Y-%m-%d')}"


def table_name() -> str:
    return settings.table_name(settings.USAGE_TABLE)


def token_update(tenant_id: str, period: str, tokens_in: int, tokens_out: int) -> dict[str, Any]:
    """A low-level ``TransactWriteItems`` Update that adds tokens to a month item."""
    return {
        "Update": {
            "TableName": table_name(),
            "Key": {"tenant_id": {"S": tenant_id}, "period": {"S": period}},
            "UpdateExpression": "ADD tokens_in :tokens_in, tokens_out :tokens_out",
            "ExpressionAttributeValues": {
                ":tokens_in": {"N": str(tokens_in)},
                ":tokens_out": {"N": str(tokens_out)},
            },
        }
    }


def add_tokens(tenant_id: str, period: str, tokens_in: int, tokens_out: int) -> None:
    update = token_update(tenant_id, period, tokens_in, tokens_out)["Update"]
    aws.dynamodb_client().update_item(**update)


def get_period(tenant_id: str, period: str) -> dict[str, Any]:
    """The counters of one period (an empty dict when nothing was counted yet)."""
    item: dict[str, Any] | None = (
        aws.table(table_name()).get_item(Key={"tenant_id": tenant_id, "period": period}).get("Item")
    )
    return item or {}


def tokens_used(tenant_id: str, period: str) -> int:
    item = get_period(tenant_id, period)
    return int(item.get("tokens_in", 0)) + int(item.get("tokens_out", 0))
