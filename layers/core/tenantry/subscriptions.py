"""Live subscriptions (``GET /events/stream``): every stored event from a start point, then each new
one as it is stored, as Server-Sent Events (design §5.1), none skipped or repeated.

**Where it starts.** ``Last-Event-ID`` (a reconnect) resumes after that position, whatever else the
request says; else ``consumer`` starts after that consumer's checkpoint (one that never saved one
starts at 1); else ``from`` (default 1). ``from`` and ``consumer`` together are refused (422).

**How it reads.** A stream's positions are gapless and each append moves HEAD in the same
transaction as its events, so a consistent read of HEAD says exactly which positions exist. Each
round reads HEAD, then queries from the cursor up to that HEAD (``to``) in pages, and hands each
event on in position order, checking that positions follow one another: a position not readable
yet ends the round there, and the next round resumes at it. A ``type`` filter is applied here, not
as a DynamoDB filter: a Query's filter costs the same read units, and reading every position keeps
the check for filtered subscriptions too.

**While it waits** (the costs: docs/operations.md, "What a subscription costs"): a consistent read of
HEAD every :data:`POLL_SECONDS`, one of the tenant's record every :data:`STATUS_SECONDS` (a
suspended or offboarded tenant's subscription ends with an ``error`` event), and a ``: keep-alive``
comment after :data:`KEEP_ALIVE_SECONDS` of silence. A change feed (:mod:`tenantry.changes`, the
local stack's) makes it read at once instead: HEAD when the tenant's stream was written, the
record when it changed.

**How it ends.** ``end`` with ``next_from`` (and ``id: next_from - 1``, so that an EventSource's
own reconnect resumes exactly there) after ``max_seconds``, at the latest
:data:`END_RESERVE_SECONDS` before the function's Timeout, or after ``limit`` events; ``error``
when the tenant may no longer read (``tenant_suspended``, ``tenant_offboarded``, ``unauthorized``
for a key past its expiry) or its credentials cannot be had. When the client leaves, the function
stops at its next write, or within :data:`PROBE_SECONDS` where the runtime can tell without one
(the local stack's).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from botocore.exceptions import ClientError

from tenantry import aws, changes, credentials, deadline, retry, settings, streaming
from tenantry.errors import ApiError, Forbidden, Unauthorized, Unprocessable
from tenantry.events import event_of
from tenantry.models.events import MAX_POSITION
from tenantry.observability import logger
from tenantry.stores import events as events_store
from tenantry.stores import tenants as tenants_store
from tenantry.stores.events import EventStore, StreamEvent
from tenantry.stores.tenants import TenantStore

# The most a subscription may last: a STREAM integration's limit (the template's EventStreamSeconds
# may be lower; the function's Timeout bounds it then).
MAX_SECONDS: Final = 900
# Kept back from the function's Timeout: the `end` event must go out before Lambda stops it.
END_RESERVE_SECONDS: Final = 5.0
# The design asks for a comment at least every 15 s; API Gateway closes an edge endpoint's stream
# after 30 s of silence, proxies sooner.
KEEP_ALIVE_SECONDS: Final = 10.0
# How often HEAD is read while nothing signals a change: the delivery delay on AWS, and the read
# units an idle subscription costs (one per read).
POLL_SECONDS: Final = 1.0
# How often the tenant's record is read: the bound on how long a suspended or offboarded tenant's
# subscription stays open.
STATUS_SECONDS: Final = 5.0
# How often, while waiting, the client's presence is checked where the runtime can tell without a
# write (a free check, no AWS call).
PROBE_SECONDS: Final = 0.25
# Events read per query (each page is also capped by bytes: tenantry.stores.events).
PAGE_EVENTS: Final = 500
# The tags of the partitions a subscription watches on a change feed.
STREAM_CHANGED: Final = "e"
TENANT_CHANGED: Final = "t"


class TenantSuspended(Forbidden):
    code = "tenant_suspended"


class TenantGone(Forbidden):
    code = "tenant_offboarded"


@dataclass(frozen=True, slots=True)
class Subscriber:
    """Who subscribes, as the authorizer said: the tenant, the incarnation its key was issued in,
    and when the key stops working (epoch seconds; None: never)."""

    tenant_id: str
    incarnation: str = ""
    key_expires_at: int | None = None


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    """A subscription's parameters, as the route takes them (validated there)."""

    start: int | None = None
    consumer: str | None = None
    last_event_id: str | None = None
    event_type: str | None = None
    max_seconds: int | None = None
    limit: int | None = None


def start_position(
    tenant_id: str, request: SubscriptionRequest, store: EventStore = events_store.DYNAMODB
) -> int:
    """The first position the subscription delivers (see the module's docstring)."""
    if request.start is not None and request.consumer is not None:
        raise Unprocessable("Give `from` or `consumer`, not both", field="consumer")
    if request.last_event_id is not None:
        last = int(request.last_event_id)
        if last > MAX_POSITION:
            raise Unprocessable(f"Last-Event-ID must be at most {MAX_POSITION}", field="last-event-id")
        return last + 1
    if request.consumer is not None:
        found = store.get_checkpoint(tenant_id, request.consumer)
        return (found.position if found is not None else 0) + 1
    return request.start or 1


