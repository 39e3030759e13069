"""Shared fixtures: fake AWS credentials, moto in process, tables and usage plans from template.yaml."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from local import aws_calls, inprocess, template

# Imported before any boto3 session exists, so every session carries the (inactive) fault handlers.
from local import faults as fault_injection
from local.invoke import StubLambdaContext
from local.invoke import api_event as api_event  # noqa: PLC0414 - re-exported for the tests
from tenantry import caches, edge

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_TENANT_DATA_ROLE_ARN = "arn:aws:iam::123456789012:role/test-tenant-data"

# Never reach real AWS, whatever the developer's shell holds.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Tenantry",
        "POWERTOOLS_DEV": "false",
    }
)
# The IAM test tier: record every AWS call a function's handler makes (make test sets the folder).
aws_calls.install_from_env(set(template.template()["Resources"]))
# Moto in process behind the embedded server's front: injected faults, and the rules moto leaves
# out (a transaction's ClientRequestToken, a key in one usage plan per stage).
inprocess.install()

for _variable in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "ANTHROPIC_API_KEY"):
    os.environ.pop(_variable, None)


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    """Every test starts and ends with no module-level cache of the layer (clients, credentials,
    plan ids, stream heads, the model client…): one registry (tenantry.caches), nothing to remember."""
    caches.clear_all()
    yield
    caches.clear_all()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Moto in process with every template table and usage plan; table env vars point at them."""
    import boto3
    from moto import mock_aws

    from local import access, template
    from tenantry import aws as aws_clients

    with mock_aws():
        # Tenant requests run with TenantDataRole sessions, and IAM's LeadingKeys wall is enforced
        # on them exactly as in the embedded stack (local/access.py), so every unit test that
        # goes through a handler proves its data access stays in the caller's partition.
        monkeypatch.setenv("TENANT_DATA_ROLE_ARN", TEST_TENANT_DATA_ROLE_ARN)
        enforcer = access.Enforcer(access.KeySchemas("test"), access.Grants("test"))
        undo = access.install_botocore_enforcement(boto3._get_default_session().events, enforcer)
        caches.clear_all()
        try:
            names = template.create_tables(aws_clients.dynamodb_client(), "test")
            for env_var, logical_id in template.table_env_vars().items():
                monkeypatch.setenv(env_var, names[logical_id])
            monkeypatch.setenv("USAGE_PLAN_NAME_PREFIX", "test")
            template.create_usage_plans(aws_clients.apigateway(), "test")
            yield names
        finally:
            undo()
            caches.clear_all()


@pytest.fixture
def dynamodb_calls(aws: dict[str, str]) -> Iterator[list[str]]:
    """Every DynamoDB call, by operation name, of the clients made from now on: the function
    role's and each tenant's scoped ones (botocore copies the session's hooks into new clients)."""
    import boto3

    calls: list[str] = []
    events = boto3._get_default_session().events

    def count(model: Any, **_: Any) -> None:
        calls.append(model.name)

    events.register("before-call.dynamodb.*", count, unique_id="tenantry-test-dynamodb-calls")
    caches.clear_all()
    try:
        yield calls
    finally:
        events.unregister("before-call.dynamodb.*", unique_id="tenantry-test-dynamodb-calls")


def _function_logical_id(name: str) -> str:
    for logical_id, resource in template.resources_of_type("AWS::Serverless::Function").items():
        if str(resource["Properties"].get("CodeUri", "")).strip("/") == f"functions/{name}":
            return logical_id
    raise LookupError(f"no function in template.yaml has CodeUri functions/{name}/")


@pytest.fixture
def faults() -> Iterator[Any]:
    """``faults("conflict=20%,throttle=20%")`` injects AWS's failures into this test's boto3 calls
    (moto in process), the same decisions ``make dev FAULTS=…`` makes; returns the injector."""
    with contextlib.ExitStack() as stack:

        def inject(spec: str) -> fault_injection.FaultInjector:
            return stack.enter_context(fault_injection.activate(spec))

        yield inject


