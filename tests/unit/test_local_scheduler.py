"""The local stack's EventBridge Scheduler: one-time schedules fire at their time, once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.gateway.schedules import ASYNC_ATTEMPTS, LocalScheduler, due_at
from tenantry import aws as clients

ARN = "arn:aws:lambda:us-east-1:123456789012:function:test-TenantsFunction"
ROLE = "arn:aws:iam::123456789012:role/test-scheduler"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def scheduler(aws: dict[str, str]) -> Any:
    return clients.scheduler()


def create(client: Any, name: str, at: str, payload: dict[str, Any]) -> None:
    client.create_schedule(
        Name=name,
        GroupName="tasks",
        ScheduleExpression=f"at({at})",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": ARN,
            "RoleArn": "arn:aws:iam::123456789012:role/test-scheduler",
            "Input": json.dumps(payload),
        },
    )


def test_a_schedule_fires_at_its_time_with_its_input_then_is_deleted(scheduler: Any) -> None:
    # Given a one-time schedule in a group the runner creates, as CloudFormation would
    invoked: list[tuple[str, dict[str, Any]]] = []
    clock = Clock(due_at("at(2030-01-01T00:00:00)") or 0)
    runner = LocalScheduler(scheduler, ["tasks"], lambda arn, payload: invoked.append((arn, payload)), clock)
    runner.ensure_groups()
    create(scheduler, "later", "2030-01-01T00:00:10", {"task": "x"})
    # When its time has not come, nothing runs
    assert runner.run_due() == 0 and invoked == []
    # When it has, the target runs once with the input, and the schedule is gone
    clock.now += 10
    assert runner.run_due() == 1
    assert invoked == [(ARN, {"task": "x"})]
    assert scheduler.list_schedules(GroupName="tasks")["Schedules"] == []
    assert runner.run_due() == 0


def test_a_failing_target_is_tried_as_lambda_retries_then_dropped(scheduler: Any) -> None:
    attempts: list[int] = []

    def failing(arn: str, payload: dict[str, Any]) -> None:
        attempts.append(1)
        raise RuntimeError("not due")

    runner = LocalScheduler(scheduler, ["tasks"], failing, Clock(due_at("at(2030-01-01T00:00:00)") or 0))
    runner.ensure_groups()
    create(scheduler, "due", "2030-01-01T00:00:00", {})
    for _ in range(ASYNC_ATTEMPTS - 1):
        runner.run_due()
        assert len(scheduler.list_schedules(GroupName="tasks")["Schedules"]) == 1
    runner.run_due()
    assert len(attempts) == ASYNC_ATTEMPTS
    assert scheduler.list_schedules(GroupName="tasks")["Schedules"] == []


def test_only_at_expressions_are_one_time() -> None:
    assert due_at("rate(5 minutes)") is None
    assert due_at("at(1970-01-01T00:01:00)") == 60


def test_a_target_that_fails_every_attempt_goes_to_the_dead_letter_queue(scheduler: Any) -> None:
    # Given a schedule whose target fails every attempt, and a dead-letter queue that refuses once
    dead_lettered: list[tuple[str, dict[str, Any]]] = []
    refusals = iter([True])

    def dead_letter(arn: str, payload: dict[str, Any]) -> None:
        if next(refusals, False):
            raise RuntimeError("queue unavailable")
        dead_lettered.append((arn, payload))

    def failing(arn: str, payload: dict[str, Any]) -> None:
        raise RuntimeError("purge failed")

    clock = Clock(due_at("at(2030-01-01T00:00:00)") or 0)
    runner = LocalScheduler(scheduler, ["tasks"], failing, clock, on_exhausted=dead_letter)
    runner.ensure_groups()
    create(
        scheduler, "due", "2030-01-01T00:00:00", {"tenantry_task": "finish_offboarding", "tenant_id": "acme"}
    )
    # When its attempts are spent, as Lambda's asynchronous ones (the first try and two retries)
    for _ in range(ASYNC_ATTEMPTS - 1):
        runner.run_due()
    with pytest.raises(RuntimeError, match="queue unavailable"):
        runner.run_due()
    # Then a queue that could not take the event keeps the schedule, to be tried again
    assert len(scheduler.list_schedules(GroupName="tasks")["Schedules"]) == 1
    # And once the queue takes it, the event is there and the schedule is gone
    runner.run_due()
    assert dead_lettered == [(ARN, {"tenantry_task": "finish_offboarding", "tenant_id": "acme"})]
    assert scheduler.list_schedules(GroupName="tasks")["Schedules"] == []
