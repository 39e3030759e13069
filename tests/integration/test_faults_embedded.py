"""The write paths under AWS's failure modes: the embedded DynamoDB with FAULTS at 20 % conflicts
and 20 % throttling, real threads, real HTTP into the embedded server (as ``make dev FAULTS=…``)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from local import faults, template
from local.embedded import EmbeddedAws
from tenantry import aws, caches, chat, credentials, deadline, events, retry, tenancy
from tenantry.models.chat import ChatAnswer, ChatRequest
from tenantry.models.events import EventIn
from tenantry.models.tenants import CreateTenantRequest
from tenantry.stores import conversations
from tenantry.stores import events as store
from tests.conftest import FakeLambdaContext
from tests.fakes.anthropic_server import fake_anthropic

FAULTS = "conflict=20%,throttle=20%,seed=11"
PUBLISHERS = 50
CHATTERS = 20


def _start(spec: str, monkeypatch: pytest.MonkeyPatch) -> EmbeddedAws:
    server = EmbeddedAws(fault_spec=faults.FaultSpec.parse(spec))
    server.start()
    for variable, value in server.process_env().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("USAGE_PLAN_NAME_PREFIX", template.LOCAL_STACK_NAME)
    # As the template gives the tenant-facing functions: their data access is tenant-scoped.
    monkeypatch.setenv(
        credentials.ROLE_ARN_ENV,
        f"arn:aws:iam::{template.ACCOUNT_ID}:role/{template.LOCAL_STACK_NAME}-tenant-data",
    )
    caches.clear_all()
    return server


@pytest.fixture
def embedded_with(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], EmbeddedAws]]:
    started: list[EmbeddedAws] = []

    def start(spec: str) -> EmbeddedAws:
        server = _start(spec, monkeypatch)
        started.append(server)
        return server

    try:
        yield start
    finally:
        caches.clear_all()
        for server in started:
            server.stop()


def _stop_faults(server: EmbeddedAws) -> None:
    """No more faults: the test's own checks read what is stored."""
    assert server.fault_injector is not None
    server.fault_injector.spec = faults.FaultSpec(seed=server.fault_injector.spec.seed)


def _run_all(count: int, work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def run(number: int) -> None:
        try:
            barrier.wait()
            result = work(number)
            with lock:
                results.append(result)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(number,)) for number in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_over_http_a_conflict_has_dynamodbs_shape_and_no_spec_wraps_nothing(
    embedded_with: Callable[[str], EmbeddedAws],
) -> None:
    # Given the embedded server with conflicts on every transaction
    server = embedded_with("conflict=100%")
    table = template.local_table_name("EventsTable")
    item = {"tenant_id": {"S": "acme"}, "position": {"N": "1"}}
    # When a transaction is sent over HTTP
    with pytest.raises(ClientError) as caught:
        aws.dynamodb_client().transact_write_items(
            TransactItems=[{"Put": {"TableName": table, "Item": item}}]
        )
    # Then it is DynamoDB's cancellation, and nothing reached moto
    assert caught.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert caught.value.response["CancellationReasons"] == [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
    ]
    assert aws.dynamodb_client().scan(TableName=table)["Count"] == 0
    assert server.fault_injector is not None
    assert server.fault_injector.injected["dynamodb:TransactWriteItems:TransactionConflict"] == 1


def test_a_publish_whose_committed_answer_was_lost_is_stored_once_in_the_embedded_server(
    embedded_with: Callable[[str], EmbeddedAws],
) -> None:
    # Given the embedded server, a stream at position 1, and the next transaction applied by the
    # server but answered with an internal error (botocore sends it again, over HTTP)
    server = embedded_with("conflict=0%")  # the fault middleware in place, deciding nothing itself
    events.append("acme", [EventIn(type="first", data={})], batch=False)
    assert server.fault_injector is not None
    server.fault_injector.fail_once("dynamodb", "TransactWriteItems", "InternalServerError", applied=True)
    # When the tenant publishes
    positions = events.append("acme", [EventIn(type="lost.answer", data={})], batch=False)
    # Then the resend, with the same ClientRequestToken, was answered as the committed transaction
    assert server.fault_injector.injected == {"dynamodb:TransactWriteItems:InternalServerError": 1}
    assert positions == [2]
    page = store.DYNAMODB.read_events("acme", 1, 10, None)
    assert [(found.position, found.type) for found in page.events] == [(1, "first"), (2, "lost.answer")]
    assert store.DYNAMODB.read_head("acme") == 2


RESENDS = 5


@pytest.mark.parametrize("cold", [False, True])
def test_fifty_publishers_under_conflicts_and_throttling_get_exactly_one_to_fifty(
    embedded_with: Callable[[str], EmbeddedAws], cold: bool
) -> None:
    # Given 20 % of transactions cancelled for conflicts and 20 % of calls throttled
    server = embedded_with(FAULTS)

    # When 50 threads publish one event each for one tenant at the same moment, each sending its
    # publish again when answered 503 "retry shortly" (a loaded machine makes some give up, as a
    # Lambda out of time does; nothing was stored then, so the resend cannot store twice)
    def publish(number: int) -> list[int]:
        for _ in range(RESENDS):
            if cold:
                caches.clear_all("tenantry.events.")
            try:
                return events.append("acme", [EventIn(type="t", data={"n": number})], batch=False)
            except events.WriteContention:
                continue
        raise AssertionError(f"publish {number} answered 503 {RESENDS} times")

    positions, errors = _run_all(PUBLISHERS, publish)
    _stop_faults(server)
    # Then every publish succeeded, the positions are exactly 1..50, and faults were injected
    assert errors == []
    assert sorted(position for got in positions for position in got) == list(range(1, PUBLISHERS + 1))
    assert store.DYNAMODB.read_head("acme") == PUBLISHERS
    assert server.fault_injector is not None
    assert server.fault_injector.injected["dynamodb:TransactWriteItems:TransactionConflict"] > 0


