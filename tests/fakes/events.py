"""An in-memory :class:`tenantry.stores.events.EventStore`, for tests of the event store's logic
where DynamoDB is not the point (the DynamoDB one is tested against moto and the embedded server,
and tests/unit/test_events_store.py checks this one answers as it does, errors included)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from tenantry.models.events import MAX_POSITION
from tenantry.stores import events as store
from tenantry.stores import receipts
from tenantry.stores.events import StoredCheckpoint, StoredEvent, StreamEvent, StreamPage
from tenantry.stores.receipts import FoundReceipt, Receipt

# DynamoDB's item limit, counted as it counts: attribute names and values, in UTF-8 bytes.
_ITEM_LIMIT_BYTES = 400 * 1024


@dataclass
class _Head:
    last: int
    incarnation: str


@dataclass
class _Tenant:
    status: str
    incarnation: str


class InMemoryEvents:
    """Streams, checkpoints and the tenants' states a stream opens against, in dicts.

    ``set_tenant`` stands for the Tenants table item open_stream checks; ``put_stray`` for an item
    beyond HEAD; ``fail_next`` makes the next appends fail as DynamoDB may (ContendedError)."""

    def __init__(self) -> None:
        self._heads: dict[str, _Head] = {}
        self._events: dict[str, dict[int, StreamEvent]] = {}
        self._checkpoints: dict[tuple[str, str], StoredCheckpoint] = {}
        self._tenants: dict[str, _Tenant] = {}
        self._failures: list[Exception] = []
        self._receipts: dict[tuple[str, str], FoundReceipt] = {}
        self.appends = 0

    def set_tenant(self, tenant_id: str, status: str = "active", incarnation: str = "") -> None:
        self._tenants[tenant_id] = _Tenant(status, incarnation)

    def put_stray(self, tenant_id: str, position: int) -> None:
        self._events.setdefault(tenant_id, {})[position] = StreamEvent(position, "stray", {}, "", "")

    def fail_next(self, *errors: Exception) -> None:
        self._failures.extend(errors)

    def read_head(self, tenant_id: str) -> int | None:
        head = self._heads.get(tenant_id)
        return None if head is None else head.last

    def open_stream(self, tenant_id: str, incarnation: str, updated_at: str) -> None:
        # A missing tenant item passes "NOT status = offboarding" but no incarnation check.
        tenant = self._tenants.get(tenant_id)
        if (tenant is not None and tenant.status == "offboarding") or (
            incarnation and (tenant is None or tenant.incarnation != incarnation)
        ):
            raise store.StreamClosedError
        self._heads.setdefault(tenant_id, _Head(0, incarnation))

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
        self.appends += 1
        if self._failures:
            raise self._failures.pop(0)
        if receipt is not None:
            held = self._receipts.get((tenant_id, receipt.record_id))
            if held is not None and held.live(receipt.written_at):
                raise store.ReceiptExistsError
        head = self._heads.get(tenant_id)
        if head is None:
            raise store.HeadMissingError
        if head.last != expected_last or (incarnation and head.incarnation != incarnation):
            if incarnation and head.incarnation != incarnation:
                raise store.StreamClosedError
            raise store.HeadMovedError(head.last)
        stream = self._events.setdefault(tenant_id, {})
        positions = list(range(expected_last + 1, expected_last + len(events) + 1))
        if any(position in stream for position in positions):
            raise store.PositionTakenError
        if any(_item_bytes(tenant_id, event) > _ITEM_LIMIT_BYTES for event in events):
            raise store.ItemTooLargeError
        for position, event in zip(positions, events, strict=True):
            data = json.loads(event.data_json)
            stream[position] = StreamEvent(position, event.type, data, event.timestamp, event.recorded_at)
        head.last = expected_last + len(events)
        if receipt is not None:
            self._receipts[(tenant_id, receipt.record_id)] = FoundReceipt(
                receipts.COMPLETED, receipt.payload_hash, dict(receipt.answer), receipt.expires_at, 0
            )
        return positions

    def read_receipt(self, tenant_id: str, receipt_id: str) -> FoundReceipt | None:
        return self._receipts.get((tenant_id, receipt_id))

    def close_stream(self, tenant_id: str) -> int:
        return 0 if self._heads.pop(tenant_id, None) is None else 1

    def get_event(self, tenant_id: str, position: int) -> StreamEvent | None:
        return self._events.get(tenant_id, {}).get(position)

    def read_events(
        self, tenant_id: str, start: int, limit: int, event_type: str | None, to: int | None = None
    ) -> StreamPage:
        stream = self._events.get(tenant_id, {})
        filler = store.PageFiller(limit)
        examined = last_examined = 0
        last = MAX_POSITION if to is None else to
        for position in sorted(p for p in stream if max(start, 1) <= p <= last):
            event = stream[position]
            if event_type is not None:
                # A filtered read examines a bounded number of items, matching or not, and
                # resumes after the last it examined.
                if examined == store.MAX_EXAMINED_PER_READ:
                    return filler.page(last_examined + 1)
                examined += 1
                last_examined = position
                if event.type != event_type:
                    continue
            if not filler.add(event):
                return filler.page(position)
        return filler.page(None)

    def save_checkpoint(self, tenant_id: str, checkpoint: StoredCheckpoint) -> None:
        self._checkpoints[tenant_id, checkpoint.name] = checkpoint

    def get_checkpoint(self, tenant_id: str, name: str) -> StoredCheckpoint | None:
        return self._checkpoints.get((tenant_id, name))


def _item_bytes(tenant_id: str, event: StoredEvent) -> int:
    texts = {
        "tenant_id": tenant_id,
        "type": event.type,
        "data": event.data_json,
        "timestamp": event.timestamp,
        "recorded_at": event.recorded_at,
    }
    # A number is at most 21 bytes; the position attribute's name and value.
    return sum(len(name) + len(value.encode()) for name, value in texts.items()) + len("position") + 21