def load_function(name: str) -> ModuleType:
    """Import ``functions/<name>/app.py`` afresh, the way Lambda loads a handler module.

    Its handler runs as the template's function (for the IAM tier's record of AWS calls)."""
    module_name = f"tenantry_function_{name}"
    spec = importlib.util.spec_from_file_location(module_name, REPO_ROOT / "functions" / name / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    handler = module.lambda_handler
    logical_id = _function_logical_id(name)

    @functools.wraps(handler)
    def lambda_handler(event: Any, context: Any) -> Any:
        with aws_calls.acting_as(logical_id):
            return handler(event, context)

    module.lambda_handler = lambda_handler  # type: ignore[attr-defined]
    return module


FakeLambdaContext = StubLambdaContext


@pytest.fixture
def flushes(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[edge.Stage | None]:
    """The authorizer-cache flushes asked for, by stage (moto does not implement
    FlushStageAuthorizersCache; tests/unit/test_grace_end.py fails the real call with botocore's
    Stubber)."""
    calls: list[edge.Stage | None] = []

    def record(stage: edge.Stage | None) -> bool:
        calls.append(stage)
        return True

    monkeypatch.setattr(edge, "flush_authorizer_cache", record)
    return calls


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


# A tenth of a second before midnight UTC on a month's last day, long before any real run: a test
# whose figures are "today" or "this month" runs with the layer's clock stopped here (fixed_clock),
# so a run that crosses midnight or a month's end cannot split what it counts from what it reads,
# and a clock read that bypasses the seams lands in today's real period and fails every run.
MONTH_END = datetime(2026, 1, 31, 23, 59, 59, 900_000, tzinfo=UTC)
MONTH_END_MS = int(MONTH_END.timestamp() * 1000)


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    """The layer's "now" for usage figures (tenantry.usage) and chat turns (tenantry.chat), stopped
    at MONTH_END; stamp metered requests with MONTH_END_MS and add tokens to its periods."""
    from tenantry import chat, usage

    monkeypatch.setattr(usage, "_now", lambda: MONTH_END)
    monkeypatch.setattr(chat, "_now", lambda: MONTH_END)
    return MONTH_END


def add_tokens(
    tenant_id: str, period: str, tokens_in: int, tokens_out: int, model: str | None = None
) -> None:
    """Count LLM tokens on a tenant's period, as a chat turn's transaction does (one of its writes)."""
    from tenantry import aws as aws_clients
    from tenantry.stores import usage as usage_store

    update = usage_store.token_update(tenant_id, period, tokens_in, tokens_out, model)["Update"]
    aws_clients.data_resource().meta.client.update_item(**update)


def admin_context() -> dict[str, str]:
    return {"tenant_id": "_admin", "role": "admin", "tier": "admin", "key_id": "key_00000000000000ad"}


def tenant_context(tenant_id: str, tier: str = "basic") -> dict[str, str]:
    return {"tenant_id": tenant_id, "role": "tenant", "tier": tier, "key_id": "key_0000000000000001"}


def key_context(raw_key: str) -> dict[str, str]:
    """The authorizer context API Gateway passes on for ``raw_key``: the authorizer's own answer."""
    from tenantry import authorizer

    event = {
        "type": "REQUEST",
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:testapi/v1/GET/me",
        "headers": {"X-API-Key": raw_key},
    }
    context: dict[str, str] = authorizer.authorize(event)["context"]
    return context


def response_json(response: dict[str, Any]) -> Any:
    return json.loads(response["body"]) if response.get("body") else None


class HandlerClient:
    """Invokes a function's handler with API Gateway proxy events, as the gateway would."""

    def __init__(self, handler: Any, context: Any) -> None:
        self.handler = handler
        self.context = context

    def invoke(
        self, method: str, path: str, *, authorizer: dict[str, str], **kwargs: Any
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, decoded body, headers with the multi-value ones folded in)."""
        response = self.handler(api_event(method, path, authorizer=authorizer, **kwargs), self.context)
        headers = dict(response.get("headers") or {})
        headers.update(
            {name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()}
        )
        return response["statusCode"], response_json(response), headers


def with_last_character_changed(key: str) -> str:
    """The key with its last character replaced by a different one (a plain `+ "x"` is a no-op 1 in 58)."""
    return key[:-1] + ("2" if key[-1] != "2" else "3")
