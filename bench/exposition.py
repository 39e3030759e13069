"""Size and render time of the Prometheus exposition (/stats/prometheus) by number of tenants.

Backs the documented limit: about 2 KB of text per tenant, so one scrape fits Lambda's 6 MB
response up to about 2,500 tenants (the route refuses past 5.5 MB). Rendering only: the scrape also
reads the Tenants table and one BatchGetItem of month items per 100 tenants.
Run: make bench (or .venv/bin/python bench/exposition.py).
"""

from __future__ import annotations

import statistics
import time

from tenantry import exposition, metering
from tenantry.stores.tenants import TenantRecord

RUNS = 5
# A busy month: every outcome, tokens, every latency bucket and a route counter set.
ITEM = {
    "requests": 987_654,
    "allowed": 900_000,
    "denied": 50_000,
    "client_errors": 30_000,
    "errors": 7_654,
    "tokens_in": 1_234_567,
    "tokens_out": 654_321,
    "latency_sum_ms": 45_678_901,
    "integration_sum_ms": 30_000_000,
    "integration_count": 900_000,
    "route:GET /me": 987_654,
    **{attribute: 80_000 for attribute in metering.BUCKET_ATTRIBUTES},
}


def main() -> None:
    print("| tenants | bytes | bytes per tenant | render ms (median of 5) |")
    print("|---|---|---|---|")
    for count in (100, 1000, 2500):
        rows = [
            (TenantRecord(f"tenant-{index:08d}", "Tenant", "enterprise", "active", "", ""), ITEM)
            for index in range(count)
        ]
        timings: list[float] = []
        size = 0
        for _ in range(RUNS):
            started = time.perf_counter()
            size = len(exposition.render(rows).encode())
            timings.append((time.perf_counter() - started) * 1000)
        print(f"| {count} | {size:,} | {size / count:,.0f} | {statistics.median(timings):.1f} |")
    print(f"limit before the route refuses: {exposition.MAX_BODY_BYTES:,} bytes")


if __name__ == "__main__":
    main()
