"""Publishing under AWS's failure modes: retries per publish and latency percentiles with FAULTS.

The event store's logic in process against the embedded DynamoDB with fault injection in front of
its lock (``local/faults.py``), as ``make dev FAULTS=…`` runs it. For each spec: one publisher in a
loop (sequential), then 50 concurrent publishers on one tenant. "Transactions per publish" counts
the ``TransactWriteItems`` calls our code made (botocore's ``before-call``), so retries of lost
races; botocore's own retries of throttled calls are counted from the injector's tally.
Run: make bench (or .venv/bin/python bench/faults.py).
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections import Counter

from local import faults
from local.embedded import EmbeddedAws
from tenantry import aws, caches, events
from tenantry.models.events import EventIn

SPECS = ("", "conflict=20%,seed=1", "conflict=20%,throttle=20%,seed=1")
SEQUENTIAL = 200
PUBLISHERS = 50
ROUNDS = 4


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _run(spec: str) -> dict[str, object]:
    server = EmbeddedAws(fault_spec=faults.FaultSpec.parse(spec))
    server.start()
    try:
        os.environ.update(server.process_env())
        caches.clear_all()
        calls: Counter[str] = Counter()
        lock = threading.Lock()

        def count(model: object, **_: object) -> None:
            with lock:
                calls[str(getattr(model, "name", ""))] += 1

        aws.dynamodb_client().meta.events.register("before-call.dynamodb.*", count)
        event = EventIn(type="order.placed", data={"order_id": "o-1", "total": 42.5})

        events.append("seq", [event], batch=False)  # the warm head, as in steady state
        calls.clear()
        latencies: list[float] = []
        for _ in range(SEQUENTIAL):
            started = time.perf_counter()
            events.append("seq", [event], batch=False)
            latencies.append((time.perf_counter() - started) * 1000)
        sequential = {
            "transactions_per_publish": calls["TransactWriteItems"] / SEQUENTIAL,
            "p50_ms": statistics.median(latencies),
            "p99_ms": _percentile(latencies, 0.99),
        }

        calls.clear()
        concurrent: list[float] = []
        positions: list[int] = []
        failures: list[BaseException] = []

        def publisher(barrier: threading.Barrier) -> None:
            barrier.wait()
            started = time.perf_counter()
            try:
                got = events.append("busy", [event], batch=False)
            except BaseException as exc:  # noqa: BLE001 - reported below
                with lock:
                    failures.append(exc)
                return
            with lock:
                concurrent.append((time.perf_counter() - started) * 1000)
                positions.extend(got)

        for _ in range(ROUNDS):
            barrier = threading.Barrier(PUBLISHERS)
            threads = [threading.Thread(target=publisher, args=(barrier,)) for _ in range(PUBLISHERS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        total = PUBLISHERS * ROUNDS
        injected = dict(server.fault_injector.injected) if server.fault_injector else {}
        return {
            "spec": spec or "(none)",
            "sequential": sequential,
            "concurrent": {
                "transactions_per_publish": calls["TransactWriteItems"] / total,
                "p50_ms": statistics.median(concurrent) if concurrent else 0.0,
                "p99_ms": _percentile(concurrent, 0.99) if concurrent else 0.0,
                "failures": len(failures),
                "gapless": sorted(positions) == list(range(1, total + 1)),
            },
            "injected": injected,
        }
    finally:
        caches.clear_all()
        server.stop()


def main() -> int:
    print(f"{SEQUENTIAL} sequential publishes; {ROUNDS} rounds of {PUBLISHERS} concurrent publishers")
    ok = True
    for spec in SPECS:
        result = _run(spec)
        sequential = result["sequential"]
        concurrent = result["concurrent"]
        assert isinstance(sequential, dict) and isinstance(concurrent, dict)
        print(f"\nFAULTS={result['spec']}")
        print(
            f"  sequential: {sequential['transactions_per_publish']:.2f} transactions/publish "
            f"({sequential['transactions_per_publish'] - 1:.2f} retries), "
            f"p50 {sequential['p50_ms']:.1f} ms, p99 {sequential['p99_ms']:.1f} ms"
        )
        print(
            f"  concurrent: {concurrent['transactions_per_publish']:.2f} transactions/publish "
            f"({concurrent['transactions_per_publish'] - 1:.2f} retries), "
            f"p50 {concurrent['p50_ms']:.1f} ms, p99 {concurrent['p99_ms']:.1f} ms, "
            f"failures {concurrent['failures']}, gapless {concurrent['gapless']}"
        )
        print(f"  injected: {result['injected']}")
        ok = ok and concurrent["failures"] == 0 and bool(concurrent["gapless"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
