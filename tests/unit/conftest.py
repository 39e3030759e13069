"""Fixtures of the chat tests (tests/unit/test_chat*.py): the chat function's handler with moto's
tables, and the fake Messages API the real anthropic client talks to."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import boto3
import pytest

from local import faults
from tenantry import caches, tenancy
from tenantry.models.tenants import CreateTenantRequest
from tenantry.stores import usage as usage_store
from tests.conftest import HandlerClient, load_function, tenant_context
from tests.fakes.anthropic_server import FakeAnthropic, fake_anthropic

KEY_PARAMETER = "/tenantry/anthropic-api-key"
TIERS = {"acme": "basic", "globex": "pro", "initech": "enterprise"}


class ChatApi(HandlerClient):
    def call(
        self, method: str, path: str, *, tenant: str = "acme", user: str | None = "alice", **kwargs: Any
    ) -> tuple[int, Any, dict[str, str]]:
        headers = {"X-User-ID": user} if user is not None else {}
        return self.invoke(
            method, path, authorizer=tenant_context(tenant, TIERS[tenant]), headers=headers, **kwargs
        )

    def say(
        self, message: str, session_id: str | None = None, **kwargs: Any
    ) -> tuple[int, Any, dict[str, str]]:
        body: dict[str, Any] = {"message": message}
        if session_id is not None:
            body["session_id"] = session_id
        return self.call("POST", "/chat", body=body, **kwargs)

    def session(self, session_id: str, method: str = "GET", **kwargs: Any) -> tuple[int, Any]:
        status, answer, _ = self.call(
            method,
            f"/sessions/{session_id}",
            resource="/sessions/{session_id}",
            path_parameters={"session_id": session_id},
            **kwargs,
        )
        return status, answer

    def sessions(self, **kwargs: Any) -> tuple[int, Any]:
        status, answer, _ = self.call("GET", "/sessions", **kwargs)
        return status, answer


@pytest.fixture
def api(aws: dict[str, str], lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[ChatApi]:
    monkeypatch.delenv("ANTHROPIC_API_KEY_PARAMETER", raising=False)
    caches.clear_all("tenantry.llm.")
    for tenant_id, tier in TIERS.items():
        tenancy.create_tenant(CreateTenantRequest(name=tenant_id.title(), tier=tier, tenant_id=tenant_id))
    yield ChatApi(load_function("chat").lambda_handler, lambda_context)
    caches.clear_all("tenantry.llm.")


@pytest.fixture
def model(api: ChatApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeAnthropic]:
    """The Anthropic key in SSM (as on AWS), the SDK pointed at the fake, no SDK retries."""
    boto3.client("ssm").put_parameter(Name=KEY_PARAMETER, Value="sk-ant-test-key", Type="SecureString")
    monkeypatch.setenv("ANTHROPIC_API_KEY_PARAMETER", KEY_PARAMETER)
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("LLM_TIMEOUT_SECONDS", "2")
    with fake_anthropic() as fake:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
        caches.clear_all("tenantry.llm.")
        yield fake
    caches.clear_all("tenantry.llm.")


def month_tokens(tenant_id: str, moment: datetime) -> tuple[int, int]:
    """The tenant's tokens in the month of ``moment``: the test's fixed_clock, the turn's own."""
    month = usage_store.DYNAMODB.get_period(tenant_id, usage_store.month_period(moment))
    return month.get("tokens_in"), month.get("tokens_out")


def answers_lost(injector: faults.FaultInjector, *, committed: bool, sends: int) -> None:
    """The next ``sends`` TransactWriteItems sends answered 500; the first applied if ``committed``."""
    injector.fail_once("dynamodb", "TransactWriteItems", "InternalServerError", applied=committed)
    for _ in range(sends - 1):
        injector.fail_once("dynamodb", "TransactWriteItems", "InternalServerError")
