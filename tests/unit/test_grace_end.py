"""A rotated key stops at its grace end, although API Gateway cached the authorizer's answer for
300 s: the authorizer passes the key's expiry in its context, rotation flushes the cache so that
context is fresh, and the functions refuse a key whose expiry has passed."""

from __future__ import annotations

import time
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from tenantry import authorizer, edge, keys, tenancy
from tenantry import aws as clients
from tenantry.models.tenants import CreateTenantRequest, IssueKeyRequest
from tenantry.stores import events as event_store
from tenantry.stores import keys as key_store
from tests.conftest import HandlerClient, admin_context, load_function, tenant_context

STAGE = edge.Stage(api_id="testapi", stage="v1")


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
    stored = key_store.DYNAMODB.get(keys.hash_key(created.api_key))
    assert stored is not None
    context = authorize(created.api_key)["context"]
    assert context["expires_at"] == str(stored.expires_at)
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
        assert event_store.DYNAMODB.read_head("acme") in (None, 0)


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


@pytest.mark.parametrize("error_code", ["AccessDeniedException", "TooManyRequestsException"])
def test_a_flush_api_gateway_refuses_still_rotates_and_is_reported_as_not_flushed(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, error_code: str
) -> None:
    # Given tenant A, and API Gateway refusing the cache flush (a missing grant, or throttling)
    acme = tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="pro", tenant_id="acme"))
    refusing = boto3.client("apigateway", region_name="us-east-1")
    stubber = Stubber(refusing)
    stubber.add_client_error(
        "flush_stage_authorizers_cache", service_error_code=error_code, http_status_code=403
    )
    stubber.activate()
    # (only the flush is refused; every other API Gateway call still goes to moto)
    monkeypatch.setattr(
        clients.apigateway(), "flush_stage_authorizers_cache", refusing.flush_stage_authorizers_cache
    )
    # When A's key is rotated with a grace
    issued = tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=60), STAGE)
    # Then the flush was attempted, the rotation still stands (the table is authoritative), and the
    # old key's grace end still reaches the functions through the next authorizer answer
    stubber.assert_no_pending_responses()
    assert issued.api_key and issued.older_keys_expire_at is not None
    assert authorize(acme.api_key)["context"]["expires_at"] != ""
    assert authorize(issued.api_key)["context"]["tenant_id"] == "acme"
