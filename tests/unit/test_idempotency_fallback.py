"""Powertools' idempotency reads the existing record when a conditional put's failure carries no
copy of it, and the tenant's scoped credentials allow that read (TenantDataRole's GetItem).

DynamoDB returns the existing item with the failure only when asked (ReturnValuesOnConditionCheckFailure),
and Powertools asks only with a boto3 that supports it; otherwise, or when the answer lacks the item,
it falls back to GetItem. The IAM tier (tests/iam) checks the recorded GetItem against the role.
"""

from __future__ import annotations

from typing import Any

from tests.unit.test_events import EventsApi, api, event  # noqa: F401 - api is a fixture


def test_a_replay_whose_put_failure_carries_no_record_reads_it_and_answers_the_first_answer(
    api: EventsApi,  # noqa: F811 - the fixture imported above
    faults: Any,
    dynamodb_calls: list[str],
) -> None:
    # Given a tenant's publish with an Idempotency-Key
    assert api.publish(event(), "acme", key="order-7") == (201, {"position": 1})
    # When the same request comes again and DynamoDB's refusal of the in-progress record comes
    # without the existing record (ConditionalCheckFailedException, no Item)
    injector = faults("seed=1")
    injector.fail_once("dynamodb", "PutItem", "ConditionalCheckFailedException")
    dynamodb_calls.clear()
    answer = api.publish(event(), "acme", key="order-7")
    # Then Powertools reads the record itself and answers what the first request answered
    assert answer == (201, {"position": 1})
    assert "GetItem" in dynamodb_calls
    # And nothing was published twice
    assert api.total("acme") == 1
