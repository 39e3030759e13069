"""The stage's access log, locally: the template's format, one JSON line per request, fed to metering.

On AWS, API Gateway renders ``AccessLogSetting.Format`` for every request (throttled ones too) and
a subscription filter hands the lines to the metering function, as a CloudWatch Logs subscription
event, asynchronously. Locally the gateway renders the same format with the same ``$context``
variables, appends the line to ``access.log`` and, from a background thread every half second,
hands the new lines to ``deliver`` as the same subscription event (gzip, base64, a log stream and
an id per log event), so stats appear within a second or two. ``deliver`` is the local Lambda's
asynchronous invoke (retries, then the on-failure queue: ``local/gateway/asyncinvoke.py``).
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.gateway.exchange import Exchange

_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)")
_log = logging.getLogger("tenantry.local.gateway")

Deliver = Callable[[dict[str, Any]], Any]
# CloudWatch Logs hands a subscription at most about 1 MB of log events per invocation; locally a
# batch is what accumulated in half a second, capped by count.
MAX_LINES_PER_EVENT = 5000


def render(log_format: str, values: dict[str, str]) -> str:
    """Substitute ``$context.x`` variables; API Gateway writes ``-`` for an empty one."""

    def value_of(match: re.Match[str]) -> str:
        value = values.get(match.group(1), "")
        # The format quotes its variables, so a value must not break out of its JSON string.
        return json.dumps(value)[1:-1] if value != "" else "-"

    return _VARIABLE.sub(value_of, log_format)


def context_values(
    exchange: Exchange, status: int, stage: str, response_length: int | None = None
) -> dict[str, str]:
    """The ``$context`` variables of one request's line, from what the request gathered."""
    context = exchange.authorizer.context if exchange.authorizer is not None else {}
    values = {f"authorizer.{name}": value for name, value in context.items()}
    if exchange.authorizer is not None:
        values["authorizer.principalId"] = exchange.authorizer.principal_id
    values.update(
        {
            "requestId": exchange.request_id,
            "httpMethod": exchange.method,
            "resourcePath": exchange.route.path if exchange.route is not None else exchange.path,
            "path": f"/{stage}{exchange.path}",
            "stage": stage,
            "status": str(status),
            "responseLatency": str(int((time.perf_counter() - exchange.started) * 1000)),
            "integrationLatency": "" if exchange.integration_ms is None else str(exchange.integration_ms),
            "responseLength": "" if response_length is None else str(response_length),
            "error.responseType": exchange.error_type,
            "identity.apiKeyId": exchange.api_key_id or "",
            "requestTimeEpoch": str(exchange.epoch_ms),
            "requestTime": exchange.request_time,
        }
    )
    return values


def subscription_event(
    lines: Sequence[str],
    *,
    log_group: str,
    log_stream: str,
    first_id: int,
    timestamp_ms: int | None = None,
) -> dict[str, Any]:
    """``lines`` as CloudWatch Logs delivers them to a subscribed function: ``awslogs.data`` is
    the gzip-compressed, base64-encoded JSON of the log events, each with its own id."""
    moment = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": log_stream,
        "subscriptionFilters": ["local-access-log"],
        "logEvents": [
            {"id": f"{first_id + offset:056d}", "timestamp": moment, "message": line}
            for offset, line in enumerate(lines)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"awslogs": {"data": data}}


# Under load, flushes are spaced so that metering takes about 1/METERING_SHARE of the time, and
# never more than MAX_FLUSH_SECONDS apart (CloudWatch Logs delivers a subscription within seconds).
METERING_SHARE = 20
MAX_FLUSH_SECONDS = 3.0


def next_flush_wait(spent: float, flush_every: float) -> float:
    """Seconds until the next flush, after one that took ``spent``.

    Metering shares the process (and its GIL) with the requests, at a cost per tenant and period
    per flush whatever the number of lines: a flush that took longer waits longer before the next,
    so metering keeps to about 1/METERING_SHARE of the stack's time under load, and to every
    ``flush_every`` seconds when the stack is quiet."""
    return min(MAX_FLUSH_SECONDS, max(flush_every, spent * METERING_SHARE))


class AccessLog:
    """Writes rendered lines to a file and/or a stream, and queues them for metering."""

    def __init__(
        self,
        log_format: str,
        *,
        path: Path | None,
        echo: IO[str] | None,
        deliver: Deliver | None,
        flush_every: float = 0.5,
        log_group: str = "/local/access-log",
    ) -> None:
        self._format = log_format
        self._file = path.open("a", encoding="utf-8", buffering=1) if path is not None else None
        self._echo = echo
        self._deliver = deliver
        self._flush_every = flush_every
        self._pending: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        # One log stream per gateway run, ids counting up in it: a batch's id (its events' ids)
        # is never reused, and stays the same through retries and replays.
        self._log_group = log_group
        self._log_stream = f"local/{uuid.uuid4()}"
        self._next_id = 1
        self._undelivered: list[tuple[dict[str, Any], int]] = []
        self.delivered = 0

    def start(self) -> None:
        if self._deliver is not None:
            self._thread = threading.Thread(target=self._meter_loop, name="gateway-metering", daemon=True)
            self._thread.start()

    def write(self, values: dict[str, str]) -> str:
        line = render(self._format, values)
        with self._write_lock:
            if self._file is not None:
                self._file.write(line + "\n")
            if self._echo is not None:
                self._echo.write(line + "\n")
                self._echo.flush()
        if self._deliver is not None:
            self._pending.put(line)
        return line

    def drain(self) -> int:
        """Hand every queued line to metering now; the number of lines handed over.

        A batch whose delivery itself failed (the invoke did not happen, as when Lambda throttles
        CloudWatch Logs) is kept, with its ids, and offered again on the next drain."""
        with self._drain_lock:
            lines: list[str] = []
            with contextlib.suppress(queue.Empty):
                while True:
                    lines.append(self._pending.get_nowait())
            batches = self._undelivered
            self._undelivered = []
            for start in range(0, len(lines), MAX_LINES_PER_EVENT):
                chunk = lines[start : start + MAX_LINES_PER_EVENT]
                first_id, self._next_id = self._next_id, self._next_id + len(chunk)
                event = subscription_event(
                    chunk, log_group=self._log_group, log_stream=self._log_stream, first_id=first_id
                )
                batches.append((event, len(chunk)))
            handed = 0
            for event, count in batches:
                if self._deliver is None:
                    break
                try:
                    self._deliver(event)
                except Exception:  # noqa: BLE001 - metering trouble must never take the gateway down
                    _log.exception("delivering %d access-log lines failed; offered again shortly", count)
                    self._undelivered.append((event, count))
                    continue
                self.delivered += count
                handed += count
            return handed

    def _meter_loop(self) -> None:
        wait = self._flush_every
        while not self._stopping.wait(wait):
            started = time.monotonic()
            self.drain()
            wait = next_flush_wait(time.monotonic() - started, self._flush_every)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.drain()
        if self._file is not None:
            self._file.close()
