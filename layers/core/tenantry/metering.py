"""Metering: API Gateway access-log lines → per-tenant counters in the Usage table.

Every request API Gateway handled has a line, throttled (429) and refused ones included, so the
counters see what no handler saw. Lines are aggregated per tenant and period (day and month) in
memory, then added with atomic ``ADD`` updates. A batch is applied exactly once: its updates go in
transactions of at most 99, each with a marker item (``_metering`` / ``batch#<id>#<chunk>``) put
under ``attribute_not_exists``, so a redelivered batch (same lines, same chunks) finds its markers
and adds nothing. Markers expire through TTL after 15 days; TTL only cleans up.

A batch the function cannot apply (Lambda's two async retries spent) reaches the on-failure queue
as Lambda's invocation record; :func:`replay` applies it from there, through the same code and
the same markers, so a batch that had partly committed adds only its missing chunks.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent

from tenantry.observability import logger
from tenantry.stores import usage as usage_store

# A marker must outlive every way its batch can come back: Lambda's retries (up to 6 h of event
# age), then the on-failure queue, which keeps a message 14 days (template.yaml). Past that, a
# replay of a batch that had partly committed would add its committed chunks again.
MARKER_TTL_SECONDS = 15 * 24 * 3600
MAX_UPDATES_PER_TRANSACTION = 99  # plus the marker: DynamoDB's limit is 100
# Upper bounds (ms) of the coarse latency histogram's buckets (the Prometheus histogram's); the
# last bucket is everything above.
LATENCY_BUCKETS_MS: tuple[int, ...] = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
# The fine histogram the percentiles come from: bucket 0 holds 0 ms, bucket i >= 1 the whole
# milliseconds in [RATIO**(i-1), RATIO**i). A percentile is reported as the geometric middle of
# its bucket's range, at most sqrt(RATIO) - 1 = 7.2 % from the true value, whatever the latency;
# 30 s (API Gateway's ceiling) is bucket 75.
FINE_RATIO = 1.15
FINE_PREFIX = "lh_"
NOT_A_TENANT = frozenset({"", "-", "_admin"})
CONTROL_MESSAGE = "CONTROL_MESSAGE"


def bucket_attribute(index: int) -> str:
    """``lat_le_0050`` for the bucket up to 50 ms, ``lat_gt_10000`` for the overflow bucket."""
    if index < len(LATENCY_BUCKETS_MS):
        return f"lat_le_{LATENCY_BUCKETS_MS[index]:04d}"
    return f"lat_gt_{LATENCY_BUCKETS_MS[-1]:04d}"


BUCKET_ATTRIBUTES: tuple[str, ...] = tuple(
    bucket_attribute(index) for index in range(len(LATENCY_BUCKETS_MS) + 1)
)


@dataclass(frozen=True, slots=True)
class AccessRecord:
    request_id: str
    tenant_id: str
    method: str
    resource_path: str
    status: int
    latency_ms: int
    integration_ms: int | None
    epoch_ms: int


@dataclass
class Counters:
    values: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, amount: int = 1) -> None:
        self.values[name] = self.values.get(name, 0) + amount


def _number(value: Any) -> int | None:
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else None


def parse_line(line: str) -> AccessRecord | None:
    """One access-log line in the template's format; None when it is not one."""
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    status = _number(data.get("status"))
    epoch_ms = _number(data.get("requestTimeEpoch"))
    request_id = data.get("requestId")
    if status is None or epoch_ms is None or not isinstance(request_id, str) or not request_id:
        return None
    return AccessRecord(
        request_id=request_id,
        tenant_id=str(data.get("tenantId") or "-"),
        method=str(data.get("httpMethod") or "-"),
        resource_path=str(data.get("resourcePath") or "-"),
        status=status,
        latency_ms=_number(data.get("responseLatency")) or 0,
        integration_ms=_number(data.get("integrationLatency")),
        epoch_ms=epoch_ms,
    )


