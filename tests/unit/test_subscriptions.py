"""Live subscriptions (tenantry.subscriptions) on the in-memory stores, on a simulated clock: what
the stream carries, when it reads, when it ends. The HTTP route, the local gateway and DynamoDB are
tested in tests/integration/test_subscriptions_http.py and tests/unit/test_subscriptions_route.py."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from tenantry import deadline, subscriptions
from tenantry.errors import Unprocessable
from tenantry.events import append
from tenantry.models.events import EventIn
from tenantry.stores.events import StoredCheckpoint
from tenantry.stores.tenants import TenantRecord
from tenantry.subscriptions import Subscriber, SubscriptionRequest
from tests.fakes.events import InMemoryEvents
from tests.fakes.tenants import InMemoryTenants

TENANT = "acme"


@dataclass
class Sse:
    event: str
    id: str | None
    data: Any


def parse_events(body: bytes) -> tuple[list[Sse], int]:
    """The events of a Server-Sent Events body (each with its id), and how many comments it held."""
    found: list[Sse] = []
    comments = 0
    for block in body.decode().split("\n\n"):
        lines = [line for line in block.splitlines() if line]
        comments += sum(1 for line in lines if line.startswith(":"))
        fields = dict(line.split(": ", 1) for line in lines if not line.startswith(":"))
        if fields:
            found.append(Sse(fields["event"], fields.get("id"), json.loads(fields["data"])))
    return found, comments


class SimulatedTime:
    """The subscription's clock and its change signals: waiting advances the clock, and actions
    scheduled for a moment (a publish, a suspension, the client leaving) run when it passes."""

    def __init__(self) -> None:
        self.now = 0.0
        self._actions: list[tuple[float, Callable[[], frozenset[str]]]] = []
        self.watched: Mapping[str, tuple[str, str]] = {}
        self.signals = True

    def __call__(self) -> float:
        return self.now

    def at(self, moment: float, action: Callable[[], Any], signal: str = "") -> None:
        def run() -> frozenset[str]:
            action()
            return frozenset({signal}) if signal and self.signals else frozenset()

        self._actions.append((moment, run))
        self._actions.sort(key=lambda pair: pair[0])

    # changes.Changes
    def wait(self, seconds: float) -> frozenset[str]:
        until = self.now + seconds
        if self._actions and self._actions[0][0] <= until:
            moment, run = self._actions.pop(0)
            self.now = max(self.now, moment)
            return run()
        self.now = until
        return frozenset()

    def close(self) -> None:
        pass

    def watch(self, partitions: Mapping[str, tuple[str, str]]) -> SimulatedTime:
        self.watched = partitions
        return self


@dataclass
class Client:
    """The response stream a subscription writes to; ``gone`` once the client left."""

    clock: SimulatedTime
    data: bytearray = field(default_factory=bytearray)
    gone: bool = False
    writes: list[tuple[float, bytes]] = field(default_factory=list)

    def write(self, data: bytes) -> bool:
        if self.gone:
            return False
        if data:
            self.data += data
            self.writes.append((self.clock.now, bytes(data)))
        return True

    @property
    def events(self) -> list[Sse]:
        return parse_events(bytes(self.data))[0]

    @property
    def comments(self) -> int:
        return parse_events(bytes(self.data))[1]

    def positions(self) -> list[int]:
        return [int(sse.id or 0) for sse in self.events if sse.event == "event"]


class CountingEvents(InMemoryEvents):
    """The in-memory stream, counting the reads a subscription makes."""

    def __init__(self) -> None:
        super().__init__()
        self.head_reads = 0
        self.queries = 0

    def read_head(self, tenant_id: str) -> int | None:
        self.head_reads += 1
        return super().read_head(tenant_id)

    def read_events(self, *args: Any, **kwargs: Any) -> Any:
        self.queries += 1
        return super().read_events(*args, **kwargs)


class CountingTenants(InMemoryTenants):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get(self, tenant_id: str) -> TenantRecord | None:
        self.reads += 1
        return super().get(tenant_id)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("EVENTS_TABLE", "events-table")
    monkeypatch.setenv("TENANTS_TABLE", "tenants-table")
    monkeypatch.delenv("TENANT_DATA_ROLE_ARN", raising=False)
    # The invocation has the events function's whole Timeout (900 s) ahead of it.
    with deadline.budget(None, cap_seconds=None):
        monkeypatch.setattr(deadline, "remaining", lambda: 900.0)
        yield World()


class World:
    def __init__(self) -> None:
        self.events = CountingEvents()
        self.tenants = CountingTenants()
        self.time = SimulatedTime()
        self.events.set_tenant(TENANT, incarnation="i1")
        self.tenants.tenants[TENANT] = TenantRecord(
            TENANT, "Acme", "pro", "active", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", incarnation="i1"
        )

    def publish(self, *types: str, tenant: str = TENANT) -> list[int]:
        batch = [EventIn(type=kind, data={"kind": kind}) for kind in types]
        return append(tenant, batch, batch=len(batch) > 1, incarnation="i1", store=self.events)

    def subscribe(
        self, client: Client | None = None, subscriber: Subscriber | None = None, **request: Any
    ) -> Client:
        client = client or Client(self.time)
        producer = subscriptions.subscribe(
            subscriber or Subscriber(TENANT, "i1"),
            SubscriptionRequest(**request),
            request_id="req-1",
            store=self.events,
            tenants=self.tenants,
            clock=self.time,
            watch=self.time.watch,
        )
        producer(client)
        return client

    def set_status(self, status: str) -> None:
        current = self.tenants.tenants[TENANT]
        self.tenants.tenants[TENANT] = replace(current, status=status)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- what it carries


def test_it_replays_then_delivers_each_new_event_in_order_then_ends(world: World) -> None:
    # Given three stored events, and two more published while the subscription is open
    world.publish("a", "b", "c")
    world.time.at(2.0, lambda: world.publish("d"), signal="e")
    world.time.at(4.5, lambda: world.publish("e", "f"), signal="e")
    # When a client subscribes from the start for 10 s
    client = world.subscribe(max_seconds=10)
    # Then it got every event once, in order, each with its position as id and as GET answers it
    assert client.positions() == [1, 2, 3, 4, 5, 6]
    first = client.events[0]
    assert first.data["position"] == 1 and first.data["type"] == "a" and first.data["data"] == {"kind": "a"}
    assert set(first.data) == {"position", "type", "data", "timestamp", "recorded_at"}
    # And the stream closed with `end`: where to resume, its id one less (an EventSource's resume)
    end = client.events[-1]
    assert (end.event, end.data, end.id) == ("end", {"next_from": 7}, "6")
    # And the live events went out as soon as they were signalled, not at the next timed read
    sent_at = {
        json.loads(chunk.split(b"data: ", 1)[1])["position"]: moment
        for moment, chunk in client.writes
        if b"event: event" in chunk
    }
    assert sent_at[4] == 2.0 and sent_at[5] == 4.5
    # And it ended on time
    assert world.time.now == pytest.approx(10.0)


def test_without_signals_it_reads_head_once_a_poll_interval(world: World) -> None:
    # Given no change feed (as on AWS): nothing signals a publish
    world.time.signals = False
    world.time.at(2.2, lambda: world.publish("late"))
    # When a client subscribes for 60 s to an empty stream
    client = world.subscribe(max_seconds=60)
    # Then the event came at the first read after it was stored, within one poll interval
    moment = next(moment for moment, chunk in client.writes if b"event: event" in chunk)
    assert 2.2 <= moment <= 2.2 + subscriptions.POLL_SECONDS
    # And HEAD was read at most once a poll interval, the tenant's record once a status interval
    assert world.events.head_reads <= 60 / subscriptions.POLL_SECONDS + 1
    assert world.tenants.reads <= 60 / subscriptions.STATUS_SECONDS + 1
    # And the only query was for the one event (an idle subscription reads HEAD, nothing more)
    assert world.events.queries == 1


def test_a_keep_alive_comment_goes_out_in_every_silence_of_15_seconds(world: World) -> None:
    # Given a stream with no events for 60 s but one at 31 s
    world.time.at(31.0, lambda: world.publish("x"), signal="e")
    client = world.subscribe(max_seconds=60)
    # Then no 15 s went by without a write (an event, a comment or the end)
    moments = [0.0, *(moment for moment, _ in client.writes), 60.0]
    assert max(later - earlier for earlier, later in itertools.pairwise(moments)) <= 15.0
    assert client.comments >= 4


def test_a_type_filter_delivers_only_that_type_and_resumes_past_what_it_examined(world: World) -> None:
    # Given a stream where every other event is wanted
    world.publish("wanted", "noise", "wanted", "noise", "noise")
    client = world.subscribe(max_seconds=2, event_type="wanted")
    # Then only the wanted ones came, with their own positions
    assert client.positions() == [1, 3]
    # And the end resumes after everything examined (the trailing noise is not examined again)
    assert client.events[-1].data == {"next_from": 6}


def test_limit_ends_the_stream_after_that_many_events_resuming_right_after_the_last(world: World) -> None:
    world.publish("a", "b", "c", "d")
    client = world.subscribe(limit=2)
    assert client.positions() == [1, 2]
    assert client.events[-1].data == {"next_from": 3}
    assert world.time.now == 0.0  # it did not wait for max_seconds


# ---------------------------------------------------------------------------- where it starts


def test_last_event_id_resumes_right_after_it_and_wins_over_from_and_consumer(world: World) -> None:
    world.publish("a", "b", "c", "d")
    client = world.subscribe(max_seconds=1, start=1, last_event_id="2")
    assert client.positions() == [3, 4]
    assert world.subscribe(max_seconds=1, last_event_id="0").positions() == [1, 2, 3, 4]


def test_a_consumer_starts_after_its_checkpoint_and_a_new_one_at_the_start(world: World) -> None:
    world.publish("a", "b", "c")
    world.events.save_checkpoint(TENANT, StoredCheckpoint("billing", 2, "t"))
    assert world.subscribe(max_seconds=1, consumer="billing").positions() == [3]
    assert world.subscribe(max_seconds=1, consumer="never-saved").positions() == [1, 2, 3]


def test_from_and_consumer_together_are_refused_before_the_stream(world: World) -> None:
    with pytest.raises(Unprocessable) as refused:
        world.subscribe(start=1, consumer="billing")
    assert refused.value.field == "consumer"
    with pytest.raises(Unprocessable) as too_far:
        world.subscribe(last_event_id=str(2**53))
    assert too_far.value.field == "last-event-id"


def test_from_past_the_end_waits_for_that_position(world: World) -> None:
    world.publish("a")
    world.time.at(1.0, lambda: world.publish("b", "c", "d"), signal="e")
    assert world.subscribe(max_seconds=3, start=3).positions() == [3, 4]


# ---------------------------------------------------------------------------- races and gaps


class LaggingEvents(CountingEvents):
    """A store whose queries miss the position before ``to`` the first ``lag`` times: what a query
    that does not see all of a just-committed transaction yet would answer."""

    def __init__(self, lag: int) -> None:
        super().__init__()
        self.lag = lag

    def read_events(
        self, tenant_id: str, start: int, limit: int, event_type: str | None, to: int | None = None
    ) -> Any:
        page = super().read_events(tenant_id, start, limit, event_type, to)
        if self.lag and page.events:
            self.lag -= 1
            missing = (to or 0) - 1
            return replace(page, events=tuple(event for event in page.events if event.position != missing))
        return page


def test_a_position_not_readable_yet_is_read_again_never_skipped(world: World) -> None:
    # Given a store whose first query misses the middle of three events below HEAD
    world.events = LaggingEvents(lag=1)
    world.events.set_tenant(TENANT, incarnation="i1")
    world.publish("a", "b", "c")
    # When a client subscribes
    client = world.subscribe(max_seconds=3)
    # Then all three came, once each, in order (the third a poll interval later)
    assert client.positions() == [1, 2, 3]


def test_events_published_during_the_replay_are_delivered_once(world: World) -> None:
    # Given more events than a page holds, and writers appending while the replay reads them
    world.publish(*["a"] * 99)
    for _ in range(12):
        world.publish(*["a"] * 99)
    original = world.events.read_events

    def reading_while_others_write(*args: Any, **kwargs: Any) -> Any:
        world.publish("during")
        return original(*args, **kwargs)

    world.events.read_events = reading_while_others_write  # type: ignore[method-assign]
    client = world.subscribe(max_seconds=2)
    # Then every position up to the end came exactly once, in order
    positions = client.positions()
    assert positions == list(range(1, len(positions) + 1))
    assert client.events[-1].data == {"next_from": len(positions) + 1}
    assert len(positions) >= 13 * 99 + 3


# ---------------------------------------------------------------------------- how it ends


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("suspended", "tenant_suspended"),
        ("offboarding", "tenant_offboarded"),
        ("deleted", "tenant_offboarded"),
    ],
)
def test_a_tenant_that_may_no_longer_read_ends_its_subscription_with_an_error(
    world: World, change: str, code: str
) -> None:
    # Given an open subscription, and its tenant suspended or offboarded at 7 s, with no signal
    world.time.signals = False

    def apply() -> None:
        if change == "deleted":
            del world.tenants.tenants[TENANT]
        else:
            world.set_status(change)

    world.time.at(7.0, apply)
    client = world.subscribe(max_seconds=60)
    # Then the stream ended with an error event within the status interval
    last = client.events[-1]
    assert last.event == "error"
    assert last.data["error"] == code and last.data["request_id"] == "req-1" and last.data["message"]
    assert world.time.now <= 7.0 + subscriptions.STATUS_SECONDS


def test_a_signal_of_the_tenants_record_ends_it_at_once(world: World) -> None:
    world.time.at(7.0, lambda: world.set_status("suspended"), signal="t")
    client = world.subscribe(max_seconds=60)
    assert client.events[-1].data["error"] == "tenant_suspended"
    assert world.time.now == 7.0


def test_another_incarnation_of_the_tenant_is_not_this_subscriptions(world: World) -> None:
    # Given the tenant was offboarded and re-created with the same id (a new incarnation)
    current = world.tenants.tenants[TENANT]
    world.tenants.tenants[TENANT] = replace(current, incarnation="i2")
    client = world.subscribe(max_seconds=60)
    assert client.events[-1].data["error"] == "tenant_offboarded"


def test_a_key_past_its_expiry_ends_the_stream(world: World) -> None:
    expired = Subscriber(TENANT, "i1", int(time.time()) - 1)
    client = world.subscribe(Client(world.time), expired, max_seconds=60)
    assert client.events[-1].data["error"] == "unauthorized"


def test_a_client_that_left_stops_the_work_within_the_probe_interval(world: World) -> None:
    # Given a subscription whose client leaves at 3.1 s
    client = Client(world.time)
    world.time.at(3.1, lambda: setattr(client, "gone", True))
    reads_when_gone: list[int] = []
    world.time.at(3.1 + subscriptions.PROBE_SECONDS, lambda: reads_when_gone.append(world.events.head_reads))
    world.subscribe(client, max_seconds=60)
    # Then the function returned within the probe interval, with no read after
    assert world.time.now <= 3.1 + subscriptions.PROBE_SECONDS
    assert world.events.head_reads <= 5


def test_the_stream_ends_before_the_functions_timeout(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an invocation with 20 s left and a client asking for the longest subscription
    monkeypatch.setattr(deadline, "remaining", lambda: 20.0)
    client = world.subscribe()
    # Then the end came END_RESERVE_SECONDS before the Timeout
    assert client.events[-1].event == "end"
    assert world.time.now == pytest.approx(20.0 - subscriptions.END_RESERVE_SECONDS)


def test_it_watches_the_tenants_stream_and_record_only(world: World) -> None:
    world.subscribe(max_seconds=1)
    assert world.time.watched == {"e": ("events-table", TENANT), "t": ("tenants-table", TENANT)}


def test_it_reads_only_its_tenants_stream(world: World) -> None:
    # Given another tenant's events, before and while acme subscribes
    world.events.set_tenant("globex", incarnation="i1")
    world.publish("secret", tenant="globex")
    world.time.at(1.0, lambda: world.publish("secret", tenant="globex"), signal="e")
    world.publish("mine")
    client = world.subscribe(max_seconds=3)
    assert [sse.data["type"] for sse in client.events if sse.event == "event"] == ["mine"]
