"""Offboarding races publishers, over HTTP: after DELETE answers, nothing those publishers wrote
survives, the id is refused until the final purge has run, and the tenant re-created with the
same id starts empty at position 1. (Before: 4 runs of 4 left events behind, and the new stream
answered 409 position_taken.)"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local.stack_process import LocalStack

PUBLISHERS = 12
# Three runs in the suite; RACE_RUNS=25 to stress it (each run is a fresh id, re-created once).
RUNS = int(os.environ.get("RACE_RUNS", "3"))
SETTLE_SECONDS = 1
# Generous bounds on waits for things that happen, never expectations of how fast they happen.
PATIENCE_SECONDS = 60
# What an old publisher may hear once the offboarding started: its write refused (403
# tenant_offboarded), or its key gone (401). Never a 5xx, never a 409 position_taken.
REFUSED = {401, 403}

pytestmark = pytest.mark.local_only("reads the embedded DynamoDB and shortens the final purge's delay")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    from tests.integration.conftest import start_test_stack

    started = start_test_stack(
        tmp_path_factory.mktemp("offboarding-race"),
        extra_args=["--parameter", f"OffboardSettleSeconds={SETTLE_SECONDS}"],
    )
    yield started
    started.stop()


def _publish_until(
    stack: LocalStack, key: str, stop: threading.Event, answers: list[tuple[int, Any]]
) -> None:
    lock = threading.Lock()

    def publisher() -> None:
        while not stop.is_set():
            answer = stack.request("POST", "/events", key=key, body={"type": "race", "data": {}})
            with lock:
                answers.append((answer.status, answer.json))

    threads = [threading.Thread(target=publisher) for _ in range(PUBLISHERS)]
    for thread in threads:
        thread.start()
    try:
        # Given the publishers are under way (some events acknowledged)
        _wait_for(lambda: sum(status == 201 for status, _ in answers) >= PUBLISHERS, "publishes to land")
        # When the tenant is offboarded while they keep publishing
        offboarded = stack.request("DELETE", f"/tenants/{stack_tenant(answers)}", key=stack.admin_key)
        answers.append((-offboarded.status, offboarded.json))
        # (they keep going a moment after the answer, with the old key)
        seen = len(answers)
        _wait_for(lambda: len(answers) >= seen + PUBLISHERS, "publishes after the offboarding")
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def stack_tenant(answers: list[tuple[int, Any]]) -> str:
    return str(answers[0][1]["tenant_id"])


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"waited {PATIENCE_SECONDS} s for {what}"
        time.sleep(0.05)


def _partition(stack: LocalStack, table: str, tenant_id: str) -> list[dict[str, Any]]:
    client = stack.aws_client("dynamodb")
    items: list[dict[str, Any]] = client.query(
        TableName=f"tenantry-local-{table}",
        KeyConditionExpression="tenant_id = :t",
        ExpressionAttributeValues={":t": {"S": tenant_id}},
        ConsistentRead=True,
    )["Items"]
    return items


@pytest.mark.parametrize("run", range(RUNS))
def test_offboarding_under_concurrent_publishers_leaves_nothing_and_the_id_starts_again_at_one(
    stack: LocalStack, run: int
) -> None:
    tenant_id = f"race-{run}"
    # Given a tenant whose key 12 publishers are using
    _, key = stack.create_tenant("enterprise", tenant_id)
    answers: list[tuple[int, Any]] = [(0, {"tenant_id": tenant_id})]
    # When it is offboarded mid-stream
    _publish_until(stack, key, threading.Event(), answers)
    offboarding = next(body for status, body in answers if status == -200)
    # Then every publish got a 201 or a refusal; none failed, none hit a taken position
    statuses = {status for status, _ in answers[1:] if status > 0}
    assert statuses <= {201} | REFUSED, sorted(statuses)
    # (403 is ours, nothing written; or API Gateway's for a key no longer in any usage plan)
    refused = [body for status, body in answers if status == 403]
    odd = [
        body for body in refused if body["error"] != "tenant_offboarded" and body["message"] != "Forbidden"
    ]
    assert not odd, odd
    # And the id is refused while the final purge is pending, saying when it is free
    retry = stack.request(
        "POST", "/tenants", key=stack.admin_key, body={"name": "Again", "tier": "pro", "tenant_id": tenant_id}
    )
    if retry.status == 409:
        assert retry.json["error"] == "tenant_offboarding"
        assert int(retry.headers["retry-after"]) >= 1
        assert offboarding["id_free_after"]

    # When the id is onboarded again once it is free
    def recreated() -> bool:
        nonlocal retry
        if retry.status != 201:
            retry = stack.request(
                "POST",
                "/tenants",
                key=stack.admin_key,
                body={"name": "Again", "tier": "pro", "tenant_id": tenant_id},
            )
        return retry.status == 201

    _wait_for(recreated, "the id to be free again")
    new_key = retry.json["api_key"]
    # Then the new tenant's stream is empty and its first event is at position 1
    page = stack.request("GET", "/events", key=new_key)
    assert page.status == 200 and page.json["events"] == []
    assert stack.request("POST", "/events", key=new_key, body={"type": "new", "data": {}}).json == {
        "position": 1
    }
    # And nothing of the old tenant is left in any of its tables
    events = _partition(stack, "EventsTable", tenant_id)
    assert sorted(int(item["position"]["N"]) for item in events) == [0, 1]
    assert _partition(stack, "IdempotencyTable", tenant_id) == []
    # And the old key still gets nothing written
    old = stack.request("POST", "/events", key=key, body={"type": "late", "data": {}})
    assert old.status in REFUSED
