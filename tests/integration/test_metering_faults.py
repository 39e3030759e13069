"""Metering loses nothing, over the local stack: under 20 % conflicts and 20 % throttling every
tenant's usage equals what the access log holds for it, exactly; and batches metering could not
apply at all wait in the on-failure queue (across a restart) until ``tenantry metering replay``
applies them, once."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from local import template
from local.stack_process import LocalStack

pytestmark = pytest.mark.local_only("starts its own stacks with fault injection")

OUTCOMES = ("allowed", "denied", "client_errors", "errors")
TIERS = ("basic", "basic", "pro", "enterprise")
READ_ATTEMPTS = 50


def _outcome(status: int) -> str:
    # The test's own reading of design §7 (not metering's code): 429 is denied, another 4xx a
    # client error, 5xx an error, the rest allowed.
    if status == 429:
        return "denied"
    if 400 <= status < 500:
        return "client_errors"
    return "errors" if status >= 500 else "allowed"


def _month_of(record: dict[str, Any]) -> str:
    """The month a line is metered under: that of its requestTimeEpoch (design §7's period key)."""
    moment = datetime.fromtimestamp(int(record["requestTimeEpoch"]) / 1000, UTC)
    return f"month#{moment:%Y-%m}"


def access_log_counts(home: Path, tenants: set[str], month: str | None = None) -> dict[str, Counter[str]]:
    """Per tenant: requests and each outcome, from the access log's lines (of ``month`` only, when
    given)."""
    counts: dict[str, Counter[str]] = {tenant: Counter() for tenant in tenants}
    for text in (home / "access.log").read_text(encoding="utf-8").splitlines():
        record = json.loads(text)
        if record["tenantId"] in tenants and month in (None, _month_of(record)):
            counts[record["tenantId"]]["requests"] += 1
            counts[record["tenantId"]][_outcome(int(record["status"]))] += 1
    return counts


def metered_counts(stack: LocalStack, tenant_id: str) -> tuple[str, Counter[str]]:
    """The tenant's month as ``GET /tenants/{id}/usage`` answers it (an admin read: not metered
    for the tenant), with the month it is (``month#YYYY-MM``). Under faults a read may be refused
    (503, an authorizer's 500): read again."""
    for _ in range(READ_ATTEMPTS):
        answer = stack.request("GET", f"/tenants/{tenant_id}/usage", key=stack.admin_key)
        if answer.status == 200:
            month = answer.json["month"]
            return month["period"], Counter(
                {name: month[name] for name in ("requests", *OUTCOMES) if month[name]}
            )
    raise AssertionError(f"no usage for {tenant_id} in {READ_ATTEMPTS} reads: {answer.status} {answer.raw!r}")


def assert_metered_as_logged(stack: LocalStack, home: Path, tenants: set[str]) -> None:
    """Each tenant's month as the API answers it holds exactly the access log's lines of that
    month: a run that crosses a month's end compares the month the answer is about, not the
    month the requests were sent in."""
    for tenant in tenants:
        month, metered = metered_counts(stack, tenant)
        assert metered == access_log_counts(home, {tenant}, month)[tenant], (tenant, month)


def replay(home: Path) -> dict[str, Any]:
    """``tenantry metering replay`` against the stack in ``home`` (running or stopped), as an
    operator runs it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    done = subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "tenantry_cli", "metering", "replay", "--home", str(home), "--json"],
        cwd=template.REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def drive(stack: LocalStack, keys: list[str], rounds: int) -> None:
    """Traffic of every outcome from several tenants at once: reads, publishes (transactions),
    bad bodies (400/422), bursts past basic's limit (429)."""

    def one_tenant(key: str) -> None:
        for number in range(rounds):
            stack.request("GET", "/me", key=key)
            stack.request("POST", "/events", key=key, body={"type": "t", "data": {"n": number}})
            stack.request("GET", "/events?limit=5", key=key)
            stack.request("POST", "/events", key=key, raw=b"{not json")

    threads = [threading.Thread(target=one_tenant, args=(key,)) for key in keys for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def onboard(stack_factory: Callable[..., LocalStack], home: Path) -> dict[str, str]:
    """Tenants of several tiers, onboarded before any fault is injected; the stack is stopped."""
    stack = stack_factory(home)
    tenants = dict(stack.create_tenant(tier) for tier in TIERS)
    assert stack.stop() == 0
    return tenants


def test_usage_matches_the_access_log_exactly_under_conflicts_and_throttling(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    tenants = onboard(stack_factory, home)
    spec = "conflict=20%,throttle=20%,seed=11"
    # Given the stack with 20 % of DynamoDB transactions cancelled for conflicts and 20 % of all
    # DynamoDB calls throttled (metering's writes included)
    stack = stack_factory(home, extra_args=["--faults", spec])
    # When four tenants send traffic of every outcome at once
    drive(stack, list(tenants.values()), rounds=6)
    # And the stack stops (every line handed to metering: applied, or in the failure queue)
    assert stack.stop() == 0
    # And, with the faults still on, the operator replays whatever metering could not apply
    stack = stack_factory(home, extra_args=["--faults", spec])
    for _ in range(5):
        result = replay(home)
        if not result["failed"]:
            break
    assert result["failed"] == []
    # Then every tenant's usage is exactly what the access log holds for it
    expected = access_log_counts(home, set(tenants))
    # (a request whose authorizer failed under throttling has no tenant: most still have one)
    assert all(counts["requests"] >= 24 for counts in expected.values())
    assert_metered_as_logged(stack, home, set(tenants))
    assert f"FAULTS: {spec}" in Path(stack.stdout).read_text(encoding="utf-8")


def test_batches_metering_cannot_apply_wait_in_the_queue_across_a_restart_and_replay_once(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    tenants = onboard(stack_factory, home)
    # Given metering with a 3 s Timeout (an overlay of the template's function) and DynamoDB
    # cancelling every transaction for a conflict: each attempt retries until its budget is spent
    # and fails, Lambda's retries too (a conflict is not retried by botocore, so an attempt ends
    # within its 3 s and the stack stops well within its 30 s)
    function = copy.deepcopy(template.template()["Resources"]["MeteringFunction"])
    function["Properties"]["Timeout"] = 3
    function["Properties"]["CodeUri"] = str(template.REPO_ROOT / "functions" / "metering")
    overlay = tmp_path / "metering-overlay.yaml"
    overlay.write_text(yaml.safe_dump({"Resources": {"MeteringFunction": function}}), encoding="utf-8")
    stack = stack_factory(home, overlay=overlay, extra_args=["--faults", "conflict=100%"])
    # When the tenants send requests that need no transaction of their own
    for key in tenants.values():
        for _ in range(3):
            assert stack.request("GET", "/me", key=key).status == 200
    assert stack.stop() == 0
    # Then the batches are in the failure queue, which survived the stop: the operator's replay
    # (the stack stopped) applies them, none of whose chunks had committed, and deletes them
    result = replay(home)
    assert result["replayed"] >= 1 and result["failed"] == []
    assert result["chunks_applied"] >= 1 and result["duplicate_chunks"] == 0
    # And a second replay finds nothing
    assert replay(home)["replayed"] == 0
    # And the usage equals the access log: each request counted once
    stack = stack_factory(home)
    expected = access_log_counts(home, set(tenants))
    assert all(counts["requests"] == 3 for counts in expected.values())
    assert_metered_as_logged(stack, home, set(tenants))
