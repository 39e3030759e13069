"""The Usage table: per-tenant counters under partition key tenant_id, sort key ``period``.

``period`` is ``day#YYYY-MM-DD`` or ``month#YYYY-MM``. LLM tokens are counted on the month item
(``tokens_in``, ``tokens_out``); the chat turn adds them inside its own write transaction through
:func:`token_update`, so a turn and its metering land together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from tenantry import aws, retry, settings
from tenantry.stores import values


def month_period(moment: datetime | None = None) -> str:
    return f"month#{(moment or datetime.now(UTC)).strftime('%Y-%m')}"


def day_period(moment: datetime | None = None) -> str:
    return f"day#{(moment or datetime.now(UTC)).strftime('%Y-%m-%d')}"


def table_name() -> str:
    return settings.table_name(settings.USAGE_TABLE)


MODEL_TOKENS_IN = "tokens_in:"
MODEL_TOKENS_OUT = "tokens_out:"


def token_update(
    tenant_id: str, period: str, tokens_in: int, tokens_out: int, model: str | None = None
) -> dict[str, Any]:
    """A ``TransactWriteItems`` Update, in the resource layer's plain values, that adds tokens to
    a period's item: the totals the budget reads and, with ``model``, per-model counters the cost
    estimate prices."""
    expression = "ADD tokens_in :tokens_in, tokens_out :tokens_out"
    names: dict[str, str] = {}
    if model is not None:
        expression += ", #model_in :tokens_in, #model_out :tokens_out"
        names = {"#model_in": MODEL_TOKENS_IN + model, "#model_out": MODEL_TOKENS_OUT + model}
    update: dict[str, Any] = {
        "TableName": table_name(),
        "Key": {"tenant_id": tenant_id, "period": period},
        "UpdateExpression": expression,
        "ExpressionAttributeValues": {":tokens_in": tokens_in, ":tokens_out": tokens_out},
    }
    if names:
        update["ExpressionAttributeNames"] = names
    return {"Update": update}


def counter_update(tenant_id: str, period: str, counters: dict[str, int]) -> dict[str, Any]:
    """A ``TransactWriteItems`` Update that atomically adds each counter (names may hold any text)."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    additions: list[str] = []
    for index, (name, amount) in enumerate(sorted(counters.items())):
        names[f"#c{index}"] = name
        values[f":c{index}"] = {"N": str(amount)}
        additions.append(f"#c{index} :c{index}")
    return {
        "Update": {
            "TableName": table_name(),
            "Key": {"tenant_id": {"S": tenant_id}, "period": {"S": period}},
            "UpdateExpression": "ADD " + ", ".join(additions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def batch_marker(partition: str, sort_key: str, expires_at: int) -> dict[str, Any]:
    """A ``TransactWriteItems`` Put that fails if the marker exists: the write-once guard."""
    return {
        "Put": {
            "TableName": table_name(),
            "Item": {
                "tenant_id": {"S": partition},
                "period": {"S": sort_key},
                "expires_at": {"N": str(expires_at)},
            },
            "ConditionExpression": "attribute_not_exists(#period)",
            "ExpressionAttributeNames": {"#period": "period"},
        }
    }


def write_once(marker: dict[str, Any], updates: list[dict[str, Any]]) -> bool:
    """Apply ``updates`` with ``marker`` in one transaction; False if the marker was already there.

    A transaction cancelled for a conflict or throttling wrote nothing, so it is sent again (the
    marker keeps a retry that did commit from counting twice) while the invocation has time."""
    items: list[Any] = [marker, *updates]
    attempt = 0
    while True:
        attempt += 1
        try:
            aws.data_client().transact_write_items(TransactItems=items)
        except ClientError as exc:
            if retry.is_lost_race(exc) and retry.pause(attempt):
                continue
            reasons = retry.cancellation_reasons(exc)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                return False
            raise
        return True


@dataclass(frozen=True, slots=True)
class PeriodCounters:
    """One tenant's counters for one period, every number a plain int: requests, allowed, denied,
    client_errors, errors, the latency sums and histograms, ``route:<METHOD /path>`` and the
    (per-model) token counters. A period nothing was counted in has none (each reads 0)."""

    tenant_id: str
    period: str
    counters: Mapping[str, int] = field(default_factory=dict)

    def get(self, name: str) -> int:
        return self.counters.get(name, 0)


class UsageReader(Protocol):
    """The reads the usage logic makes (tenantry.usage, tenantry.exposition): :data:`DYNAMODB`
    in the functions, an in-memory fake (tests/fakes/usage.py) where DynamoDB is not the point."""

    def get_period(self, tenant_id: str, period: str) -> PeriodCounters: ...

    def get_periods(self, tenant_ids: Sequence[str], period: str) -> dict[str, PeriodCounters]: ...

    def get_range(self, tenant_id: str, first: str, last: str) -> list[PeriodCounters]: ...


def period_counters(item: Mapping[str, Any]) -> PeriodCounters:
    """A Usage item as counters (Decimals made ints)."""
    numbers = {
        name: values.as_int(value) for name, value in item.items() if name not in ("tenant_id", "period")
    }
    return PeriodCounters(str(item["tenant_id"]), str(item["period"]), numbers)


class DynamoDBUsage:
    """:class:`UsageReader` over the Usage table, with the request's data access (tenantry.aws)."""

    def get_period(self, tenant_id: str, period: str) -> PeriodCounters:
        item = (
            aws.data_table(table_name()).get_item(Key={"tenant_id": tenant_id, "period": period}).get("Item")
        )
        return period_counters(item) if item else PeriodCounters(tenant_id, period)

    def get_periods(self, tenant_ids: Sequence[str], period: str) -> dict[str, PeriodCounters]:
        """One BatchGetItem per 100 tenants; a tenant with nothing counted is absent."""
        found: dict[str, PeriodCounters] = {}
        for start in range(0, len(tenant_ids), 100):
            keys = [
                {"tenant_id": tenant_id, "period": period} for tenant_id in tenant_ids[start : start + 100]
            ]
            requests: dict[str, Any] = {table_name(): {"Keys": keys}}
            while requests:
                answer = aws.data_resource().batch_get_item(RequestItems=requests)
                for item in answer.get("Responses", {}).get(table_name(), []):
                    found[str(item["tenant_id"])] = period_counters(item)
                requests = answer.get("UnprocessedKeys") or {}
        return found

    def get_range(self, tenant_id: str, first: str, last: str) -> list[PeriodCounters]:
        """Every period of the tenant from ``first`` to ``last`` (sort keys, inclusive) with counters."""
        answer = aws.data_table(table_name()).query(
            KeyConditionExpression=Key("tenant_id").eq(tenant_id) & Key("period").between(first, last)
        )
        return [period_counters(item) for item in answer.get("Items", [])]


DYNAMODB: Final = DynamoDBUsage()
