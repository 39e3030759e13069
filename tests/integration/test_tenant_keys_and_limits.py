"""Issue 25 over real HTTP: one usage identity per tenant, scoped keys refused at the edge,
self-service keys, per-tenant limits, and the upgrade of a stack of the first scheme."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from local import template
from local.stack_process import LocalStack
from tenantry import keys
from tenantry_cli.main import main
from tests import first_scheme
from tests.integration.conftest import gateway_error


def _access_lines(stack: LocalStack, tenant_id: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in (stack.home / "access.log").read_text().splitlines()]
    return [line for line in lines if line["tenantId"] == tenant_id]


def _burst(stack: LocalStack, keys_in_turn: list[str], count: int) -> list[int]:
    """``count`` quick calls, the keys taking turns."""
    return [stack.request("GET", "/me", key=keys_in_turn[n % len(keys_in_turn)]).status for n in range(count)]


# ---------------------------------------------------------------------------------- one identity


@pytest.mark.local_only("exact token-bucket counts; API Gateway applies usage-plan throttles best effort")
def test_both_keys_of_a_basic_tenant_share_one_bucket_during_a_grace_period(gateway: LocalStack) -> None:
    # Given a basic tenant (burst 10) rotated with an hour's grace: two keys work
    tenant_id, first = gateway.create_tenant("basic")
    rotated = gateway.request(
        "POST", f"/tenants/{tenant_id}/keys", key=gateway.admin_key, body={"grace_seconds": 3600}
    )
    second = rotated.json["api_key"]
    # When 16 quick calls alternate between the two keys
    statuses = _burst(gateway, [first, second], 16)
    # Then the tenant's one bucket admits its burst, not twice it (the first scheme admitted 16)
    assert statuses.count(200) == 10 and statuses.count(429) == 6, statuses
    # And the access log names one API key for both
    assert len({line["apiKeyId"] for line in _access_lines(gateway, tenant_id)}) == 1


def test_a_key_outside_its_scopes_is_403_at_the_edge_and_no_function_runs(gateway: LocalStack) -> None:
    # Given a key that may only read events, and one that may only chat
    tenant_id, _ = gateway.create_tenant("enterprise")
    reader, chatter = (
        gateway.request(
            "POST", f"/tenants/{tenant_id}/keys", key=gateway.admin_key,
            body={"name": name, "scopes": [scope], "rotate": False},
        ).json["api_key"]
        for name, scope in (("dashboard", "events:read"), ("assistant", "chat"))
    )  # fmt: skip
    # When the reader reads, subscribes (a streamed route), publishes, then chats (streamed or not),
    # and the chat key subscribes
    read = gateway.request("GET", "/events", key=reader)
    subscribed = gateway.request("GET", "/events/stream?max_seconds=1", key=reader)
    publish = gateway.request("POST", "/events", key=reader, body={"type": "t", "data": {}})
    chats = [
        gateway.request("POST", "/chat", key=reader, body=body, headers={"X-User-ID": "u"})
        for body in ({"message": "hi"}, {"message": "hi", "stream": True})
    ]
    eavesdrop = gateway.request("GET", "/events/stream?max_seconds=1", key=chatter)
    # Then the reads pass, the subscription as a stream, and the others get API Gateway's own 403
    # (its cached policy lists only what the key may call), with no function run: nothing stored,
    # no integration in the log
    assert read.status == 200
    assert subscribed.status == 200 and subscribed.headers["content-type"].startswith("text/event-stream")
    refused_calls = [publish, *chats, eavesdrop]
    for refused in refused_calls:
        assert refused.status == 403
        assert refused.json == gateway_error(
            refused, "User is not authorized to access this resource", "access_denied"
        )
    assert gateway.request("GET", "/events", key=reader).json["events"] == []
    denied = [line for line in _access_lines(gateway, tenant_id) if line["status"] == "403"]
    assert len(denied) == len(refused_calls) and {line["integrationLatency"] for line in denied} == {"-"}


# ---------------------------------------------------------------------------------- self-service


def test_self_service_keys_mint_list_and_revoke_at_once_within_the_tenant(gateway: LocalStack) -> None:
    # Given tenants A and B
    _, a_key = gateway.create_tenant("enterprise")
    _, b_key = gateway.create_tenant("enterprise")
    # When A mints a key for its CI, limited to publishing
    minted = gateway.request("POST", "/me/keys", key=a_key, body={"name": "ci", "scopes": ["events:write"]})
    assert minted.status == 201
    ci_key, ci_id = minted.json["api_key"], minted.json["key"]["key_id"]
    assert gateway.request("POST", "/events", key=ci_key, body={"type": "t", "data": {}}).status == 201
    assert gateway.request("GET", "/events", key=ci_key).status == 403
    # Then B sees none of A's keys, and cannot revoke A's key (404: it does not exist for B)
    listed = gateway.request("GET", "/me/keys", key=b_key).json["keys"]
    assert ci_id not in [key["key_id"] for key in listed]
    assert gateway.request("DELETE", f"/me/keys/{ci_id}", key=b_key).status == 404
    assert gateway.request("POST", "/events", key=ci_key, body={"type": "t", "data": {}}).status == 201
    # And A cannot revoke the key it calls with
    own_id = next(
        key["key_id"]
        for key in gateway.request("GET", "/me/keys", key=a_key).json["keys"]
        if key["name"] is None
    )
    assert gateway.request("DELETE", f"/me/keys/{own_id}", key=a_key).json["error"] == "key_in_use"
    # When A revokes the CI key, then it is refused at once, though API Gateway had cached it
    assert gateway.request("DELETE", f"/me/keys/{ci_id}", key=a_key).status == 200
    refused = gateway.request("POST", "/events", key=ci_key, body={"type": "t", "data": {}})
    assert refused.status == 401


@pytest.mark.local_only("fills a tenant's 50 keys quickly")
def test_concurrent_mints_stop_at_fifty_live_keys(gateway: LocalStack) -> None:
    # Given an enterprise tenant with 45 live keys
    _, key = gateway.create_tenant("enterprise")
    for number in range(44):
        assert gateway.request("POST", "/me/keys", key=key, body={"name": f"k{number}"}).status == 201
    # When 10 clients mint at once
    with ThreadPoolExecutor(max_workers=10) as pool:
        answers = list(
            pool.map(
                lambda n: gateway.request("POST", "/me/keys", key=key, body={"name": f"c{n}"}), range(10)
            )
        )
    # Then exactly 5 got a key and 5 were refused, and the tenant has 50 live keys
    statuses = sorted(answer.status for answer in answers)
    assert statuses == [201] * 5 + [409] * 5, statuses
    assert {answer.json["error"] for answer in answers if answer.status == 409} == {"key_limit_reached"}
    live = [
        item
        for item in gateway.request("GET", "/me/keys", key=key).json["keys"]
        if item["status"] == "active"
    ]
    assert len(live) == 50


# ---------------------------------------------------------------------------------- limits


@pytest.mark.local_only("exact token-bucket counts; API Gateway applies usage-plan throttles best effort")
def test_an_override_changes_the_tenants_bucket_and_clearing_it_restores_the_tiers(
    gateway: LocalStack,
) -> None:
    # Given a basic tenant whose burst the operator lowers to 3
    tenant_id, key = gateway.create_tenant("basic")
    patched = gateway.request(
        "PATCH", f"/tenants/{tenant_id}", key=gateway.admin_key, body={"limits": {"burst": 3}}
    )
    assert patched.status == 200 and patched.json["limit_sources"]["burst"] == "override"
    # Then its bucket holds 3, and GET /me says so and why
    assert _burst(gateway, [key], 5) == [200, 200, 200, 429, 429]
    # When the override is cleared, then the tier's burst of 10 applies again (a new bucket)
    cleared = gateway.request(
        "PATCH", f"/tenants/{tenant_id}", key=gateway.admin_key, body={"limits": {"burst": None}}
    )
    assert cleared.status == 200 and cleared.json["limits"]["burst"] == 10
    me = gateway.request("GET", "/me", key=key).json
    assert me["limits"]["burst"] == 10 and me["limit_sources"]["burst"] == "tier"
    assert _burst(gateway, [key], 10).count(200) == 9  # the GET /me above took the first token


def test_a_malformed_override_is_422_and_changes_nothing(gateway: LocalStack) -> None:
    tenant_id, _ = gateway.create_tenant("basic")
    answer = gateway.request(
        "PATCH", f"/tenants/{tenant_id}", key=gateway.admin_key, body={"limits": {"burst": -2}}
    )
    assert answer.status == 422 and answer.json["errors"][0]["field"] == "limits.burst"
    tenant = gateway.request("GET", f"/tenants/{tenant_id}", key=gateway.admin_key).json
    assert set(tenant["limit_sources"].values()) == {"tier"}


# ---------------------------------------------------------------------------------- the upgrade


@pytest.mark.local_only("writes the first scheme's records into the embedded AWS and runs the migration")
def test_a_stack_of_the_first_scheme_keeps_working_and_the_migration_shares_one_bucket(
    stack_factory: Callable[..., LocalStack], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = stack_factory(tmp_path / "home")
    # Given a basic tenant written as the first scheme left it: two keys in a grace period, each
    # an API Gateway key of its own
    legacy = first_scheme.onboard(
        stack.aws_client("dynamodb"),
        stack.aws_client("apigateway"),
        tenants_table=template.local_table_name("TenantsTable"),
        keys_table=template.local_table_name("ApiKeysTable"),
        stack=template.LOCAL_STACK_NAME,
        tenant_id="legacy",
    )
    # Then it keeps working as before: each key its own bucket (16 of 16 quick calls admitted)
    before = _burst(stack, legacy.raw_keys, 16)
    assert before.count(200) == 16, before
    # When the operator runs the migration (the admin key's owner's AWS credentials)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    arguments = [
        "keys", "migrate", "--table", template.local_table_name("ApiKeysTable"),
        "--tenants-table", template.local_table_name("TenantsTable"), "--stack", template.LOCAL_STACK_NAME,
        "--endpoint-url", stack.endpoint_url, "--region", "us-east-1", "--json",
    ]  # fmt: skip
    assert main(arguments) == 0
    # Then the tenant has one API key, its old ones are gone, and its keys still work, now sharing
    # one bucket (a fresh one: a burst of 10)
    api_keys = stack.aws_client("apigateway").get_api_keys(includeValues=True)["items"]
    mine = [key for key in api_keys if (key.get("tags") or {}).get("tenant_id") == "legacy"]
    assert len(mine) == 1 and mine[0]["value"] not in legacy.raw_keys
    after = _burst(stack, legacy.raw_keys, 16)
    assert after.count(200) == 10 and after.count(429) == 6, after
    assert all(keys.role_of(raw) == "tenant" for raw in legacy.raw_keys)
