"""The event store through the events function: publish, read, metrics, checkpoints, isolation."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tenantry import aws as clients
from tenantry import caches, events, settings, tenancy
from tenantry.errors import PayloadTooLarge
from tenantry.models.events import EventIn
from tenantry.models.tenants import CreateTenantRequest
from tenantry.stores import events as store
from tests.conftest import REPO_ROOT, HandlerClient, load_function, tenant_context


class EventsApi(HandlerClient):
    """Calls the events function the way API Gateway does after the authorizer."""

    def call(
        self, method: str, path: str, tenant: str = "acme", **kwargs: Any
    ) -> tuple[int, Any, dict[str, str]]:
        return self.invoke(method, path, authorizer=tenant_context(tenant, "pro"), **kwargs)

    def publish(self, body: Any, tenant: str = "acme", key: str | None = None) -> tuple[int, Any]:
        headers = {"Idempotency-Key": key} if key else None
        status, answer, _ = self.call("POST", "/events", tenant, body=body, headers=headers)
        return status, answer

    def read(self, tenant: str = "acme", **query: str) -> tuple[int, Any]:
        status, answer, _ = self.call("GET", "/events", tenant, query=query or None)
        return status, answer

    def event(self, position: str, tenant: str = "acme") -> tuple[int, Any]:
        status, answer, _ = self.call(
            "GET",
            f"/events/{position}",
            tenant,
            resource="/events/{position}",
            path_parameters={"position": position},
        )
        return status, answer

    def total(self, tenant: str = "acme") -> int:
        _, answer, _ = self.call("GET", "/metrics", tenant)
        return int(answer["total_events"])

    def checkpoint(self, name: str, tenant: str = "acme", position: Any = None) -> tuple[int, Any]:
        method = "GET" if position is None else "PUT"
        body = None if position is None else {"position": position}
        status, answer, _ = self.call(
            method,
            f"/consumers/{name}",
            tenant,
            resource="/consumers/{name}",
            path_parameters={"name": name},
            body=body,
        )
        return status, answer


@pytest.fixture
def api(aws: dict[str, str], lambda_context: Any) -> Iterator[EventsApi]:
    yield EventsApi(load_function("events").lambda_handler, lambda_context)


@pytest.fixture
def round_trips(dynamodb_calls: list[str]) -> list[str]:
    """Every DynamoDB call of the function role's and the tenants' scoped clients, by operation."""
    return dynamodb_calls


def event(kind: str = "order.placed", **data: Any) -> dict[str, Any]:
    return {"type": kind, "data": data or {"n": 1}}


# ---------------------------------------------------------------------------------- publishing


def test_two_tenants_both_start_at_one(api: EventsApi) -> None:
    # When two tenants publish
    first = api.publish(event(), "acme")
    second = api.publish(event(), "acme")
    other = api.publish(event(), "globex")
    # Then each stream has its own positions, from 1
    assert first == (201, {"position": 1})
    assert second == (201, {"position": 2})
    assert other == (201, {"position": 1})


def test_batch_gets_consecutive_positions(api: EventsApi) -> None:
    api.publish(event())
    status, answer = api.publish({"events": [event("a"), event("b"), event("c")]})
    assert (status, answer) == (201, {"positions": [2, 3, 4]})
    assert api.total() == 4


def test_event_is_stored_with_its_timestamp_and_recorded_at(api: EventsApi) -> None:
    # Given an event with an offset timestamp, and one without
    api.publish(
        {"type": "t", "data": {"x": 1.5, "nested": {"a": [1, 2]}}, "timestamp": "2026-11-24T12:00:00+02:00"}
    )
    api.publish({"type": "t", "data": {}})
    # When they are read back
    _, first = api.event("1")
    _, second = api.event("2")
    # Then the data is exact, the timestamp normalised to UTC, and the server set recorded_at
    assert first["data"] == {"x": 1.5, "nested": {"a": [1, 2]}}
    assert first["timestamp"] == "2026-11-24T10:00:00.000Z"
    assert first["recorded_at"].endswith("Z")
    assert second["timestamp"] == second["recorded_at"]


def test_steady_state_publish_is_one_round_trip(api: EventsApi, round_trips: list[str]) -> None:
    # Given a warm function that has published before
    api.publish(event())
    round_trips.clear()
    # When it publishes again, singly and in a batch
    api.publish(event())
    api.publish({"events": [event(), event()]})
    # Then each publish was exactly one TransactWriteItems
    assert round_trips == ["TransactWriteItems", "TransactWriteItems"]


def test_a_competing_writer_forces_a_retry(api: EventsApi, round_trips: list[str]) -> None:
    # Given this function believes the head is 1, while another writer appended position 2
    api.publish(event())
    store.DYNAMODB.append("acme", 1, [store.StoredEvent("other.writer", "{}", "t", "t")], "t")
    round_trips.clear()
    # When this function publishes
    status, answer = api.publish(event("mine"))
    # Then its conditional write failed, returned the current head, and the retry landed on 3
    assert (status, answer) == (201, {"position": 3})
    assert round_trips == ["TransactWriteItems", "TransactWriteItems"]  # the failed check returned HEAD
    _, page = api.read()
    assert [item["position"] for item in page["events"]] == [1, 2, 3]


def test_a_view_proved_stale_is_checked_by_a_read_until_it_is_right_again(
    api: EventsApi, round_trips: list[str]
) -> None:
    # Given this function's view of the head proved stale once (another writer appended)
    api.publish(event())
    store.DYNAMODB.append("acme", 1, [store.StoredEvent("other.writer", "{}", "t", "t")], "t")
    api.publish(event("mine"))
    # And the other writer appends again
    store.DYNAMODB.append("acme", 3, [store.StoredEvent("other.writer", "{}", "t", "t")], "t")
    round_trips.clear()
    # When this function publishes three times
    first = api.publish(event("mine"))
    second = api.publish(event("mine"))
    third = api.publish(event("mine"))
    # Then the first read HEAD before writing, instead of sending a transaction bound to fail
    assert first == (201, {"position": 5})
    assert round_trips[:2] == ["GetItem", "TransactWriteItems"]
    # And the second read it again, and found the view right (nobody else wrote in between)
    assert second == (201, {"position": 6})
    assert round_trips[2:4] == ["GetItem", "TransactWriteItems"]
    # So the third trusted the view again: one write, no read
    assert third == (201, {"position": 7})
    assert round_trips[4:] == ["TransactWriteItems"]
    _, page = api.read()
    assert [item["position"] for item in page["events"]] == [1, 2, 3, 4, 5, 6, 7]


def test_a_publish_whose_committed_answer_was_lost_is_stored_once(api: EventsApi, faults: Any) -> None:
    # Given a stream at position 1, and a table that commits the next transaction but answers it
    # with an internal error, which botocore sends again by itself (the same ClientRequestToken)
    api.publish(event())
    injector = faults("")
    injector.fail_once("dynamodb", "TransactWriteItems", "InternalServerError", applied=True)
    # When the tenant publishes
    status, answer = api.publish(event("lost.answer"))
    # Then DynamoDB took the resend as the same transaction: one event, at the answered position
    assert injector.injected == {"dynamodb:TransactWriteItems:InternalServerError": 1}
    assert (status, answer) == (201, {"position": 2})
    _, page = api.read()
    assert [(item["position"], item["type"]) for item in page["events"]] == [
        (1, "order.placed"),
        (2, "lost.answer"),
    ]
    assert api.total() == 2


def test_batch_is_all_or_none(api: EventsApi, aws: dict[str, str]) -> None:
    # Given a stream at 1 and a stray item already at position 3
    api.publish(event())
    clients.dynamodb_client().put_item(
        TableName=aws["EventsTable"],
        Item={"tenant_id": {"S": "acme"}, "position": {"N": "3"}, "stray": {"BOOL": True}},
    )
    # When a batch that would take positions 2, 3 and 4 is published
    status, answer = api.publish({"events": [event(), event(), event()]})
    # Then the put at 3 fails its condition, and nothing of the batch is stored
    assert status == 409
    assert answer["error"] == "position_taken"
    assert api.event("2")[0] == 404
    assert api.event("4")[0] == 404
    assert api.total() == 1


# ---------------------------------------------------------------------------------- idempotency


def test_same_idempotency_key_and_body_returns_the_first_answer(api: EventsApi) -> None:
    first = api.publish(event(), key="order-1")
    again = api.publish(event(), key="order-1")
    assert first == again == (201, {"position": 1})
    assert api.total() == 1


def test_same_idempotency_key_with_another_body_is_refused(api: EventsApi) -> None:
    api.publish(event(n=1), key="order-1")
    status, answer = api.publish(event(n=2), key="order-1")
    assert status == 422
    assert answer["error"] == "idempotency_key_reused"
    assert answer["field"] == "Idempotency-Key"
    assert api.total() == 1


def test_idempotency_keys_are_per_tenant(api: EventsApi) -> None:
    api.publish(event(), "acme", key="same-key")
    api.publish(event(), "acme")
    # Another tenant using the same key publishes for real, at its own position 1
    assert api.publish(event(), "globex", key="same-key") == (201, {"position": 1})
    assert api.total("globex") == 1


def test_a_warm_keyed_publish_is_one_round_trip(api: EventsApi, round_trips: list[str]) -> None:
    # Given a warm function that has published before
    api.publish(event())
    round_trips.clear()
    # When it publishes with an Idempotency-Key
    assert api.publish(event(), key="order-1") == (201, {"position": 2})
    # Then the events and their receipt went in one transaction, and nothing else was called
    assert round_trips == ["TransactWriteItems"]


def test_a_keyed_batch_leaves_the_transactions_last_place_to_its_receipt(api: EventsApi) -> None:
    # When a keyed batch of 99 events (HEAD, 99 events and a receipt would be 101 items) is sent
    status, answer = api.publish({"events": [event()] * events.MAX_KEYED_BATCH + [event()]}, key="b-1")
    # Then it is refused, naming the field, and 98 with a key, or 99 without, are stored
    assert (status, answer["field"]) == (422, "events")
    assert api.publish({"events": [event()] * events.MAX_KEYED_BATCH}, key="b-2")[0] == 201
    assert api.publish({"events": [event()] * (events.MAX_KEYED_BATCH + 1)})[0] == 201
    assert api.total() == 2 * events.MAX_KEYED_BATCH + 1


def test_a_record_an_earlier_release_left_in_progress_answers_409_until_its_invocation_ended(
    api: EventsApi, aws: dict[str, str]
) -> None:
    # Given Powertools' in-progress record of an earlier release's publish, its invocation running
    from tenantry.stores import receipts

    now = int(time.time())
    record_id = receipts.record_id("acme", "order-1")
    item = {
        "tenant_id": {"S": "acme"},
        "id": {"S": record_id},
        "status": {"S": "INPROGRESS"},
        "expiration": {"N": str(now + 3600)},
        "in_progress_expiration": {"N": str((now + 60) * 1000)},
        "validation": {"S": receipts.payload_hash(event())},
    }
    clients.dynamodb_client().put_item(TableName=aws["IdempotencyTable"], Item=item)
    # When the key comes back
    status, answer = api.publish(event(), key="order-1")
    # Then it is 409 with Retry-After, and nothing was stored
    assert (status, answer["error"]) == (409, "idempotency_in_progress")
    assert api.total() == 0
    # And once that invocation's time is over, the key publishes, once
    item["in_progress_expiration"] = {"N": str((now - 1) * 1000)}
    clients.dynamodb_client().put_item(TableName=aws["IdempotencyTable"], Item=item)
    assert (
        api.publish(event(), key="order-1") == api.publish(event(), key="order-1") == (201, {"position": 1})
    )
    assert api.total() == 1


def test_a_receipt_past_its_24_hours_no_longer_answers(api: EventsApi, aws: dict[str, str]) -> None:
    # Given a receipt whose 24 h are over (moto never expires it by TTL)
    assert api.publish(event(), key="order-1") == (201, {"position": 1})
    table = clients.dynamodb().Table(aws["IdempotencyTable"])
    (receipt,) = table.scan()["Items"]
    table.update_item(
        Key={"tenant_id": receipt["tenant_id"], "id": receipt["id"]},
        UpdateExpression="SET expiration = :past",
        ExpressionAttributeValues={":past": int(time.time()) - 1},
    )
    # When the key comes back, then it is a new publish
    assert api.publish(event(), key="order-1") == (201, {"position": 2})


def test_a_powertools_record_of_an_earlier_release_still_answers(
    api: EventsApi, aws: dict[str, str], lambda_context: Any
) -> None:
    # Given a publish recorded by Powertools' idempotency, as earlier releases did
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    layer = DynamoDBPersistenceLayer(
        table_name=aws["IdempotencyTable"], key_attr="tenant_id", sort_key_attr="id", static_pk_value="acme"
    )
    config = IdempotencyConfig(
        event_key_jmespath="[tenant_id, idempotency_key]", payload_validation_jmespath="body"
    )

    config.register_lambda_context(lambda_context)

    @idempotent_function(
        data_keyword_argument="request", persistence_store=layer, config=config, key_prefix="publish"
    )
    def earlier_release(request: dict[str, Any]) -> dict[str, Any]:
        return {"position": 7}

    earlier_release(request={"tenant_id": "acme", "idempotency_key": "order-1", "body": event()})
    # When the same key and body come to this release, then its answer is replayed, nothing stored
    assert api.publish(event(), key="order-1") == (201, {"position": 7})
    assert api.total() == 0
    # And another body with that key is refused
    assert api.publish(event(n=2), key="order-1")[0] == 422


def test_bad_idempotency_key_is_422(api: EventsApi) -> None:
    status, answer = api.publish(event(), key="has spaces")
    assert status == 422
    assert answer["errors"][0]["field"].lower() == "idempotency-key"
    assert api.total() == 0


# ---------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "bad type!", "data": {}}, "type"),
        ({"type": "", "data": {}}, "type"),
        ({"type": "x" * 129, "data": {}}, "type"),
        ({"type": "t", "data": [1, 2]}, "data"),
        ({"type": "t", "data": "text"}, "data"),
        ({"type": "t"}, "data"),
        ({"data": {}}, "type"),
        ({"type": "t", "data": {}, "timestamp": "yesterday"}, "timestamp"),
        ({"type": "t", "data": {}, "timestamp": "2026-11-24T10:00:00"}, "timestamp"),
        ({"type": "t", "data": {}, "timestamp": "2026-11-24"}, "timestamp"),
        ({"type": "t", "data": {}, "timestamp": 1700000000}, "timestamp"),
        ({"type": "t", "data": {}, "extra": 1}, "extra"),
        ({"events": []}, "events"),
        ({"events": [event()] * 100}, "events"),
        ({"events": [event(), {"type": "t"}]}, "events.1.data"),
        ({"events": "nope"}, "events"),
    ],
)
def test_invalid_events_are_422_naming_the_field(api: EventsApi, body: Any, field: str) -> None:
    status, answer = api.publish(body)
    assert status == 422, answer
    assert answer["field"] == field
    assert api.total() == 0


def test_non_object_body_is_422(api: EventsApi) -> None:
    status, _, _ = api.call("POST", "/events", raw_body="[1, 2]")
    assert status == 422
    assert api.total() == 0


def test_malformed_json_is_400(api: EventsApi) -> None:
    status, answer, _ = api.call("POST", "/events", raw_body='{"type": "t", "data": ')
    assert status == 400
    assert answer["error"] == "malformed_json"
    assert api.total() == 0


def test_body_over_256_kb_is_413(api: EventsApi) -> None:
    status, answer = api.publish({"type": "t", "data": {"blob": "x" * (256 * 1024)}})
    assert status == 413
    assert answer["error"] == "payload_too_large"
    assert api.total() == 0


def test_event_over_the_item_limit_is_refused_before_writing() -> None:
    huge = EventIn(type="t", data={"blob": "x" * (400 * 1024)})
    with pytest.raises(PayloadTooLarge) as raised:
        events.append("acme", [huge], batch=True)
    assert raised.value.field == "events.0.data"


# ---------------------------------------------------------------------------------- reading


def test_reads_page_with_next_from(api: EventsApi) -> None:
    api.publish({"events": [event(n=index) for index in range(5)]})
    status, first = api.read(limit="2")
    assert status == 200
    assert [item["position"] for item in first["events"]] == [1, 2]
    assert first["next_from"] == 3
    _, last = api.read(**{"from": "5", "limit": "2"})
    assert [item["position"] for item in last["events"]] == [5]
    assert last["next_from"] is None
    _, exact = api.read(**{"from": "4", "limit": "2"})
    assert exact["next_from"] is None
    _, beyond = api.read(**{"from": "99"})
    assert beyond == {"events": [], "next_from": None}


def test_type_filter_pages_correctly(api: EventsApi) -> None:
    # Given a stream where the wanted type is every third event
    api.publish({"events": [event("wanted" if index % 3 == 0 else "other") for index in range(30)]})
    # When it is read two at a time, following next_from
    positions: list[int] = []
    start: int | None = 1
    while start is not None:
        _, page = api.read(**{"from": str(start), "limit": "2", "type": "wanted"})
        assert all(item["type"] == "wanted" for item in page["events"])
        positions += [item["position"] for item in page["events"]]
        start = page["next_from"]
    # Then every wanted event came exactly once, in order
    assert positions == list(range(1, 31, 3))


@pytest.mark.parametrize(
    "query", [{"from": "0"}, {"limit": "0"}, {"limit": "1001"}, {"from": "x"}, {"type": "a b"}]
)
def test_bad_read_parameters_are_422(api: EventsApi, query: dict[str, str]) -> None:
    status, answer = api.read(**query)
    assert status == 422
    assert answer["errors"][0]["field"] in ("from", "limit", "type")


def test_unknown_position_is_404_and_head_is_not_an_event(api: EventsApi) -> None:
    api.publish(event())
    assert api.event("2")[0] == 404
    assert api.event("0")[0] == 422
    assert api.event("abc")[0] == 422


def test_another_tenants_events_do_not_exist_for_you(api: EventsApi) -> None:
    # Given acme's stream
    api.publish(event(secret="acme-only"))
    # When globex reads, lists and asks for acme's position
    assert api.event("1", "globex")[0] == 404
    assert api.read("globex")[1] == {"events": [], "next_from": None}
    assert api.total("globex") == 0
    # And globex's own publish does not touch acme's stream
    api.publish(event(), "globex")
    assert api.event("1")[1]["data"] == {"secret": "acme-only"}


def test_metrics_counts_the_stream(api: EventsApi) -> None:
    api.publish({"events": [event(), event()]})
    _, answer, _ = api.call("GET", "/metrics")
    assert answer["tenant"] == "acme"
    assert answer["total_events"] == 2
    assert isinstance(answer["timestamp"], int)


# ---------------------------------------------------------------------------------- checkpoints


def test_checkpoints_are_saved_read_and_private(api: EventsApi) -> None:
    api.publish({"events": [event(), event(), event()]})
    status, saved = api.checkpoint("billing", position=2)
    assert status == 200
    assert saved["position"] == 2
    assert api.checkpoint("billing")[1]["position"] == 2
    # Another tenant has no such checkpoint, and cannot overwrite acme's
    assert api.checkpoint("billing", "globex")[0] == 404
    assert api.checkpoint("billing", "globex", position=0)[0] == 200
    assert api.checkpoint("billing")[1]["position"] == 2


@pytest.mark.parametrize(("name", "position"), [("bad name", 1), ("n", -1), ("n", "one"), ("n", 99)])
def test_bad_checkpoints_are_422(api: EventsApi, name: str, position: Any) -> None:
    api.publish(event())
    status, _ = api.checkpoint(name, position=position)
    assert status == 422


def test_unknown_checkpoint_is_404(api: EventsApi) -> None:
    assert api.checkpoint("never-saved")[0] == 404


# ---------------------------------------------------------------------------------- offboarding


def test_offboarding_purges_the_stream_and_a_new_tenant_starts_at_one(
    api: EventsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a tenant with events, an idempotency record and a checkpoint (and no wait for the
    # final purge: tests/unit/test_offboarding.py covers it)
    monkeypatch.setenv(settings.OFFBOARD_SETTLE_SECONDS, "0")
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="pro", tenant_id="acme"))
    api.publish({"events": [event(), event()]}, key="k-1")
    api.checkpoint("reader", position=1)
    # When it is offboarded
    result = tenancy.offboard_tenant("acme", None)
    # Then its stream, HEAD, checkpoint and idempotency record are gone
    assert result.items_deleted["EventsTable"] == 3
    assert result.items_deleted["ConsumersTable"] == 1
    assert result.items_deleted["IdempotencyTable"] == 1
    # And a tenant re-created with the same id starts at 1, although this warm function remembered 2
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="pro", tenant_id="acme"))
    assert api.publish(event()) == (201, {"position": 1})
    assert api.publish(event(), key="k-1") == (201, {"position": 2})


# ---------------------------------------------------------------------------------- sample events


@pytest.mark.parametrize(
    ("sample", "status"), [("event-publish", 201), ("event-batch", 201), ("event-read", 200)]
)
def test_sample_events_run_through_the_handler(api: EventsApi, sample: str, status: int) -> None:
    payload = json.loads((REPO_ROOT / "events" / f"{sample}.json").read_text())
    response = api.handler(payload, api.context)
    assert response["statusCode"] == status, response["body"]


def test_a_publish_throttled_past_the_sdk_retries_is_retried_within_the_deadline(
    api: EventsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given DynamoDB throttles the first two transactions past the SDK's own retries
    from botocore.exceptions import ClientError

    real_append = store.DYNAMODB.append
    failures = iter([True, True])

    def throttled_twice(*args: Any, **kwargs: Any) -> list[int]:
        if next(failures, False):
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "TransactWriteItems")  # type: ignore[arg-type]
        return real_append(*args, **kwargs)

    monkeypatch.setattr(store.DYNAMODB, "append", throttled_twice)
    # When an event is published / Then it is stored once, at position 1, with no error
    assert api.publish(event()) == (201, {"position": 1})
    assert api.total() == 1


# ---------------------------------------------------------------------------------- bounded reads


def test_a_type_filter_examines_a_bounded_number_of_events_and_gives_a_cursor(
    api: EventsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given more events of another type than one read examines (the bound made small, so the
    # test writes hundreds of events, not thousands), then one of the wanted type
    monkeypatch.setattr(store, "MAX_EXAMINED_PER_READ", 150)
    other = store.MAX_EXAMINED_PER_READ + 50
    for start in range(0, other, 99):
        events.append("acme", [EventIn(type="noise", data={})] * min(99, other - start), batch=True)
    events.append("acme", [EventIn(type="wanted", data={"n": 1})], batch=False)
    # When the wanted type is read from the start
    status, first = api.read(type="wanted", limit="10")
    # Then the first page stops after the bounded examination, empty, with a cursor past it
    assert status == 200
    assert first == {"events": [], "next_from": store.MAX_EXAMINED_PER_READ + 1}
    # and following the cursor finds the event, and then the end
    status, second = api.read(type="wanted", limit="10", **{"from": str(first["next_from"])})
    assert [event["position"] for event in second["events"]] == [other + 1]
    assert second["next_from"] is None


def test_a_page_is_capped_by_bytes_and_the_cursor_resumes_exactly(
    api: EventsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a page cap of 600 KB and 16 events of ~100 KB each
    monkeypatch.setattr(store, "MAX_PAGE_BYTES", 600 * 1024)
    blob = "x" * (100 * 1024)
    for number in range(16):
        events.append("acme", [EventIn(type="big", data={"n": number, "blob": blob})], batch=False)
    # When the stream is read page by page with the largest limit
    pages = []
    start = 1
    while True:
        status, page = api.read(limit="1000", **{"from": str(start)})
        assert status == 200
        pages.append(page)
        if page["next_from"] is None:
            break
        start = page["next_from"]
    # Then no page's events exceed the byte cap, several pages were needed, and together the
    # pages hold every event once, in order
    assert len(pages) >= 3
    for page in pages:
        assert len(json.dumps(page["events"], separators=(",", ":"))) <= store.MAX_PAGE_BYTES
    positions = [event["position"] for page in pages for event in page["events"]]
    assert positions == list(range(1, 17))


def test_to_bounds_a_read_inclusively(api: EventsApi) -> None:
    # Given a stream of 6 events, every other one of type "wanted"
    api.publish({"events": [event("wanted" if index % 2 == 0 else "other") for index in range(6)]})
    # When it is read up to 3
    status, page = api.read(to="3")
    # Then it holds 1, 2 and 3 and nothing follows within the range
    assert status == 200
    assert [item["position"] for item in page["events"]] == [1, 2, 3]
    assert page["next_from"] is None
    # And a page cut by its limit inside the range resumes inside it, to its last position only
    _, first = api.read(to="3", limit="2")
    assert ([item["position"] for item in first["events"]], first["next_from"]) == ([1, 2], 3)
    _, rest = api.read(to="3", limit="2", **{"from": "3"})
    assert ([item["position"] for item in rest["events"]], rest["next_from"]) == ([3], None)
    # And from == to is that one event; to past the end is the rest of the stream
    assert [item["position"] for item in api.read(to="5", **{"from": "5"})[1]["events"]] == [5]
    assert [item["position"] for item in api.read(to="99", **{"from": "5"})[1]["events"]] == [5, 6]
    # And with a type filter, only that type within the range
    _, wanted = api.read(to="4", type="wanted")
    assert [item["position"] for item in wanted["events"]] == [1, 3]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"to": "0"}, "to"), ({"to": "x"}, "to"), ({"to": "1.5"}, "to"), ({"from": "5", "to": "4"}, "to")],
)
def test_a_bad_to_is_422_naming_it(api: EventsApi, query: dict[str, str], field: str) -> None:
    api.publish(event())
    status, answer = api.read(**query)
    assert status == 422
    assert answer["field"] == field


def test_a_filtered_read_bounded_by_to_has_no_cursor_past_it(
    api: EventsApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a read examines at most 10 items, and 30 events none of which is wanted
    monkeypatch.setattr(store, "MAX_EXAMINED_PER_READ", 10)
    api.publish({"events": [event("noise") for _ in range(30)]})
    # When the wanted type is read up to exactly what one read examines
    _, bounded = api.read(type="wanted", to="10")
    # Then the range is done: no cursor beyond `to`
    assert bounded == {"events": [], "next_from": None}
    # While a longer range gives a cursor to resume within it
    assert api.read(type="wanted", to="25")[1] == {"events": [], "next_from": 11}


# ---------------------------------------------------------------------------------- expected position


def test_an_append_at_the_expected_position_lands_in_one_round_trip(
    api: EventsApi, round_trips: list[str]
) -> None:
    # Given an empty stream and a cold function (nothing known about the stream)
    assert api.publish({**event(), "expected_position": 0}) == (201, {"position": 1})
    caches.clear_all("tenantry.events.")
    round_trips.clear()
    # When a writer appends after position 1, singly, then a batch after 2
    single = api.publish({**event(), "expected_position": 1})
    batch = api.publish({"events": [event(), event()], "expected_position": 2})
    # Then each landed where expected, each one TransactWriteItems and no read of HEAD first
    assert single == (201, {"position": 2})
    assert batch == (201, {"positions": [3, 4]})
    assert round_trips == ["TransactWriteItems", "TransactWriteItems"]


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_a_stale_expected_position_is_409_with_the_current_one_and_stores_nothing(
    api: EventsApi, round_trips: list[str], batch: bool
) -> None:
    # Given a stream at 3
    api.publish({"events": [event(), event(), event()]})
    round_trips.clear()
    # When a writer that read up to 2 appends conditionally
    body: dict[str, Any] = {"events": [event("late"), event("late")]} if batch else event("late")
    status, answer = api.publish({**body, "expected_position": 2})
    # Then it is refused with the current position, in one round trip (the failed condition
    # returned HEAD), and the stream is unchanged
    assert status == 409
    assert answer["error"] == "wrong_expected_position"
    assert answer["current_position"] == 3
    assert answer["field"] == "expected_position"
    assert answer["message"] and answer["request_id"]
    assert round_trips == ["TransactWriteItems"]
    assert api.total() == 3
    assert api.event("4")[0] == 404
    # And the position it was told is the one that works
    assert api.publish({**body, "expected_position": 3})[0] == 201


def test_an_expected_position_on_a_stream_never_written_is_0(api: EventsApi) -> None:
    # When a writer expects events in a stream that has none / Then 409 says it is empty
    status, answer = api.publish({**event(), "expected_position": 5})
    assert (status, answer["current_position"]) == (409, 0)
    assert api.total() == 0
    # And expecting the empty stream opens it and appends at 1
    assert api.publish({**event(), "expected_position": 0}) == (201, {"position": 1})
    # And expecting it empty again is now stale
    assert api.publish({**event(), "expected_position": 0})[1]["current_position"] == 1


def test_a_conflict_cancellation_is_retried_at_the_same_expected_position(
    api: EventsApi, faults: Any, round_trips: list[str]
) -> None:
    # Given a stream at 1, and DynamoDB cancelling the next transaction for a conflict
    api.publish(event())
    injector = faults("")
    injector.fail_once("dynamodb", "TransactWriteItems", "TransactionConflict")
    # When a writer appends after 1
    status, answer = api.publish({**event(), "expected_position": 1})
    # Then it was retried (nothing had been written) and landed at 2
    assert injector.injected == {"dynamodb:TransactWriteItems:TransactionConflict": 1}
    assert (status, answer) == (201, {"position": 2})
    assert api.total() == 2


def test_a_resent_conditional_publish_answers_its_first_result_not_409(api: EventsApi) -> None:
    # Given a keyed conditional publish that landed at 1
    body = {**event(), "expected_position": 0}
    assert api.publish(body, key="order-1") == (201, {"position": 1})
    # When the client, unsure it landed, sends it again (the stream is no longer at 0)
    again = api.publish(body, key="order-1")
    # Then it gets the first answer, not wrong_expected_position, and nothing more is stored
    assert again == (201, {"position": 1})
    assert api.total() == 1
    # And the same key with another expected position is another body: refused
    status, answer = api.publish({**event(), "expected_position": 1}, key="order-1")
    assert (status, answer["error"]) == (422, "idempotency_key_reused")
    # And a new key with the stale position is a 409 like any other
    stale = api.publish(body, key="order-2")
    assert (stale[0], stale[1]["error"]) == (409, "wrong_expected_position")


def test_a_conditional_batch_resent_after_its_answer_was_lost_is_answered_once(
    api: EventsApi, faults: Any
) -> None:
    # Given a table that commits the next transaction but loses its answer
    injector = faults("")
    injector.fail_once("dynamodb", "TransactWriteItems", "InternalServerError", applied=True)
    # When a keyed conditional batch is published
    body = {"events": [event(), event()], "expected_position": 0}
    first = api.publish(body, key="batch-1")
    # Then botocore's resend was taken as the same transaction, and a client's resend too
    assert first == (201, {"positions": [1, 2]})
    assert api.publish(body, key="batch-1") == (201, {"positions": [1, 2]})
    assert api.total() == 2


@pytest.mark.parametrize("value", [-1, "1", True, 1.5, 2**53])
def test_a_bad_expected_position_is_422_naming_it(api: EventsApi, value: Any) -> None:
    for body in ({**event(), "expected_position": value}, {"events": [event()], "expected_position": value}):
        status, answer = api.publish(body)
        assert status == 422
        assert answer["field"] == "expected_position"
    assert api.total() == 0


def test_an_integral_expected_position_is_an_integer(api: EventsApi) -> None:
    assert api.publish({**event(), "expected_position": 0.0}) == (201, {"position": 1})


def test_an_expected_position_inside_a_batchs_event_is_refused(api: EventsApi) -> None:
    status, answer = api.publish({"events": [{**event(), "expected_position": 0}]})
    assert status == 422
    assert answer["field"] == "events.0.expected_position"
