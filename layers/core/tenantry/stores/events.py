"""Data access of the event store: the stream (Events table) and the checkpoints (Consumers table).

Every key starts with the caller's tenant_id. A stream is the items at positions 1, 2, … under the
tenant's partition; the HEAD item at position 0 holds ``last``. Appending is one
``TransactWriteItems``: HEAD moves from the expected ``last`` to the new one under a condition, and
each event is put under ``attribute_not_exists``, so a failed or raced append writes nothing.

The logic (tenantry.events) takes an :class:`EventStore`: :data:`DYNAMODB` in the functions, an
in-memory fake (tests/fakes/events.py) where DynamoDB is not the point. Only this module knows the
tables' keys and attribute names; it takes and answers the entities below, with plain ints.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from botocore.exceptions import ClientError

from tenantry import aws, retry, settings
from tenantry.stores import receipts, updates, values
from tenantry.stores.receipts import FoundReceipt, Receipt

HEAD_POSITION = 0
# Bounded work per request: a type-filtered read examines at most this many items (DynamoDB's
# filter applies after reading), then answers what it found with a cursor to resume from.
MAX_EXAMINED_PER_READ = 2000
# A page's events as JSON stay under this, so the proxy answer (the body escaped once more inside
# Lambda's JSON result, at worst doubling) stays under Lambda's 6 MB synchronous limit.
MAX_PAGE_BYTES = 5 * 1024 * 1024 // 2


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
    """The stream has no HEAD: it must be opened (``open_stream``) before the first append."""


class PositionTakenError(Exception):
    """HEAD matched but an event's position was already taken: an item exists beyond HEAD."""


class ContendedError(Exception):
    """DynamoDB cancelled the append for a conflict with another transaction or for throttling:
    nothing was written, and the same append may succeed if sent again."""


class ItemTooLargeError(Exception):
    """DynamoDB refused an item over its 400 KB limit."""


class ReceiptExistsError(Exception):
    """The append's receipt could not be written: a live receipt holds its Idempotency-Key (an
    earlier send of the same publish landed, or another request with that key). Nothing was
    written; the receipt answers instead (:meth:`EventStore.read_receipt`)."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event to append: its position is given when the append lands. ``data_json`` is the
    event's data as the JSON text the stream keeps."""

    type: str
    data_json: str
    timestamp: str
    recorded_at: str


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """An event read back from the stream at its position, its data as published."""

    position: int
    type: str
    data: Mapping[str, Any]
    timestamp: str
    recorded_at: str

    def json_size(self) -> int:
        """Its size as compact JSON, what a page's byte bound counts."""
        answer = {
            "position": self.position,
            "type": self.type,
            "data": self.data,
            "timestamp": self.timestamp,
            "recorded_at": self.recorded_at,
        }
        return len(json.dumps(answer, separators=(",", ":")))


@dataclass(frozen=True, slots=True)
class StreamPage:
    """Events in position order, and the position to resume from (None: nothing more matches)."""

    events: Sequence[StreamEvent]
    next_from: int | None


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    """A consumer's checkpoint: the last position it processed, by name."""

    name: str
    position: int
    updated_at: str


@dataclass(slots=True)
class PageFiller:
    """A page being filled in position order, up to ``limit`` events and :data:`MAX_PAGE_BYTES`."""

    limit: int
    events: list[StreamEvent] = field(default_factory=list)
    size: int = 0

    def add(self, event: StreamEvent) -> bool:
        """Take ``event``, or answer False when the page is full: the page ends before it, and its
        position is the cursor. A page takes at least one event, whatever its size."""
        event_bytes = event.json_size()
        if len(self.events) == self.limit or (self.events and self.size + event_bytes > MAX_PAGE_BYTES):
            return False
        self.events.append(event)
        self.size += event_bytes
        return True

    def page(self, next_from: int | None) -> StreamPage:
        return StreamPage(tuple(self.events), next_from)


