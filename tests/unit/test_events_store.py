"""The event store's boundary: the DynamoDB implementation and the in-memory fake answer the same
calls the same way (errors included), and the event store's logic on the fake where DynamoDB is
not the point (its retries, its refusals, checkpoints)."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import ClientError

from tenantry import aws as clients
from tenantry import events, settings
from tenantry.errors import NotFound, Unprocessable
from tenantry.models.events import CheckpointIn, EventIn
from tenantry.stores import events as store
from tenantry.stores.events import EventStore, StoredCheckpoint, StoredEvent
from tests.fakes.events import InMemoryEvents

NOW = "2026-11-24T10:00:00.000Z"


def stored(kind: str, **data: Any) -> StoredEvent:
    return StoredEvent(kind, json.dumps(data, separators=(",", ":")), NOW, NOW)


def outcome(call: Callable[[], Any]) -> Any:
    """What a call answered, or the store error it raised (with HEAD's position for HeadMovedError)."""
    try:
        return call()
    except store.HeadMovedError as moved:
        return ("HeadMovedError", moved.current_last)
    except (
        store.HeadMissingError,
        store.StreamClosedError,
        store.PositionTakenError,
        store.ItemTooLargeError,
    ) as refused:
        return (type(refused).__name__,)


def scenario(
    events_store: EventStore, stray: Callable[[str, int], None], monkeypatch: pytest.MonkeyPatch
) -> list[Any]:
    """The same calls, in order, each answer recorded."""
    calls: list[Callable[[], Any]] = [
        lambda: events_store.read_head("acme"),
        lambda: events_store.append("acme", 0, [stored("t")], NOW),
        lambda: events_store.open_stream("acme", "i2", NOW),  # not acme's incarnation
        lambda: events_store.open_stream("acme", "i1", NOW),
        lambda: events_store.open_stream("acme", "i1", NOW),  # already open: nothing happens
        lambda: events_store.open_stream("leaving", "", NOW),  # being offboarded
        lambda: events_store.open_stream("nobody", "", NOW),  # no tenant item, no incarnation
        lambda: events_store.read_head("acme"),
        lambda: events_store.append(
            "acme", 0, [stored("a", n=1), stored("b", n=2), stored("a", n=3)], NOW, "i1"
        ),
        lambda: events_store.append("acme", 1, [stored("a")], NOW, "i1"),  # a stale HEAD
        lambda: events_store.append("acme", 3, [stored("a")], NOW, "i2"),  # another incarnation
        lambda: events_store.append("acme", 1, [stored("a")], NOW, "i2"),  # both
        lambda: events_store.append("acme", 3, [stored("b", text="é")], NOW),  # no incarnation given
        lambda: events_store.append("acme", 4, [], NOW, "i1"),
        lambda: events_store.read_head("acme"),
        lambda: events_store.get_event("acme", 2),
        lambda: events_store.get_event("acme", 0),  # HEAD is not an event
        lambda: events_store.get_event("acme", 99),
        lambda: events_store.get_event("globex", 2),
        lambda: events_store.read_events("acme", 1, 2, None),
        lambda: events_store.read_events("acme", 0, 10, None),
        lambda: events_store.read_events("acme", 3, 10, None),
        lambda: events_store.read_events("acme", 5, 10, None),
        lambda: events_store.read_events("acme", 1, 10, "b"),
        lambda: events_store.read_events("acme", 1, 1, "a"),
        lambda: events_store.read_events("acme", 1, 10, "none"),
        lambda: events_store.read_events("globex", 1, 10, None),
        lambda: events_store.save_checkpoint("acme", StoredCheckpoint("reader", 2, NOW)),
        lambda: events_store.save_checkpoint("acme", StoredCheckpoint("reader", 3, NOW)),
        lambda: events_store.get_checkpoint("acme", "reader"),
        lambda: events_store.get_checkpoint("acme", "other"),
        lambda: events_store.get_checkpoint("globex", "reader"),
        lambda: stray("acme", 6),
        lambda: events_store.append("acme", 4, [stored("a"), stored("a")], NOW, "i1"),  # 6 is taken
        lambda: events_store.read_head("acme"),
        lambda: events_store.append("acme", 4, [stored("big", blob="x" * 410_000)], NOW, "i1"),
        lambda: events_store.read_head("acme"),
        lambda: events_store.close_stream("acme"),
        lambda: events_store.close_stream("acme"),
        lambda: events_store.read_head("acme"),
        lambda: events_store.append("acme", 4, [stored("a")], NOW, "i1"),
        lambda: events_store.get_event("acme", 4),  # closing keeps the events (the purge removes them)
    ]
    answers = [outcome(call) for call in calls]
    # The bounds, made small: a filtered read that examined two items, a page over its bytes
    monkeypatch.setattr(store, "MAX_EXAMINED_PER_READ", 2)
    answers.append(outcome(lambda: events_store.read_events("acme", 1, 10, "b")))
    answers.append(outcome(lambda: events_store.read_events("acme", 3, 10, "b")))
    answers.append(outcome(lambda: events_store.read_events("acme", 1, 10, "none")))
    monkeypatch.setattr(store, "MAX_EXAMINED_PER_READ", 2000)
    monkeypatch.setattr(store, "MAX_PAGE_BYTES", 200)
    answers.append(outcome(lambda: events_store.read_events("acme", 1, 10, None)))
    return answers


def test_the_in_memory_store_answers_as_the_dynamodb_one(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the same tenants in the Tenants table and in the fake: acme (incarnation i1), one
    # being offboarded
    tenants = clients.table(settings.table_name(settings.TENANTS_TABLE))
    tenants.put_item(Item={"tenant_id": "acme", "status": "active", "incarnation": "i1"})
    tenants.put_item(Item={"tenant_id": "leaving", "status": "offboarding", "incarnation": "i9"})
    fake = InMemoryEvents()
    fake.set_tenant("acme", incarnation="i1")
    fake.set_tenant("leaving", status="offboarding", incarnation="i9")
    events_table = clients.table(settings.table_name(settings.EVENTS_TABLE))

    def stray_in_dynamodb(tenant_id: str, position: int) -> None:
        events_table.put_item(
            Item={
                "tenant_id": tenant_id,
                "position": position,
                "type": "stray",
                "data": "{}",
                "timestamp": "",
                "recorded_at": "",
            }
        )

    # When the same calls are made on each
    with monkeypatch.context() as bounds:
        from_dynamodb = scenario(store.DYNAMODB, stray_in_dynamodb, bounds)
    with monkeypatch.context() as bounds:
        from_fake = scenario(fake, fake.put_stray, bounds)
    # Then they answer the same, call by call: entities with plain ints, and the same errors
    assert len(from_fake) == len(from_dynamodb)
    for number, (dynamodb, in_memory) in enumerate(zip(from_dynamodb, from_fake, strict=True)):
        assert in_memory == dynamodb, f"call {number}"
    # and the DynamoDB answers are what the scenario expects (not two equal mistakes)
    assert from_dynamodb[0] is None and from_dynamodb[1] == ("HeadMissingError",)
    assert from_dynamodb[2] == ("StreamClosedError",) and from_dynamodb[5] == ("StreamClosedError",)
    assert from_dynamodb[8] == [1, 2, 3] and from_dynamodb[9] == ("HeadMovedError", 3)
    assert from_dynamodb[10] == from_dynamodb[11] == ("StreamClosedError",)
    assert from_dynamodb[12] == [4] and from_dynamodb[14] == 4
    assert from_dynamodb[15] == store.StreamEvent(2, "b", {"n": 2}, NOW, NOW)
    assert type(from_dynamodb[15].position) is int
    assert from_dynamodb[19] == store.StreamPage(
        (store.StreamEvent(1, "a", {"n": 1}, NOW, NOW), from_dynamodb[15]), 3
    )
    assert from_dynamodb[29] == StoredCheckpoint("reader", 3, NOW)
    assert from_dynamodb[33] == ("PositionTakenError",) and from_dynamodb[34] == 4
    assert from_dynamodb[35] == ("ItemTooLargeError",)
    assert from_dynamodb[37:41] == [1, 0, None, ("HeadMissingError",)]
    assert from_dynamodb[-4] == store.StreamPage((from_dynamodb[15],), 3)
    assert [event.position for event in from_dynamodb[-3].events] == [4] and from_dynamodb[-3].next_from == 5
    assert from_dynamodb[-2] == store.StreamPage((), 3)
    assert from_dynamodb[-1] == store.StreamPage((store.StreamEvent(1, "a", {"n": 1}, NOW, NOW),), 2)


def test_transactions_take_the_values_the_resource_takes() -> None:
    # Given the values an item may hold
    serializer = TypeSerializer()
    samples: list[Any] = ["", "text", "é", 0, -7, 10**37, 10**38 - 1, True, None, Decimal("1.5"), [1, "a"]]
    samples += [{"nested": {"n": 2}}, b"bytes", {"a", "b"}]
    # When the transaction helper types them / Then exactly as boto3's resource layer does
    for value in samples:
        assert clients._typed(value) == serializer.serialize(value), value
    # and a number DynamoDB cannot hold exactly is refused as the resource refuses it
    with pytest.raises(Exception) as theirs:
        serializer.serialize(10**40)
    with pytest.raises(type(theirs.value)):
        clients._typed(10**40)


# ---------------------------------------------------------------------------------- the logic on the fake


@pytest.fixture
def fake() -> InMemoryEvents:
    found = InMemoryEvents()
    found.set_tenant("acme", incarnation="i1")
    return found


def test_a_publish_opens_the_stream_and_then_appends_in_one_call(fake: InMemoryEvents) -> None:
    # When acme publishes twice
    first = events.append("acme", [EventIn(type="a", data={})], batch=False, incarnation="i1", store=fake)
    second = events.append("acme", [EventIn(type="b", data={})] * 2, batch=True, incarnation="i1", store=fake)
    # Then the positions follow each other, and the warm second publish was one append
    assert (first, second) == ([1], [2, 3])
    assert fake.appends == 2


def test_a_stale_head_is_retried_once_from_the_head_the_failure_returned(fake: InMemoryEvents) -> None:
    # Given acme's warm view of HEAD at 1 while another writer appended 2 and 3
    events.append("acme", [EventIn(type="a", data={})], batch=False, incarnation="i1", store=fake)
    fake.append("acme", 1, [stored("other"), stored("other")], NOW, "i1")
    fake.appends = 0
    pauses: list[float] = []
    # When it publishes
    got = events.append(
        "acme",
        [EventIn(type="mine", data={})],
        batch=False,
        incarnation="i1",
        sleep=pauses.append,
        store=fake,
    )
    # Then it lands at 4 on the second append, with no pause and no re-read
    assert got == [4] and fake.appends == 2 and pauses == []


def test_a_contended_append_is_sent_again_after_a_pause(fake: InMemoryEvents) -> None:
    # Given DynamoDB cancels the next two appends for conflicts with other transactions
    events.append("acme", [EventIn(type="a", data={})], batch=False, incarnation="i1", store=fake)
    fake.fail_next(store.ContendedError(), store.ContendedError())
    pauses: list[float] = []
    # When acme publishes
    got = events.append(
        "acme", [EventIn(type="b", data={})], batch=False, incarnation="i1", sleep=pauses.append, store=fake
    )
    # Then the same append is sent again after a jittered pause each time, and lands once
    assert got == [2] and len(pauses) == 2
    assert [event.type for event in events.read_events("acme", 1, 10, None, store=fake).events] == ["a", "b"]


def test_a_throttled_read_of_a_doubted_head_is_retried_and_the_publish_lands_once(
    fake: InMemoryEvents, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given acme's view of HEAD proved stale once, so its next publish reads HEAD first
    events.append("acme", [EventIn(type="a", data={})], batch=False, incarnation="i1", store=fake)
    fake.append("acme", 1, [stored("other")], NOW, "i1")
    events.append("acme", [EventIn(type="b", data={})], batch=False, incarnation="i1", store=fake)
    fake.append("acme", 3, [stored("other")], NOW, "i1")
    # And that read is throttled past botocore's own attempts
    real_read = fake.read_head
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "GetItem")
    reads: list[str] = []

    def read_head(tenant_id: str) -> int | None:
        reads.append(tenant_id)
        if len(reads) == 1:
            raise throttled
        return real_read(tenant_id)

    monkeypatch.setattr(fake, "read_head", read_head)
    pauses: list[float] = []
    # When acme publishes
    got = events.append(
        "acme", [EventIn(type="c", data={})], batch=False, incarnation="i1", sleep=pauses.append, store=fake
    )
    # Then it paused once, and its event landed once, after the other writer's
    assert got == [5] and len(pauses) == 1
    page = events.read_events("acme", 1, 10, None, store=fake)
    assert [event.type for event in page.events] == ["a", "other", "b", "other", "c"]


def test_an_offboarded_tenants_publish_is_refused_and_writes_nothing(fake: InMemoryEvents) -> None:
    # Given acme's stream closed by offboarding while the tenant is marked offboarding
    events.append("acme", [EventIn(type="a", data={})], batch=False, incarnation="i1", store=fake)
    fake.close_stream("acme")
    fake.set_tenant("acme", status="offboarding", incarnation="i1")
    # When a request authorized before publishes / Then 403 tenant_offboarded, and no stream
    with pytest.raises(events.TenantOffboarded):
        events.append("acme", [EventIn(type="late", data={})], batch=False, incarnation="i1", store=fake)
    assert fake.read_head("acme") is None


def test_checkpoints_stop_at_the_stream_and_read_back(fake: InMemoryEvents) -> None:
    # Given a stream of two events
    events.append("acme", [EventIn(type="a", data={})] * 2, batch=True, incarnation="i1", store=fake)
    # When a checkpoint is saved at 2, and one past the stream is tried
    saved = events.save_checkpoint("acme", "reader", CheckpointIn(position=2), store=fake)
    with pytest.raises(Unprocessable) as past:
        events.save_checkpoint("acme", "reader", CheckpointIn(position=3), store=fake)
    # Then the first reads back as saved, the second named its field, and others are unknown
    assert events.get_checkpoint("acme", "reader", store=fake) == saved
    assert past.value.field == "position"
    with pytest.raises(NotFound):
        events.get_checkpoint("globex", "reader", store=fake)
    assert events.stream_metrics("acme", store=fake).total_events == 2
    assert events.stream_metrics("globex", store=fake).total_events == 0