def fine_bucket(latency_ms: int) -> int:
    """The fine histogram's bucket of a latency in whole milliseconds."""
    if latency_ms <= 0:
        return 0
    index = math.floor(math.log(latency_ms) / math.log(FINE_RATIO)) + 1
    # Guard the float log at exact powers: bucket i is [RATIO**(i-1), RATIO**i).
    while FINE_RATIO ** (index - 1) > latency_ms:
        index -= 1
    while FINE_RATIO**index <= latency_ms:
        index += 1
    return index


def fine_attribute(index: int) -> str:
    return f"{FINE_PREFIX}{index:03d}"


def fine_range(index: int) -> tuple[int, int]:
    """The smallest and largest whole millisecond in fine bucket ``index``."""
    if index == 0:
        return 0, 0
    return math.ceil(FINE_RATIO ** (index - 1)), math.ceil(FINE_RATIO**index) - 1


def latency_bucket(latency_ms: int) -> int:
    for index, bound in enumerate(LATENCY_BUCKETS_MS):
        if latency_ms <= bound:
            return index
    return len(LATENCY_BUCKETS_MS)


def outcome(status: int) -> str:
    """allowed (2xx/3xx), denied (429: throttled or over quota), client_errors (other 4xx), errors."""
    if status == 429:
        return "denied"
    if 400 <= status < 500:
        return "client_errors"
    if status >= 500:
        return "errors"
    return "allowed"


def route_attribute(record: AccessRecord) -> str:
    return f"route:{record.method} {record.resource_path}"


def aggregate(records: Iterable[AccessRecord]) -> dict[tuple[str, str], Counters]:
    """Counters per (tenant, period) for the day and the month of each request."""
    totals: dict[tuple[str, str], Counters] = {}
    for record in records:
        moment = datetime.fromtimestamp(record.epoch_ms / 1000, UTC)
        for period in (usage_store.day_period(moment), usage_store.month_period(moment)):
            counters = totals.setdefault((record.tenant_id, period), Counters())
            counters.add("requests")
            counters.add(outcome(record.status))
            counters.add("latency_sum_ms", record.latency_ms)
            counters.add("latency_count")
            counters.add(BUCKET_ATTRIBUTES[latency_bucket(record.latency_ms)])
            counters.add(fine_attribute(fine_bucket(record.latency_ms)))
            if record.integration_ms is not None:
                counters.add("integration_count")
                counters.add("integration_sum_ms", record.integration_ms)
            counters.add(route_attribute(record))
    return totals


def apply(
    batch_id: str, totals: dict[tuple[str, str], Counters], writer: usage_store.UsageWriter
) -> tuple[int, int]:
    """Add ``totals`` once per ``batch_id``: (chunks applied, chunks already applied before)."""
    keys = sorted(totals)
    applied = duplicates = 0
    for chunk, start in enumerate(range(0, len(keys), MAX_UPDATES_PER_TRANSACTION)):
        additions = [
            usage_store.CounterAdditions(tenant_id, period, totals[(tenant_id, period)].values)
            for tenant_id, period in keys[start : start + MAX_UPDATES_PER_TRANSACTION]
        ]
        if writer.add_once(f"{batch_id}#{chunk}", additions, int(time.time()) + MARKER_TTL_SECONDS):
            applied += 1
        else:
            duplicates += 1
    return applied, duplicates


