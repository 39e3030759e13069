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


class StreamClosedError(Exception):
    """The stream is not this incarnation's: the tenant was offboarded (and maybe re-created with the
    same id). Nothing was written, and nothing this caller writes ever will be."""


class HeadMissingError(Exception):
    """The stream has no HEAD: it must be opened (:func:`open_stream`) before the first append."""


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
    return read_head_state(tenant_id) or 0


def read_head_state(tenant_id: str) -> int | None:
    """The tenant's last position, or None when the stream has no HEAD yet (never opened, or
    purged); a consistent read."""
    item = (
        aws.data_client()
        .get_item(
            TableName=_events_table(),
            Key={"tenant_id": {"S": tenant_id}, "position": {"N": str(HEAD_POSITION)}},
            ConsistentRead=True,
            ProjectionExpression="#last",
            ExpressionAttributeNames={"#last": "last"},
        )
        .get("Item")
    )
    return int(item["last"]["N"]) if item and "last" in item else None


def _same_incarnation(incarnation: str, values: dict[str, Any]) -> str:
    """The condition "this item belongs to ``incarnation``" (with "AND " before it), or "" for a
    caller without one (keys issued before incarnations existed, the library called directly),
    which only the offboarding state and the closed stream stop."""
    if not incarnation:
        return ""
    values[":incarnation"] = {"S": incarnation}
    return " AND #incarnation = :incarnation"


def open_stream(tenant_id: str, incarnation: str, tenants_table: str, updated_at: str) -> None:
    """Create the stream's HEAD (last = 0), only while the tenant is this incarnation and is not
    being offboarded: the one way a stream starts, so a request authorized before an offboarding
    cannot start one again after the purge. StreamClosedError if the tenant refuses it."""
    tenant_values: dict[str, Any] = {":offboarding": {"S": "offboarding"}}
    tenant_condition = "NOT #status = :offboarding" + _same_incarnation(incarnation, tenant_values)
    head: dict[str, Any] = {
        "tenant_id": {"S": tenant_id},
        "position": {"N": str(HEAD_POSITION)},
        "last": {"N": "0"},
        "updated_at": {"S": updated_at},
    }
    if incarnation:
        head["incarnation"] = {"S": incarnation}
    try:
        aws.data_client().transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": tenants_table,
                        "Key": {"tenant_id": {"S": tenant_id}},
                        "ConditionExpression": tenant_condition,
                        "ExpressionAttributeNames": {"#status": "status"}
                        | ({"#incarnation": "incarnation"} if incarnation else {}),
                        "ExpressionAttributeValues": tenant_values,
                    }
                },
                {
                    "Put": {
                        "TableName": _events_table(),
                        "Item": head,
                        "ConditionExpression": "attribute_not_exists(#position)",
                        "ExpressionAttributeNames": {"#position": "position"},
                    }
                },
            ],
            ClientRequestToken=uuid.uuid4().hex,
        )
    except ClientError as exc:
        if retry.is_lost_race(exc):
            raise ContendedError from exc
        if aws.error_code(exc) != "TransactionCanceledException":
            raise
        reasons = [reason.get("Code", "") for reason in exc.response.get("CancellationReasons", [])]
        if reasons and reasons[0] == "ConditionalCheckFailed":
            raise StreamClosedError from exc
        if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
            return  # another request opened it first
        raise


def append(
    tenant_id: str, expected_last: int, events: Sequence[StoredEvent], updated_at: str, incarnation: str = ""
) -> list[int]:
    """Write ``events`` at expected_last+1… in one transaction. HeadMovedError if HEAD moved,
    HeadMissingError if the stream has no HEAD, StreamClosedError if HEAD is another
    incarnation's."""
    table = _events_table()
    new_last = expected_last + len(events)
    head_key = {"tenant_id": {"S": tenant_id}, "position": {"N": str(HEAD_POSITION)}}
    values: dict[str, Any] = {
        ":new": {"N": str(new_last)},
        ":now": {"S": updated_at},
        ":expected": {"N": str(expected_last)},
    }
    head_update: dict[str, Any] = {
        "TableName": table,
        "Key": head_key,
        "UpdateExpression": "SET #last = :new, updated_at = :now",
        # HEAD must exist (open_stream made it) and be this incarnation's: once offboarding deleted
        # it, or a new tenant with the same id opened its own, this append can never land.
        "ConditionExpression": "#last = :expected" + _same_incarnation(incarnation, values),
        "ExpressionAttributeNames": {"#last": "last"}
        | ({"#incarnation": "incarnation"} if incarnation else {}),
        "ExpressionAttributeValues": values,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
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
        aws.data_client().transact_write_items(
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
                if cancellations and not head:
                    raise HeadMissingError from exc
                if incarnation and head and head.get("incarnation", {}).get("S", "") != incarnation:
                    raise StreamClosedError from exc
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
        aws.data_client()
        .get_item(
            TableName=_events_table(),
            Key={"tenant_id": {"S": tenant_id}, "position": {"N": str(position)}},
            ConsistentRead=True,
        )
        .get("Item")
    )
    return _event_of(item) if item and "type" in item else None


# Bounded work per request: a type-filtered read examines at most this many items (DynamoDB's
# filter applies after reading), then answers what it found with a cursor to resume from.
MAX_EXAMINED_PER_READ = 2000
# A page's events as JSON stay under this, so the proxy answer (the body escaped once more inside
# Lambda's JSON result, at worst doubling) stays under Lambda's 6 MB synchronous limit.
MAX_PAGE_BYTES = 5 * 1024 * 1024 // 2


def read_events(
    tenant_id: str, start: int, limit: int, event_type: str | None
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to ``limit`` events from position ``start`` on (of ``event_type`` only, if given), and
    the position to resume from (None when the stream holds nothing more that matches).

    A page stops early, with a cursor, when its events reach :data:`MAX_PAGE_BYTES` as JSON or when
    a filtered read has examined :data:`MAX_EXAMINED_PER_READ` items: a client follows
    ``next_from`` until it is null, and may get an empty page on the way (a long run of other
    types)."""
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
    found: list[dict[str, Any]] = []
    size = 0
    examined = 0
    client = aws.data_client()
    while True:
        if event_type is not None:
            query["Limit"] = MAX_EXAMINED_PER_READ - examined
        page = client.query(**query)
        examined += int(page.get("ScannedCount", 0))
        for item in page.get("Items", []):
            event = _event_of(item)
            event_bytes = len(json.dumps(event, separators=(",", ":")))
            if len(found) == limit or (found and size + event_bytes > MAX_PAGE_BYTES):
                return found, int(event["position"])
            found.append(event)
            size += event_bytes
        last = page.get("LastEvaluatedKey")
        if last is None:
            return found, None
        if event_type is not None and examined >= MAX_EXAMINED_PER_READ:
            return found, int(last["position"]["N"]) + 1
        query["ExclusiveStartKey"] = last


def put_checkpoint(tenant_id: str, name: str, position: int, updated_at: str) -> None:
    aws.data_client().put_item(
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
        aws.data_client()
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


def close_stream(tenant_id: str) -> int:
    """Delete the stream's HEAD, so no append can land any more (offboarding, before the purge);
    1 if there was one."""
    response = aws.data_client().delete_item(
        TableName=_events_table(),
        Key={"tenant_id": {"S": tenant_id}, "position": {"N": str(HEAD_POSITION)}},
        ReturnValues="ALL_OLD",
    )
    return 1 if response.get("Attributes") else 0
