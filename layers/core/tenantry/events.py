"""The event store's logic: gapless publishing with optimistic concurrency, reads, checkpoints.

Positions are never reserved ahead of the write. A publish reads the tenant's last position (or
takes it from this warm process's memory), then appends in one transaction whose HEAD condition
fails if anyone else appended first; on that conflict it re-reads and retries with jittered
backoff. In steady state (one writer per tenant, or a warm process that wrote last) a publish is
exactly one DynamoDB round trip.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from botocore.exceptions import ClientError
from pydantic import ValidationError

from tenantry import caches, deadline, observability, retry
from tenantry.errors import ApiError, Conflict, NotFound, PayloadTooLarge, Unprocessable, validation_message
from tenantry.models.events import (
    MAX_BATCH,
    Checkpoint,
    CheckpointIn,
    Event,
    EventBatch,
    EventIn,
    EventPage,
    SingleEventIn,
    StreamMetrics,
    iso_utc,
)
from tenantry.observability import logger
from tenantry.stores import events as events_store
from tenantry.stores import receipts
from tenantry.stores.events import EventStore, StoredCheckpoint, StoredEvent, StreamEvent
from tenantry.stores.receipts import Receipt

# Retries are bounded by time, not count: under 50 concurrent writers a publish may lose many
# rounds, and each round costs milliseconds. The budget is also capped by the invocation's
# remaining time (tenantry.deadline), so a publish gives up with 503 before API Gateway's 504.
RETRY_BUDGET_SECONDS = 10.0
# DynamoDB's item limit is 400 KB including attribute names and the other attributes.
MAX_EVENT_ITEM_BYTES = 400 * 1024
_ITEM_OVERHEAD_BYTES = 256
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
# A keyed publish's transaction holds HEAD, the events and the receipt: one event fewer fits.
MAX_KEYED_BATCH = MAX_BATCH - 1
# A receipt found, then gone by the time it is read (its 24 h ended in between): append anew.
_RECEIPT_ROUNDS = 3

# This warm process's view of each tenant's last position; wrong views cost one retry, never a gap.
_known_heads: dict[str, int] = {}
# Tenants whose view proved stale here (another sandbox wrote their stream since): their HEAD is read
# before the transaction, a cheap read instead of a failed transactional write, until a read finds
# the view still right (this sandbox is again the stream's only writer) and it is trusted again.
_doubted_heads: set[str] = set()


class WriteContention(ApiError):
    status = 503
    code = "write_contention"


class WrongExpectedPosition(Conflict):
    """An append conditioned on the stream's last position found another one: nothing was written."""

    code = "wrong_expected_position"

    def __init__(self, expected_position: int, current_position: int) -> None:
        super().__init__(
            f"The stream's last position is {current_position}, not {expected_position}; nothing was written",
            field="expected_position",
        )
        self.current_position = current_position

    def body(self) -> dict[str, object]:
        return {**super().body(), "current_position": self.current_position}


class TenantOffboarded(ApiError):
    """The caller's tenant was offboarded after its request was authorized."""

    status = 403
    code = "tenant_offboarded"


def _now() -> datetime:
    return datetime.now(UTC)


@caches.register
def _forget_heads() -> None:
    _known_heads.clear()
    _doubted_heads.clear()


def _stored(event: EventIn, index: int | None, recorded_at: str) -> StoredEvent:
    data_json = json.dumps(event.data, separators=(",", ":"), ensure_ascii=False)
    size = len(data_json.encode()) + len(event.type) + _ITEM_OVERHEAD_BYTES
    if size > MAX_EVENT_ITEM_BYTES:
        field = "data" if index is None else f"events.{index}.data"
        raise PayloadTooLarge(
            f"Event is {size} bytes stored; DynamoDB's item limit is {MAX_EVENT_ITEM_BYTES}", field=field
        )
    return StoredEvent(event.type, data_json, event.timestamp or recorded_at, recorded_at)


