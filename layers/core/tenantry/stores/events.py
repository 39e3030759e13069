"""Data access of the event store: the stream (Events table) and the checkpoints (Consumers table).

Every key starts with the caller's tenant_id. A stream is the items at positions 1, 2, … under the
tenant's partition; the HEAD item at position 0 holds ``last``. Appending is one
``TransactWriteItems``: HEAD moves from the expected ``last`` to the new one under a condition, and
each event is put under ``attribute_not_exists``, so a failed or raced append writes nothing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tenantry import aws, retry, settings

HEAD_POSITION = 0


class HeadMovedError(Exception):
    """Another writer appended first: the expected last position is stale.

    ``current_last`` is HEAD's position at the failed check when DynamoDB returned it, which spares
    the writer a re-read."""

    def __init__(self, current_last: int | None) -> None:
        super().__init__(f"HEAD moved (now {current_last})")
        self.current_last = current_last


class PositionTakenError(Exception):
    """HEAD matched but an event's position was already taken: an item exists beyond HEAD."""


class ContendedError(Exception):
    """DynamoDB cancelled the append for a conflict with another transaction or for throttling:
    nothing was written, and the same append may succeed if sent again."""


class ItemTooLargeError(Exception):
    """DynamoDB refused an item over its 400 KB limit."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    type: str
    data_json: str
    timestamp: str
    recorded_at: str


def _events_table() -> str:
    return settings.table_name(settings.EVENTS_TABLE)


def _consumers_table() -> str:
    return settings.table_name(settings.CONSUMERS_TABLE)


def read_head(tenant_id: str) -> int:
    """The tenant's last position (0 for an empty stream); a consistent read."""
    item = (
        aws.dynamodb_client()
        .get_item(
            TableName=_events_table(),
            Key={"tenant_id": {"S": tenant_id}, "position": {"N": str(HEAD_POSITION)}},
            ConsistentRead=True,
            ProjectionExpression="#last",
            ExpressionAttributeNames={"#last": "last"},
        )
        .get("Item")
    )
    return int(item["last"]["N"]) if item and "last" in item else 0


def append(tenant_id: str, expected_last: int, events: Sequence[StoredEvent], updated_at: str) -> list[int]:
    """Write ``events`` at expected_last+1… in one transaction; HeadMovedError if HEAD moved."""
    table = _events_table()
    new_last = expected_last + len(events)
    head_key = {"tenant_id": {"S": tenant_id}, "position": {"N": str(HEAD_POSITION)}}
    head_update: dict[str, Any] = {
        "TableName": table,
        "Key": head_key,
        "UpdateExpression": "SET #last = :new, updated_at = :now",
        "ExpressionAttributeNames": {"#last": "last"},
        "ExpressionAttributeValues": {":new": {"N": str(new_last)}, ":now": {"S": updated_at}},
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    if expected_last == 0:
        head_update["ConditionExpression"] = "attribute_not_exists(#last)"
    else:
        head_update["ConditionExpression"] = "#last = :expected"
        head_update["ExpressionAttributeValues"][":expected"] = {"N": str(expected_last)}
    items: list[dict[str, Any]] = [{"Update": head_update}]
    positions = list(range(expected_last + 1, new_last + 1))
    for position, event in zip(positions, events, strict=True):
        items.append(
            {
                "Put": {
                    "TableName": table,
                    "Item": {
                        "tenant_id": {"S": tenant_id},
                        "position": {"N": str(position)},
                        "type": {"S": event.type},
                        "data": {"S": event.data_json},
                        "timestamp": {"S": event.timestamp},
                        "recorded_at": {"S": event.recorded_at},
                    },
                    "ConditionExpression": "attribute_not_exists(#position)",
                    "ExpressionAttributeNames": {"#position": "position"},
                }
            }
        )
    try:
        # The token makes botocore's own retry of a transaction that did commit (a timeout on the
        # answer) a no-op instead of a condition failure that would make us append twice.
        aws.dynamodb_client().transact_write_items(
            TransactItems=items,  # type: ignore[arg-type]
            ClientRequestToken=uuid.uuid4().hex,
        )
    except ClientError as exc:
        code = aws.error_code(exc)
        if retry.is_lost_race(exc):
            raise ContendedError from exc
        if code == "TransactionCanceledException":
            cancellations: list[Any] = list(exc.response.get("CancellationReasons", []))
            reasons = [reason.get("Code", "") for reason in cancellations]
            if not reasons or "ConditionalCheckFailed" in reasons:
                if reasons and reasons[0] != "ConditionalCheckFailed":
                    raise PositionTakenError from exc
                head = cancellations[0].get("Item", {}) if cancellations else {}
                raise HeadMovedError(int(head["last"]["N"]) if "last" in head else None) from exc
            if any(reason == "ValidationError" for reason in reasons):
                raise ItemTooLargeError from exc
        if code == "ValidationException" and "size" in str(exc).lower():
            raise ItemTooLargeError from exc
        raise
    return positions


def _event_of(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "position": int(item["position"]["N"]),
        "type": item["type"]["S"],
        "data": json.loads(item["data"]["S"]),
        "timestamp": item["timestamp"]["S"],
        "recorded_at": item["recorded_at"]["S"],
    }


def get_event(tenant_id: str, position: int) -> dict[str, Any] | None:
    item = (
        aws.dynamodb_client()
        .get_item(
            TableName=_events_table(),
            Key={"tenant_id": {"S": tenant_id}, "position": {"N": str(position)}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return _event_of(item) if item and "type" in item else None


def read_events(
    tenant_id: str, start: int, limit: int, event_type: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` events from position ``start`` on (of ``event_type`` only, if given), and
    whether more matching events follow. A filter applies after DynamoDB's page limit, so pages
    are read until ``limit`` + 1 matches are found or the stream ends."""
    query: dict[str, Any] = {
        "TableName": _events_table(),
        "KeyConditionExpression": "tenant_id = :tenant AND #position >= :start",
        "ExpressionAttributeNames": {"#position": "position"},
        "ExpressionAttributeValues": {":tenant": {"S": tenant_id}, ":start": {"N": str(max(start, 1))}},
        "ConsistentRead": True,
        "Limit": limit + 1,
    }
    if event_type is not None:
        query["FilterExpression"] = "#type = :type"
        query["ExpressionAttributeNames"]["#type"] = "type"
        query["ExpressionAttributeValues"][":type"] = {"S": event_type}
        query["Limit"] = max(limit + 1, 100)
    found: list[dict[str, Any]] = []
    client = aws.dynamodb_client()
    while len(found) <= limit:
        page = client.query(**query)
        found.extend(_event_of(item) for item in page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            break
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return found[:limit], len(found) > limit


def put_checkpoint(tenant_id: str, name: str, position: int, updated_at: str) -> None:
    aws.dynamodb_client().put_item(
        TableName=_consumers_table(),
        Item={
            "tenant_id": {"S": tenant_id},
            "name": {"S": name},
            "position": {"N": str(position)},
            "updated_at": {"S": updated_at},
        },
    )


def get_checkpoint(tenant_id: str, name: str) -> dict[str, Any] | None:
    item = (
        aws.dynamodb_client()
        .get_item(
            TableName=_consumers_table(),
            Key={"tenant_id": {"S": tenant_id}, "name": {"S": name}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    if not item:
        return None
    return {
        "name": item["name"]["S"],
        "position": int(item["position"]["N"]),
        "updated_at": item["updated_at"]["S"],
    }
