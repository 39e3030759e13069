"""Requests/s and latency of the local gateway at 1 and 8 concurrent keep-alive clients.

Three rate cases: a trivial handler (the gateway's own cost), GET /health (a handler that reads
DynamoDB) and an authorized GET /me whose authorizer answer is cached. The stack runs as
``tenantry dev`` in its own process; each client is a separate process with one keep-alive
connection that writes pre-built requests and reads answers by Content-Length, so the client side
stays cheap; the clients of a case warm up, then all measure the same window. Then 1,000
single-event publishes by 10 such clients at once, timed from the first to the last answer.
Every case runs BENCH_REPEATS times (3 by default; the ten-tenant publishes on fresh tenants each
time) and prints the median run with the range. Run: make bench (or .venv/bin/python
bench/gateway.py).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from local.stack_process import start_stack

OVERLAY = Path(__file__).resolve().parent / "overlay.yaml"
DURATION_SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
# Each case runs this many times and the median is reported with the range: on a shared virtual
# machine the same code measured a third apart from one minute to the next.
REPEATS = max(1, int(os.environ.get("BENCH_REPEATS", "3")))
WARMUP_REQUESTS = 200
PUBLISHES = 1000
PUBLISH_CLIENTS = 10
PUBLISH_WARMUP = 5


def _client(  # noqa: PLR0917 - a multiprocessing target takes positional arguments
    port: int,
    request: bytes,
    duration: float,
    results: multiprocessing.Queue,  # type: ignore[type-arg]
    count: int = 0,
    go: Any = None,
) -> None:
    """Requests on one keep-alive connection: for ``duration`` seconds, or exactly ``count``."""
    connection = socket.create_connection(("127.0.0.1", port))
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buffer = b""

    def one() -> int:
        nonlocal buffer
        connection.sendall(request)
        while b"\r\n\r\n" not in buffer:
            buffer += connection.recv(65536)
        head, _, rest = buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += connection.recv(65536)
        buffer = rest[length:]
        return int(head[9:12])

    latencies: list[float] = []
    errors = 0
    if count:
        # Warm this client's sandbox first (a cold start is an import of the whole function).
        for _ in range(PUBLISH_WARMUP):
            one()
        go.wait()
        for _ in range(count):
            started = time.perf_counter()
            if one() not in (200, 201):
                errors += 1
            latencies.append(time.perf_counter() - started)
        connection.close()
        results.put((latencies, errors))
        return
    for _ in range(WARMUP_REQUESTS // 4):
        one()
    # Every client measures the same window: staggered windows (a client whose sandbox cold-started
    # later) overlapped less, each ran faster alone at the edges, and their sum overstated the rate.
    go.wait()
    deadline = time.perf_counter() + duration
    while True:
        started = time.perf_counter()
        if started > deadline:
            break
        if one() != 200:
            errors += 1
        latencies.append(time.perf_counter() - started)
    connection.close()
    results.put((latencies, errors))


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) the process has used; None where /proc is not there. On a shared
    machine, the stack's CPU time per request is steadier than its rate: one Python process with
    one GIL serves at most about 1 / (CPU s per request) requests per second on a free core."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_ms_per_request(pid: int, before: float | None, requests: int) -> float:
    after = cpu_seconds(pid)
    if before is None or after is None or not requests:
        return float("nan")
    return (after - before) * 1000 / requests


def run_case(port: int, path: str, key: str | None, clients: int, pid: int = 0) -> dict[str, float]:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (f"X-API-Key: {key}\r\n" if key else "") + "\r\n"
    )
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    go = multiprocessing.Barrier(clients + 1)
    workers = [
        multiprocessing.Process(
            target=_client, args=(port, request.encode(), DURATION_SECONDS, results, 0, go)
        )
        for _ in range(clients)
    ]
    for worker in workers:
        worker.start()
    go.wait()  # every client connected and warmed up
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    collected = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    latencies = sorted(latency for batch, _ in collected for latency in batch)
    total = len(latencies)
    # Every client measured the same DURATION_SECONDS; the rate over that window.
    rate = total / DURATION_SECONDS
    return {
        "requests": total,
        "errors": sum(errors for _, errors in collected),
        "rps": rate,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(total * 0.99) - 1] * 1000,
        "wall_s": elapsed,
        "cpu_ms": _cpu_ms_per_request(pid, cpu_before, total),
    }


def run_publishes(port: int, keys: list[str], total: int = PUBLISHES, pid: int = 0) -> dict[str, float]:
    """Wall time of ``total`` single-event publishes spread over one client per key in ``keys``."""
    body = json.dumps({"type": "bench.published", "data": {"n": 1}}).encode()

    def request(key: str) -> bytes:
        return (
            f"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body

    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    go = multiprocessing.Event()
    workers = [
        multiprocessing.Process(target=_client, args=(port, request(key), 0, results, total // len(keys), go))
        for key in keys
    ]
    for worker in workers:
        worker.start()
    time.sleep(3)  # every client connected, warmed up and waiting
    cpu_before = cpu_seconds(pid)
    started = time.perf_counter()
    go.set()
    collected = [results.get() for _ in workers]
    elapsed = time.perf_counter() - started
    cpu_ms = _cpu_ms_per_request(pid, cpu_before, total)
    for worker in workers:
        worker.join()
    latencies = sorted(latency for batch, _ in collected for latency in batch)
    return {
        "requests": len(latencies),
        "errors": sum(errors for _, errors in collected),
        "wall_s": elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "cpu_ms": cpu_ms,
    }


def _median_run(runs: list[dict[str, float]], figure: str) -> dict[str, float]:
    """The run whose ``figure`` is the median (the lower middle one of an even count)."""
    return sorted(runs, key=lambda run: run[figure])[(len(runs) - 1) // 2]


def _spread(runs: list[dict[str, float]], figure: str, style: str) -> str:
    values = [run[figure] for run in runs]
    return f"[{min(values):{style}}–{max(values):{style}}]" if len(values) > 1 else ""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tenantry-bench-") as home:
        stack = start_stack(Path(home), overlay=OVERLAY, extra_args=["--quiet", "--no-reload"])
        try:
            _, key = stack.create_tenant("enterprise")
            # The benchmark measures the gateway, not the tier: lift the enterprise plan's limits
            # (in this throwaway stack) so /me is never throttled.
            apigateway = stack.aws_client("apigateway")
            plan = next(p for p in apigateway.get_usage_plans()["items"] if p["name"].endswith("-enterprise"))
            apigateway.update_usage_plan(
                usagePlanId=plan["id"],
                patchOperations=[
                    {"op": "replace", "path": "/throttle/rateLimit", "value": "1000000"},
                    {"op": "replace", "path": "/throttle/burstLimit", "value": "1000000"},
                    {"op": "replace", "path": "/quota/limit", "value": "1000000000"},
                ],
            )
            cases = [
                ("trivial handler", "/_bench/trivial", None),
                ("GET /health", "/health", None),
                ("GET /me (authorizer cached)", "/me", key),
            ]
            print(
                f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}; {DURATION_SECONDS:.0f} s per case"
            )
            print(
                f"load average before: {os.getloadavg()[0]:.2f} "
                "(other work on this machine slows every figure)"
            )
            print(
                f"{'case':<30} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
                f"{'CPU ms/req':>10}  req/s range (median of {REPEATS} runs shown)"
            )
            pid = stack.process.pid
            for label, path, case_key in cases:
                for clients in (1, 8):
                    runs = [run_case(stack.port, path, case_key, clients, pid) for _ in range(REPEATS)]
                    figures = _median_run(runs, "rps")
                    print(
                        f"{label:<30} {clients:>7} {figures['rps']:>9.0f} {figures['p50_ms']:>8.2f} "
                        f"{figures['p99_ms']:>8.2f} {sum(run['errors'] for run in runs):>7.0f} "
                        f"{figures['cpu_ms']:>10.3f}  {_spread(runs, 'rps', '.0f')}",
                        flush=True,
                    )
            for label, one_tenant in (("one tenant", True), (f"{PUBLISH_CLIENTS} tenants", False)):
                runs = []
                for _ in range(REPEATS):
                    # Fresh tenants each time: every sandbox meets each of them for the first time.
                    keys = (
                        [key] * PUBLISH_CLIENTS
                        if one_tenant
                        else [stack.create_tenant("enterprise")[1] for _ in range(PUBLISH_CLIENTS)]
                    )
                    runs.append(run_publishes(stack.port, keys, pid=pid))
                figures = _median_run(runs, "wall_s")
                print(
                    f"POST /events, {label}: {figures['requests']:.0f} publishes over {PUBLISH_CLIENTS} "
                    f"clients in {figures['wall_s']:.2f} s, median of {REPEATS} "
                    f"{_spread(runs, 'wall_s', '.2f')} (p50 {figures['p50_ms']:.2f} ms, "
                    f"p99 {figures['p99_ms']:.2f} ms, {sum(run['errors'] for run in runs):.0f} errors, "
                    f"{figures['cpu_ms']:.2f} CPU ms per publish)",
                    flush=True,
                )
        finally:
            stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
