"""Live subscriptions through the local gateway: from a publish's 201 to the subscriber's event.

A local stack (``tenantry dev`` in a subprocess, warm); a subscriber here reads ``GET
/events/stream`` over HTTP on a thread of its own while the main thread publishes one event at a
time (each after the last arrived, plus a pause, so nothing queues). For each event:

- delivery delay = when its ``event`` line reached the subscriber - when its publish's 201 reached
  the publisher (one clock, this process's). It is negative when the subscriber had the event
  before the publisher had its answer: the embedded AWS signals the subscription once the write
  is durable, before the publish's answer leaves.

Baselines, measured in the same run: the publish's own round trip (send to 201) on the same
stack, and the same delay on a stack started with ``--no-change-feed``, where subscriptions read
HEAD once a second as they do on AWS (there, add DynamoDB's and API Gateway's own latency); its
publishes pause a random 0-1 s more, so they fall anywhere between two reads.

Not a timed test: figures go to docs/performance.md. Run: make bench (or .venv/bin/python
bench/subscribe.py [EVENTS]).
"""

from __future__ import annotations

import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from local.stack_process import LocalStack, start_stack  # noqa: E402

WARM_UP = 20
PAUSE_SECONDS = 0.02


class Subscriber:
    """Reads a subscription's events as they come; ``arrivals[position]`` = when each came."""

    def __init__(self, url: str, key: str, start: int) -> None:
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
        self._connection.request(
            "GET", f"/events/stream?from={start}&max_seconds=900", headers={"X-API-Key": key}
        )
        self._response = self._connection.getresponse()
        assert self._response.status == 200, self._response.read()
        self.arrivals: dict[int, float] = {}
        self.arrived = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                line = self._response.readline()
            except (OSError, AttributeError, ValueError):
                return  # closed under the reader at the end
            if not line:
                return
            if line.startswith(b"data: "):
                at = time.perf_counter()
                data = json.loads(line[6:])
                if "position" in data:
                    with self.arrived:
                        self.arrivals[int(data["position"])] = at
                        self.arrived.notify_all()

    def wait_for(self, position: int) -> None:
        with self.arrived:
            self.arrived.wait_for(lambda: position in self.arrivals, timeout=30)

    def close(self) -> None:
        self._connection.close()


def publish(url: str, key: str, number: int) -> tuple[int, float, float]:
    """(position, when sent, when its 201 was read)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    body = json.dumps({"type": "bench.delivered", "data": {"n": number}})
    sent = time.perf_counter()
    connection.request(
        "POST", "/events", body=body, headers={"Content-Type": "application/json", "X-API-Key": key}
    )
    response = connection.getresponse()
    payload = response.read()
    answered = time.perf_counter()
    connection.close()
    assert response.status == 201, payload
    return int(json.loads(payload)["position"]), sent, answered


def measure(stack: LocalStack, count: int, spread: float) -> tuple[list[float], list[float]]:
    """(delivery delays, publish round trips), in seconds, after a warm-up. Each publish waits
    for the last event, then a pause of up to ``spread`` more seconds (seeded), so that publishes
    fall anywhere between two timed reads of a polling subscription."""
    pauses = random.Random(24)
    _, key = stack.create_tenant("enterprise")
    subscriber = Subscriber(stack.url, key, 1)
    delays: list[float] = []
    round_trips: list[float] = []
    try:
        for number in range(WARM_UP + count):
            position, sent, answered = publish(stack.url, key, number)
            subscriber.wait_for(position)
            if number >= WARM_UP:
                delays.append(subscriber.arrivals[position] - answered)
                round_trips.append(answered - sent)
            time.sleep(PAUSE_SECONDS + pauses.uniform(0, spread))
    finally:
        subscriber.close()
    return delays, round_trips


def percentile(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(quantile * (len(ordered) - 1))))]


def summary(values: list[float]) -> str:
    return f"p50 {statistics.median(values) * 1000:7.1f} ms, p99 {percentile(values, 0.99) * 1000:7.1f} ms"


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    results = {}
    for name, extra in (
        ("change feed (make dev)", []),
        ("polling, as on AWS (--no-change-feed)", ["--no-change-feed"]),
    ):
        with tempfile.TemporaryDirectory() as home:
            stack = start_stack(Path(home), extra_args=extra)
            try:
                # Fewer events when each waits for a timed read (about half a second on average).
                results[name] = (
                    measure(stack, max(20, count // 10), spread=1.0)
                    if extra
                    else measure(stack, count, spread=0)
                )
            finally:
                stack.stop()
    print(f"live subscription, one subscriber, events published one at a time ({count} measured)")
    for name, (delays, round_trips) in results.items():
        print(f"  {name}:")
        print(f"    delivery delay after the publish's 201: {summary(delays)}  ({len(delays)} events)")
        print(f"    baseline, the publish's own round trip:  {summary(round_trips)}")
    feed_delays, feed_trips = results["change feed (make dev)"]
    print(
        f"  delivery p50 / publish round trip p50: "
        f"{statistics.median(feed_delays) / statistics.median(feed_trips):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
