"""The operator CLI against a running local stack, over real HTTP, as an operator would use it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tenantry_cli.main import main
from tests.integration.conftest import LocalStack

# The CLI's tests use fixed tenant ids and onboard through the CLI (not tracked for offboarding).
pytestmark = pytest.mark.local_only("the operator CLI's own tests (fixed tenant ids)")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def operator_env(gateway: LocalStack, monkeypatch: pytest.MonkeyPatch) -> LocalStack:
    monkeypatch.setenv("TENANTRY_URL", gateway.url)
    monkeypatch.setenv("TENANTRY_ADMIN_KEY", gateway.admin_key)
    return gateway


def test_tenant_lifecycle_through_the_cli(
    operator_env: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Onboard: a table and the key, shown once
    code, out, _ = run(
        capsys, "tenants", "create", "--name", "Cli Corp", "--tier", "basic", "--id", "cli-corp"
    )
    assert code == 0
    assert "cli-corp" in out and "API key (shown once): tnt_live_" in out
    key = out.rsplit(": ", 1)[1].strip()
    assert operator_env.request("GET", "/me", key=key).status == 200
    # List (table) and get (JSON)
    code, out, _ = run(capsys, "tenants", "list", "--tier", "basic")
    assert code == 0 and out.splitlines()[0].split() == ["TENANT_ID", "NAME", "TIER", "STATUS", "CREATED_AT"]
    assert any(line.startswith("cli-corp") for line in out.splitlines())
    code, out, _ = run(capsys, "tenants", "get", "cli-corp", "--json")
    assert json.loads(out)["status"] == "active"
    # Suspend takes effect at once; resume restores
    assert run(capsys, "tenants", "suspend", "cli-corp")[0] == 0
    assert operator_env.request("GET", "/me", key=key).status == 403
    assert run(capsys, "tenants", "resume", "cli-corp")[0] == 0
    assert operator_env.request("GET", "/me", key=key).status == 200
    # Rotate, then revoke the new key
    code, out, _ = run(capsys, "keys", "rotate", "cli-corp", "--grace-seconds", "0", "--json")
    rotated: dict[str, Any] = json.loads(out)
    assert operator_env.request("GET", "/me", key=rotated["api_key"]).status == 200
    assert run(capsys, "keys", "revoke", "cli-corp", rotated["key"]["key_id"])[0] == 0
    assert operator_env.request("GET", "/me", key=rotated["api_key"]).status == 401
    # Usage and stats
    code, out, _ = run(capsys, "usage", "cli-corp")
    assert code == 0 and "estimated cost this month" in out
    code, out, _ = run(capsys, "stats", "--json")
    assert code == 0 and any(row["tenant_id"] == "cli-corp" for row in json.loads(out)["tenants"])
    # Offboard
    code, out, _ = run(capsys, "tenants", "delete", "cli-corp", "--yes")
    assert code == 0 and out.startswith("offboarded cli-corp")


def test_api_refusals_and_bad_setup_are_reported(
    operator_env: LocalStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "tenants", "get", "no-such-tenant")
    assert code == 1 and err.startswith("tenantry: 404")
    code, _, err = run(capsys, "tenants", "create", "--name", "X", "--tier", "platinum")
    assert code == 1 and "tier" in err
    code, _, err = run(capsys, "stats", "--admin-key", "tnt_admin_wrong")
    assert code == 1 and "401" in err
    code, _, err = run(capsys, "stats", "--url", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach" in err
    monkeypatch.delenv("TENANTRY_ADMIN_KEY")
    monkeypatch.setenv("TENANTRY_HOME", "/nonexistent")
    code, _, err = run(capsys, "stats")
    assert code == 2 and "no admin key" in err


def test_keys_list_then_revoke_by_the_listed_id(
    operator_env: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a tenant with a rotated key
    operator_env.create_tenant("basic", tenant_id="cli-keys")
    code, out, _ = run(capsys, "keys", "rotate", "cli-keys", "--grace-seconds", "0", "--json")
    new_key = json.loads(out)
    # When its keys are listed
    code, out, _ = run(capsys, "keys", "list", "cli-keys")
    # Then a table shows both, without secrets, and the listed id revokes the key
    assert code == 0 and out.splitlines()[0].split() == [
        "KEY_ID", "NAME", "SCOPES", "STATUS", "HINT", "CREATED_AT", "EXPIRES_AT"
    ]  # fmt: skip
    assert new_key["key"]["key_id"] in out and new_key["api_key"] not in out
    assert len(out.splitlines()) == 3
    assert run(capsys, "keys", "revoke", "cli-keys", new_key["key"]["key_id"])[0] == 0
    assert operator_env.request("GET", "/me", key=new_key["api_key"]).status == 401


def test_set_tier_moves_the_tenant(operator_env: LocalStack, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a basic tenant
    _, key = operator_env.create_tenant("basic", tenant_id="cli-tier")
    # When its tier is set to pro
    code, out, _ = run(capsys, "tenants", "set-tier", "cli-tier", "pro")
    # Then the tenant and its key are on pro
    assert code == 0 and " pro " in out
    assert operator_env.request("GET", "/me", key=key).json["tier"] == "pro"


def test_refusals_name_each_field_the_missing_tenant_and_the_keys_origin(
    operator_env: LocalStack,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A validation error prints each field's own message
    code, _, err = run(capsys, "tenants", "create", "--name", "X", "--tier", "platinum")
    assert code == 1
    assert "  tier: " in err and "basic" in err and "enterprise" in err
    code, _, err = run(capsys, "tenants", "set-tier", "cli-corp-none", "gold")
    assert code == 1 and "  tier: " in err
    # Offboarding a tenant that does not exist exits non-zero
    code, _, err = run(capsys, "tenants", "delete", "no-such-tenant", "--yes")
    assert code == 1 and err.startswith("tenantry: 404")
    # A refused key names where it came from: the option, the variable, the file
    code, _, err = run(capsys, "stats", "--admin-key", "tnt_admin_wrong")
    assert code == 1 and "401" in err and "--admin-key" in err
    monkeypatch.setenv("TENANTRY_ADMIN_KEY", "tnt_admin_wrong")
    code, _, err = run(capsys, "stats")
    assert code == 1 and "$TENANTRY_ADMIN_KEY" in err
    monkeypatch.delenv("TENANTRY_ADMIN_KEY")
    (tmp_path / "admin-key").write_text("tnt_admin_stale\n", encoding="utf-8")
    monkeypatch.setenv("TENANTRY_HOME", str(tmp_path))
    code, _, err = run(capsys, "stats")
    assert code == 1 and str(tmp_path / "admin-key") in err


def test_keys_create_issues_a_named_scoped_key_without_rotating_the_others(
    operator_env: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a tenant with its first key
    _, first = operator_env.create_tenant("pro", tenant_id="cli-scoped")
    # When the operator issues a read-only key for a dashboard
    code, out, _ = run(
        capsys, "keys", "create", "cli-scoped", "--name", "dashboard", "--scope", "events:read",
        "--scope", "usage:read", "--expires-in-seconds", "3600",
    )  # fmt: skip
    # Then it is shown once, with its name and scopes; the first key is left as it was
    assert code == 0 and "dashboard; events:read, usage:read" in out and "older keys" not in out
    key = out.split("api key (shown once): ", 1)[1].split()[0]
    assert operator_env.request("GET", "/events", key=key).status == 200
    assert operator_env.request("POST", "/events", key=key, body={"type": "t", "data": {}}).status == 403
    assert operator_env.request("GET", "/me", key=first).status == 200
    code, out, _ = run(capsys, "keys", "list", "cli-scoped")
    assert "dashboard" in out and "events:read usage:read" in out
    # And a scope that does not exist is refused by the CLI itself
    with pytest.raises(SystemExit):
        main(["keys", "create", "cli-scoped", "--scope", "events:delete"])


def test_tenants_limits_shows_overrides_and_their_source_and_clears_them(
    operator_env: LocalStack, capsys: pytest.CaptureFixture[str]
) -> None:
    operator_env.create_tenant("basic", tenant_id="cli-limits")
    # When the operator overrides the burst and the token budget
    code, out, _ = run(capsys, "tenants", "limits", "cli-limits", "--burst", "3", "--tokens-per-month", "500")
    # Then the table shows each limit in force and where it comes from
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert rows["burst"] == ["3", "override"] and rows["tokens_per_month"] == ["500", "override"]
    assert rows["requests_per_minute"] == ["10", "tier"]
    # And "tier" returns a limit to its tier's value
    code, out, _ = run(capsys, "tenants", "limits", "cli-limits", "--burst", "tier", "--json")
    answer = json.loads(out)
    assert answer["limits"]["burst"] == 10 and answer["limit_sources"]["burst"] == "tier"
    assert answer["limit_sources"]["tokens_per_month"] == "override"
    # And a value that is neither a number nor "tier" is refused before any call
    with pytest.raises(SystemExit):
        main(["tenants", "limits", "cli-limits", "--burst", "lots"])
