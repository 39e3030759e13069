"""The Usage table: per-tenant counters under partition key tenant_id, sort key ``period``.

``period`` is ``day#YYYY-MM-DD`` or ``month#YYYY-MM``. LLM tokens are counted on the month item
(``tokens_in``, ``tokens_out``); the chat turn adds them inside its own write transaction through
:func:`token_update`, so a turn and its metering land together.
"""

from __future__ import annotations

import time
import uuid
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


# A chat turn's tokens are counted once per request: the turn's own transaction and, when no turn
# could be stored (the model failed mid-stream, the stream was cut), the tokens-only one both
# create the request's marker under the tenant's partition, and only the first can.
BILL_PREFIX: Final = "bill#"
BILL_MARKER_TTL_SECONDS: Final = 15 * 24 * 3600


class AlreadyBilledError(Exception):
    """The request's tokens were counted before (its marker exists); nothing was written."""


def bill_marker(tenant_id: str, request_id: str, expires_at: int) -> dict[str, Any]:
    """A ``TransactWriteItems`` Update creating the request's marker, refused if it exists. An
    Update, not a Put: the tenant's scoped credentials may update their usage, never put."""
    return {
        "Update": {
            "TableName": table_name(),
            "Key": {"tenant_id": tenant_id, "period": BILL_PREFIX + request_id},
            "UpdateExpression": "SET expires_at = :expires_at",
            "ConditionExpression": "attribute_not_exists(#period)",
            "ExpressionAttributeNames": {"#period": "period"},
            "ExpressionAttributeValues": {":expires_at": expires_at},
        }
    }


@dataclass(frozen=True, slots=True)
class TurnTokens:
    """The tokens one chat request's model reported, to count on the tenant's month and day."""

    tenant_id: str
    request_id: str
    month: str
    day: str
    model: str
    tokens_in: int
    tokens_out: int

    def updates(self, now: int) -> list[dict[str, Any]]:
        """The marker and both periods' additions, in one transaction's items."""
        return [
            bill_marker(self.tenant_id, self.request_id, now + BILL_MARKER_TTL_SECONDS),
            token_update(self.tenant_id, self.month, self.tokens_in, self.tokens_out, self.model),
            token_update(self.tenant_id, self.day, self.tokens_in, self.tokens_out),
        ]


def counter_update(tenant_id: str, period: str, counters: Mapping[str, int]) -> dict[str, Any]:
    """A ``TransactWriteItems`` Update, in plain values, that atomically adds each counter to a
    period's item (names may hold any text)."""
    names: dict[str, str] = {}
    amounts: dict[str, int] = {}
    additions: list[str] = []
    for index, (name, amount) in enumerate(sorted(counters.items())):
        names[f"#c{index}"] = name
        amounts[f":c{index}"] = amount
        additions.append(f"#c{index} :c{index}")
    return {
        "Update": {
            "TableName": table_name(),
            "Key": {"tenant_id": tenant_id, "period": period},
            "UpdateExpression": "ADD " + ", ".join(additions),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": amounts,
        }
    }


# Write-once markers live beside the counters, under a partition no tenant id can take.
MARKER_PARTITION: Final = "_metering"


def marker_key(batch: str) -> dict[str, str]:
    """The Usage table key of ``batch``'s write-once marker."""
    return {"tenant_id": MARKER_PARTITION, "period": f"batch#{batch}"}


@dataclass(frozen=True, slots=True)
class CounterAdditions:
    """Amounts to add to one tenant's counters for one period."""

    tenant_id: str
    period: str
    counters: Mapping[str, int]


class UsageWriter(Protocol):
    """What metering writes (tenantry.metering): :data:`DYNAMODB` in the functions, an in-memory
    fake (tests/fakes/usage.py) where DynamoDB is not the point."""

    def add_once(self, batch: str, additions: Sequence[CounterAdditions], expires_at: int) -> bool:
        """Add every counter of ``additions`` at once, once per ``batch`` (its marker kept until
        ``expires_at``, epoch seconds); False if the batch was applied before (nothing added)."""
        ...


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
    """:class:`UsageReader` and :class:`UsageWriter` over the Usage table, with the request's data
    access (tenantry.aws)."""

    def add_once(self, batch: str, additions: Sequence[CounterAdditions], expires_at: int) -> bool:
        """One transaction: the batch's marker (put only if absent) and every addition. One that
        was cancelled for a conflict or throttling wrote nothing, so it is sent again (the marker
        keeps a retry that did commit from counting twice) while the invocation has time."""
        marker = {
            "Put": {
                "TableName": table_name(),
                "Item": {**marker_key(batch), "expires_at": expires_at},
                "ConditionExpression": "attribute_not_exists(#period)",
                "ExpressionAttributeNames": {"#period": "period"},
            }
        }
        items: list[Any] = [
            marker,
            *(counter_update(added.tenant_id, added.period, added.counters) for added in additions),
        ]
        attempt = 0
        while True:
            attempt += 1
            try:
                # A token per send: botocore's own resend of one whose answer was lost (a 500, a
                # reset) is then the same transaction to DynamoDB, answered as done, not refused by
                # the marker it left; a send after a cancellation is a new one.
                aws.data_transact_write(items, token=uuid.uuid4().hex)
            except ClientError as exc:
                if retry.is_lost_race(exc) and retry.pause(attempt):
                    continue
                reasons = retry.cancellation_reasons(exc)
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False
                raise
            return True

    def add_turn_tokens(self, tokens: TurnTokens) -> bool:
        """Count a request's tokens that no stored turn counted; False when they were counted
        already (by its turn, or an earlier call). A transaction cancelled for a conflict or
        throttling wrote nothing and is sent again while the invocation has time."""
        attempt = 0
        while True:
            attempt += 1
            try:
                aws.data_transact_write(tokens.updates(int(time.time())), token=uuid.uuid4().hex)
            except ClientError as exc:
                if retry.is_lost_race(exc) and retry.pause(attempt):
                    continue
                reasons = retry.cancellation_reasons(exc)
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return False
                raise
            return True

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
