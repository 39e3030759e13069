"""`tenantry keys sweep`: API keys of this stack that no key item records are found and removed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tenantry import aws as clients
from tenantry import edge, tenancy
from tenantry.models.tenants import CreateTenantRequest, IssueKeyRequest
from tenantry_cli.main import main


def _key_ids() -> set[str]:
    return {str(key["id"]) for key in clients.apigateway().get_api_keys(limit=500)["items"]}


def test_a_key_orphaned_by_a_failure_is_reported_then_swept(
    aws: dict[str, str], faults: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given two tenants with their keys, and a rotation that failed after the API key was created
    # (its usage-plan seat was refused, and the undo failed too: the new API key is orphaned, its
    # item still pending)
    tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme"))
    tenancy.create_tenant(CreateTenantRequest(name="Globex", tier="basic", tenant_id="globex"))
    injector = faults("seed=1")
    injector.fail_once("apigateway", "CreateUsagePlanKey", "AccessDeniedException")
    injector.fail_once("apigateway", "DeleteApiKey", "BadRequestException")
    with pytest.raises(ClientError):
        tenancy.issue_key("globex", IssueKeyRequest(grace_seconds=60), None)
    before = _key_ids()
    assert len(before) == 3
    # When the sweep reports, then deletes
    arguments = ["keys", "sweep", "--table", aws["ApiKeysTable"], "--stack", "test", "--min-age-minutes", "0"]
    assert main([*arguments, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert main([*arguments, "--json", "--delete"]) == 0
    swept = json.loads(capsys.readouterr().out)
    # Then exactly the orphan was found and deleted; the live tenant's key is untouched
    assert [orphan["tenant_id"] for orphan in report["orphans"]] == ["globex"]
    assert report["orphans"][0]["reason"].startswith("never activated")
    assert report["deleted"] == 0
    assert swept["deleted"] == 1
    assert _key_ids() == before - {report["orphans"][0]["edge_key_id"]}
    assert [key.status for key in tenancy.list_keys("acme")] == ["active"]
    assert [key.status for key in tenancy.list_keys("globex")] == ["active"]


def test_young_keys_are_left_alone(aws: dict[str, str]) -> None:
    edge.create_key(key_id="key_young", value="tnt_live_" + "y" * 40, tenant_id="acme", tier="basic")
    from tenantry import keysweep

    assert keysweep.find_orphans("test") == []
    assert [orphan.name for orphan in keysweep.find_orphans("test", min_age_seconds=0)] == ["key_young"]
    assert keysweep.find_orphans("another-stack", min_age_seconds=0) == []
