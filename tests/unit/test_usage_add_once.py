"""``DynamoDBUsage.add_once`` under the failures DynamoDB answers a transaction with, on moto.

The transaction is the batch's write-once marker and one counter update per addition. These tests
script ``aws.data_transact_write`` (what the store sends through): a send fails before it reaches
the table (a cancellation for a conflict or throttling, another error), or it commits and then its
answer is lost. The retry's pauses and the invocation's budget run on a clock of the test's, so
nothing sleeps for real and no assertion depends on how fast the machine is.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenantry import aws as clients
from tenantry import deadline, metering, retry
from tenantry.stores import usage as usage_store

MONTH, DAY = "month#2026-03", "day#2026-03-02"
BATCH = "batch-1#0"
EXPIRES_AT = 1_800_000_000
ADDITIONS = (
    usage_store.CounterAdditions("acme", MONTH, {"requests": 3, "allowed": 2, "denied": 1}),
    usage_store.CounterAdditions("acme", DAY, {"requests": 3, "allowed": 2, "denied": 1}),
    usage_store.CounterAdditions("globex", MONTH, {"requests": 1, "route:GET /me": 1}),
)
ITEMS = 1 + len(ADDITIONS)  # the marker first, then one update per addition
# The message DynamoDB gives each reason it names.
REASON_MESSAGES = {
    "TransactionConflict": "Transaction is ongoing for the item",
    "ThrottlingError": "Throughput exceeds the current capacity for one or more global secondary indexes",
    "ValidationError": "Item size has exceeded the maximum allowed size",
}


def cancelled(*reasons: str) -> ClientError:
    """TransactionCanceledException as botocore raises it from DynamoDB's answer: one reason per
    item, in the transaction's order, "None" for the items that were not the cause."""
    listed = ", ".join(reasons)
    message = f"Transaction cancelled, please refer cancellation reasons for specific reasons [{listed}]"
    response: Any = {
        "Error": {"Code": "TransactionCanceledException", "Message": message},
        "CancellationReasons": [
            {"Code": reason, **({"Message": REASON_MESSAGES[reason]} if reason in REASON_MESSAGES else {})}
            for reason in reasons
        ],
        "ResponseMetadata": {"HTTPStatusCode": 400, "RetryAttempts": 0},
    }
    return ClientError(response, "TransactWriteItems")


def error(code: str, status: int = 400) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": f"{code} (scripted)"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RetryAttempts": 0},
    }
    return ClientError(response, "TransactWriteItems")


def conflict_on(item: int) -> ClientError:
    reasons = ["None"] * ITEMS
    reasons[item] = "TransactionConflict"
    return cancelled(*reasons)


@dataclass(frozen=True, slots=True)
class Fail:
    """A scripted send: ``error`` raised instead of sending, or, ``committed``, after the real
    send committed (the answer lost on its way back)."""

    error: ClientError
    committed: bool = False


@dataclass
class Clock:
    """The invocation's time: it moves only when the retry pauses or a send takes its time."""

    send_seconds: float = 0.0
    now: float = 0.0
    pauses: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@dataclass
class Transactions:
    """``aws.data_transact_write`` as the store calls it, failing as scripted (then sending)."""

    clock: Clock
    real: Callable[..., None]
    script: list[Fail]
    sent: list[Any] = field(default_factory=list)  # each send's items
    answers: list[ClientError | None] = field(default_factory=list)  # what the table itself answered

    def __call__(self, items: Any, token: str | None = None) -> None:
        self.sent.append(copy.deepcopy(items))
        self.clock.now += self.clock.send_seconds
        step = self.script.pop(0) if self.script else None
        if step is not None and not step.committed:
            raise step.error
        try:
            self.real(items, token)
        except ClientError as exc:
            self.answers.append(exc)
            raise
        self.answers.append(None)
        if step is not None:
            raise step.error