WRITERS = 8


@pytest.mark.parametrize(("spec", "keyed"), [("conflict=0%", False), (FAULTS, False), (FAULTS, True)])
def test_eight_writers_on_one_expected_position_exactly_one_wins(
    embedded_with: Callable[[str], EmbeddedAws], spec: str, keyed: bool
) -> None:
    # Given a stream at 3 and, in two runs, 20 % of transactions cancelled for conflicts and 20 %
    # of calls throttled (a cancelled append wrote nothing and is sent again at the same position)
    server = embedded_with(spec)
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="pro", tenant_id="acme"))
    events.append("acme", [EventIn(type="t", data={})] * 3, batch=True)

    # When eight cold writers append after position 3 at the same moment (with their own keys)
    def writer(number: int) -> Any:
        caches.clear_all("tenantry.events.")
        body = {"events": [{"type": "decision", "data": {"writer": number}}] * 2, "expected_position": 3}
        try:
            return events.publish("acme", body, f"writer-{number}" if keyed else None)
        except events.WrongExpectedPosition as lost:
            return lost

    answers, errors = _run_all(WRITERS, writer)
    _stop_faults(server)
    # Then exactly one batch landed at 4 and 5; every other writer was told the stream is at 5
    assert errors == []
    won = [answer for answer in answers if isinstance(answer, dict)]
    lost = [answer for answer in answers if isinstance(answer, events.WrongExpectedPosition)]
    assert won == [{"positions": [4, 5]}]
    assert len(lost) == WRITERS - 1
    assert {answer.current_position for answer in lost} == {5}
    # And the stream holds exactly that batch after 3, nothing at another position
    page = store.DYNAMODB.read_events("acme", 1, 100, None)
    assert [found.position for found in page.events] == [1, 2, 3, 4, 5]
    assert store.DYNAMODB.read_head("acme") == 5
    if spec == FAULTS:
        assert server.fault_injector is not None
        assert server.fault_injector.injected["dynamodb:TransactWriteItems:TransactionConflict"] > 0, (
            server.fault_injector.injected
        )


def test_twenty_concurrent_turns_in_one_session_lose_no_paid_answer(
    embedded_with: Callable[[str], EmbeddedAws], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a session, the real Anthropic client against the fake model, and 20 % faults
    server = embedded_with(FAULTS)
    assert server.fault_injector is not None
    spec, server.fault_injector.spec = server.fault_injector.spec, faults.FaultSpec()
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="enterprise", tenant_id="acme"))
    with fake_anthropic() as model:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", model.url)
        monkeypatch.setenv("LLM_MAX_RETRIES", "0")
        caches.clear_all("tenantry.llm.")
        try:
            first = chat.turn("acme", "enterprise", "alice", ChatRequest(message="first"))
            session_id = first.session_id
            server.fault_injector.spec = spec

            # When 20 messages are sent to that session at the same moment, each in its own
            # invocation as Lambda runs them: its own request id, the tenant's scoped data access
            # and the gateway's budget. Not the chat handler from 20 threads of one process: Lambda
            # never runs two invocations in one environment, and Powertools keeps the current event
            # on its router class, so such threads read each other's request (id, body), and two
            # turns shared one bill marker (the second was answered 200 but never stored).
            def say(number: int) -> ChatAnswer | str:
                request_id = str(uuid.uuid4())
                with (
                    deadline.budget(FakeLambdaContext(), cap_seconds=deadline.integration_timeout()),
                    aws.tenant_scope(credentials.scoped_access("acme")),
                ):
                    try:
                        request = ChatRequest(message=f"message {number}", session_id=session_id)
                        return chat.turn("acme", "enterprise", "alice", request, request_id=request_id)
                    except ClientError as exc:
                        if not retry.is_lost_race(exc):
                            raise
                        return "service_busy"  # the handler's 503, throttled before the model was asked

            answers, errors = _run_all(CHATTERS, say)
        finally:
            caches.clear_all("tenantry.llm.")
    _stop_faults(server)
    # Then no call raised, and a turn that failed is a 503 to retry (throttled before the model
    # was asked), never a 5xx of a lost write
    assert errors == []
    assert all(isinstance(answer, ChatAnswer) or answer == "service_busy" for answer in answers)
    # and every answer the model gave (and billed) is stored exactly once, in gapless turns
    paid = [request["body"]["messages"][-1]["content"] for request in model.requests]
    turns, _ = conversations.DYNAMODB.session_turns("acme", "alice", session_id, 100, None)
    stored = [turn.user_message for turn in turns]
    assert sorted(stored) == sorted(paid)
    assert len(stored) == sum(1 for answer in answers if isinstance(answer, ChatAnswer)) + 1
    assert [turn.number for turn in turns] == list(range(1, len(turns) + 1))
    session = conversations.DYNAMODB.get_session("acme", "alice", session_id)
    assert session is not None and session.turns == len(turns)