def append(
    tenant_id: str,
    events: list[EventIn],
    *,
    batch: bool,
    incarnation: str = "",
    receipt: Receipt | None = None,
    expected_position: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    store: EventStore = events_store.DYNAMODB,
) -> list[int]:
    """Append ``events`` consecutively to the tenant's stream, all or none; their positions.

    ``incarnation`` is the caller's tenant incarnation (from its key): the append lands only in
    that incarnation's stream, so nothing authorized before an offboarding lands after it.
    ``receipt`` (its answer filled in here) is written in the same transaction; ReceiptExistsError
    if its key already has a live one. With ``expected_position`` the append lands only right
    after that position (the transaction's HEAD condition, so no extra round trip), else
    WrongExpectedPosition: a lost race is never retried at another position."""
    if not 1 <= len(events) <= MAX_BATCH:
        raise Unprocessable(f"A publish holds 1 to {MAX_BATCH} events", field="events")
    recorded_at = iso_utc(_now())
    stored = [_stored(event, index if batch else None, recorded_at) for index, event in enumerate(events)]
    conditional = expected_position is not None
    expected = expected_position if conditional else _known_heads.get(tenant_id)
    # A doubted view is checked by a read before the first write, and again if that read failed.
    check_view = not conditional and expected is not None and tenant_id in _doubted_heads
    # No HEAD yet: the stream is opened (once per tenant) before the append.
    must_open = False
    give_up_at = time.monotonic() + min(RETRY_BUDGET_SECONDS, deadline.remaining() - retry.RESERVE_SECONDS)
    attempt = 0
    # The transaction's ClientRequestToken, and the HEAD it was made for: sent again only with the
    # very same items, after a failure that may hide a commit; a fresh one after any answer that
    # says nothing was written.
    token: str | None = None
    token_head: int | None = None
    while time.monotonic() < give_up_at:
        attempt += 1
        try:
            if check_view:
                current = store.read_head(tenant_id)
                check_view = False
                if current == expected:
                    _doubted_heads.discard(tenant_id)
                expected = current
            if expected is None:
                expected = store.read_head(tenant_id)
            if must_open or expected is None:
                # No HEAD: a new stream (once per tenant), or one offboarding closed.
                store.open_stream(tenant_id, incarnation, recorded_at)
                must_open = False
                expected = expected or 0
            if token is None or token_head != expected:
                token, token_head = uuid.uuid4().hex, expected
            answered = None
            if receipt is not None:
                planned = list(range(expected + 1, expected + len(stored) + 1))
                answered = dataclasses.replace(receipt, answer=_answer(planned, batch))
            positions = store.append(
                tenant_id, expected, stored, recorded_at, incarnation, receipt=answered, token=token
            )
        except events_store.HeadMissingError:
            _known_heads.pop(tenant_id, None)
            token = None
            if expected_position is None:
                expected = None
            elif expected_position == 0:
                must_open = True  # the empty stream it expects: open it, append at 1
            else:
                raise WrongExpectedPosition(expected_position, 0) from None
            continue
        except events_store.StreamClosedError as exc:
            _known_heads.pop(tenant_id, None)
            raise TenantOffboarded(
                "This tenant was offboarded; nothing was written", code="tenant_offboarded"
            ) from exc
        except events_store.HeadMovedError as moved:
            _known_heads.pop(tenant_id, None)
            if expected_position is not None:
                current = moved.current_last
                if current is None:
                    current = retry.call(lambda: store.read_head(tenant_id)) or 0
                _known_heads[tenant_id] = current
                raise WrongExpectedPosition(expected_position, current) from None
            _doubted_heads.add(tenant_id)
            token = None
            if attempt == 1:
                # One stale view (another sandbox wrote): retry at once from the head DynamoDB returned.
                expected = moved.current_last
                continue
            # Real contention: back off with jitter, then re-read, since a head learnt before
            # sleeping is stale by the time the sleep ends.
            if not retry.pause(attempt, sleep=sleep):
                break
            expected = None
            continue
        except events_store.ContendedError:
            # DynamoDB cancelled for a conflicting transaction or throttling: nothing was written
            # and our view of HEAD may still be right, so retry it as is after a jittered pause.
            token = None
            if not retry.pause(attempt, sleep=sleep):
                break
            continue
        except ClientError as exc:
            # Throttled past botocore's own attempts (a read of HEAD, or the append, whose earlier
            # attempts may have committed: the same token then answers it as done), or an append
            # whose outcome is unknown: sent again as it was.
            unknown = retry.outcome_unknown(exc)
            if (retry.is_lost_race(exc) or unknown) and retry.pause(attempt, sleep=sleep):
                continue
            raise
        except events_store.PositionTakenError as exc:
            _known_heads.pop(tenant_id, None)
            logger.error("an event exists beyond the stream's HEAD", extra={"head": expected})
            raise Conflict(
                "The stream's next position is already taken; nothing was written",
                code="position_taken",
            ) from exc
        except events_store.ItemTooLargeError as exc:
            raise PayloadTooLarge("An event exceeds DynamoDB's 400 KB item limit", field="data") from exc
        _known_heads[tenant_id] = positions[-1]
        if attempt > 1:
            observability.metrics.add_metric(name="PublishRetries", unit=MetricUnit.Count, value=attempt - 1)
        return positions
    logger.warning("publish gave up after conflicts", extra={"attempts": attempt})
    raise WriteContention("Too many concurrent writers; retry shortly", headers={"Retry-After": "1"})


