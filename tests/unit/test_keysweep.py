"""`tenantry keys sweep`: API keys and tenant usage plans of this stack that nothing uses are found
and removed; what is in use is left alone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenantry import aws as clients
from tenantry import edge, keysweep, tenancy
from tenantry.models.tenants import CreateTenantRequest, LimitOverrides, UpdateTenantRequest
from tenantry_cli.main import main


def _key_ids() -> set[str]:
    return {str(key["id"]) for key in clients.apigateway().get_api_keys(limit=500)["items"]}


def _sweep(aws: dict[str, str], capsys: pytest.CaptureFixture[str], *extra: str) -> Any:
    arguments = ["keys", "sweep", "--table", aws["ApiKeysTable"], "--tenants-table", aws["TenantsTable"]]
    assert main([*arguments, "--stack", "test", "--min-age-minutes", "0", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_a_usage_identity_orphaned_by_a_failure_is_reported_then_swept(
    aws: dict[str, str], faults: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a tenant, and an onboarding that failed after its usage identity was made (its tenant
    # item refused the record, and the undo could not delete the API key, so it stopped there)
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme"))
    injector = faults("seed=1")
    injector.fail_once("dynamodb", "UpdateItem", "AccessDeniedException")  # the identity's record
    injector.fail_once("apigateway", "DeleteApiKey", "BadRequestException")
    with pytest.raises(ClientError):
        tenancy.create_tenant(CreateTenantRequest(name="Globex", tier="basic"))
    before = _key_ids()
    assert len(before) == 2
    # When the sweep reports, then deletes
    report = _sweep(aws, capsys)
    swept = _sweep(aws, capsys, "--delete")
    # Then exactly the orphan was found and deleted; the live tenant's identity is untouched
    assert [orphan["reason"] for orphan in report["orphans"]] == ["its tenant's item does not record it"]
    assert report["deleted"] == 0 and swept["deleted"] == 1
    assert _key_ids() == before - {report["orphans"][0]["edge_key_id"]}
    assert [key.status for key in tenancy.list_keys("acme")] == ["active"]
    assert keysweep.find_orphans("test", min_age_seconds=0) == []


def test_a_tenant_plan_no_override_needs_is_swept_and_one_in_use_is_not(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given tenant acme with an edge override (its own plan, holding its usage key), and a plan
    # of tenant globex's that nothing needs (globex overrides nothing: a clearing cut short)
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme"))
    tenancy.create_tenant(CreateTenantRequest(name="Globex", tier="basic", tenant_id="globex"))
    tenancy.update_tenant("acme", UpdateTenantRequest(limits=LimitOverrides(burst=30)), None)
    edge.ensure_tenant_plan("globex", edge.PlanLimits(1.0, 5, 100))
    # When the sweep runs with --delete
    swept = _sweep(aws, capsys, "--delete")
    # Then globex's plan went, acme's stays with its key in it
    assert [(orphan["kind"], orphan["tenant_id"]) for orphan in swept["orphans"]] == [
        ("usage plan", "globex")
    ]
    assert edge.tenant_plan_id("globex") is None
    acme_plan = edge.tenant_plan_id("acme")
    assert acme_plan is not None and edge.plan_has_keys(acme_plan)


def test_young_keys_are_left_alone(aws: dict[str, str]) -> None:
    edge.create_key(name="usage-nobody", value=edge.new_usage_key_value(), tenant_id="nobody")
    assert keysweep.find_orphans("test") == []
    assert [orphan.name for orphan in keysweep.find_orphans("test", min_age_seconds=0)] == ["usage-nobody"]
    assert keysweep.find_orphans("another-stack", min_age_seconds=0) == []
