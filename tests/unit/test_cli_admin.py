"""`tenantry admin-key create` writes only a hash and prints the key once."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from tenantry import authorizer, keys
from tenantry.stores import keys as key_store
from tenantry_cli.main import main


def test_admin_key_create_stores_the_hash_and_prints_the_key(
    aws: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the operator's table name
    table = aws["ApiKeysTable"]
    # When the bootstrap command runs
    assert main(["admin-key", "create", "--table", table, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    key = printed["api_key"]
    # Then the key is an admin key, and only its hash is in the table
    assert keys.role_of(key) == "admin"
    stored = key_store.DYNAMODB.get(keys.hash_key(key))
    assert stored is not None and stored.role == "admin" and key not in json.dumps(asdict(stored))
    # And the authorizer accepts it for the admin routes
    answer = authorizer.authorize(
        {"methodArn": "arn:aws:execute-api:us-east-1:1:api/v1/GET/tenants", "headers": {"X-API-Key": key}}
    )
    assert answer["context"]["role"] == "admin"


def test_admin_key_create_can_expire(aws: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    main(["admin-key", "create", "--table", aws["ApiKeysTable"], "--expires-in-days", "7"])
    out = capsys.readouterr()
    assert "Admin key (shown once" in out.out
    assert "expires_at: 20" in out.err
