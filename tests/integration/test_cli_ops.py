"""The operator CLI against a running local stack, over real HTTP, as an operator would use it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from local.cli import main
from tests.integration.conftest import LocalStack


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
    code, out, _ = run(capsys, "tenants", "delete", "cli-corp")
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
