"""A publish with an Idempotency-Key is stored at most once and answered the same every time,
whatever DynamoDB does at any step: refuse a call past botocore's retries, commit it and lose the
answer (botocore sends it again), or commit it and refuse every resend botocore makes.

Each case breaks one DynamoDB call of "send, then send again", found by tracing a clean run, and
the client resends (as clients do after a 5xx, a 409 or a 429) until it gets an answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.retries.standard import ExponentialBackoff

from local import faults as fault_injection
from tenantry import aws as clients
from tenantry import clientconfig, events
from tenantry.stores import receipts
from tests.conftest import HandlerClient, load_function, tenant_context

# Every attempt botocore makes of one call (the functions' client configuration).
ATTEMPTS = int(clientconfig.API["retries"]["total_max_attempts"])
THROTTLED = "ProvisionedThroughputExceededException"
MODES = ("refused past botocore's retries", "committed, answer lost", "committed, every resend refused")
# A client gives up after this many sends; every case here is answered long before.
MAX_SENDS = 12
BODY = {"type": "order.placed", "data": {"order_id": "o-1", "total": 42}}


class Publisher(HandlerClient):
    def send(self, tenant: str, key: str, body: Any = None) -> tuple[int, Any]:
        """One POST /events as API Gateway invokes it; a failed invocation is API Gateway's 502."""
        try:
            status, answer, _ = self.invoke(
                "POST",
                "/events",
                authorizer=tenant_context(tenant, "pro"),
                body=BODY if body is None else body,
                headers={"Idempotency-Key": key},
            )
        except Exception:  # noqa: BLE001 - the function crashed: what the client sees is a 502
            return 502, None
        return status, answer

    def send_until_answered(self, tenant: str, key: str) -> list[tuple[int, Any]]:
        """Sends (and sends again after a 5xx, 409 or 429) until an answer that is not one."""
        sent: list[tuple[int, Any]] = []
        while len(sent) < MAX_SENDS:
            sent.append(self.send(tenant, key))
            if sent[-1][0] < 500 and sent[-1][0] not in (409, 429):
                break
        return sent