class Invocation:
    """A Lambda context with ``seconds`` left."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def get_remaining_time_in_millis(self) -> int:
        return int(self.seconds * 1000)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The budget and the retry's pauses on the test's clock, each pause the longest its attempt
    may take (full jitter's upper bound), so a run is the same every time."""
    fake = Clock()
    monkeypatch.setattr(deadline, "time", SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.setattr(retry, "random", SimpleNamespace(uniform=lambda low, high: high))
    real_pause = retry.pause

    def pause(attempt: int, *, sleep: Any = None, reserve: float = retry.RESERVE_SECONDS) -> bool:
        return real_pause(attempt, sleep=fake.sleep, reserve=reserve)

    monkeypatch.setattr(retry, "pause", pause)
    return fake


def scripted(monkeypatch: pytest.MonkeyPatch, clock: Clock, *script: Fail) -> Transactions:
    transactions = Transactions(clock, clients.data_transact_write, list(script))
    monkeypatch.setattr(clients, "data_transact_write", transactions)
    return transactions


@pytest.fixture
def invocation(clock: Clock) -> Iterator[None]:
    """An invocation with 29 s left (the retries run on the test's clock)."""
    with deadline.budget(Invocation(29.0)):
        yield


def counters() -> dict[tuple[str, str], dict[str, int]]:
    """Every tenant's counters in the Usage table, as the store reads them."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    for tenant_id in ("acme", "globex"):
        for period in usage_store.DYNAMODB.get_range(tenant_id, "day#", "month#~"):
            found[tenant_id, period.period] = dict(period.counters)
    return found


def marker() -> dict[str, Any] | None:
    table = clients.table(usage_store.table_name())
    item: dict[str, Any] | None = table.get_item(Key=usage_store.marker_key(BATCH), ConsistentRead=True).get(
        "Item"
    )
    return item


ADDED_ONCE = {(added.tenant_id, added.period): dict(added.counters) for added in ADDITIONS}


@pytest.mark.parametrize(
    "failures",
    [
        pytest.param([Fail(conflict_on(0))], id="conflict on the marker"),
        pytest.param(
            [Fail(conflict_on(2)), Fail(cancelled("None", "None", "None", "ThrottlingError"))],
            id="conflict on a counter, then throttled inside the transaction",
        ),
        pytest.param(
            [Fail(error("ProvisionedThroughputExceededException"))], id="throttled past botocore's attempts"
        ),
    ],
)
def test_a_transaction_cancelled_for_a_conflict_or_throttling_is_sent_again_and_counts_once(
    aws: dict[str, str],
    clock: Clock,
    invocation: None,
    monkeypatch: pytest.MonkeyPatch,
    failures: list[Fail],
) -> None:
    # Given DynamoDB cancels the batch's first transactions for a conflict or throttling
    transactions = scripted(monkeypatch, clock, *failures)
    # When the batch is added
    applied = usage_store.DYNAMODB.add_once(BATCH, ADDITIONS, EXPIRES_AT)
    # Then it is applied, each counter added exactly once, after a pause per failed send
    assert applied is True
    assert counters() == ADDED_ONCE
    assert len(transactions.sent) == len(failures) + 1 and len(clock.pauses) == len(failures)
    # and every send was the same transaction: the marker, then the counters
    assert all(sent == transactions.sent[0] for sent in transactions.sent)
    assert len(transactions.sent[0]) == ITEMS and "Put" in transactions.sent[0][0]
    # And the batch's marker holds it applied until it expires
    assert marker() == {**usage_store.marker_key(BATCH), "expires_at": EXPIRES_AT}


def test_a_batch_applied_before_is_refused_on_its_marker_without_a_retry_and_adds_nothing(
    aws: dict[str, str], clock: Clock, invocation: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the batch was applied once
    assert usage_store.DYNAMODB.add_once(BATCH, ADDITIONS, EXPIRES_AT) is True
    transactions = scripted(monkeypatch, clock)
    # When it is added again (a redelivery), with other amounts even
    more = [usage_store.CounterAdditions("acme", "month#2026-04", {"requests": 100})]
    applied = usage_store.DYNAMODB.add_once(BATCH, [*ADDITIONS, *more], EXPIRES_AT)
    # Then DynamoDB cancelled it for the marker's condition, and the store answers False after one
    # send, with no pause: a failed condition is never sent again
    assert applied is False
    assert len(transactions.sent) == 1 and clock.pauses == []
    refusal = transactions.answers[0]
    assert refusal is not None and retry.cancellation_reasons(refusal)[0] == "ConditionalCheckFailed"
    assert set(retry.cancellation_reasons(refusal)[1:]) == {"None"}
    # And nothing was added
    assert counters() == ADDED_ONCE


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(error("AccessDeniedException"), id="access denied"),
        pytest.param(error("ValidationException"), id="validation"),
        pytest.param(error("ResourceNotFoundException"), id="no such table"),
        pytest.param(error("InternalServerError", 500), id="internal error past botocore's attempts"),
        pytest.param(cancelled("None", "None", "ValidationError", "None"), id="an item refused"),
        pytest.param(
            cancelled("None", "TransactionConflict", "ValidationError", "None"),
            id="a conflict beside an item refused",
        ),
    ],
)
def test_an_error_a_resend_cannot_cure_propagates_at_once_and_nothing_is_written(
    aws: dict[str, str],
    clock: Clock,
    invocation: None,
    monkeypatch: pytest.MonkeyPatch,
    failure: ClientError,
) -> None:
    # Given DynamoDB refuses the batch's transaction for a reason sending it again cannot change
    transactions = scripted(monkeypatch, clock, Fail(failure))
    # When the batch is added
    with pytest.raises(ClientError) as raised:
        usage_store.DYNAMODB.add_once(BATCH, ADDITIONS, EXPIRES_AT)
    # Then the error reaches the caller (metering's invocation fails, and its batch is delivered
    # again) after one send and no pause
    assert raised.value is failure
    assert len(transactions.sent) == 1 and clock.pauses == []
    # And nothing was written: no counter, no marker, so the redelivery counts it
    assert counters() == {} and marker() is None


@pytest.mark.parametrize(
    ("budget_seconds", "sends", "pauses"),
    [
        # Each send takes 0.25 s of the budget; the pauses double from 0.04 s. After the 5th send
        # 1.15 s are left: a 0.64 s pause would leave less than the 1 s reserve.
        pytest.param(3.0, 5, [0.04, 0.08, 0.16, 0.32], id="3 s left"),
        # Less than the reserve left from the start: no pause at all.
        pytest.param(0.9, 1, [], id="under the reserve"),
    ],
)
@pytest.mark.usefixtures("aws")
def test_contention_that_outlasts_the_invocations_budget_gives_up_in_time_and_writes_nothing(
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    budget_seconds: float,
    sends: int,
    pauses: list[float],
) -> None:
    # Given every transaction is cancelled for a conflict, each send taking a quarter second
    clock.send_seconds = 0.25
    transactions = scripted(monkeypatch, clock, *[Fail(conflict_on(1))] * 100)
    # When the batch is added in an invocation with budget_seconds left
    with deadline.budget(Invocation(budget_seconds)):
        with pytest.raises(ClientError) as raised:
            usage_store.DYNAMODB.add_once(BATCH, ADDITIONS, EXPIRES_AT)
        left = deadline.remaining()
    # Then the store stops sending while the reserve is still left, and raises the last cancellation
    assert retry.is_lost_race(raised.value)
    assert len(transactions.sent) == sends
    assert clock.pauses == pytest.approx(pauses)
    assert left == pytest.approx(budget_seconds - clock.now)
    assert left > retry.RESERVE_SECONDS or sends == 1
    # And nothing was written: metering's invocation fails and the batch comes again
    assert counters() == {} and marker() is None


@pytest.mark.parametrize(
    "lost",
    [
        pytest.param(conflict_on(0), id="answered as a conflict"),
        pytest.param(cancelled("None", "ThrottlingError", "None", "None"), id="answered as throttled"),
    ],
)
def test_a_send_that_committed_but_whose_answer_was_lost_is_not_counted_twice(
    aws: dict[str, str],
    clock: Clock,
    invocation: None,
    monkeypatch: pytest.MonkeyPatch,
    lost: ClientError,
) -> None:
    # Given the batch's first transaction commits but its caller gets a retryable cancellation
    transactions = scripted(monkeypatch, clock, Fail(lost, committed=True))
    # When the batch is added
    applied = usage_store.DYNAMODB.add_once(BATCH, ADDITIONS, EXPIRES_AT)
    # Then the store sent it again after a pause, and the marker the first send left refused it
    assert len(transactions.sent) == 2 and len(clock.pauses) == 1
    assert transactions.answers[0] is None
    second = transactions.answers[1]
    assert second is not None and retry.cancellation_reasons(second)[0] == "ConditionalCheckFailed"
    # So it answers False, "applied before" (it was, by its own first send), and every counter was
    # added exactly once
    assert applied is False
    assert counters() == ADDED_ONCE
    assert marker() == {**usage_store.marker_key(BATCH), "expires_at": EXPIRES_AT}


@pytest.mark.usefixtures("aws", "clock", "invocation")
def test_a_lost_answer_botocore_sends_again_itself_is_not_counted_twice(faults: Any) -> None:
    # Given the table commits the batch's transaction but its answer is an internal error, which
    # botocore's standard retry sends again by itself (the same request, on the wire)
    injector = faults("")
    injector.fail_once("dynamodb", "TransactWriteItems", "InternalServerError", applied=True)
    # When the access-log lines' batch is metered
    applied, duplicates = metering.apply(
        "batch-1",
        {(added.tenant_id, added.period): metering.Counters(dict(added.counters)) for added in ADDITIONS},
        usage_store.DYNAMODB,
    )
    # Then botocore's resend carried the send's ClientRequestToken, so DynamoDB answered it as the
    # transaction that had committed: every counter was added exactly once
    assert injector.injected == {"dynamodb:TransactWriteItems:InternalServerError": 1}
    assert counters() == ADDED_ONCE
    # And metering counts the chunk as applied by this delivery (it was), not as a duplicate
    assert (applied, duplicates) == (1, 0)
