"""Data access of chat: sessions and their turns in the Conversations table.

Keys, under partition key ``tenant_id``:

- a session's metadata at sort key ``<user_id>#<session_id>``; it carries ``activity``
  (``<user_id>#<updated_at>#<session_id>``), the sort key of the sparse local index
  ``by-activity`` that lists a user's sessions newest first;
- each turn (the user's message and the reply) at ``<user_id>#<session_id>#<turn, 6 digits>``.

User ids cannot contain ``#`` and session ids neither, so one user's prefix never matches another's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from tenantry import aws, retry, settings
from tenantry.stores import usage as usage_store

ACTIVITY_INDEX = "by-activity"
_serializer = TypeSerializer()


class SessionChangedError(Exception):
    """Another turn of the same session was written first."""


class ContendedError(Exception):
    """DynamoDB cancelled the turn's write for a conflict or throttling; nothing was written."""


@dataclass(frozen=True, slots=True)
class TurnState:
    """Everything a turn needs before calling the model, read in one round trip."""

    tenant: dict[str, Any] | None
    usage_month: dict[str, Any]
    session: dict[str, Any] | None


def _table_name() -> str:
    return settings.table_name(settings.CONVERSATIONS_TABLE)


def session_key(user_id: str, session_id: str) -> str:
    return f"{user_id}#{session_id}"


def turn_key(user_id: str, session_id: str, turn: int) -> str:
    return f"{user_id}#{session_id}#{turn:06d}"


def read_turn_state(tenant_id: str, user_id: str, session_id: str | None, period: str) -> TurnState:
    """The tenant's record, its month's usage and the session's metadata: one BatchGetItem."""
    tenants = settings.table_name(settings.TENANTS_TABLE)
    usage = usage_store.table_name()
    conversations = _table_name()
    requests: dict[str, Any] = {
        tenants: {"Keys": [{"tenant_id": tenant_id}], "ConsistentRead": True},
        usage: {"Keys": [{"tenant_id": tenant_id, "period": period}], "ConsistentRead": True},
    }
    if session_id is not None:
        requests[conversations] = {
            "Keys": [{"tenant_id": tenant_id, "sk": session_key(user_id, session_id)}],
            "ConsistentRead": True,
        }
    found: dict[str, list[dict[str, Any]]] = {}
    while requests:
        answer = aws.data_resource().batch_get_item(RequestItems=requests)
        for table, items in answer.get("Responses", {}).items():
            found.setdefault(table, []).extend(items)
        requests = answer.get("UnprocessedKeys") or {}

    def first(table: str) -> dict[str, Any] | None:
        items = found.get(table)
        return items[0] if items else None

    return TurnState(tenant=first(tenants), usage_month=first(usage) or {}, session=first(conversations))


def recent_turns(tenant_id: str, user_id: str, session_id: str, count: int) -> list[dict[str, Any]]:
    """The last ``count`` turns of a session, oldest first."""
    answer = aws.data_table(_table_name()).query(
        KeyConditionExpression=Key("tenant_id").eq(tenant_id)
        & Key("sk").begins_with(session_key(user_id, session_id) + "#"),
        ScanIndexForward=False,
        Limit=count,
        ConsistentRead=True,
    )
    return list(reversed(answer.get("Items", [])))


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    return {name: _serializer.serialize(value) for name, value in item.items()}


def write_turn(
    *,
    tenant_id: str,
    session: dict[str, Any],
    turn: dict[str, Any],
    previous_turns: int,
    tokens_period: str,
    tokens_in: int,
    tokens_out: int,
    model: str,
    tokens_day: str | None = None,
) -> None:
    """The turn, the session's new metadata and the month's (and day's) tokens, together or not at
    all. The day item's totals feed the daily token history; per-model counters stay on the month."""
    table = _table_name()
    session_put: dict[str, Any] = {"TableName": table, "Item": _typed(session)}
    if previous_turns == 0:
        session_put["ConditionExpression"] = "attribute_not_exists(sk)"
    else:
        session_put["ConditionExpression"] = "turns = :previous"
        session_put["ExpressionAttributeValues"] = {":previous": {"N": str(previous_turns)}}
    items = [
        {
            "Put": {
                "TableName": table,
                "Item": _typed(turn),
                "ConditionExpression": "attribute_not_exists(sk)",
            }
        },
        {"Put": session_put},
        usage_store.token_update(tenant_id, tokens_period, tokens_in, tokens_out, model),
    ]
    if tokens_day is not None:
        items.append(usage_store.token_update(tenant_id, tokens_day, tokens_in, tokens_out))
    try:
        aws.data_client().transact_write_items(TransactItems=items)  # type: ignore[arg-type]
    except ClientError as exc:
        if retry.is_lost_race(exc):
            raise ContendedError from exc
        if "ConditionalCheckFailed" in retry.cancellation_reasons(exc):
            raise SessionChangedError from exc
        raise


def get_session(tenant_id: str, user_id: str, session_id: str) -> dict[str, Any] | None:
    item: dict[str, Any] | None = (
        aws.data_table(_table_name())
        .get_item(Key={"tenant_id": tenant_id, "sk": session_key(user_id, session_id)}, ConsistentRead=True)
        .get("Item")
    )
    return item


def list_sessions(
    tenant_id: str, user_id: str, limit: int, start_key: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    query: dict[str, Any] = {
        "IndexName": ACTIVITY_INDEX,
        "KeyConditionExpression": Key("tenant_id").eq(tenant_id) & Key("activity").begins_with(f"{user_id}#"),
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if start_key:
        query["ExclusiveStartKey"] = start_key
    answer = aws.data_table(_table_name()).query(**query)
    return list(answer.get("Items", [])), answer.get("LastEvaluatedKey")


def session_turns(
    tenant_id: str, user_id: str, session_id: str, limit: int, start_key: dict[str, Any] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    query: dict[str, Any] = {
        "KeyConditionExpression": Key("tenant_id").eq(tenant_id)
        & Key("sk").begins_with(session_key(user_id, session_id) + "#"),
        "Limit": limit,
        "ConsistentRead": True,
    }
    if start_key:
        query["ExclusiveStartKey"] = start_key
    answer = aws.data_table(_table_name()).query(**query)
    return list(answer.get("Items", [])), answer.get("LastEvaluatedKey")


def delete_session(tenant_id: str, user_id: str, session_id: str) -> int:
    """Delete the session's turns, then its metadata; the number of items deleted."""
    table = aws.data_table(_table_name())
    keys: list[str] = []
    start: dict[str, Any] | None = None
    while True:
        query: dict[str, Any] = {
            "KeyConditionExpression": Key("tenant_id").eq(tenant_id)
            & Key("sk").begins_with(session_key(user_id, session_id) + "#"),
            "ProjectionExpression": "sk",
        }
        if start:
            query["ExclusiveStartKey"] = start
        answer = table.query(**query)
        keys.extend(str(item["sk"]) for item in answer.get("Items", []))
        start = answer.get("LastEvaluatedKey")
        if not start:
            break
    keys.append(session_key(user_id, session_id))  # last: a retried delete still finds the session
    with table.batch_writer() as batch:
        for sort_key in keys:
            batch.delete_item(Key={"tenant_id": tenant_id, "sk": sort_key})
    return len(keys)