class EventStore(Protocol):
    """The event store's data access, as the logic (tenantry.events) and offboarding use it."""

    def read_head(self, tenant_id: str) -> int | None:
        """The stream's last position (0: empty), or None when it has no HEAD (never opened, or
        closed by offboarding); a consistent read."""
        ...

    def open_stream(self, tenant_id: str, incarnation: str, updated_at: str) -> None:
        """Create HEAD (last = 0), only while the tenant is ``incarnation`` (if given) and is not
        being offboarded; StreamClosedError if the tenant refuses it. Opening an open stream does
        nothing."""
        ...

    def append(
        self,
        tenant_id: str,
        expected_last: int,
        events: Sequence[StoredEvent],
        updated_at: str,
        incarnation: str = "",
        *,
        receipt: Receipt | None = None,
        token: str | None = None,
    ) -> list[int]:
        """Write ``events`` at expected_last+1… all or none, with ``receipt`` if given (in the same
        transaction); their positions. ReceiptExistsError if a live receipt holds its key (checked
        before HEAD: a resend whose first send landed is answered by its receipt, whatever HEAD
        says now), HeadMovedError if HEAD moved, HeadMissingError if there is none,
        StreamClosedError if it is another incarnation's, PositionTakenError, ContendedError,
        ItemTooLargeError. ``token`` is the transaction's ClientRequestToken: the caller sends the
        same one again only with the same arguments, after a failure that may hide a commit."""
        ...

    def read_receipt(self, tenant_id: str, receipt_id: str) -> FoundReceipt | None:
        """The receipt stored under ``receipt_id`` (expired or not), or None; a consistent read."""
        ...

    def close_stream(self, tenant_id: str) -> int:
        """Delete HEAD so no append can land any more; 1 if there was one."""
        ...

    def get_event(self, tenant_id: str, position: int) -> StreamEvent | None: ...

    def read_events(
        self, tenant_id: str, start: int, limit: int, event_type: str | None, to: int | None = None
    ) -> StreamPage:
        """Up to ``limit`` events from ``start`` on, up to ``to`` included if given (of
        ``event_type`` only, if given).

        A page stops early, with a cursor, when its events reach :data:`MAX_PAGE_BYTES` as JSON or
        when a filtered read has examined :data:`MAX_EXAMINED_PER_READ` items: a client follows
        ``next_from`` until it is None (the end of the stream, or past ``to``), and may get an
        empty page on the way."""
        ...

    def save_checkpoint(self, tenant_id: str, checkpoint: StoredCheckpoint) -> None: ...

    def get_checkpoint(self, tenant_id: str, name: str) -> StoredCheckpoint | None: ...


def _events_table() -> str:
    return settings.table_name(settings.EVENTS_TABLE)


def _consumers_table() -> str:
    return settings.table_name(settings.CONSUMERS_TABLE)


def _event_key(tenant_id: str, position: int) -> dict[str, Any]:
    return {"tenant_id": tenant_id, "position": position}


def _same_incarnation(incarnation: str, names: dict[str, str], expression_values: dict[str, Any]) -> str:
    """The condition "this item belongs to ``incarnation``" (with "AND " before it), or "" for a
    caller without one (keys issued before incarnations existed, the library called directly),
    which only the offboarding state and the closed stream stop."""
    if not incarnation:
        return ""
    names["#incarnation"] = "incarnation"
    expression_values[":incarnation"] = incarnation
    return " AND #incarnation = :incarnation"


def _transact(items: list[dict[str, Any]], token: str | None = None) -> None:
    # The token makes botocore's own retry of a transaction that did commit (a timeout on the
    # answer) a no-op instead of a condition failure that would make us append twice.
    aws.data_transact_write(items, token=token or uuid.uuid4().hex)


def _stream_event(item: Mapping[str, Any]) -> StreamEvent:
    return StreamEvent(
        position=values.as_int(item["position"]),
        type=str(item["type"]),
        data=json.loads(str(item["data"])),
        timestamp=str(item["timestamp"]),
        recorded_at=str(item["recorded_at"]),
    )


