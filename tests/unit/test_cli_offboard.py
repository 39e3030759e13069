"""`tenantry tenants delete` when the API answers 202: the purge of a large tenant goes on."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from tenantry_cli import ops as cli_ops


def test_a_purge_that_goes_on_is_said_with_how_to_follow_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the API answers the offboarding 202 "purging" (a large tenant)
    answer = {
        "tenant_id": "bigco",
        "status": "purging",
        "keys_revoked": 2,
        "edge_keys_deleted": 1,
        "items_deleted": {"EventsTable": 500},
        "id_free_after": "2026-12-07T04:05:06Z",
    }
    sent: list[tuple[str, str]] = []

    def call(url: str, method: str, path: str, key: str, body: Any) -> tuple[int, Any]:
        sent.append((method, path))
        return 202, answer

    monkeypatch.setattr(cli_ops, "call", call)
    monkeypatch.setattr(cli_ops, "_admin_key", lambda args: ("tnt_admin_x", "test"))
    args = argparse.Namespace(url="http://127.0.0.1:1", tenant_id="bigco", force=True, yes=True)
    # When the operator offboards it
    returned, text = cli_ops.tenants_delete(args)
    # Then the command succeeds, counts what went, and says the purge goes on and how to follow it
    assert returned == answer and sent == [("DELETE", "/tenants/bigco")]
    assert "2 keys revoked" in text and "EventsTable 500" in text
    assert "purge goes on" in text and "tenantry tenants delete bigco --force" in text