def subscribe(
    subscriber: Subscriber,
    request: SubscriptionRequest,
    *,
    request_id: str,
    store: EventStore = events_store.DYNAMODB,
    tenants: TenantStore = tenants_store.DYNAMODB,
    clock: Callable[[], float] = time.monotonic,
    watch: Callable[[Mapping[str, tuple[str, str]]], changes.Changes] = changes.watch,
) -> streaming.Producer:
    """GET /events/stream: resolve the start (its errors are JSON answers), then what streams."""
    start = start_position(subscriber.tenant_id, request, store)
    seconds = float(min(request.max_seconds or MAX_SECONDS, MAX_SECONDS))
    seconds = min(seconds, deadline.remaining() - END_RESERVE_SECONDS)
    subscription = Subscription(
        subscriber=subscriber,
        cursor=start,
        event_type=request.event_type,
        limit=request.limit,
        request_id=request_id,
        store=store,
        tenants=tenants,
        clock=clock,
        watch=watch,
        end_at=clock() + max(0.0, seconds),
    )
    return subscription.produce


@dataclass(slots=True)
class Subscription:
    """One open subscription: its cursor (the next position to examine) and its clocks."""

    subscriber: Subscriber
    cursor: int
    event_type: str | None
    limit: int | None
    request_id: str
    store: EventStore
    tenants: TenantStore
    clock: Callable[[], float]
    watch: Callable[[Mapping[str, tuple[str, str]]], changes.Changes]
    end_at: float
    delivered: int = 0
    _last_write: float = field(default=0.0)

    def produce(self, stream: streaming.ResponseStream) -> None:
        events = streaming.EventStream(stream, self.request_id)
        tenant_id = self.subscriber.tenant_id
        # Watched before the first read, so a write after it is signalled.
        signals = self.watch(
            {
                STREAM_CHANGED: (settings.table_name(settings.EVENTS_TABLE), tenant_id),
                TENANT_CHANGED: (settings.table_name(settings.TENANTS_TABLE), tenant_id),
            }
        )
        try:
            self._run(events, signals)
        except ApiError as exc:
            logger.info("subscription ended with an error", extra={"error": exc.code})
            events.fail(exc)
        finally:
            signals.close()
        if events.client_gone:
            logger.info("the subscriber left", extra={"next_from": self.cursor})

    def _run(self, events: streaming.EventStream, signals: changes.Changes) -> None:
        now = self.clock()
        self._last_write = now
        next_read = now  # the replay starts at once
        next_status = now + STATUS_SECONDS
        while not events.client_gone:
            if now >= self.end_at:
                self._end(events, self.cursor)
                return
            if now >= next_read:
                if self._deliver(events):
                    return
                next_read = self.clock() + POLL_SECONDS
            if now >= next_status:
                self._check_tenant()
                next_status = self.clock() + STATUS_SECONDS
            now = self.clock()
            if now - self._last_write >= KEEP_ALIVE_SECONDS:
                events.keep_alive()
                self._last_write = now
            due = min(next_read, next_status, self._last_write + KEEP_ALIVE_SECONDS, self.end_at)
            changed = signals.wait(min(PROBE_SECONDS, max(0.0, due - now)))
            if STREAM_CHANGED in changed:
                next_read = 0.0
            if TENANT_CHANGED in changed:
                next_status = 0.0
            if not events.probe():
                return
            now = self.clock()

    def _scope(self) -> aws.DataAccess | None:
        # Scoped credentials are renewed a margin before they expire, which a request of 29 s never
        # reaches and a subscription of 15 minutes may: so each round asks again (cached: free).
        return credentials.scoped_access(self.subscriber.tenant_id)

    def _deliver(self, events: streaming.EventStream) -> bool:
        """One round: every event stored since the last, in order; True when the stream ended."""
        tenant_id = self.subscriber.tenant_id
        try:
            with aws.tenant_scope(self._scope()):
                head = self.store.read_head(tenant_id) or 0
                while self.cursor <= head and not events.client_gone:
                    page = self.store.read_events(tenant_id, self.cursor, PAGE_EVENTS, None, head)
                    if not self._hand_on(events, page.events):
                        return self.delivered == self.limit
                    if self.clock() >= self.end_at:
                        return False  # the end comes from the loop, with the cursor as it is
        except ClientError as exc:
            if not retry.is_lost_race(exc):
                raise
            logger.warning("a subscription's read was throttled", extra={"error": aws.error_code(exc)})
        return False

    def _hand_on(self, events: streaming.EventStream, page: Sequence[StreamEvent]) -> bool:
        """Send the page's events from the cursor on; False when the round must stop (a position
        not readable yet, the limit reached, the client gone)."""
        if not page:
            return False
        for found in page:
            if found.position != self.cursor:
                logger.warning(
                    "a position below HEAD was not readable yet; next round",
                    extra={"expected": self.cursor, "found": found.position},
                )
                return False
            self.cursor += 1
            if self.event_type is not None and found.type != self.event_type:
                continue
            events.send("event", event_of(found).model_dump(mode="json"), event_id=str(found.position))
            self._last_write = self.clock()
            self.delivered += 1
            if self.delivered == self.limit:
                self._end(events, self.cursor)
                return False
            if events.client_gone:
                return False
        return True

    def _check_tenant(self) -> None:
        """Raise the error that ends the stream if the tenant may no longer read it."""
        subscriber = self.subscriber
        if subscriber.key_expires_at is not None and subscriber.key_expires_at <= time.time():
            raise Unauthorized("The key expired", code="unauthorized")
        try:
            with aws.tenant_scope(self._scope()):
                tenant = self.tenants.get(subscriber.tenant_id)
        except ClientError as exc:
            if not retry.is_lost_race(exc):
                raise
            return  # throttled: checked again next time
        if (
            tenant is None
            or tenant.status == tenants_store.OFFBOARDING
            or (subscriber.incarnation and tenant.incarnation != subscriber.incarnation)
        ):
            raise TenantGone("This tenant was offboarded")
        if tenant.status != tenants_store.ACTIVE:
            raise TenantSuspended("This tenant is suspended")

    def _end(self, events: streaming.EventStream, next_from: int) -> None:
        events.send("end", {"next_from": next_from}, event_id=str(next_from - 1))