@dataclasses.dataclass(frozen=True, slots=True)
class Publish:
    """A publish's body, read: its events, whether it was a batch, and its condition if any."""

    events: list[EventIn]
    batch: bool
    expected_position: int | None = None


def parse_publish(body: Any) -> Publish:
    """A single event or ``{"events": [...]}``; pydantic errors carry the field's path."""
    if not isinstance(body, dict):
        raise Unprocessable("The body must be a JSON object", field="body")
    try:
        if "events" in body:
            batch = EventBatch.model_validate(body)
            return Publish(batch.events, True, batch.expected_position)
        single = SingleEventIn.model_validate(body)
        event = EventIn.model_validate(single.model_dump(exclude={"expected_position"}))
        return Publish([event], False, single.expected_position)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(str(part) for part in error["loc"]) or "body",
                "message": validation_message(error),
                "type": error["type"],
            }
            for error in exc.errors()
        ]
        first = errors[0]
        raise Unprocessable(
            f"{first['field']}: {first['message']}", field=first["field"], errors=errors
        ) from exc


def _answer(positions: list[int], batch: bool) -> dict[str, Any]:
    return {"positions": positions} if batch else {"position": positions[0]}


def publish(
    tenant_id: str,
    body: Any,
    idempotency_key: str | None,
    incarnation: str = "",
    *,
    store: EventStore = events_store.DYNAMODB,
) -> dict[str, Any]:
    """POST /events: validate, then append; with an Idempotency-Key, at most once per key for 24 h.

    The publish's receipt is written by its own transaction, so a resend finds it exactly when the
    events landed, whatever DynamoDB answered on the way, and gets the first answer back."""
    parsed = parse_publish(body)
    events, batch = parsed.events, parsed.batch
    expected_position = parsed.expected_position
    if idempotency_key is None:
        positions = append(
            tenant_id,
            events,
            batch=batch,
            incarnation=incarnation,
            expected_position=expected_position,
            store=store,
        )
        return _answer(positions, batch)
    if len(events) > MAX_KEYED_BATCH:
        raise Unprocessable(
            f"A publish with an Idempotency-Key holds 1 to {MAX_KEYED_BATCH} events (its receipt takes"
            " the transaction's last place)",
            field="events",
        )
    # The incarnation is part of the key (keys from before incarnations hash as they did): a receipt
    # an offboarded tenant left behind never answers for a new tenant with the same id.
    scope = f"{tenant_id}/{incarnation}" if incarnation else tenant_id
    receipt = Receipt(
        record_id=receipts.record_id(scope, idempotency_key),
        payload_hash=receipts.payload_hash(body),
        answer={},
        written_at=int(time.time()),
    )
    for _ in range(_RECEIPT_ROUNDS):
        try:
            positions = append(
                tenant_id,
                events,
                batch=batch,
                incarnation=incarnation,
                receipt=receipt,
                expected_position=expected_position,
                store=store,
            )
        except events_store.ReceiptExistsError:
            found = retry.call(lambda: store.read_receipt(tenant_id, receipt.record_id))
        else:
            return _answer(positions, batch)
        if found is None or not found.live(time.time()):
            continue  # its 24 h ended since the append was refused: the key is free again
        if found.payload_hash != receipt.payload_hash:
            raise Unprocessable(
                "This Idempotency-Key was used with a different body",
                code="idempotency_key_reused",
                field="Idempotency-Key",
            )
        if found.answer is None:
            # Only an earlier release's record, while its invocation may still be running.
            raise Conflict(
                "A request with this Idempotency-Key is in progress; retry shortly",
                code="idempotency_in_progress",
                field="Idempotency-Key",
                headers={"Retry-After": "1"},
            )
        return dict(found.answer)
    raise WriteContention("Too many concurrent writers; retry shortly", headers={"Retry-After": "1"})


