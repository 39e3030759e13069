"""Chat's per-turn overhead outside the model, and DynamoDB round trips per turn.

The chat handler runs in process with the echo provider (no model latency) against moto in
process (``mock_aws``), so the figures are the handler's own cost plus moto's; the round-trip
counts, taken with botocore's ``before-call`` hook on both clients the stores use, are the same on
AWS. Run: make bench (or .venv/bin/python bench/chat.py).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from local.invoke import StubLambdaContext, api_event

REPO_ROOT = Path(__file__).resolve().parent.parent
TURNS = 300

os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_NAMESPACE": "Tenantry",
    }
)
for variable in ("ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY_PARAMETER", "AWS_ENDPOINT_URL"):
    os.environ.pop(variable, None)


def event(body: dict[str, Any]) -> dict[str, Any]:
    caller = {"tenant_id": "acme", "role": "tenant", "tier": "enterprise"}
    return api_event("POST", "/chat", body=body, headers={"X-User-ID": "alice"}, authorizer=caller)


def quietly(handler: Any, payload: dict[str, Any], context: StubLambdaContext) -> dict[str, Any]:
    """Invoke the handler with its EMF metric lines (printed on stdout) kept out of the figures."""
    with contextlib.redirect_stdout(io.StringIO()):
        answer: dict[str, Any] = handler(payload, context)
    return answer


def main() -> int:
    import warnings

    from moto import mock_aws

    from local import template
    from tenantry import aws, caches, tenancy
    from tenantry.models.tenants import CreateTenantRequest

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    with mock_aws():
        caches.clear_all()
        names = template.create_tables(aws.dynamodb_client(), "bench")
        for env_var, logical_id in template.table_env_vars().items():
            os.environ[env_var] = names[logical_id]
        os.environ["USAGE_PLAN_NAME_PREFIX"] = "bench"
        template.create_usage_plans(aws.apigateway(), "bench")
        tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="enterprise", tenant_id="acme"))
        spec = importlib.util.spec_from_file_location("chat_app", REPO_ROOT / "functions" / "chat" / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        handler, context = module.lambda_handler, StubLambdaContext()

        calls: list[str] = []
        for client in (aws.dynamodb_client(), aws.dynamodb().meta.client):
            client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))

        first = quietly(handler, event({"message": "hello"}), context)
        session_id = json.loads(first["body"])["session_id"]
        new_session_trips = len(calls)
        latencies: list[float] = []
        calls.clear()
        for number in range(TURNS):
            started = time.perf_counter()
            answer = quietly(
                handler, event({"message": f"message {number}", "session_id": session_id}), context
            )
            latencies.append((time.perf_counter() - started) * 1000)
            assert answer["statusCode"] == 200, answer["body"]
        trips = len(calls) / TURNS
        latencies.sort()
        print("backend: moto in process; provider: echo (no model latency)")
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        print(f"new session: {new_session_trips} round trips (BatchGetItem, TransactWriteItems)")
        print(
            f"turn in an existing session ({TURNS} turns, memory window 20): "
            f"p50 {statistics.median(latencies):.2f} ms, p99 {p99:.2f} ms, {trips:.2f} round trips per turn"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
