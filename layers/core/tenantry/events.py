"""The event store's logic: gapless publishing with optimistic concurrency, reads, checkpoints.

Positions are never reserved ahead of the write. A publish reads the tenant's last position (or
takes it from this warm process's memory), then appends in one transaction whose HEAD condition
fails if anyone else appended first; on that conflict it re-reads and retries with jittered
backoff. In steady state (one writer per tenant, or a warm process that wrote last) a publish is
exactly one DynamoDB round trip.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from botocore.exceptions import ClientError
from pydantic import ValidationError

from tenantry import aws, caches, deadline, observability, retry, settings
from tenantry.errors import ApiError, Conflict, NotFound, PayloadTooLarge, Unprocessable
from tenantry.models.events import (
    MAX_BATCH,
    Checkpoint,
    CheckpointIn,
    Event,
    EventBatch,
    EventIn,
    EventPage,
    StreamMetrics,
    iso_utc,
)
from tenantry.observability import logger
from tenantry.stores import events as events_store
from tenantry.stores.events import EventStore, StoredCheckpoint, StoredEvent, StreamEvent

# Retries are bounded by time, not count: under 50 concurrent writers a publish may lose many
# rounds, and each round costs milliseconds. The budget is also capped by the invocation's
# remaining time (tenantry.deadline), so a publish gives up with 503 before API Gateway's 504.
RETRY_BUDGET_SECONDS = 10.0
# DynamoDB's item limit is 400 KB including attribute names and the other attributes.
MAX_EVENT_ITEM_BYTES = 400 * 1024
_ITEM_OVERHEAD_BYTES = 256
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
# Powertools' public key_prefix: a record's sort key is ``publish#<hash of tenant and key>``,
# the same whatever the function's deployed name or this module's layout.
IDEMPOTENCY_KEY_PREFIX = "publish"
# Warm tenants' persistence layers, at most this many (a layer holds the tenant's scoped client).
_PERSISTENCE_CACHE_SIZE = 256

# This warm process's view of each tenant's last position; wrong views cost one retry, never a gap.
_known_heads: dict[str, int] = {}
# Tenants whose view proved stale here (another sandbox wrote their stream since): their HEAD is read
# before the transaction, a cheap read instead of a failed transactional write, until a read finds
# the view still right (this sandbox is again the stream's only writer) and it is trusted again.
_doubted_heads: set[str] = set()
# Each warm tenant's idempotency persistence layer, with the client it was built on.
_persistence: OrderedDict[str, tuple[Any, DynamoDBPersistenceLayer]] = OrderedDict()


class WriteContention(ApiError):
    status = 503
    code = "write_contention"


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
    _persistence.clear()


def _persistence_for(tenant_id: str) -> DynamoDBPersistenceLayer:
    """The tenant's idempotency persistence layer, built once per tenant and client.

    Records live under the tenant's own partition (sort key ``id``), so the tenant's scoped
    credentials can reach them (dynamodb:LeadingKeys) and offboarding purges them by partition;
    Powertools takes that partition as ``static_pk_value``, fixed per layer, hence one per tenant.
    A new scoped client (credentials renewed) gets a new layer."""
    client = aws.data_client()
    cached = _persistence.get(tenant_id)
    if cached is not None and cached[0] is client:
        _persistence.move_to_end(tenant_id)
        return cached[1]
    layer = DynamoDBPersistenceLayer(
        table_name=settings.table_name(settings.IDEMPOTENCY_TABLE),
        key_attr="tenant_id",
        sort_key_attr="id",
        static_pk_value=tenant_id,
        boto3_client=client,
    )
    _persistence[tenant_id] = (client, layer)
    while len(_persistence) > _PERSISTENCE_CACHE_SIZE:
        _persistence.popitem(last=False)
    return layer


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
    sleep: Callable[[float], None] = time.sleep,
    store: EventStore = events_store.DYNAMODB,
) -> list[int]:
    """Append ``events`` consecutively to the tenant's stream, all or none; their positions.

    ``incarnation`` is the caller's tenant incarnation (from its key): the append lands only in
    that incarnation's stream, so nothing authorized before an offboarding lands after it."""
    if not 1 <= len(events) <= MAX_BATCH:
        raise Unprocessable(f"A publish holds 1 to {MAX_BATCH} events", field="events")
    recorded_at = iso_utc(_now())
    stored = [_stored(event, index if batch else None, recorded_at) for index, event in enumerate(events)]
    expected = _known_heads.get(tenant_id)
    # A doubted view is checked by a read before the first write, and again if that read failed.
    check_view = expected is not None and tenant_id in _doubted_heads
    give_up_at = time.monotonic() + min(RETRY_BUDGET_SECONDS, deadline.remaining() - retry.RESERVE_SECONDS)
    attempt = 0
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
            if expected is None:
                # No HEAD: a new stream (once per tenant), or one offboarding closed.
                store.open_stream(tenant_id, incarnation, recorded_at)
                expected = 0
            positions = store.append(tenant_id, expected, stored, recorded_at, incarnation)
        except events_store.HeadMissingError:
            _known_heads.pop(tenant_id, None)
            expected = None
            continue
        except events_store.StreamClosedError as exc:
            _known_heads.pop(tenant_id, None)
            raise TenantOffboarded(
                "This tenant was offboarded; nothing was written", code="tenant_offboarded"
            ) from exc
        except events_store.HeadMovedError as moved:
            _known_heads.pop(tenant_id, None)
            _doubted_heads.add(tenant_id)
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
            if not retry.pause(attempt, sleep=sleep):
                break
            continue
        except ClientError as exc:
            # HEAD's read throttled past botocore's own attempts: nothing was written either.
            if retry.is_lost_race(exc) and retry.pause(attempt, sleep=sleep):
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


