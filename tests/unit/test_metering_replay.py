"""Metering loses nothing: a batch the function fails on goes, after Lambda's retries, to the
on-failure queue as Lambda's invocation record; ``tenantry metering replay`` applies it exactly
once (a batch that had partly committed adds only its missing chunks) and deletes it only then."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from local import aws_calls, template
from local.gateway import asyncinvoke
from local.gateway.accesslog import AccessLog, subscription_event
from local.gateway.api import FunctionSpec, load_api
from tenantry import aws as clients
from tenantry import metering
from tenantry.stores import usage as usage_store
from tenantry_cli import metering as cli_metering
from tenantry_cli.main import main
from tests.conftest import FakeLambdaContext, load_function
from tests.unit.test_metering import DAY, MONTH, counters, line
from tooling.sam_translate import translated_template

TENANTS = 150  # 300 tenant-periods: four transactions (chunks) of up to 99 updates


@pytest.fixture
def queue(aws: dict[str, str]) -> Iterator[tuple[Any, str]]:
    """The template's on-failure queue in moto, and an SQS client."""
    sqs = boto3.client("sqs")
    urls = template.create_queues(sqs, "test")
    yield sqs, urls["MeteringFailureQueue"]


@pytest.fixture
def spec() -> FunctionSpec:
    return load_api([]).functions["MeteringFunction"]


@dataclass
class MeteringPool:
    """The metering function as Lambda runs it for one asynchronous invocation (one attempt per call)."""

    spec: FunctionSpec
    handler: Any = field(default_factory=lambda: load_function("metering").lambda_handler)
    attempts: int = 0

    def invoke(self, event: Any, request_id: str, tenant_id: str | None = None) -> Any:
        self.attempts += 1
        return self.handler(event, FakeLambdaContext())


def _sender(sqs: Any, url: str) -> asyncinvoke.SendToDestination:
    def send(spec: FunctionSpec, arn: str, body: str) -> None:
        assert arn.endswith(":tenantry-local-MeteringFailureQueue")  # the template's destination
        with aws_calls.acting_as(spec.logical_id):  # Lambda sends with the function's role
            sqs.send_message(QueueUrl=url, MessageBody=body)

    return send


def _event(lines: list[str], first_id: int = 1) -> dict[str, Any]:
    return subscription_event(lines, log_group="/test/access", log_stream="v1/abc", first_id=first_id)


