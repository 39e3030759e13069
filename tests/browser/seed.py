"""Tenants with known figures on a local stack, for the console's browser test and its screenshots.

Today's traffic goes through the real gateway over HTTP (so the edge's own 429s are in it); the 29
days before today are metered from access records with past timestamps through the same
``tenantry.metering.aggregate`` the access log feeds, written into the stack's Usage table.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from local.stack_process import LocalStack
from local.template import local_table_name
from tenantry import metering
from tenantry.stores import usage as usage_store

HISTORY_DAYS = 30
TENANTS = {
    "acme": ("Acme Corp", "basic"),
    "globex": ("Globex", "pro"),
    "initech": ("Initech", "enterprise"),
    "umbrella": ("Umbrella", "pro"),
}


@dataclass
class Figures:
    requests: int = 0
    allowed: int = 0
    denied: int = 0
    tokens: int = 0


@dataclass
class Seeded:
    keys: dict[str, str]
    month: dict[str, Figures]
    # acme's per-day figures, oldest first, ``YYYY-MM-DD`` → figures
    acme_days: dict[str, Figures] = field(default_factory=dict)


def _history(day_back: int) -> tuple[int, int, int]:
    """acme's allowed, denied and tokens ``day_back`` days ago: varied, never all equal."""
    return 3 + (day_back * 7) % 23, day_back % 4, 150 * (day_back % 5)


def _write_history(stack: LocalStack, now: datetime, seeded: Seeded) -> None:
    records: list[metering.AccessRecord] = []
    tokens: dict[tuple[str, str], int] = {}
    for day_back in range(HISTORY_DAYS - 1, 0, -1):
        moment = (now - timedelta(days=day_back)).replace(hour=12, minute=0, second=0, microsecond=0)
        allowed, denied, day_tokens = _history(day_back)
        epoch_ms = int(moment.timestamp() * 1000)
        for number in range(allowed + denied):
            status = 200 if number < allowed else 429
            records.append(
                metering.AccessRecord(
                    request_id=f"seed-{day_back}-{number}",
                    tenant_id="acme",
                    method="GET",
                    resource_path="/me",
                    status=status,
                    latency_ms=12 if status == 200 else 1,
                    integration_ms=10 if status == 200 else None,
                    epoch_ms=epoch_ms,
                )
            )
        for period in (usage_store.day_period(moment), usage_store.month_period(moment)):
            tokens[("acme", period)] = tokens.get(("acme", period), 0) + day_tokens
        seeded.acme_days[moment.strftime("%Y-%m-%d")] = Figures(allowed + denied, allowed, denied, day_tokens)
        if usage_store.month_period(moment) == usage_store.month_period(now):
            month = seeded.month["acme"]
            month.requests += allowed + denied
            month.allowed += allowed
            month.denied += denied
            month.tokens += day_tokens
    client = stack.aws_resource("dynamodb").meta.client  # the store's updates are in plain values
    # The store builds its updates for the table named in USAGE_TABLE: the stack's, for a moment.
    previous = os.environ.get("USAGE_TABLE")
    os.environ["USAGE_TABLE"] = local_table_name("UsageTable")
    try:
        for (tenant_id, period), counters in metering.aggregate(records).items():
            client.update_item(**usage_store.counter_update(tenant_id, period, counters.values)["Update"])
        for (tenant_id, period), count in tokens.items():
            # Input tokens only: the figure the console shows is input + output.
            added = {"tokens_in": count, "tokens_out": 0}
            client.update_item(**usage_store.counter_update(tenant_id, period, added)["Update"])
    finally:
        if previous is None:
            os.environ.pop("USAGE_TABLE", None)
        else:
            os.environ["USAGE_TABLE"] = previous


def _wait_for_metering(stack: LocalStack, expected: dict[str, int]) -> None:
    """The gateway meters its access log in the background; wait until today's requests are in."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = all(
            stack.request("GET", f"/tenants/{tenant_id}/usage", key=stack.admin_key).json["today"]["requests"]
            >= count
            for tenant_id, count in expected.items()
        )
        if done:
            return
        time.sleep(0.1)
    raise AssertionError(f"metering did not count {expected} within 30 s")


def seed(stack: LocalStack, now: datetime | None = None) -> Seeded:
    moment = now or datetime.now(UTC)
    keys: dict[str, str] = {}
    for tenant_id, (name, tier) in TENANTS.items():
        created = stack.request(
            "POST", "/tenants", key=stack.admin_key, body={"tenant_id": tenant_id, "name": name, "tier": tier}
        )
        assert created.status == 201, created.raw
        keys[tenant_id] = str(created.json["api_key"])
    seeded = Seeded(keys=keys, month={tenant_id: Figures() for tenant_id in TENANTS})
    # acme (basic: burst 10, one token back every 6 s): 14 requests in a row, the first 10 admitted
    # and most of the rest throttled at the edge. How many of the last 4 pass depends on how long the
    # run took (a loaded machine refills a token), so the figures are the answers actually received.
    statuses = [stack.request("GET", "/me", key=keys["acme"]).status for _ in range(14)]
    assert statuses[:10] == [200] * 10 and set(statuses) <= {200, 429}, statuses
    today = seeded.acme_days.setdefault(moment.strftime("%Y-%m-%d"), Figures())
    for figures in (seeded.month["acme"], today):
        figures.requests += len(statuses)
        figures.allowed += statuses.count(200)
        figures.denied += statuses.count(429)
    # globex (pro): one chat turn (echo model, offline) and three reads.
    chat = stack.request(
        "POST", "/chat", key=keys["globex"], body={"message": "hello console"}, headers={"X-User-ID": "ops"}
    )
    assert chat.status == 200, chat.raw
    for _ in range(3):
        assert stack.request("GET", "/me", key=keys["globex"]).status == 200
    globex = seeded.month["globex"]
    globex.requests = globex.allowed = 4
    globex.tokens = int(chat.json["tokens"]["input"]) + int(chat.json["tokens"]["output"])
    # umbrella (pro) is suspended; initech (enterprise) has no traffic.
    answer = stack.request("PATCH", "/tenants/umbrella", key=stack.admin_key, body={"status": "suspended"})
    assert answer.status == 200, answer.raw
    _wait_for_metering(stack, {"acme": len(statuses), "globex": 4})
    _write_history(stack, moment, seeded)
    return seeded


def acme_day_list(seeded: Seeded) -> list[tuple[str, Figures]]:
    return sorted(seeded.acme_days.items())


def as_dict(figures: Figures) -> dict[str, Any]:
    return {
        "requests": figures.requests,
        "allowed": figures.allowed,
        "denied": figures.denied,
        "tokens": figures.tokens,
    }
