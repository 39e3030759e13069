"""The load generator the gateway benchmarks share (bench/gateway.py, bench/serverless_offline.py).

Each client is a process of its own with one keep-alive connection: it writes a pre-built request
and reads the answer by its Content-Length, so the client side stays cheap and the same for every
server measured. The clients of a case warm up, wait at a barrier, then all measure the same
window. A case runs several times (``BENCH_REPEATS``) and is reported as the median run with the
range: on a shared virtual machine one run alone says little.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

DURATION_SECONDS = float(os.environ.get("BENCH_SECONDS", "4"))
REPEATS = max(1, int(os.environ.get("BENCH_REPEATS", "3")))
WARMUP_REQUESTS = 50
PUBLISH_WARMUP = 5

Figures = dict[str, float]


def _client(  # noqa: PLR0917 - a multiprocessing target takes positional arguments
    port: int,
    request: bytes,
    duration: float,
    results: Any,
    count: int,
    go: Any,
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
    # Warm this client's sandbox first (a cold start is an import of the whole function).
    for _ in range(PUBLISH_WARMUP if count else WARMUP_REQUESTS):
        one()
    go.wait()
    deadline = time.perf_counter() + duration
    while len(latencies) < count if count else True:
        started = time.perf_counter()
        if not count and started > deadline:
            break
        if one() not in (200, 201):
            errors += 1
        latencies.append(time.perf_counter() - started)
    connection.close()
    results.put((latencies, errors))


def cpu_seconds(pids: Sequence[int]) -> float | None:
    """CPU time (user + system) the processes and their waited-for children have used; None where
    /proc is not there. A stack's sandboxes are its children, so their time counts once they end;
    live ones are added by the caller through their pids."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rpartition(")")[2].split()
        except OSError:
            continue
        total += sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    return total


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (the stack, its fork server, its sandboxes)."""
    found = [pid]
    for candidate in found:
        for task in Path(f"/proc/{candidate}/task").glob("*/children"):
            try:
                found.extend(int(child) for child in task.read_text(encoding="ascii").split())
            except OSError:
                continue
    return found


def _run(port: int, requests: list[bytes], duration: float, count: int, pid: int) -> Figures:
    results: Any = multiprocessing.Queue()
    go = multiprocessing.Barrier(len(requests) + 1)
    clients = [
        multiprocessing.Process(target=_client, args=(port, request, duration, results, count, go))
        for request in requests
    ]
    for client in clients:
        client.start()
    go.wait()  # every client connected and warmed up
    tree = process_tree(pid) if pid else []
    cpu_before = cpu_seconds(tree)
    started = time.perf_counter()
    collected = [results.get() for _ in clients]
    elapsed = time.perf_counter() - started
    cpu_after = cpu_seconds(tree)
    for client in clients:
        client.join()
    latencies = sorted(latency for batch, _ in collected for latency in batch)
    total = len(latencies)
    cpu_ms = (cpu_after - cpu_before) * 1000 / total if tree and cpu_before is not None and cpu_after else 0.0
    return {
        "requests": total,
        "errors": sum(errors for _, errors in collected),
        "rps": total / (duration if not count else elapsed),
        "wall_s": elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[max(0, int(total * 0.99) - 1)] * 1000,
        "cpu_ms": cpu_ms,
    }


def get_request(path: str, key: str | None = None) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n" + (f"X-API-Key: {key}\r\n" if key else "") + "\r\n"
    ).encode()


def rate(port: int, request: bytes, clients: int, pid: int = 0) -> Figures:
    """Requests/s of ``clients`` keep-alive clients sending ``request`` for DURATION_SECONDS."""
    return _run(port, [request] * clients, DURATION_SECONDS, 0, pid)


def publishes(port: int, keys: list[str], total: int, pid: int = 0) -> Figures:
    """Wall time of ``total`` single-event publishes spread over one client per key in ``keys``."""
    body = json.dumps({"type": "bench.published", "data": {"n": 1}}).encode()
    requests = [
        (
            f"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
        for key in keys
    ]
    return _run(port, requests, 0.0, total // len(keys), pid)


def median_run(runs: list[Figures], figure: str) -> Figures:
    """The run whose ``figure`` is the median (the lower middle one of an even count)."""
    return sorted(runs, key=lambda run: run[figure])[(len(runs) - 1) // 2]


def spread(runs: list[Figures], figure: str, style: str = ".0f") -> str:
    values = [run[figure] for run in runs]
    return f"[{min(values):{style}}–{max(values):{style}}]" if len(values) > 1 else ""


def interleaved(sides: dict[str, Callable[[], Figures]]) -> dict[str, list[Figures]]:
    """Each side's runs, REPEATS each, alternating sides run by run (both meet the same machine)."""
    runs: dict[str, list[Figures]] = {name: [] for name in sides}
    for repeat in range(REPEATS):
        order = list(sides) if repeat % 2 == 0 else list(reversed(sides))
        for name in order:
            runs[name].append(sides[name]())
    return runs