def _messages(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _break_chunk(monkeypatch: pytest.MonkeyPatch, chunk: int) -> dict[str, bool]:
    """DynamoDB fails (an internal error, not retryable by us) every transaction of ``chunk``
    while ``state["broken"]``; the other chunks commit."""
    client = clients.dynamodb_client()
    real = client.transact_write_items
    state = {"broken": True}

    def transact(**kwargs: Any) -> Any:
        marker = kwargs["TransactItems"][0]["Put"]["Item"]["period"]["S"]
        if state["broken"] and marker.endswith(f"#{chunk}"):
            raise ClientError(
                {"Error": {"Code": "InternalServerError", "Message": "Internal server error"}},
                "TransactWriteItems",
            )
        return real(**kwargs)

    monkeypatch.setattr(client, "transact_write_items", transact)
    return state


def _month_requests() -> int:
    return sum(counters(f"t{number:03d}", MONTH).get("requests", 0) for number in range(TENANTS))


def test_a_batch_that_partly_committed_is_replayed_from_the_queue_exactly_once(
    queue: tuple[Any, str], spec: FunctionSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, url = queue
    # Given an access-log batch of 150 tenants (four chunks) whose third chunk DynamoDB refuses
    batch = [line(f"t{number:03d}", request=f"r{number}") for number in range(TENANTS)]
    event = _event(batch)
    state = _break_chunk(monkeypatch, chunk=2)
    pool = MeteringPool(spec)

    # When CloudWatch Logs invokes metering asynchronously and every attempt fails at chunk 2
    delivered = asyncinvoke.invoke_async(pool, event, _sender(sqs, url))

    # Then Lambda tried three times (MaximumRetryAttempts: 2) and queued its invocation record
    assert (delivered, pool.attempts) == (False, 3)
    (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)["Messages"]
    record = json.loads(message["Body"])
    assert record["requestPayload"] == event
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responsePayload"]["errorType"] == "ClientError"
    # And the batch partly committed: chunks 0 and 1 (counted once, whatever the retries did)
    partly = _month_requests()
    assert 0 < partly < TENANTS

    # When DynamoDB recovers and the operator replays the queue
    state["broken"] = False
    result = cli_metering.replay_queue(sqs, url, metering.replay)

    # Then only the missing chunks were applied, the message is gone, and every request counts once
    assert result == {"replayed": 1, "chunks_applied": 2, "duplicate_chunks": 2, "failed": []}
    assert _messages(sqs, url) == 0
    for number in range(TENANTS):
        for period in (DAY, MONTH):
            assert counters(f"t{number:03d}", period)["requests"] == 1
    # And the same record applied again (SQS delivers at least once) adds nothing
    again = metering.replay(message["Body"])
    assert (again["chunks_applied"], again["duplicate_chunks"]) == (0, 4)
    assert _month_requests() == TENANTS


def test_a_retry_that_succeeds_sends_nothing_to_the_queue(
    queue: tuple[Any, str], spec: FunctionSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, url = queue
    # Given a batch whose first attempt fails
    state = _break_chunk(monkeypatch, chunk=0)
    pool = MeteringPool(spec)
    handler = pool.handler

    def heal_after_first(event: Any, context: Any) -> Any:
        try:
            return handler(event, context)
        finally:
            state["broken"] = False

    pool.handler = heal_after_first
    # When it is invoked asynchronously
    delivered = asyncinvoke.invoke_async(pool, _event([line("acme", request="only")]), _sender(sqs, url))
    # Then the second attempt applied it, and the queue stays empty
    assert (delivered, pool.attempts) == (True, 2)
    assert _messages(sqs, url) == 0
    assert counters("acme", MONTH)["requests"] == 1


def test_a_function_without_a_destination_drops_the_event_after_its_retries(spec: FunctionSpec) -> None:
    # Given a function with no on-failure destination whose every attempt fails
    class Failing:
        def __init__(self) -> None:
            self.spec = FunctionSpec(**{**spec.__dict__, "on_failure_arn": None, "async_retries": 1})
            self.attempts = 0

        def invoke(self, event: Any, request_id: str, tenant_id: str | None = None) -> Any:
            self.attempts += 1
            raise RuntimeError("boom")

    sent: list[str] = []
    pool = Failing()
    # Then it is tried 1 + MaximumRetryAttempts times, and nothing is sent anywhere
    assert asyncinvoke.invoke_async(pool, {}, lambda *args: sent.append(args[2])) is False
    assert (pool.attempts, sent) == (2, [])


def test_a_message_that_fails_again_stays_in_the_queue_until_a_later_replay(
    queue: tuple[Any, str], spec: FunctionSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    sqs, url = queue
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    # Given a failed batch in the queue, and something that is not Lambda's record at all
    state = _break_chunk(monkeypatch, chunk=0)
    asyncinvoke.invoke_async(MeteringPool(spec), _event([line("acme", request="one")]), _sender(sqs, url))
    sqs.send_message(QueueUrl=url, MessageBody='{"hello": "world"}')
    # When a replay runs while DynamoDB still fails
    first = cli_metering.replay_queue(sqs, url, metering.replay)
    # Then both messages stay, each reported with its reason
    assert first["replayed"] == 0
    errors = sorted(failure["error"] for failure in first["failed"])
    assert errors[0].startswith("ClientError") and errors[1].startswith("NotAFailedBatchError")
    assert _messages(sqs, url) == 2
    # When DynamoDB recovers, a later replay applies the batch and still leaves the stranger alone
    state["broken"] = False
    second = cli_metering.replay_queue(sqs, url, metering.replay)
    assert (second["replayed"], len(second["failed"])) == (1, 1)
    assert counters("acme", MONTH)["requests"] == 1
    assert _messages(sqs, url) == 1


def test_the_replay_command_against_a_deployed_queue(
    queue: tuple[Any, str],
    spec: FunctionSpec,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sqs, url = queue
    # Given two failed batches in the queue (stack outputs MeteringFailureQueueUrl, UsageTableName)
    state = _break_chunk(monkeypatch, chunk=0)
    for number in (1, 2):
        event = _event([line("acme", request=f"r{number}")], first_id=number)
        asyncinvoke.invoke_async(MeteringPool(spec), event, _sender(sqs, url))
    state["broken"] = False
    table = usage_store.table_name()
    # (what the failed invocations printed, e.g. EMF lines, is not the command's output)
    capsys.readouterr()
    # When the operator runs the replay
    code = main(["metering", "replay", "--queue-url", url, "--table", table, "--json"])
    # Then both are applied, reported, and gone
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "replayed": 2,
        "chunks_applied": 2,
        "duplicate_chunks": 0,
        "failed": [],
    }
    assert counters("acme", MONTH)["requests"] == 2
    assert _messages(sqs, url) == 0
    # And --queue-url without --table is a usage error
    assert main(["metering", "replay", "--queue-url", url]) == 2


# ------------------------------------------------------------------ the subscription event itself


def test_the_local_subscription_event_decodes_with_powertools_to_the_same_lines() -> None:
    lines = [line("acme", request="a"), line("globex", request="b")]
    batch_id, decoded = metering.decode_subscription(_event(lines, first_id=7))
    assert decoded == lines
    # The batch id is the log events' ids: the same event gives the same id, other ids another
    assert metering.decode_subscription(_event(lines, first_id=7))[0] == batch_id
    assert metering.decode_subscription(_event(lines, first_id=9))[0] != batch_id


def test_a_control_message_meters_nothing() -> None:
    # Given CloudWatch Logs' check that the destination is reachable
    event = _event(["CWL CONTROL MESSAGE: Checking health of destination Lambda function."])
    payload = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))
    payload["messageType"] = "CONTROL_MESSAGE"
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    # When metering gets it, then it has no lines (no malformed-line warning either)
    _, lines = metering.decode_subscription({"awslogs": {"data": data}})
    assert lines == []


def test_a_batch_whose_delivery_failed_is_offered_again_with_the_same_ids() -> None:
    # Given a local access log whose first delivery raises (the invoke itself did not happen)
    delivered: list[dict[str, Any]] = []
    calls = {"n": 0}

    def deliver(event: dict[str, Any]) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("the embedded SQS is unreachable")
        delivered.append(event)

    access_log = AccessLog('{"requestId":"$context.requestId"}', path=None, echo=None, deliver=deliver)
    access_log.write({"requestId": "r1"})
    # When it drains twice
    assert access_log.drain() == 0
    access_log.write({"requestId": "r2"})
    assert access_log.drain() == 2
    # Then the first batch came again, unchanged (same ids: a redelivery, not a new batch), then r2's
    assert [metering.decode_subscription(event)[1] for event in delivered] == [
        ['{"requestId":"r1"}'],
        ['{"requestId":"r2"}'],
    ]
    assert len({metering.decode_subscription(event)[0] for event in delivered}) == 2


def test_a_batch_marker_outlives_every_way_its_batch_can_come_back() -> None:
    # Lambda's retries (up to MaximumEventAgeInSeconds), then the queue's retention: a replay the
    # queue can still offer must find the markers of the chunks that committed
    resources = template.template()["Resources"]
    invoke_config = resources["MeteringFunction"]["Properties"]["EventInvokeConfig"]
    retention = int(resources["MeteringFailureQueue"]["Properties"]["MessageRetentionPeriod"])
    assert retention + int(invoke_config["MaximumEventAgeInSeconds"]) < metering.MARKER_TTL_SECONDS


def test_the_deployed_stack_sends_failed_batches_to_an_encrypted_queue_and_alarms_on_it() -> None:
    resources = translated_template()["Resources"]
    queue_arn = {"Fn::GetAtt": ["MeteringFailureQueue", "Arn"]}
    # Lambda's asynchronous invocation of metering: two retries, then the queue
    config = resources["MeteringFunctionEventInvokeConfig"]["Properties"]
    assert config["FunctionName"] == {"Ref": "MeteringFunction"}
    assert config["MaximumRetryAttempts"] == 2
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == queue_arn
    # The role may send to that queue and nowhere else
    sends = [
        statement
        for policy in resources["MeteringFunctionRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if "sqs:SendMessage" in json.dumps(statement["Action"])
    ]
    assert [statement["Resource"] for statement in sends] == [queue_arn]
    # The queue is encrypted, keeps a message as long as SQS can, and refuses plain HTTP
    queue = resources["MeteringFailureQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
    (deny,) = resources["MeteringFailureQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Condition"]) == ("Deny", {"Bool": {"aws:SecureTransport": "false"}})
    # One alarm on the queue's depth, one on the function's errors, both above zero
    depth = resources["MeteringFailuresAlarm"]["Properties"]
    assert (depth["Namespace"], depth["MetricName"]) == ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
    assert depth["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["MeteringFailureQueue", "QueueName"]}}
    ]
    errors = resources["MeteringErrorsAlarm"]["Properties"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "MeteringFunction"}}]
    for alarm in (depth, errors):
        assert (alarm["ComparisonOperator"], alarm["Threshold"]) == ("GreaterThanThreshold", 0)
