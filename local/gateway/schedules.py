"""EventBridge Scheduler's one-time schedules, run locally.

The embedded AWS (moto) stores schedules but never fires them. This runner does what Scheduler
does with the stack's one-time schedules (``at(...)``, in UTC, with a Lambda target): at their
time it invokes the target function in process with the schedule's ``Input``, as Scheduler
invokes Lambda asynchronously, then deletes the schedule (``ActionAfterCompletion: DELETE``). An
invocation that fails is tried again, as Lambda retries an asynchronous invocation twice, then
handed to ``on_exhausted`` (the function's dead-letter queue, as Lambda sends it there) or, without
one, dropped with an error in the log. Locally a schedule fires at its second; on AWS within the
minute (Scheduler's precision), which the tasks themselves allow for.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

_log = logging.getLogger("tenantry.local.gateway")

ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation: the first try and two retries
Invoke = Callable[[str, dict[str, Any]], Any]
# (function ARN, the event) of an invocation whose every attempt failed.
Exhausted = Callable[[str, dict[str, Any]], None]


def due_at(expression: str) -> float | None:
    """``at(2026-01-02T03:04:05)`` → epoch seconds (UTC); None for any other expression."""
    if not (expression.startswith("at(") and expression.endswith(")")):
        return None
    return datetime.strptime(expression[3:-1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()


class LocalScheduler:
    """Fires the due one-time schedules of ``groups`` through ``invoke(function_arn, payload)``."""

    def __init__(
        self,
        client: Any,
        groups: list[str],
        invoke: Invoke,
        clock: Callable[[], float] = time.time,
        on_exhausted: Exhausted | None = None,
    ) -> None:
        self._client = client
        self._groups = groups
        self._invoke = invoke
        self._clock = clock
        self._on_exhausted = on_exhausted
        self._failures: dict[tuple[str, str], int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ensure_groups(self) -> None:
        """Create the groups the template defines (CloudFormation would)."""
        existing = {group["Name"] for group in self._client.list_schedule_groups().get("ScheduleGroups", [])}
        for group in self._groups:
            if group not in existing:
                self._client.create_schedule_group(Name=group)

    def run_due(self) -> int:
        """One pass: fire every schedule that is due; how many ran."""
        ran = 0
        for group in self._groups:
            for summary in self._client.list_schedules(GroupName=group).get("Schedules", []):
                name = summary["Name"]
                schedule = self._client.get_schedule(Name=name, GroupName=group)
                at = due_at(str(schedule.get("ScheduleExpression", "")))
                if at is None or at > self._clock():
                    continue
                ran += 1
                self._fire(group, name, schedule)
        return ran

    def _fire(self, group: str, name: str, schedule: dict[str, Any]) -> None:
        target = schedule["Target"]
        payload = json.loads(target.get("Input") or "{}")
        try:
            self._invoke(str(target["Arn"]), payload)
        except Exception:  # noqa: BLE001 - any failure of the function is a failed invocation
            failures = self._failures.get((group, name), 0) + 1
            self._failures[(group, name)] = failures
            if failures < ASYNC_ATTEMPTS:
                _log.warning("schedule %s failed (attempt %d): retried", name, failures, exc_info=True)
                return
            if self._on_exhausted is None:
                _log.error("schedule %s failed %d times: dropped", name, failures, exc_info=True)
            else:
                _log.error("schedule %s failed %d times: dead-lettered", name, failures, exc_info=True)
                # Raises when the queue cannot take it: the schedule stays, and is tried again.
                self._on_exhausted(str(target["Arn"]), payload)
        self._failures.pop((group, name), None)
        if schedule.get("ActionAfterCompletion") == "DELETE":
            self._client.delete_schedule(Name=name, GroupName=group)

    # ------------------------------------------------------------------ the background thread
    def start(self, interval: float = 0.25) -> None:
        self.ensure_groups()
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), name="local-scheduler", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.run_due()
            except Exception:  # noqa: BLE001 - the embedded AWS may be stopping; try next tick
                _log.debug("local scheduler pass failed", exc_info=True)
