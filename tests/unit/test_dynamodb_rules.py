"""A transaction's ClientRequestToken as DynamoDB honours it (local/dynamodb_rules.py), on moto."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from local import dynamodb_rules
from tenantry import aws as clients
from tenantry.stores import usage

KEY = {"tenant_id": {"S": "acme"}, "period": {"S": "month#2026-03"}}


def add_requests(amount: int, token: str, *, only_if_absent: bool = False) -> None:
    """One transaction adding ``amount`` to acme's request counter, with ``token``."""
    update: dict[str, Any] = {
        "TableName": usage.table_name(),
        "Key": KEY,
        "UpdateExpression": "ADD #requests :amount",
        "ExpressionAttributeNames": {"#requests": "requests"},
        "ExpressionAttributeValues": {":amount": {"N": str(amount)}},
    }
    if only_if_absent:
        update["ConditionExpression"] = "attribute_not_exists(#requests)"
    client: Any = clients.dynamodb_client()  # the update is built as plain JSON, not the stubs' types
    client.transact_write_items(TransactItems=[{"Update": update}], ClientRequestToken=token)


def requests() -> int:
    item = clients.dynamodb_client().get_item(TableName=usage.table_name(), Key=KEY).get("Item")
    return int(item["requests"]["N"]) if item else 0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The rule's own memory of tokens, on a clock of the test's."""
    now = Clock()
    monkeypatch.setattr(dynamodb_rules, "TOKENS", dynamodb_rules.TransactionTokens(now))
    return now


@pytest.mark.usefixtures("aws", "clock")
def test_a_transaction_sent_again_with_its_token_succeeds_without_writing_again() -> None:
    # Given a transaction that committed with token t-1
    add_requests(5, "t-1")
    # When the same request is sent again with the same token (botocore's resend of a lost answer)
    add_requests(5, "t-1")
    # Then the second succeeded and wrote nothing; another token writes again
    assert requests() == 5
    add_requests(5, "t-2")
    assert requests() == 10


@pytest.mark.usefixtures("aws", "clock")
def test_the_same_token_with_other_items_is_an_idempotent_parameter_mismatch() -> None:
    # Given a transaction that committed with token t-1
    add_requests(5, "t-1")
    # When another request is sent with that token
    with pytest.raises(ClientError) as refused:
        add_requests(7, "t-1")
    # Then DynamoDB refuses it, as AWS does, and nothing of it was written
    assert refused.value.response["Error"]["Code"] == "IdempotentParameterMismatchException"
    assert requests() == 5


@pytest.mark.usefixtures("aws", "clock")
def test_a_cancelled_transaction_leaves_its_token_unused() -> None:
    # Given a counter already there, and a transaction with token t-1 cancelled by its condition
    add_requests(1, "t-0")
    with pytest.raises(ClientError) as cancelled:
        add_requests(5, "t-1", only_if_absent=True)
    assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
    # When a request with the same token is sent again (nothing was written the first time)
    add_requests(5, "t-1")
    # Then it is decided anew, and commits
    assert requests() == 6


@pytest.mark.usefixtures("aws")
def test_a_token_is_new_again_after_ten_minutes(clock: Clock) -> None:
    # Given a transaction that committed with token t-1, and a resend within ten minutes
    add_requests(5, "t-1")
    clock.now += dynamodb_rules.TOKEN_WINDOW_SECONDS - 1
    add_requests(5, "t-1")
    assert requests() == 5
    # When the same request comes ten minutes after the first one completed
    clock.now += 1
    add_requests(5, "t-1")
    # Then DynamoDB treats it as a new request
    assert requests() == 10


def test_the_memory_keeps_a_digest_per_token_and_forgets_the_oldest_past_its_bound() -> None:
    # Given a memory bounded to two tokens
    now = Clock()
    tokens = dynamodb_rules.TransactionTokens(now, max_tokens=2)
    items = tokens.digest([{"Put": {"TableName": "t", "Item": {"k": {"S": "v"}}}}])
    # When three transactions commit with tokens t-1, t-2 and t-3
    for token in ("t-1", "t-2", "t-3"):
        tokens.remember(("r", token), items)
    # Then each is held as a 16-byte digest, and only the newest two are remembered
    assert len(items) == 16 and len(tokens) == 2
    assert tokens.committed(("r", "t-1"), items) is None
    assert tokens.committed(("r", "t-3"), items) is True
    assert tokens.committed(("r", "t-3"), tokens.digest([])) is False
