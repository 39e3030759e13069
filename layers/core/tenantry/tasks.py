"""One-time tasks the tenants function schedules for itself with EventBridge Scheduler.

Offboarding schedules its final purge for when every request authorized before it has ended. The
schedule invokes the tenants function (asynchronously, with the stack's scheduler role) with
``{"tenantry_task": ..., "tenant_id": ...}`` and deletes itself afterwards. Locally, the local
stack runs the same schedules (local/gateway/schedules.py) against the embedded Scheduler.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from tenantry import aws, settings
from tenantry.observability import logger

TASK_FIELD = "tenantry_task"
ROUND_FIELD = "round"  # a continuation's number (absent for the first run)
FINISH_OFFBOARDING = "finish_offboarding"


class TaskNotDueError(Exception):
    """The schedule fired before its task was due (Scheduler's precision is a minute): failing
    makes Lambda retry the asynchronous invocation a minute or more later."""


def is_task(event: Any) -> bool:
    return isinstance(event, dict) and TASK_FIELD in event


class PurgeUnfinishedError(Exception):
    """The task's time ran out before the tenant's data was all deleted: the task goes on in a
    later run (it schedules one), and the id stays refused until then."""


def schedule_name(task: str, tenant_id: str, round_number: int = 0) -> str:
    """Deterministic, so a retried offboarding updates its schedule instead of adding one; within
    Scheduler's 64 characters whatever the tenant id's length. A continuation (``round_number``
    1, 2, …) has a name of its own: the schedule that is running deletes itself once it ran."""
    digest = hashlib.sha256(tenant_id.encode()).hexdigest()[:10]
    suffix = f"-{round_number}" if round_number else ""
    return f"{task.replace('_', '-')}-{tenant_id[: 32 - len(suffix)]}-{digest}{suffix}"


def _at(epoch: float) -> str:
    return "at(" + datetime.fromtimestamp(math.ceil(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S") + ")"


def schedule(task: str, tenant_id: str, at: float, target_arn: str | None, round_number: int = 0) -> bool:
    """Run ``task`` for ``tenant_id`` at ``at`` (epoch seconds) by invoking ``target_arn``; False
    (logged) when this deployment has no scheduler configured. ``round_number`` names a
    continuation of a task that ran out of time."""
    role = os.environ.get(settings.SCHEDULER_ROLE_ARN)
    group = os.environ.get(settings.SCHEDULE_GROUP)
    if not (role and group and target_arn):
        logger.warning(
            "no scheduler configured: the task runs when its tenant id is next used", extra={"task": task}
        )
        return False
    target: dict[str, Any] = {
        "Arn": target_arn,
        "RoleArn": role,
        "Input": json.dumps(
            {
                TASK_FIELD: task,
                "tenant_id": tenant_id,
                **({ROUND_FIELD: round_number} if round_number else {}),
            }
        ),
    }
    dead_letter_queue = os.environ.get(settings.TASK_DEAD_LETTER_QUEUE_ARN)
    if dead_letter_queue:
        # What Scheduler cannot deliver (after its own retries) waits there, with an alarm on it.
        target["DeadLetterConfig"] = {"Arn": dead_letter_queue}
    request: dict[str, Any] = {
        "Name": schedule_name(task, tenant_id, round_number),
        "GroupName": group,
        "ScheduleExpression": _at(at),
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": "DELETE",
        "Target": target,
    }
    client = aws.scheduler()
    try:
        client.create_schedule(**request)
    except ClientError as exc:
        if aws.error_code(exc) != "ConflictException":
            raise
        client.update_schedule(**request)  # a retried offboarding: the later time wins
    return True
