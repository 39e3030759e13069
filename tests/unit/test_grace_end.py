"""A rotated key stops at its grace end, although API Gateway cached the authorizer's answer for
300 s: the authorizer passes the key's expiry in its context, rotation flushes the cache so that
context is fresh, and the functions refuse a key whose expiry has passed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tenantry import authorizer, edge, keys, tenancy
from tenantry.models.tenants import CreateTenantRequest, IssueKeyRequest
from tenantry.stores import events as event_store
from tenantry.stores import keys as key_store
from tests.conftest import HandlerClient, admin_context, load_function, tenant_context

STAGE = edge.Stage(api_id="testapi", stage="v1")


@pytest.fixture
def flushes(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[edge.Stage | None]:
    """Authorizer-cache flushes (moto does not implement FlushStageAuthorizersCache)."""
    calls: list[edge.Stage | None] = []

    def record(stage: edge.Stage | None) -> bool:
        calls.append(stage)
        return True

    monkeypatch.setattr(edge, "flush_authorizer_cache", record)
    return calls


def authorize(raw_key: str) -> dict[str, Any]:
    event = {
        "headers": {"X-API-Key": raw_key},
        "methodArn": "arn:aws:execute-api:us-east-1:123456789012:testapi/v1/GET/me",
    }
    answer: dict[str, Any] = authorizer.authorize(event)
    return answer


def test_rotation_with_a_grace_flushes_the_cache_and_the_old_key_carries_its_grace_end(
    flushes: list[edge.Stage | None],
) -> None:
    # Given a tenant whose key API Gateway has cached
    created = tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="pro", tenant_id="acme"))
    assert authorize(created.api_key)["context"]["expires_at"] == ""
    # When its key is rotated with a grace period
    issued = tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=5), STAGE)
    # Then the stage's authorizer cache is flushed, so the next request re-authorizes the old key
    assert flushes == [STAGE]
    # And the authorizer's answer (cached for 300 s from then) carries the grace end
    stored = key_store.get(keys.hash_key(created.api_key))
    assert stored is not None
    context = authorize(created.api_key)["context"]
    assert context["expires_at"] == str(stored["expires_at"])
    assert issued.older_keys_expire_at is not None


@pytest.mark.parametrize(("offset", "status"), [(-1, 401), (0, 401), (60, 201)])
def test_a_cached_answer_past_the_keys_expiry_is_refused_by_the_function(
    aws: dict[str, str], lambda_context: Any, offset: int, status: int
) -> None:
    # Given a request API Gateway admitted from a cached answer whose key expires at now + offset
    events = HandlerClient(load_function("events").lambda_handler, lambda_context)
    context = {**tenant_context("acme", "pro"), "expires_at": str(int(time.time()) + offset)}
    # When it publishes
    got, body, _ = events.invoke("POST", "/events", authorizer=context, body={"type": "t", "data": {}})
    # Then a key past its expiry gets 401 (as from the authorizer), and nothing is written
    assert got == status, body
    if status == 401:
        assert body["message"] == "Unauthorized" and body["error"] == "unauthorized"
        assert event_store.read_head("acme") == 0


def test_an_admin_key_past_its_expiry_is_refused_too(aws: dict[str, str], lambda_context: Any) -> None:
    tenants = HandlerClient(load_function("tenants").lambda_handler, lambda_context)
    context = {**admin_context(), "expires_at": str(int(time.time()) - 1)}
    status, body, _ = tenants.invoke("GET", "/tenants", authorizer=context)
    assert status == 401 and body["error"] == "unauthorized"


def test_another_tenants_rotation_does_not_touch_this_tenants_keys(flushes: list[edge.Stage | None]) -> None:
    acme = tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="pro", tenant_id="acme"))
    tenancy.create_tenant(CreateTenantRequest(name="Globex", tier="pro", tenant_id="globex"))
    tenancy.issue_key("globex", IssueKeyRequest(grace_seconds=0), STAGE)
    assert authorize(acme.api_key)["context"]["expires_at"] == ""
