"""What tenant-scoped credentials cost: STS calls per 1,000 requests over N tenants, and the cold path.

A warm sandbox of the tenants function serves ``GET /me`` in process (its real handler) against the
embedded stack, whose STS hands out TenantDataRole sessions and whose DynamoDB enforces their
partition (local/access.py). Requests pick a tenant uniformly at random among N; STS calls are
the credential cache's own count of ``AssumeRole`` calls. The cold path is one tenant's first
request in a sandbox: ``AssumeRole`` plus building the scoped client and resource; it is measured
against the embedded STS on loopback (AWS's regional STS endpoint adds its own network time, about
a DynamoDB round trip). The steady-state figure compares the same requests with the scoped
clients cached and with no tenant data role at all (the function role's clients).
Run: make bench (or .venv/bin/python bench/isolation.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import random
import statistics
import sys
import time
import warnings
from typing import Any

from local import template
from local.embedded import EmbeddedAws
from local.invoke import StubLambdaContext, api_event
from tenantry import aws, caches, credentials

REQUESTS = 1000
TENANT_COUNTS = (1, 10, 100, 1000)
COLD_SAMPLES = 60
STEADY_REQUESTS = 400
ROLE_ARN = "arn:aws:iam::123456789012:role/tenantry-local-tenant-data"


def _handler() -> Any:
    path = template.REPO_ROOT / "functions" / "tenants" / "app.py"
    spec = importlib.util.spec_from_file_location("bench_tenants_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def _quiet(handler: Any) -> Any:
    """The handler with its stdout (Powertools' EMF metric lines) kept out of the report."""

    def run(event: dict[str, Any], context: Any) -> Any:
        with contextlib.redirect_stdout(io.StringIO()):
            return handler(event, context)

    return run


def _me(tenant_id: str) -> dict[str, Any]:
    caller = {"tenant_id": tenant_id, "role": "tenant", "tier": "pro", "key_id": "key_0000000000000001"}
    return api_event("GET", "/me", authorizer=caller)


def _spread(values: list[float]) -> str:
    p95 = sorted(values)[min(len(values) - 1, int(0.95 * len(values)))]
    return f" median {statistics.median(values):6.2f} ms   p95 {p95:6.2f} ms"


def main() -> int:
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    server = EmbeddedAws()
    server.start()
    try:
        os.environ.update(server.process_env())
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
        caches.clear_all()
        tenants = [f"t{number:04d}" for number in range(max(TENANT_COUNTS))]
        table = aws.table(os.environ["TENANTS_TABLE"])
        with table.batch_writer() as batch:
            for tenant_id in tenants:
                batch.put_item(
                    Item={
                        "tenant_id": tenant_id,
                        "name": tenant_id,
                        "tier": "pro",
                        "status": "active",
                        "config": {},
                        "created_at": "2026-01-01T00:00:00Z",
                        "updated_at": "2026-01-01T00:00:00Z",
                    }
                )
        handler = _quiet(_handler())
        context = StubLambdaContext()
        os.environ[credentials.ROLE_ARN_ENV] = ROLE_ARN
        rng = random.Random(13)

        print(f"STS AssumeRole calls (and scoped client builds) per {REQUESTS} requests of GET /me,")
        print("tenants drawn uniformly at random, one sandbox")
        print("  tenants  first 1,000 (cold sandbox)  next 1,000 (warm)  STS calls/hour at most")
        for count in TENANT_COUNTS:
            caches.clear_all()  # a fresh sandbox: no cached credentials
            vendor = credentials.vendor()
            assert vendor is not None
            rounds: list[str] = []
            for _ in range(2):
                calls, builds = vendor.assume_calls, vendor.client_builds
                for _ in range(REQUESTS):
                    response = handler(_me(tenants[rng.randrange(count)]), context)
                    assert response["statusCode"] == 200, response
                rounds.append(f"{vendor.assume_calls - calls} ({vendor.client_builds - builds})")
            # Each tenant seen is renewed once per session lifetime minus the margin.
            hourly = count * 3600 / (vendor.session_seconds - vendor.margin)
            print(f"  {count:>7}  {rounds[0]:>27}  {rounds[1]:>17}  {hourly:>8.0f}")
        print(
            f"  (a sandbox keeps {credentials.MAX_CACHED_TENANTS} tenants' sessions and "
            f"{credentials.MAX_CACHED_CLIENTS} tenants' clients, least recently used out)"
        )

        # Cold path: one tenant's first request in a sandbox, split into its parts.
        sts_ms: list[float] = []
        cold_ms: list[float] = []
        for number in range(COLD_SAMPLES):
            caches.clear_all()
            vendor = credentials.vendor()
            assert vendor is not None
            aws.sts()  # the STS client itself is built once per sandbox, at its first tenant
            started = time.perf_counter()
            answer = aws.sts().assume_role(
                RoleArn=ROLE_ARN,
                RoleSessionName=tenants[number],
                Tags=[{"Key": credentials.TAG_KEY, "Value": tenants[number]}],
            )
            middle = time.perf_counter()
            vendor.access_for(tenants[number])
            ended = time.perf_counter()
            del answer
            sts_ms.append((middle - started) * 1000)
            cold_ms.append((ended - middle) * 1000)  # AssumeRole + building the client and resource
            assert vendor.assume_calls == 1 and vendor.client_builds == 1
        print(f"\nCold path per tenant per sandbox ({COLD_SAMPLES} samples, embedded STS on loopback)")
        print("  AssumeRole alone                      " + _spread(sts_ms))
        print("  whole cold path (+ client, resource)  " + _spread(cold_ms))

        # Steady state: the same warm requests with cached scoped clients and with the function role.
        results: dict[str, list[float]] = {}
        for label, role in (("scoped (cached)", ROLE_ARN), ("function role", None)):
            if role is None:
                os.environ.pop(credentials.ROLE_ARN_ENV, None)
            else:
                os.environ[credentials.ROLE_ARN_ENV] = role
            caches.clear_all()
            for tenant_id in tenants[:10]:
                handler(_me(tenant_id), context)  # warm every tenant first
            timings = []
            for _ in range(STEADY_REQUESTS):
                started = time.perf_counter()
                handler(_me(tenants[rng.randrange(10)]), context)
                timings.append((time.perf_counter() - started) * 1000)
            results[label] = timings
        print(f"\nGET /me in a warm sandbox, 10 tenants, {STEADY_REQUESTS} requests (handler in process)")
        for label, timings in results.items():
            print(f"  {label:<17}" + _spread(timings))
        print(f"\n{sys.platform}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    finally:
        caches.clear_all()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