def parse_publish(body: Any) -> tuple[list[EventIn], bool]:
    """A single event or ``{"events": [...]}``; pydantic errors carry the field's path."""
    if not isinstance(body, dict):
        raise Unprocessable("The body must be a JSON object", field="body")
    try:
        if "events" in body:
            return EventBatch.model_validate(body).events, True
        return [EventIn.model_validate(body)], False
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "body"
        raise Unprocessable(f"{field}: {first['msg']}", field=field) from exc


def _answer(positions: list[int], batch: bool) -> dict[str, Any]:
    return {"positions": positions} if batch else {"position": positions[0]}


def publish(
    tenant_id: str,
    body: Any,
    idempotency_key: str | None,
    lambda_context: Any | None = None,
    incarnation: str = "",
    *,
    store: EventStore = events_store.DYNAMODB,
) -> dict[str, Any]:
    """POST /events: validate, then append (once per Idempotency-Key)."""
    events, batch = parse_publish(body)
    if idempotency_key is None:
        return _answer(append(tenant_id, events, batch=batch, incarnation=incarnation, store=store), batch)

    def publish_once(request: dict[str, Any]) -> dict[str, Any]:
        return _answer(append(tenant_id, events, batch=batch, incarnation=incarnation, store=store), batch)

    # The config is per request: it carries this invocation's context (its remaining time).
    config = IdempotencyConfig(
        event_key_jmespath="[tenant_id, idempotency_key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=IDEMPOTENCY_TTL_SECONDS,
    )
    if lambda_context is not None:
        # Lets an in-progress record expire with the invocation, so a timed-out publish can be retried.
        config.register_lambda_context(lambda_context)
    once = idempotent_function(
        data_keyword_argument="request",
        persistence_store=_persistence_for(tenant_id),
        config=config,
        key_prefix=IDEMPOTENCY_KEY_PREFIX,
    )(publish_once)
    # The incarnation is part of the key (keys from before incarnations hash as they did): a record
    # an offboarded tenant left behind never answers for a new tenant with the same id.
    scope = f"{tenant_id}/{incarnation}" if incarnation else tenant_id
    request = {"tenant_id": scope, "idempotency_key": idempotency_key, "body": body}
    try:
        result: dict[str, Any] = once(request=request)
    except IdempotencyValidationError as exc:
        raise Unprocessable(
            "This Idempotency-Key was used with a different body",
            code="idempotency_key_reused",
            field="Idempotency-Key",
        ) from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise Conflict(
            "A request with this Idempotency-Key is in progress; retry shortly",
            code="idempotency_in_progress",
            field="Idempotency-Key",
            headers={"Retry-After": "1"},
        ) from exc
    return result


def _event(found: StreamEvent) -> Event:
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
    *,
    store: EventStore = events_store.DYNAMODB,
) -> EventPage:
    page = store.read_events(tenant_id, start, limit, event_type)
    return EventPage(events=[_event(found) for found in page.events], next_from=page.next_from)


def get_event(tenant_id: str, position: int, *, store: EventStore = events_store.DYNAMODB) -> Event:
    found = store.get_event(tenant_id, position)
    if found is None:
        raise NotFound(f"No event at position {position}", field="position")
    return _event(found)


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