def event_of(found: StreamEvent) -> Event:
    """A stored event as the API answers it (GET /events/{position}, pages, subscriptions)."""
    return Event(
        position=found.position,
        type=found.type,
        data=dict(found.data),
        timestamp=found.timestamp,
        recorded_at=found.recorded_at,
    )


def read_events(
    tenant_id: str,
    start: int,
    limit: int,
    event_type: str | None,
    to: int | None = None,
    *,
    store: EventStore = events_store.DYNAMODB,
) -> EventPage:
    """GET /events: a page from ``start`` on, up to ``to`` (inclusive) if given."""
    if to is not None and to < start:
        # An empty range is almost always a client's bug (swapped bounds): say so.
        raise Unprocessable(f"to ({to}) is before from ({start})", field="to")
    page = store.read_events(tenant_id, start, limit, event_type, to)
    return EventPage(events=[event_of(found) for found in page.events], next_from=page.next_from)


def get_event(tenant_id: str, position: int, *, store: EventStore = events_store.DYNAMODB) -> Event:
    found = store.get_event(tenant_id, position)
    if found is None:
        raise NotFound(f"No event at position {position}", field="position")
    return event_of(found)


def stream_metrics(tenant_id: str, *, store: EventStore = events_store.DYNAMODB) -> StreamMetrics:
    # Positions are gapless from 1, so the last position is the number of events.
    total = store.read_head(tenant_id) or 0
    return StreamMetrics(tenant=tenant_id, total_events=total, timestamp=int(time.time()))


def save_checkpoint(
    tenant_id: str, name: str, request: CheckpointIn, *, store: EventStore = events_store.DYNAMODB
) -> Checkpoint:
    last = store.read_head(tenant_id) or 0
    if request.position > last:
        raise Unprocessable(
            f"position {request.position} is past the stream's last position {last}", field="position"
        )
    saved = StoredCheckpoint(name=name, position=request.position, updated_at=iso_utc(_now()))
    store.save_checkpoint(tenant_id, saved)
    return Checkpoint(name=saved.name, position=saved.position, updated_at=saved.updated_at)


def get_checkpoint(tenant_id: str, name: str, *, store: EventStore = events_store.DYNAMODB) -> Checkpoint:
    found = store.get_checkpoint(tenant_id, name)
    if found is None:
        raise NotFound(f"No checkpoint named {name}", field="name")
    return Checkpoint(name=found.name, position=found.position, updated_at=found.updated_at)
