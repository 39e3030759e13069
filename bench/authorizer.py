"""Cold-start import cost of the authorizer versus a full handler, in fresh interpreters; and its
key lookup under throttling.

The authorizer's import is paid on every API Gateway cache miss that lands on a cold sandbox, so
it imports only the standard library and tenantry.keys; boto3 is loaded at the first lookup.
The lookup runs against the embedded DynamoDB with ``FAULTS=throttle=20%`` (every call throttled
with that chance, as ``make dev --faults`` does): a lookup that still fails is API Gateway's 500.
Run: make bench (or .venv/bin/python bench/authorizer.py).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS = 15
LOOKUPS = 1000
THROTTLE = "throttle=20%,seed=1"

SCRIPT = """
import importlib.util, sys, time
sys.path.insert(0, {layer!r})
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", {handler!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
handler_done = time.perf_counter()
{extra}
finished = time.perf_counter()
print((handler_done - started) * 1000, (finished - started) * 1000)
"""


def measure(function: str, extra: str = "") -> tuple[float, float]:
    code = SCRIPT.format(
        layer=str(REPO_ROOT / "layers" / "core"),
        handler=str(REPO_ROOT / "functions" / function / "app.py"),
        extra=extra,
    )
    import_ms: list[float] = []
    total_ms: list[float] = []
    for _ in range(RUNS):
        output = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
        import_ms.append(float(output[0]))
        total_ms.append(float(output[1]))
    return statistics.median(import_ms), statistics.median(total_ms)


def main() -> None:
    print(f"median of {RUNS} fresh interpreters, Python {sys.version.split()[0]}")
    authorizer_import, with_boto3 = measure(
        "authorizer", "import boto3; boto3.client('dynamodb', region_name='us-east-1')"
    )
    print(f"authorizer handler import:                     {authorizer_import:7.1f} ms")
    print(f"authorizer import + boto3 + DynamoDB client:   {with_boto3:7.1f} ms")
    tenants_import, _ = measure("tenants")
    print(f"tenants handler import (Powertools, pydantic): {tenants_import:7.1f} ms")
    failed, latencies = throttled_lookups()
    print(
        f"{LOOKUPS} key lookups under {THROTTLE}: {failed} failed ({100 * failed / LOOKUPS:.2f} %), "
        f"p50 {statistics.median(latencies):.1f} ms, p99 {_percentile(latencies, 0.99):.0f} ms, "
        f"max {max(latencies):.0f} ms"
    )


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def throttled_lookups() -> tuple[int, list[float]]:
    """``authorizer.lookup_key`` of one stored key, LOOKUPS times, with throttling injected."""
    sys.path.insert(0, str(REPO_ROOT / "layers" / "core"))
    import boto3  # the benchmark's own imports stay out of the cold-start figures

    from local import faults
    from local.embedded import EmbeddedAws
    from tenantry import authorizer, caches, keys

    server = EmbeddedAws(fault_spec=faults.FaultSpec.parse(THROTTLE))
    server.start()
    try:
        os.environ.update(server.process_env())
        caches.clear_all()
        key = keys.generate("tenant")
        item = {"key_hash": {"S": keys.hash_key(key)}, "tenant_id": {"S": "t"}, "role": {"S": "tenant"}}
        boto3.client("dynamodb").put_item(TableName=os.environ["API_KEYS_TABLE"], Item=item)
        failed = 0
        latencies: list[float] = []
        for _ in range(LOOKUPS):
            started = time.perf_counter()
            try:
                authorizer.lookup_key(keys.hash_key(key))
            except Exception:  # noqa: BLE001 - counted: the authorizer fails, API Gateway's 500
                failed += 1
            latencies.append((time.perf_counter() - started) * 1000)
        return failed, latencies
    finally:
        caches.clear_all()
        server.stop()


if __name__ == "__main__":
    main()