@pytest.fixture
def publisher(aws: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Publisher:
    # botocore's backoff before a resend is a real wait (up to 1, 2, 4 s); the outcome is tested
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    return Publisher(load_function("events").lambda_handler, lambda_context)


@pytest.fixture
def injector(publisher: Publisher) -> Iterator[fault_injection.FaultInjector]:
    with fault_injection.activate("seed=1") as active:
        yield active


def _stored(tenant: str) -> list[dict[str, Any]]:
    page = events.read_events(tenant, 1, 100, None)
    return [
        {"position": found.position, "type": found.type, "data": dict(found.data)} for found in page.events
    ]


def _dynamodb_steps(publisher: Publisher, injector: fault_injection.FaultInjector) -> list[str]:
    """The DynamoDB calls of a first send and a resend on a cold tenant, in order."""
    injector.tracing = True
    publisher.send("traced", "k-trace")
    publisher.send("traced", "k-trace")
    injector.tracing = False
    steps = [operation for service, operation in injector.trace if service == "dynamodb"]
    injector.trace.clear()
    return steps


def _break(injector: fault_injection.FaultInjector, operation: str, skip: int, mode: str) -> int:
    """Break the (skip+1)-th ``operation`` call from now the ``mode`` way; the faults registered."""
    if mode == MODES[0]:
        for _ in range(ATTEMPTS):
            injector.fail_once("dynamodb", operation, THROTTLED, skip=skip)
        return ATTEMPTS
    injector.fail_once("dynamodb", operation, "InternalServerError", skip=skip, applied=True)
    if mode == MODES[1]:
        return 1
    for _ in range(ATTEMPTS - 1):
        injector.fail_once("dynamodb", operation, THROTTLED, skip=skip)
    return ATTEMPTS


def test_a_keyed_publish_is_stored_once_and_answered_alike_whatever_fails_at_any_step(
    publisher: Publisher, injector: fault_injection.FaultInjector
) -> None:
    # Given the DynamoDB calls a keyed publish and its resend make (a cold tenant: HEAD's read,
    # the stream's opening, the append with its receipt; then the resend's append and receipt read)
    steps = _dynamodb_steps(publisher, injector)
    assert "TransactWriteItems" in steps, steps
    cases = [(index, mode) for index in range(len(steps)) for mode in MODES]
    for number, (index, mode) in enumerate(cases):
        tenant, key = f"tenant-{number}", f"order-{number}"
        operation = steps[index]
        # And that call broken the mode's way
        registered = _break(injector, operation, steps[:index].count(operation), mode)
        injected_before = sum(injector.injected.values())
        # When the client sends the publish until it is answered, then sends it once more
        first = publisher.send_until_answered(tenant, key)
        again = publisher.send_until_answered(tenant, key)
        # Then the fault did happen
        case = f"step {index} ({operation}), {mode}: {[s for s, _ in first]} then {[s for s, _ in again]}"
        assert sum(injector.injected.values()) - injected_before == registered, case
        # And both were answered 201 with the same position
        assert first[-1] == again[-1] == (201, {"position": 1}), case
        # And exactly one event is stored
        assert _stored(tenant) == [{"position": 1, **BODY}], case


def test_the_same_key_with_another_body_is_refused_even_when_the_first_answer_was_lost(
    publisher: Publisher, injector: fault_injection.FaultInjector
) -> None:
    # Given a keyed publish whose transaction committed but whose every resend botocore made
    # was refused
    publisher.send("acme", "warm-up")
    _break(injector, "TransactWriteItems", 0, MODES[2])
    first = publisher.send_until_answered("acme", "order-7")
    # When the key comes back with another body
    status, answer = publisher.send("acme", "order-7", {"type": "order.placed", "data": {"other": True}})
    # Then it is refused, naming the header, and the stream holds the first body once
    assert first[-1] == (201, {"position": 2})
    assert (status, answer["error"], answer["field"]) == (422, "idempotency_key_reused", "Idempotency-Key")
    assert [stored["data"] for stored in _stored("acme")] == [BODY["data"], BODY["data"]]


def test_under_random_conflicts_and_throttling_every_key_is_stored_once(
    publisher: Publisher, injector: fault_injection.FaultInjector
) -> None:
    # Given a fifth of the transactions cancelled for conflicts and a third of all calls throttled
    injector.spec = fault_injection.FaultSpec.parse("conflict=20%,throttle=30%,seed=22")
    answers: dict[str, set[str]] = {}
    # When 60 keyed publishes are each sent until answered, and once more
    for number in range(60):
        key = f"order-{number}"
        body = {"type": "t", "data": {"number": number}}
        for _ in range(2):
            for _ in range(MAX_SENDS):
                status, answer = publisher.send("acme", key, body)
                if status == 201:
                    answers.setdefault(key, set()).add(json.dumps(answer))
                    break
    injector.spec = fault_injection.FaultSpec()  # the checks read without faults
    # Then the faults did happen, every key got one answer, and each key is stored exactly once
    assert injector.injected["dynamodb:TransactWriteItems:TransactionConflict"] > 5
    assert all(len(found) == 1 for found in answers.values()) and len(answers) == 60
    numbers = [stored["data"]["number"] for stored in _stored("acme")]
    assert sorted(numbers) == list(range(60))


def test_a_receipt_lives_in_the_tenants_partition_beside_nothing_of_another_tenant(
    publisher: Publisher, aws: dict[str, str]
) -> None:
    # When two tenants publish with the same key
    assert publisher.send("acme", "same-key")[0] == publisher.send("globex", "same-key")[0] == 201
    # Then each receipt is under its own tenant's partition key, with the stable public prefix
    items = clients.dynamodb_client().scan(TableName=aws["IdempotencyTable"])["Items"]
    assert sorted(item["tenant_id"]["S"] for item in items) == ["acme", "globex"]
    assert all(item["id"]["S"].startswith(f"{receipts.PREFIX}#") for item in items)
    # And globex's publish landed at its own position 1, not answered by acme's receipt
    assert [stored["position"] for stored in _stored("globex")] == [1]
