"""Gapless positions under real concurrency: threads against the embedded DynamoDB and its lock."""

from __future__ import annotations

import threading

import pytest

from local import template
from local.embedded import EmbeddedAws
from tenantry import aws, caches, events
from tenantry.models.events import EventIn
from tenantry.stores import events as store

PUBLISHERS = 50


def _publish_concurrently(tenant_id: str, forget_between: bool) -> tuple[list[int], list[BaseException]]:
    positions: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(PUBLISHERS)

    def publisher(number: int) -> None:
        try:
            start.wait()
            if forget_between:
                # Like 50 cold Lambda sandboxes, each with no head in memory.
                caches.clear_all("tenantry.events.")
            got = events.append(tenant_id, [EventIn(type="concurrent", data={"n": number})], batch=False)
            with lock:
                positions.extend(got)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on below
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=publisher, args=(number,)) for number in range(PUBLISHERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return positions, errors


@pytest.mark.parametrize("cold", [False, True])
def test_fifty_concurrent_publishers_get_exactly_one_to_fifty(embedded: EmbeddedAws, cold: bool) -> None:
    # When 50 threads publish one event each for the same tenant, at the same moment
    positions, errors = _publish_concurrently("acme", forget_between=cold)
    # Then every publish succeeded with a distinct position, and together they are 1..50
    assert errors == []
    assert sorted(positions) == list(range(1, PUBLISHERS + 1))
    page = store.DYNAMODB.read_events("acme", 1, 1000, None)
    assert [event.position for event in page.events] == list(range(1, PUBLISHERS + 1))
    assert page.next_from is None
    assert store.DYNAMODB.read_head("acme") == PUBLISHERS


def test_concurrent_tenants_do_not_interfere(embedded: EmbeddedAws) -> None:
    results: dict[str, list[int]] = {}
    failures: list[BaseException] = []

    def run(tenant_id: str) -> None:
        results[tenant_id], errors = _publish_concurrently(tenant_id, forget_between=False)
        failures.extend(errors)

    threads = [threading.Thread(target=run, args=(tenant_id,)) for tenant_id in ("acme", "globex")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(results["acme"]) == sorted(results["globex"]) == list(range(1, PUBLISHERS + 1))


def test_a_failed_batch_leaves_nothing_behind_in_the_embedded_dynamodb(embedded: EmbeddedAws) -> None:
    # Given a stream at 2 and a stray item at position 4 (the embedded server rolls back per item)
    events.append("acme", [EventIn(type="t", data={}), EventIn(type="t", data={})], batch=True)
    aws.dynamodb_client().put_item(
        TableName=template.local_table_name("EventsTable"),
        Item={"tenant_id": {"S": "acme"}, "position": {"N": "4"}, "stray": {"BOOL": True}},
    )
    # When a batch for positions 3..5 fails on position 4
    with pytest.raises(Exception, match="already taken"):
        events.append("acme", [EventIn(type="new", data={})] * 3, batch=True)
    # Then HEAD is still 2, position 3 and 5 were never written, and the stray item is untouched
    assert store.DYNAMODB.read_head("acme") == 2
    assert store.DYNAMODB.get_event("acme", 3) is None
    assert store.DYNAMODB.get_event("acme", 5) is None
    stray = aws.dynamodb_client().get_item(
        TableName=template.local_table_name("EventsTable"),
        Key={"tenant_id": {"S": "acme"}, "position": {"N": "4"}},
    )["Item"]
    assert stray["stray"] == {"BOOL": True}
