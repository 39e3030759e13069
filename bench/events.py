"""Event store throughput, DynamoDB round trips per publish (plain, keyed, conditional), and the
latency to read 1000 events.

Runs the logic layer (tenantry.events) in process against the embedded DynamoDB of the local
stack (moto's server on loopback behind its one lock), so absolute figures are moto's, not
DynamoDB's; the round-trip counts are the same on AWS. Round trips are counted with botocore's
``before-call`` event hook on every DynamoDB client of the session.
Run: make bench (or .venv/bin/python bench/events.py).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import boto3

from local.embedded import EmbeddedAws
from tenantry import caches, events
from tenantry.models.events import MAX_BATCH, EventIn

SINGLES = 300
BATCHES = 20
BATCH_SIZE = MAX_BATCH
READ_RUNS = 7


def main() -> int:
    server = EmbeddedAws()
    server.start()
    try:
        os.environ.update(server.process_env())
        caches.clear_all()
        calls: list[str] = []
        # On the session, so every DynamoDB client counts: the plain one and the resource's.
        boto3._get_default_session().events.register(
            "before-call.dynamodb.*", lambda model, **_: calls.append(model.name)
        )
        event = EventIn(type="order.placed", data={"order_id": "o-1", "total": 42.5, "items": ["a", "b"]})

        # A new stream's first publish: read HEAD (none), open the stream, append.
        events.append("bench", [event], batch=False)
        first_trips = len(calls)
        # Cold publish: the stream exists, this process does not know its head yet.
        caches.clear_all("tenantry.events.")
        calls.clear()
        events.append("bench", [event], batch=False)
        cold_trips = len(calls)
        calls.clear()
        started = time.perf_counter()
        for _ in range(SINGLES):
            events.append("bench", [event], batch=False)
        single_seconds = time.perf_counter() - started
        single_trips = len(calls) / SINGLES

        # Keyed publishes (Idempotency-Key): warm, each with a new key.
        body = event.model_dump(exclude_none=True)
        events.publish("bench-keyed", body, "warm-up")
        calls.clear()
        started = time.perf_counter()
        for number in range(SINGLES):
            events.publish("bench-keyed", body, f"key-{number}")
        keyed_seconds = time.perf_counter() - started
        keyed_trips = len(calls) / SINGLES

        calls.clear()
        started = time.perf_counter()
        for _ in range(BATCHES):
            events.append("bench", [event] * BATCH_SIZE, batch=True)
        batch_seconds = time.perf_counter() - started
        batch_trips = len(calls) / BATCHES

        # Conditional publishes (expected_position): each after the last, each from a cold process
        # (no head known), since the condition is the client's, not this process's view.
        position = events.append("bench-conditional", [event], batch=False)[-1]
        calls.clear()
        started = time.perf_counter()
        for _ in range(SINGLES):
            caches.clear_all("tenantry.events.")
            position = events.append("bench-conditional", [event], batch=False, expected_position=position)[
                -1
            ]
        conditional_seconds = time.perf_counter() - started
        conditional_trips = len(calls) / SINGLES

        for _ in range(10):  # 1000 events to read back
            events.append("reader", [event] * 50, batch=True)
            events.append("reader", [event] * 50, batch=True)
        read_ms: list[float] = []
        for _ in range(READ_RUNS):
            started = time.perf_counter()
            page = events.read_events("reader", 1, 1000, None)
            read_ms.append((time.perf_counter() - started) * 1000)
            assert len(page.events) == 1000
        calls.clear()
        events.read_events("reader", 1, 1000, None)
        read_trips = len(calls)

        print("backend: embedded DynamoDB (moto server on loopback, one lock)")
        print(f"first publish of a new stream: {first_trips} round trips (read HEAD, open, append)")
        print(f"cold publish: {cold_trips} round trips (read HEAD, then the transaction)")
        print(
            f"single publish: {SINGLES / single_seconds:8.0f} events/s  "
            f"{single_seconds / SINGLES * 1000:6.2f} ms each  {single_trips:.2f} round trips per publish"
        )
        print(
            f"keyed publish: {SINGLES / keyed_seconds:8.0f} events/s  "
            f"{keyed_seconds / SINGLES * 1000:6.2f} ms each  {keyed_trips:.2f} round trips per publish  "
            f"({single_seconds / keyed_seconds:.2f}x the unkeyed rate)"
        )
        print(
            f"conditional publish (expected_position, cold): {SINGLES / conditional_seconds:8.0f} events/s  "
            f"{conditional_seconds / SINGLES * 1000:6.2f} ms each  "
            f"{conditional_trips:.2f} round trips per publish  "
            f"({single_seconds / conditional_seconds:.2f}x the unconditional rate)"
        )
        print(
            f"batch of {BATCH_SIZE}: {BATCHES * BATCH_SIZE / batch_seconds:8.0f} events/s  "
            f"{batch_seconds / BATCHES * 1000:6.2f} ms each  {batch_trips:.2f} round trips per publish"
        )
        print(
            f"read 1000 events: median {statistics.median(read_ms):.1f} ms, "
            f"min {min(read_ms):.1f} ms, {read_trips} round trips"
        )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
