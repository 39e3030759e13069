"""The API-key authorizer: who gets in, as which tenant, and for which routes."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tenantry import authorizer, caches, keys, tenancy
from tenantry.models.tenants import CreateTenantRequest, IssueKeyRequest, UpdateTenantRequest
from tenantry.stores import tenants as tenant_store
from tests.conftest import REPO_ROOT, load_function, with_last_character_changed

STAGE_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/v1"


def authorizer_event(key: str | None, method: str = "GET", path: str = "me") -> dict[str, Any]:
    headers = {} if key is None else {"X-API-Key": key}
    return {"type": "REQUEST", "methodArn": f"{STAGE_ARN}/{method}/{path}", "headers": headers}


def allows(policy: dict[str, Any], method_arn: str) -> bool:
    """IAM evaluation as API Gateway applies it to a cached policy: explicit Deny wins."""

    def matching(effect: str) -> bool:
        return any(
            fnmatch.fnmatchcase(method_arn, resource)
            for statement in policy["Statement"]
            if statement["Effect"] == effect
            for resource in statement["Resource"]
        )

    return not matching("Deny") and matching("Allow")


def unauthorized(event: dict[str, Any], **kwargs: Any) -> bool:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.authorize(event, **kwargs)
    return True


@pytest.fixture
def tenant_key(aws: dict[str, str]) -> tuple[str, str]:
    created = tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="pro", tenant_id="acme"))
    return created.tenant.tenant_id, created.api_key


def test_a_valid_tenant_key_resolves_to_its_tenant_with_string_context(tenant_key: tuple[str, str]) -> None:
    tenant_id, key = tenant_key
    # When the authorizer sees the key
    answer = authorizer.authorize(authorizer_event(key))
    # Then the principal and context name the tenant, and the key drives the usage plan
    assert answer["principalId"] == tenant_id
    assert answer["context"]["tenant_id"] == tenant_id
    assert answer["context"]["tier"] == "pro"
    assert answer["context"]["role"] == "tenant"
    assert answer["context"]["key_id"].startswith("key_")
    assert all(isinstance(value, str) for value in answer["context"].values())
    # And the usage identity is the tenant's own API Gateway key, not the presented key
    stored = tenant_store.DYNAMODB.get(tenant_id)
    assert stored is not None and answer["usageIdentifierKey"] == stored.usage_key != key


def test_one_cached_policy_admits_every_tenant_route_and_no_admin_route(tenant_key: tuple[str, str]) -> None:
    # Given the answer API Gateway cached for GET /me
    _, key = tenant_key
    policy = authorizer.authorize(authorizer_event(key, "GET", "me"))["policyDocument"]
    # Then the same cached policy admits a second route, and any other tenant route
    assert allows(policy, f"{STAGE_ARN}/POST/events")
    assert allows(policy, f"{STAGE_ARN}/GET/sessions/abc")
    assert allows(policy, f"{STAGE_ARN}/DELETE/sessions/abc")
    # But a tenant key never reaches the admin routes (API Gateway answers 403)
    assert not allows(policy, f"{STAGE_ARN}/GET/tenants")
    assert not allows(policy, f"{STAGE_ARN}/DELETE/tenants/acme")
    assert not allows(policy, f"{STAGE_ARN}/POST/tenants/acme/keys")
    assert not allows(policy, f"{STAGE_ARN}/GET/stats")
    assert not allows(policy, f"{STAGE_ARN}/GET/stats/prometheus")


def test_admin_keys_reach_admin_routes_only(aws: dict[str, str]) -> None:
    admin_key, _ = tenancy.create_admin_key()
    answer = authorizer.authorize(authorizer_event(admin_key, "GET", "tenants"))
    assert answer["context"]["role"] == "admin"
    policy = answer["policyDocument"]
    assert allows(policy, f"{STAGE_ARN}/GET/tenants")
    assert allows(policy, f"{STAGE_ARN}/PATCH/tenants/acme")
    assert allows(policy, f"{STAGE_ARN}/GET/stats")
    assert allows(policy, f"{STAGE_ARN}/GET/stats/prometheus")
    assert not allows(policy, f"{STAGE_ARN}/GET/me")
    assert not allows(policy, f"{STAGE_ARN}/POST/events")


def test_missing_malformed_and_bad_checksum_keys_are_401_without_a_database_call() -> None:
    def no_lookup(key_hash: str) -> dict[str, str] | None:
        raise AssertionError("the database must not be asked")

    good = keys.generate()
    bad_checksum = with_last_character_changed(good)
    for event in (
        authorizer_event(None),
        authorizer_event(""),
        authorizer_event("not-a-key"),
        authorizer_event(bad_checksum),
    ):
        assert unauthorized(event, lookup=no_lookup)


def test_unknown_key_is_401(aws: dict[str, str]) -> None:
    assert unauthorized(authorizer_event(keys.generate()))


def test_header_name_is_case_insensitive(tenant_key: tuple[str, str]) -> None:
    _, key = tenant_key
    event = authorizer_event(None)
    event["headers"] = {"x-api-key": key}
    assert authorizer.authorize(event)["principalId"] == "acme"


def test_revoked_key_is_401(tenant_key: tuple[str, str]) -> None:
    tenant_id, key = tenant_key
    # Given the tenant's only key is revoked
    (info,) = tenancy.list_keys(tenant_id)
    tenancy.revoke_key(tenant_id, info.key_id, None)
    # Then it no longer authorizes
    assert unauthorized(authorizer_event(key))


def test_a_key_still_pending_is_401() -> None:
    # Given a key whose issuing has not finished (or failed half-way): its item is pending
    key = keys.generate("tenant")
    item = {"key_hash": keys.hash_key(key), "key_id": "key_0000000000000009", "tenant_id": "acme"}
    item |= {"role": "tenant", "tier": "basic", "status": "pending"}
    # Then the authorizer refuses it, as it refuses any status but active and suspended
    assert unauthorized(authorizer_event(key), lookup={item["key_hash"]: item}.get)
    assert unauthorized(authorizer_event(key), lookup={item["key_hash"]: {**item, "status": "odd"}}.get)
    assert authorizer.authorize(
        authorizer_event(key), lookup={item["key_hash"]: {**item, "status": "active"}}.get
    )


def test_expired_key_is_401(aws: dict[str, str]) -> None:
    tenancy.create_tenant(CreateTenantRequest(name="Short", tier="basic", tenant_id="short"))
    issued = tenancy.issue_key("short", IssueKeyRequest(expires_in_seconds=60), None)
    # Before its expiry the key works; after it, it is 401
    assert authorizer.authorize(authorizer_event(issued.api_key))["principalId"] == "short"
    later = time.time() + 61
    assert unauthorized(authorizer_event(issued.api_key), now=lambda: later)


def test_rotation_keeps_old_keys_for_the_grace_period_then_stops_them(tenant_key: tuple[str, str]) -> None:
    tenant_id, old_key = tenant_key
    # Given a rotation with a one-hour grace period
    issued = tenancy.issue_key(tenant_id, IssueKeyRequest(grace_seconds=3600), None)
    # Then both keys work during the grace period
    soon = time.time() + 3500
    assert authorizer.authorize(authorizer_event(old_key), now=lambda: soon)["principalId"] == tenant_id
    assert (
        authorizer.authorize(authorizer_event(issued.api_key), now=lambda: soon)["principalId"] == tenant_id
    )
    # And after it only the new key works
    after = time.time() + 3700
    assert unauthorized(authorizer_event(old_key), now=lambda: after)
    assert (
        authorizer.authorize(authorizer_event(issued.api_key), now=lambda: after)["principalId"] == tenant_id
    )


def test_grace_never_extends_a_key_past_its_own_expiry(aws: dict[str, str]) -> None:
    tenancy.create_tenant(CreateTenantRequest(name="Brief", tier="basic", tenant_id="brief"))
    short_lived = tenancy.issue_key("brief", IssueKeyRequest(expires_in_seconds=600), None)
    # When the tenant rotates with a day of grace
    tenancy.issue_key("brief", IssueKeyRequest(grace_seconds=86_400), None)
    # Then the short-lived key still stops at its own expiry
    after_own_expiry = time.time() + 601
    assert unauthorized(authorizer_event(short_lived.api_key), now=lambda: after_own_expiry)


def test_suspended_tenant_gets_a_deny_everything_policy(tenant_key: tuple[str, str]) -> None:
    tenant_id, key = tenant_key
    # Given the tenant is suspended
    tenancy.update_tenant(tenant_id, UpdateTenantRequest(status="suspended"), None)
    # Then the key is recognised (no 401) but every route is denied (403)
    answer = authorizer.authorize(authorizer_event(key))
    assert answer["principalId"] == tenant_id
    assert not allows(answer["policyDocument"], f"{STAGE_ARN}/GET/me")
    assert not allows(answer["policyDocument"], f"{STAGE_ARN}/POST/events")
    # And API Gateway's 403 will say why (template.yaml's ACCESS_DENIED reads the code)
    assert answer["context"]["denial"] == "tenant_suspended"
    # And resuming restores access
    tenancy.update_tenant(tenant_id, UpdateTenantRequest(status="active"), None)
    assert allows(authorizer.authorize(authorizer_event(key))["policyDocument"], f"{STAGE_ARN}/GET/me")


def test_a_decision_is_logged_with_its_time_like_every_function_line(tenant_key: tuple[str, str]) -> None:
    import io
    import logging
    from datetime import datetime

    # Given the authorizer's log captured
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    logging.getLogger("tenantry.authorizer").addHandler(handler)
    try:
        before = time.time()
        # When it authorizes a key
        answer = authorizer.authorize(authorizer_event(tenant_key[1]))
        after = time.time()
    finally:
        logging.getLogger("tenantry.authorizer").removeHandler(handler)
    # Then its line carries an RFC 3339 timestamp of that moment, as Powertools' lines do
    line = json.loads(captured.getvalue().splitlines()[-1])
    assert answer["context"]["denial"] == "access_denied"
    assert line["message"] == "authorizer decision"
    assert before - 0.001 <= datetime.fromisoformat(line["timestamp"]).timestamp() <= after


def test_tier_change_reaches_the_authorizer_context(tenant_key: tuple[str, str]) -> None:
    tenant_id, key = tenant_key
    tenancy.update_tenant(tenant_id, UpdateTenantRequest(tier="enterprise"), None)
    assert authorizer.authorize(authorizer_event(key))["context"]["tier"] == "enterprise"


def test_the_events_file_authorizes_once_its_key_is_onboarded(
    aws: dict[str, str], lambda_context: Any
) -> None:
    # Given the sample authorizer request and its key stored for a tenant
    event = json.loads((REPO_ROOT / "events" / "authorizer-request.json").read_text())
    handler = load_function("authorizer").lambda_handler
    # When the key is unknown, the authorizer says 401
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        handler(event, lambda_context)
    from tenantry.stores import keys as key_store

    key_store.DYNAMODB.put(
        key_store.KeyRecord(
            key_hash=keys.hash_key(event["headers"]["X-API-Key"]),
            key_id="key_00000000000000e1",
            tenant_id="sample",
            role="tenant",
            tier="basic",
            status="active",
            hint="tnt_…xxxx",
            created_at="2026-11-22T00:00:00Z",
        )
    )
    # Then it resolves to that tenant
    answer = handler(event, lambda_context)
    assert answer["principalId"] == "sample"
    assert allows(answer["policyDocument"], event["methodArn"])


def test_the_authorizer_imports_nothing_heavy() -> None:
    # When the authorizer's handler module is imported in a fresh interpreter
    handler_path = str(REPO_ROOT / "functions" / "authorizer" / "app.py")
    code = (
        "import importlib.util, sys, json\n"
        f"spec = importlib.util.spec_from_file_location('app', {handler_path!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(json.dumps(sorted(name for name in sys.modules)))\n"
    )
    output = subprocess.run(  # noqa: S603 - our own interpreter and a fixed script
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(REPO_ROOT),
    ).stdout
    loaded = set(json.loads(output))
    # Then no pydantic, Powertools, anthropic, or even boto3 before the first lookup
    for heavy in ("pydantic", "anthropic", "aws_lambda_powertools", "boto3", "botocore"):
        assert heavy not in loaded, heavy
    # And of the layer only these: the key format (tenantry.keys) stays standard library only, and
    # the key table is read with the authorizer's own client, never through tenantry.stores.keys
    # (docs/decisions.md, "Typed stores: tenants and keys")
    layer = {name for name in loaded if name == "tenantry" or name.startswith("tenantry.")}
    modules = ("", ".authorizer", ".caches", ".clientconfig", ".keys", ".routes")
    assert layer == {f"tenantry{module}" for module in modules}


def test_two_different_keys_in_one_request_are_401(tenant_key: tuple[str, str]) -> None:
    # Given two valid keys of two tenants, both sent as X-API-Key in one request
    _, first = tenant_key
    second = tenancy.create_tenant(CreateTenantRequest(name="Beta", tier="basic", tenant_id="beta")).api_key
    event = authorizer_event(second)
    event["multiValueHeaders"] = {"X-API-Key": [first], "x-api-key": [second]}
    # When the authorizer runs (API Gateway's headers map holds only the last value)
    # Then it is 401: neither key wins
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorizer.authorize(event)


def test_the_same_key_repeated_is_that_key(tenant_key: tuple[str, str]) -> None:
    tenant_id, key = tenant_key
    event = authorizer_event(key)
    event["multiValueHeaders"] = {"X-API-Key": [key], "x-api-key": [key]}
    assert authorizer.authorize(event)["principalId"] == tenant_id


# ---------------------------------------------------------------- the key lookup under AWS's failures


class FakeClock:
    """Time that moves only when the lookup sleeps or an attempt takes ``attempt_seconds``."""

    def __init__(self, attempt_seconds: float = 0.0) -> None:
        self.now = 0.0
        self.pauses: list[float] = []
        self.attempt_seconds = attempt_seconds

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(authorizer, "_clock", lambda: fake.now)
    monkeypatch.setattr(authorizer, "_sleep", fake.sleep)
    monkeypatch.setattr(authorizer, "_jitter", lambda: 1.0)  # the longest pause each time
    return fake


def _scripted_client(clock: FakeClock, outcomes: list[Exception | None], item: dict[str, Any]) -> list[int]:
    """The authorizer's DynamoDB client answering from ``outcomes`` (an error to raise, or None for
    the item); returns the list its calls are counted in."""
    calls: list[int] = []

    class Client:
        def get_item(self, **_: Any) -> dict[str, Any]:
            calls.append(1)
            clock.now += clock.attempt_seconds
            outcome = outcomes[len(calls) - 1]
            if outcome is not None:
                raise outcome
            return {"Item": item}

    authorizer._clients["dynamodb"] = Client()
    return calls


def _throttled() -> Exception:
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "Rate exceeded"}}, "GetItem"
    )


def test_a_key_lookup_throttled_three_times_still_authorizes(
    tenant_key: tuple[str, str], clock: FakeClock
) -> None:
    tenant_id, key = tenant_key
    stored = authorizer.lookup_key(keys.hash_key(key))
    assert stored is not None
    # Given DynamoDB throttling the key lookup three times in a row
    item = {name: {"S": value} for name, value in stored.items()}
    calls = _scripted_client(clock, [_throttled(), _throttled(), _throttled(), None], item)
    # When the authorizer runs
    answer = authorizer.authorize(authorizer_event(key))
    # Then the fourth attempt answered: the tenant is let in
    assert answer["principalId"] == tenant_id
    assert len(calls) == 4
    # After jittered pauses that double from 0.25 s, well inside the function's 5 s
    assert clock.pauses == [0.25, 0.5, 1.0]


def test_a_lookup_throttled_on_every_attempt_fails_after_four(
    tenant_key: tuple[str, str], clock: FakeClock
) -> None:
    from botocore.exceptions import ClientError

    from local import faults

    _, key = tenant_key
    caches.clear_all("tenantry.authorizer.")
    # Given DynamoDB throttling every GetItem (the wire answer the fault injector gives, as AWS's)
    # When the authorizer runs
    with faults.activate("throttle@GetItem=100%") as injector, pytest.raises(ClientError) as raised:
        authorizer.authorize(authorizer_event(key))
    # Then it gave up after four attempts, and failing is API Gateway's 500 (not a 401)
    assert raised.value.response["Error"]["Code"] == "ProvisionedThroughputExceededException"
    assert sum(injector.injected.values()) == 4
    assert clock.now <= authorizer.LOOKUP_BUDGET_SECONDS


def test_no_attempt_starts_that_could_end_after_the_lookups_deadline(
    tenant_key: tuple[str, str], clock: FakeClock
) -> None:
    _, key = tenant_key
    # Given throttles that each take 1.4 s to come back (a slow, throttled table)
    clock.attempt_seconds = 1.4
    calls = _scripted_client(clock, [_throttled()] * 4, {})
    # When the authorizer runs
    with pytest.raises(Exception, match="ProvisionedThroughputExceeded"):
        authorizer.authorize(authorizer_event(key))
    # Then it stopped before an attempt that could have ended after the 4 s budget
    # (a third would have started at 3.55 s and could have run until 5.05 s)
    assert len(calls) == 2
    assert clock.now <= authorizer.LOOKUP_BUDGET_SECONDS


def test_a_timed_out_lookup_is_retried_once_and_a_missing_table_never(
    tenant_key: tuple[str, str], clock: FakeClock
) -> None:
    from botocore.exceptions import ClientError, ReadTimeoutError

    _, key = tenant_key
    # Given a read that times out every time
    timeout = ReadTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")
    calls = _scripted_client(clock, [timeout] * 4, {})
    # Then one retry, then the error
    with pytest.raises(ReadTimeoutError):
        authorizer.authorize(authorizer_event(key))
    assert len(calls) == 2
    # Given a table that is not there (a deployment error, not a passing one)
    missing = ClientError({"Error": {"Code": "ResourceNotFoundException"}}, "GetItem")
    calls = _scripted_client(clock, [missing] * 4, {})
    # Then no retry at all
    with pytest.raises(ClientError):
        authorizer.authorize(authorizer_event(key))
    assert len(calls) == 1