def ingest_lines(
    lines: Iterable[str],
    batch_id: str | None = None,
    writer: usage_store.UsageWriter = usage_store.DYNAMODB,
) -> dict[str, int]:
    """Meter access-log lines. The batch id defaults to a hash of the lines, so the same lines
    delivered twice count once. Malformed lines are skipped and counted, never fatal."""
    materialized = [line for line in lines if line.strip()]
    records: list[AccessRecord] = []
    malformed = without_tenant = 0
    for line in materialized:
        record = parse_line(line)
        if record is None:
            malformed += 1
        elif record.tenant_id in NOT_A_TENANT:
            without_tenant += 1
        else:
            records.append(record)
    identity = batch_id or hashlib.sha256("\n".join(materialized).encode()).hexdigest()[:32]
    totals = aggregate(records)
    applied, duplicate_chunks = apply(identity, totals, writer) if totals else (0, 0)
    result = {
        "lines": len(materialized),
        "metered": len(records) if not duplicate_chunks else 0,
        "skipped_malformed": malformed,
        "skipped_without_tenant": without_tenant,
        "tenants": len({tenant for tenant, _ in totals}),
        "chunks_applied": applied,
        "duplicate_chunks": duplicate_chunks,
    }
    if malformed:
        logger.warning("malformed access-log lines skipped", extra={"skipped_malformed": malformed})
    return result


def decode_subscription(event: dict[str, Any]) -> tuple[str, list[str]]:
    """A CloudWatch Logs subscription event → (batch id, the log lines). The batch id is built
    from the log events' ids, which stay the same when Lambda retries or a replay re-applies the
    event. A control message (CloudWatch Logs checking the destination) carries no lines."""
    data = CloudWatchLogsEvent(event).parse_logs_data()
    log_events = data.log_events
    ids = "|".join(entry.get_id for entry in log_events)
    batch_id = hashlib.sha256(f"{data.log_stream}|{ids}".encode()).hexdigest()[:32]
    if data.message_type == CONTROL_MESSAGE:
        return batch_id, []
    return batch_id, [entry.message for entry in log_events]


class NotAFailedBatchError(ValueError):
    """A message on the on-failure queue that is not Lambda's record of a metering invocation."""


def failed_event(record_body: str) -> dict[str, Any]:
    """The original subscription event inside Lambda's asynchronous-invocation record (the body
    of an on-failure destination's message: ``requestPayload``)."""
    try:
        record = json.loads(record_body)
    except ValueError as exc:
        raise NotAFailedBatchError(f"not JSON: {exc}") from exc
    payload = record.get("requestPayload") if isinstance(record, dict) else None
    if not isinstance(payload, dict) or not isinstance(payload.get("awslogs"), dict):
        raise NotAFailedBatchError("no requestPayload with a CloudWatch Logs event (awslogs.data)")
    return payload


def replay(record_body: str) -> dict[str, int]:
    """Apply one failed batch from the on-failure queue, exactly once: the same batch id as its
    first delivery, so chunks that did commit then are skipped by their markers."""
    batch_id, lines = decode_subscription(failed_event(record_body))
    return ingest_lines(lines, batch_id=batch_id)


def percentile_ms(item: Mapping[str, Any], quantile: float) -> float | None:
    """The ``quantile`` (0.5, 0.95, 0.99) of a Usage item's latencies; None without requests.

    From the fine histogram, within 7.2 % of the true value. An item that also counts requests
    metered before the fine histogram existed (its coarse total is larger) answers the coarse way,
    as it always did: the upper bound of the bucket holding the percentile.
    """
    coarse = [int(item.get(name, 0)) for name in BUCKET_ATTRIBUTES]
    fine = {
        int(name.removeprefix(FINE_PREFIX)): int(count)
        for name, count in item.items()
        if name.startswith(FINE_PREFIX)
    }
    total = sum(fine.values())
    if total and total >= sum(coarse):
        rank = max(1, math.ceil(quantile * total))  # nearest rank
        running = 0
        for index in sorted(fine):
            running += fine[index]
            if running >= rank:
                low, high = fine_range(index)
                return round(math.sqrt(low * high), 1) if low != high else float(low)
    total = sum(coarse)
    if total == 0:
        return None
    running = 0
    for index, count in enumerate(coarse):
        running += count
        if running >= quantile * total:
            return float(LATENCY_BUCKETS_MS[min(index, len(LATENCY_BUCKETS_MS) - 1)])
    return None
