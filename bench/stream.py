"""Streamed chat through the local gateway: what the stack adds to the model's own timing.

A local stack (``tenantry dev`` in a subprocess, warm) whose chat function streams from the fake
Messages API in this process; the client here reads each turn's events over HTTP. CLOCK_MONOTONIC
is one clock for every process of the machine, so the fake model's own times (when a request
reached it, when it sent each delta) and the client's (when it sent the request, when each delta
arrived) compare directly:

- added time to first delta = (client's first delta - client's send) - (model's first delta -
  model's receipt of the request): the gateway, the authorizer, the usage plan, the sandbox, the
  turn's checks (DynamoDB reads) and opening the model's stream;
- per-chunk delay = client's arrival of delta i - model's sending of delta i: the SDK's parsing,
  the function's writes across the sandbox's pipe, the gateway's relay.

The baseline, measured in the same run: JSON turns (``"stream": false``) through the same stack,
the time from the client's send until the model has the request. What streaming adds before the
first token is the streamed turn's figure beyond it.

Not a timed test: figures go to docs/performance.md. Run: make bench (or .venv/bin/python
bench/stream.py [TURNS]).
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from local.stack_process import start_stack  # noqa: E402
from tests.fakes.anthropic_server import Reply, fake_anthropic  # noqa: E402

PIECES = 20
PIECE_DELAY_SECONDS = 0.02
WARM_UP_TURNS = 5


def json_turn(url: str, key: str, message: str) -> float:
    """When a JSON turn's request was sent."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    headers = {"Content-Type": "application/json", "X-API-Key": key, "X-User-ID": "bench"}
    sent = time.monotonic()
    connection.request("POST", "/chat", body=json.dumps({"message": message}), headers=headers)
    response = connection.getresponse()
    assert response.status == 200, response.read()
    response.read()
    connection.close()
    return sent


def stream_turn(url: str, key: str, message: str) -> tuple[float, list[float]]:
    """(when the request was sent, when each delta arrived)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    body = json.dumps({"message": message, "stream": True})
    headers = {"Content-Type": "application/json", "X-API-Key": key, "X-User-ID": "bench"}
    sent = time.monotonic()
    connection.request("POST", "/chat", body=body, headers=headers)
    response = connection.getresponse()
    assert response.status == 200, response.read()
    arrivals: list[float] = []
    while True:
        line = response.readline()
        if not line:
            break
        if line.startswith(b"event: delta"):
            arrivals.append(time.monotonic())
        elif line.startswith(b"event: done"):
            response.read()
            break
        elif line.startswith(b"event: error"):
            raise RuntimeError(response.read().decode())
    connection.close()
    return sent, arrivals


def percentile(values: list[float], quantile: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(quantile * (len(ordered) - 1))))]


def main() -> int:
    turns = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    with fake_anthropic() as model, tempfile.TemporaryDirectory() as home:
        model.default = Reply(pieces=[f"w{n} " for n in range(PIECES)], piece_delay=PIECE_DELAY_SECONDS)
        os.environ.update(
            {"ANTHROPIC_API_KEY": "sk-ant-bench", "ANTHROPIC_BASE_URL": model.url, "LLM_MAX_RETRIES": "0"}
        )
        stack = start_stack(Path(home))
        try:
            _, key = stack.create_tenant("enterprise")
            added_first: list[float] = []
            before_model: list[float] = []
            json_before_model: list[float] = []
            chunk_delays: list[float] = []
            for number in range(WARM_UP_TURNS + turns):
                model.stream_log.clear()
                sent = json_turn(stack.url, key, f"json {number}")
                if number >= WARM_UP_TURNS:
                    json_before_model.append(model.stream_log[0][1] - sent)
                model.stream_log.clear()
                sent, arrivals = stream_turn(stack.url, key, f"turn {number}")
                received = next(at for kind, at in model.stream_log if kind == "request")
                emitted = [at for kind, at in model.stream_log if kind == "delta"]
                assert len(emitted) == len(arrivals) == PIECES, (len(emitted), len(arrivals))
                if number < WARM_UP_TURNS:
                    continue
                added_first.append((arrivals[0] - sent) - (emitted[0] - received))
                before_model.append(received - sent)
                chunk_delays.extend(got - out for got, out in zip(arrivals, emitted, strict=True))
        finally:
            stack.stop()
    ms = 1000.0
    print(
        f"streamed turns: {turns} ({PIECES} deltas each, {PIECE_DELAY_SECONDS * ms:.0f} ms apart), warm stack"
    )
    print(
        f"  added time to first delta: p50 {statistics.median(added_first) * ms:.1f} ms,"
        f" p99 {percentile(added_first, 0.99) * ms:.1f} ms"
    )
    print(
        f"    of which before the model got the request: p50 {statistics.median(before_model) * ms:.1f} ms,"
        f" p99 {percentile(before_model, 0.99) * ms:.1f} ms"
    )
    json_p50, json_p99 = statistics.median(json_before_model) * ms, percentile(json_before_model, 0.99) * ms
    print(f"  baseline, a JSON turn until the model got it: p50 {json_p50:.1f} ms, p99 {json_p99:.1f} ms")
    median_delay, p99_delay = statistics.median(chunk_delays) * ms, percentile(chunk_delays, 0.99) * ms
    print(
        f"  model-to-client delay per delta ({len(chunk_delays)}): p50 {median_delay:.2f} ms,"
        f" p99 {p99_delay:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