class DynamoDBEvents:
    """:class:`EventStore` over the Events and Consumers tables, with the request's data access."""

    def read_head(self, tenant_id: str) -> int | None:
        item = (
            aws.data_table(_events_table())
            .get_item(
                Key=_event_key(tenant_id, HEAD_POSITION),
                ConsistentRead=True,
                ProjectionExpression="#last",
                ExpressionAttributeNames={"#last": "last"},
            )
            .get("Item")
        )
        return values.as_int(item["last"]) if item and "last" in item else None

    def open_stream(self, tenant_id: str, incarnation: str, updated_at: str) -> None:
        # The one way a stream starts, through a ConditionCheck on the live tenant: a request
        # authorized before an offboarding cannot start one again after the purge.
        names = {"#status": "status"}
        tenant_values: dict[str, Any] = {":offboarding": "offboarding"}
        tenant_condition = "NOT #status = :offboarding" + _same_incarnation(incarnation, names, tenant_values)
        head: dict[str, Any] = _event_key(tenant_id, HEAD_POSITION) | {"last": 0, "updated_at": updated_at}
        if incarnation:
            head["incarnation"] = incarnation
        try:
            _transact(
                [
                    {
                        "ConditionCheck": {
                            "TableName": settings.table_name(settings.TENANTS_TABLE),
                            "Key": {"tenant_id": tenant_id},
                            "ConditionExpression": tenant_condition,
                            "ExpressionAttributeNames": names,
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
                ]
            )
        except ClientError as exc:
            if retry.is_lost_race(exc):
                raise ContendedError from exc
            if aws.error_code(exc) != "TransactionCanceledException":
                raise
            reasons = retry.cancellation_reasons(exc)
            if reasons and reasons[0] == "ConditionalCheckFailed":
                raise StreamClosedError from exc
            if len(reasons) > 1 and reasons[1] == "ConditionalCheckFailed":
                return  # another request opened it first
            raise

    def append(
        self,
        tenant_id: str,
        expected_last: int,
        events: Sequence[StoredEvent],
        updated_at: str,
        incarnation: str = "",
        *,
        receipt: Receipt | None = None,
        token: str | None = None,
    ) -> list[int]:
        table = _events_table()
        new_last = expected_last + len(events)
        update = updates.set_update({"last": new_last, "updated_at": updated_at})
        names = update.names | {"#last": "last"}
        expression_values = update.values | {":expected": expected_last}
        head_update: dict[str, Any] = {
            "TableName": table,
            "Key": _event_key(tenant_id, HEAD_POSITION),
            "UpdateExpression": update.expression,
            # HEAD must exist (open_stream made it) and be this incarnation's: once offboarding
            # deleted it, or a new tenant with the same id opened its own, this can never land.
            "ConditionExpression": "#last = :expected"
            + _same_incarnation(incarnation, names, expression_values),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": expression_values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        items: list[dict[str, Any]] = [{"Update": head_update}]
        positions = list(range(expected_last + 1, new_last + 1))
        for position, event in zip(positions, events, strict=True):
            item = _event_key(tenant_id, position) | {
                "type": event.type,
                "data": event.data_json,
                "timestamp": event.timestamp,
                "recorded_at": event.recorded_at,
            }
            items.append(
                {
                    "Put": {
                        "TableName": table,
                        "Item": item,
                        "ConditionExpression": "attribute_not_exists(#position)",
                        "ExpressionAttributeNames": {"#position": "position"},
                    }
                }
            )
        if receipt is not None:
            # Last: a cancellation's reasons list it last, whatever the batch's size.
            items.append(receipts.put_operation(tenant_id, receipt))
        try:
            _transact(items, token)
        except ClientError as exc:
            _raise_append_failure(exc, incarnation, with_receipt=receipt is not None)
            raise
        return positions

    def read_receipt(self, tenant_id: str, receipt_id: str) -> FoundReceipt | None:
        return receipts.read(tenant_id, receipt_id)

    def close_stream(self, tenant_id: str) -> int:
        response = aws.data_table(_events_table()).delete_item(
            Key=_event_key(tenant_id, HEAD_POSITION), ReturnValues="ALL_OLD"
        )
        return 1 if response.get("Attributes") else 0

    def get_event(self, tenant_id: str, position: int) -> StreamEvent | None:
        item = (
            aws.data_table(_events_table())
            .get_item(Key=_event_key(tenant_id, position), ConsistentRead=True)
            .get("Item")
        )
        return _stream_event(item) if item and "type" in item else None

    def read_events(
        self, tenant_id: str, start: int, limit: int, event_type: str | None, to: int | None = None
    ) -> StreamPage:
        query: dict[str, Any] = {
            "KeyConditionExpression": "tenant_id = :tenant AND #position >= :start",
            "ExpressionAttributeNames": {"#position": "position"},
            "ExpressionAttributeValues": {":tenant": tenant_id, ":start": max(start, 1)},
            "ConsistentRead": True,
            "Limit": limit + 1,
        }
        if to is not None:
            if to < max(start, 1):
                return StreamPage((), None)
            query["KeyConditionExpression"] = "tenant_id = :tenant AND #position BETWEEN :start AND :to"
            query["ExpressionAttributeValues"][":to"] = to
        if event_type is not None:
            query["FilterExpression"] = "#type = :type"
            query["ExpressionAttributeNames"]["#type"] = "type"
            query["ExpressionAttributeValues"][":type"] = event_type
        filler = PageFiller(limit)
        examined = 0
        table = aws.data_table(_events_table())
        while True:
            if event_type is not None:
                query["Limit"] = MAX_EXAMINED_PER_READ - examined
            answer = table.query(**query)
            examined += int(answer.get("ScannedCount", 0))
            for item in answer.get("Items", []):
                event = _stream_event(item)
                if not filler.add(event):
                    return filler.page(event.position)
            last = answer.get("LastEvaluatedKey")
            if last is None:
                return filler.page(None)
            if event_type is not None and examined >= MAX_EXAMINED_PER_READ:
                resume = values.as_int(last["position"]) + 1
                return filler.page(None if to is not None and resume > to else resume)
            query["ExclusiveStartKey"] = last

    def save_checkpoint(self, tenant_id: str, checkpoint: StoredCheckpoint) -> None:
        aws.data_table(_consumers_table()).put_item(
            Item={
                "tenant_id": tenant_id,
                "name": checkpoint.name,
                "position": checkpoint.position,
                "updated_at": checkpoint.updated_at,
            }
        )

    def get_checkpoint(self, tenant_id: str, name: str) -> StoredCheckpoint | None:
        item = (
            aws.data_table(_consumers_table())
            .get_item(Key={"tenant_id": tenant_id, "name": name}, ConsistentRead=True)
            .get("Item")
        )
        if not item:
            return None
        return StoredCheckpoint(
            name=str(item["name"]),
            position=values.as_int(item["position"]),
            updated_at=str(item["updated_at"]),
        )


def _raise_append_failure(exc: ClientError, incarnation: str, *, with_receipt: bool) -> None:
    """Map a failed append to what it means for the writer (returns if it is none of them)."""
    code = aws.error_code(exc)
    if retry.is_lost_race(exc):
        raise ContendedError from exc
    if code == "TransactionCanceledException":
        cancellations: list[Any] = list(exc.response.get("CancellationReasons", []))
        if with_receipt and cancellations:
            # The receipt's verdict comes first: its key's earlier publish answers, not HEAD.
            if cancellations[-1].get("Code", "") == "ConditionalCheckFailed":
                raise ReceiptExistsError from exc
            cancellations = cancellations[:-1]
        reasons = [reason.get("Code", "") for reason in cancellations]
        if not reasons or "ConditionalCheckFailed" in reasons:
            if reasons and reasons[0] != "ConditionalCheckFailed":
                raise PositionTakenError from exc
            # An error's items stay in DynamoDB's typed form: the resource converts answers only.
            head = values.untyped(cancellations[0].get("Item", {})) if cancellations else {}
            if cancellations and not head:
                raise HeadMissingError from exc
            if incarnation and head and head.get("incarnation", "") != incarnation:
                raise StreamClosedError from exc
            raise HeadMovedError(values.as_int(head["last"]) if "last" in head else None) from exc
        if any(reason == "ValidationError" for reason in reasons):
            raise ItemTooLargeError from exc
    if code == "ValidationException" and "size" in str(exc).lower():
        raise ItemTooLargeError from exc


DYNAMODB: Final = DynamoDBEvents()
