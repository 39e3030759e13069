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
FINISH_OFFBOARDING = "finish_offboarding"


class TaskNotDueError(Exception):
    """The schedule fired before its task was due (Scheduler's precision is a minute): failing
    makes Lambda retry the asynchronous invocation a minute or more later."""


def is_task(event: Any) -> bool:
    return isinstance(event, dict) and TASK_FIELD in event


def schedule_name(task: str, tenant_id: str) -> str:
    """Deterministic, so a retried offboarding updates its schedule instead of adding one; within
    Scheduler's 64 characters whatever the tenant id's length."""
    digest = hashlib.sha256(tenant_id.encode()).hexdigest()[:10]
    return f"{task.replace('_', '-')}-{tenant_id[:32]}-{digest}"


def _at(epoch: float) -> str:
    return "at(" + datetime.fromtimestamp(math.ceil(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S") + ")"


def schedule(task: str, tenant_id: str, at: float, target_arn: str | None) -> bool:
    """Run ``task`` for ``tenant_id`` at ``at`` (epoch seconds) by invoking ``target_arn``; False
    (logged) when this deployment has no scheduler configured."""
    role = os.environ.get(settings.SCHEDULER_ROLE_ARN)
    group = os.environ.get(settings.SCHEDULE_GROUP)
    if not (role and group and target_arn):
        logger.warning(
            "no scheduler configured: the task runs when its tenant id is next used", extra={"task": task}
        )
        return False
    request: dict[str, Any] = {
        "Name": schedule_name(task, tenant_id),
        "GroupName": group,
        "ScheduleExpression": _at(at),
        "ScheduleExpressionTimezone": "UTC",
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": "DELETE",
        "Target": {
            "Arn": target_arn,
            "RoleArn": role,
            "Input": json.dumps({TASK_FIELD: task, "tenant_id": tenant_id}),
        },
    }
    client = aws.scheduler()
    try:
        client.create_schedule(**request)
    except ClientError as exc:
        if aws.error_code(exc) != "ConflictException":
            raise
        client.update_schedule(**request)  # a retried offboarding: the later time wins
    return True
