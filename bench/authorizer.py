"""Cold-start import cost of the authorizer versus a full handler, in fresh interpreters.

The authorizer's import is paid on every API Gateway cache miss that lands on a cold sandbox, so
it imports only the standard library and tenantry.keys; boto3 is loaded at the first lookup.
Run: make bench (or .venv/bin/python bench/authorizer.py).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
RUNS = 15

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


if __name__ == "__main__":
    main()
