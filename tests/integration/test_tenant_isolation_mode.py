"""Lambda's tenant isolation mode, locally: a PER_TENANT function's sandboxes serve one tenant only."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from local.gateway.api import load_api
from tests.integration.conftest import OVERLAY, LocalStack, gateway_error


def test_module_state_set_by_tenant_a_is_invisible_to_tenant_b(gateway: LocalStack) -> None:
    # Given two tenants calling a tenant-isolated function that keeps module state
    a, key_a = gateway.create_tenant("enterprise")
    b, key_b = gateway.create_tenant("enterprise")
    # When tenant A calls twice, then tenant B once
    first = gateway.request("GET", "/_test/tenant-state", key=key_a).json
    second = gateway.request("GET", "/_test/tenant-state", key=key_a).json
    other = gateway.request("GET", "/_test/tenant-state", key=key_b).json
    # Then A's warm sandbox kept A's state, and B's sandbox never saw it
    assert first["seen"] == [a]
    assert second["seen"] == [a, a]
    assert other["seen"] == [b]
    # And each environment reports its tenant, as Lambda's context.tenant_id does
    assert (second["lambda_tenant_id"], other["lambda_tenant_id"]) == (a, b)


def test_an_isolated_function_on_a_route_without_the_tenant_id_is_refused(gateway: LocalStack) -> None:
    # Given the same tenant-isolated function behind an Api event (which cannot set X-Amz-Tenant-Id)
    _, key = gateway.create_tenant("enterprise")
    # When a tenant calls it
    answer = gateway.request("GET", "/_test/tenant-state-unmapped", key=key)
    # Then Lambda refuses the invoke, and API Gateway answers its configuration error: a 500
    assert answer.status == 500
    assert answer.json == gateway_error(answer, "Internal server error", "server_error")
    # While the route whose integration maps the authorizer's tenant id reaches it
    assert gateway.request("GET", "/_test/tenant-state", key=key).status == 200


def test_without_isolation_one_warm_sandbox_serves_both_tenants(gateway: LocalStack) -> None:
    # The control: the same code, not isolated, lets tenant B see what tenant A left behind
    a, key_a = gateway.create_tenant("enterprise")
    b, key_b = gateway.create_tenant("enterprise")
    gateway.request("GET", "/_test/shared-state", key=key_a)
    other = gateway.request("GET", "/_test/shared-state", key=key_b).json
    assert other["seen"][-2:] == [a, b]
    assert other["lambda_tenant_id"] is None
    assert not load_api([OVERLAY]).functions["SharedStateFunction"].tenant_isolation


def test_chat_isolation_follows_the_template_parameter(tmp_path: Path) -> None:
    # Given the template's default (NONE), chat shares its sandboxes
    assert not load_api().functions["ChatFunction"].tenant_isolation
    # When the stack is deployed with ChatTenantIsolation=PER_TENANT (an overlay sets the default)
    overlay = tmp_path / "per-tenant.yaml"
    parameter = {"Type": "String", "Default": "PER_TENANT", "AllowedValues": ["NONE", "PER_TENANT"]}
    overlay.write_text(yaml.safe_dump({"Parameters": {"ChatTenantIsolation": parameter}}), encoding="utf-8")
    # Then the local gateway gives chat a sandbox pool per tenant
    assert load_api([overlay]).functions["ChatFunction"].tenant_isolation


@pytest.mark.local_only("starts a local stack with ChatTenantIsolation=PER_TENANT")
def test_chat_deployed_per_tenant_runs_each_tenant_in_its_own_environment(
    stack_factory: Callable[..., LocalStack], tmp_path: Path
) -> None:
    # Given the stack started as `sam deploy --parameter-overrides ChatTenantIsolation=PER_TENANT`
    home = tmp_path / "home"
    stack = stack_factory(home, extra_args=["--parameter", "ChatTenantIsolation=PER_TENANT"])
    a, key_a = stack.create_tenant("pro")
    b, key_b = stack.create_tenant("pro")
    # When both tenants chat
    for key in (key_a, key_b, key_a):
        answer = stack.request("POST", "/chat", key=key, body={"message": "hi"}, headers={"X-User-ID": "u"})
        assert answer.status == 200
    # Then chat ran with the tenant id the routes' X-Amz-Tenant-Id mapping passed (context.tenant_id),
    # each tenant's environment dedicated to it: no mismatch, no environment serving two tenants
    log = (home / "logs" / "ChatFunction.log").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    dedicated = [
        line["lambda_tenant_id"] for line in lines if "dedicated to one tenant" in str(line.get("message"))
    ]
    assert sorted(dedicated) == sorted([a, b])
    assert not [line for line in lines if line.get("level") == "ERROR"]
