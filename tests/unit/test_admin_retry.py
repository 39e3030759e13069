"""Admin operations are retry-safe: whatever step fails, the same request sent again ends right.

For each operation (onboarding, tier change, suspension, resumption, rotation with a grace, issuing
an expiring key with no grace, issuing a key that does not rotate, revocation, a limit override
and its clearing) the test first records the operation's steps (every DynamoDB write and every API
Gateway key and plan write, in order), then for every step k, on a fresh tenant: the k-th step
fails, the same request is sent again, and the end state is checked (the tenant item and its count
of live keys, every key item, the tenant's one API key, its usage plan and enabled flag, no API key
or plan left over or made twice). Three ways a step fails, as on AWS:

- ``refused``: the call fails and nothing happened (an AccessDenied, a throttle past every retry);
- ``lost``: AWS acted, but the caller never learned it (the function timed out on the answer);
- ``resent``: AWS acted, the answer was lost, and botocore sent the call again (a 500 or a
  timeout, which its standard mode retries), meeting the state the first send left: an API key
  value that exists, a conditional put whose item is there, a key already in its usage plan.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.retries.standard import ExponentialBackoff

from local import faults as fault_injection
from tenantry import aws as clients
from tenantry import edge, keys, keysweep, tenancy
from tenantry import limits as tenant_limits
from tenantry.errors import Conflict, NotFound
from tenantry.models.tenants import (
    CreatedTenant,
    CreateTenantRequest,
    IssueKeyRequest,
    LimitOverrides,
    TenantConfig,
    UpdateTenantRequest,
)
from tenantry.stores import keys as key_store
from tenantry.stores import tenants as tenant_store
from tests.conftest import admin_context, api_event, load_function, response_json

APIGATEWAY_WRITES = frozenset(
    {
        "CreateApiKey",
        "UpdateApiKey",
        "DeleteApiKey",
        "CreateUsagePlanKey",
        "DeleteUsagePlanKey",
        "CreateUsagePlan",
        "UpdateUsagePlan",
        "DeleteUsagePlan",
    }
)
DYNAMODB_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# mode → (the error the caller sees, whether AWS acted on the call first)
MODES: dict[str, tuple[str, str, bool]] = {
    # (DynamoDB's code, API Gateway's code, applied)
    "refused": ("AccessDeniedException", "AccessDeniedException", False),
    "lost": ("AccessDeniedException", "AccessDeniedException", True),
    "resent": ("InternalServerError", "ServiceUnavailableException", True),
}


@dataclass
class Tenant:
    """What a case's setup made and what its operation answered."""

    tenant_id: str
    raw_keys: list[str] = field(default_factory=list)
    answer: Any = None
    started: float = 0.0


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Tenant], None]
    run: Callable[[Tenant], Any]
    check: Callable[[Tenant], None]
    again: Callable[[Tenant], Any] | None = None  # the retry, when it is not simply ``run``


# ------------------------------------------------------------------------------ the end state


def _items(tenant_id: str) -> list[key_store.KeyRecord]:
    return key_store.DYNAMODB.list_for_tenant(tenant_id, _registered(tenant_id))


def _registered(tenant_id: str) -> frozenset[str]:
    tenant = tenant_store.DYNAMODB.get(tenant_id)
    return frozenset() if tenant is None else tenant.key_hashes


def _plans_of(edge_key_id: str) -> set[str]:
    """The names of the plans the API key is in (tier plans, tenant plans)."""
    api = clients.apigateway()
    return {
        plan["name"]
        for plan in api.get_usage_plans(limit=500)["items"]
        if any(item["id"] == edge_key_id for item in api.get_usage_plan_keys(usagePlanId=plan["id"])["items"])
    }


def _tenant_plans() -> list[dict[str, Any]]:
    return [
        dict(plan)
        for plan in clients.apigateway().get_usage_plans(limit=500)["items"]
        if "-tenant-" in plan["name"]
    ]


def _edge_keys_of(tenant_id: str) -> dict[str, dict[str, Any]]:
    return {
        str(key["id"]): key
        for key in edge.tagged_keys("test")
        if (key.get("tags") or {}).get("tenant_id") == tenant_id
    }


def assert_consistent(
    tenant: Tenant,
    *,
    tier: str,
    status: str,
    limits: dict[str, int] | None = None,
    young_pending: bool = False,
) -> list[key_store.KeyRecord]:
    """The tenant is ``tier``/``status`` with ``limits`` overridden; it has exactly one API key, its
    usage identity, recorded on its item, enabled as the tenant is, in exactly one usage plan (its
    tier's, or its own with the effective limits when an edge limit is overridden), and no other
    plan of its own; every live key item agrees with the tenant and carries the identity, with no
    API key of its own; the count of live keys holds exactly the live keys, each until its end.
    ``young_pending``: a key an issue that does not rotate left pending may stay (another request
    could still be finishing it) until a later issue discards it. Returns the live key items."""
    stored = tenant_store.DYNAMODB.get(tenant.tenant_id)
    assert stored is not None
    assert not stored.is_onboarding
    assert (stored.tier, stored.status) == (tier, status)
    assert dict(stored.limits) == (limits or {})
    items = _items(tenant.tenant_id)
    if not young_pending:
        assert [key.status for key in items if key.status == key_store.PENDING] == []
    live = [key for key in items if key.status not in ("revoked", "pending")]
    edge_keys = _edge_keys_of(tenant.tenant_id)
    assert list(edge_keys) == [stored.usage_key_id], "not exactly one API key: the usage identity"
    usage_key = edge_keys[stored.usage_key_id]
    assert usage_key["value"] == stored.usage_key
    assert usage_key["enabled"] is (status == "active")
    own_plans = [plan for plan in _tenant_plans() if plan["name"] == f"test-tenant-{tenant.tenant_id}"]
    wanted = tenant_limits.plan_limits(tier, stored.limits)
    if wanted is None:
        assert own_plans == []
        assert _plans_of(stored.usage_key_id) == {f"test-{tier}"}
    else:
        assert len(own_plans) == 1, own_plans
        assert _plans_of(stored.usage_key_id) == {f"test-tenant-{tenant.tenant_id}"}
        assert edge._as_limits(own_plans[0]) == wanted
    for key in live:
        assert key.tier == tier
        assert key.status == ("active" if status == "active" else "suspended")
        assert key.edge_key_id is None, f"{key.key_id} has an API key of its own"
        assert key.usage_key == stored.usage_key
    now = time.time()
    live_keys = stored.live_keys or {}
    counted = {key_hash for key_hash, ends in live_keys.items() if not ends or ends > now}
    # A registration whose key item was never written (its request failed between the two) counts
    # only until its pending window ends; a key left pending (a young one, see young_pending)
    # until the next issue discards it, which every issue does before it counts.
    finished = {key.key_hash for key in live}
    pending = {key.key_hash for key in items if key.status == key_store.PENDING}
    unwritten = {
        key_hash
        for key_hash in counted - finished
        if key_hash in pending or 0 < live_keys[key_hash] <= now + tenancy.ABANDONED_PENDING_SECONDS
    }
    assert counted - unwritten == _usable(live), "the count of live keys disagrees with the keys"
    for key in live:
        if key.key_hash in counted:
            assert (stored.live_keys or {})[key.key_hash] == (key.expires_at or 0)
    return live


def _expiry(raw_key: str) -> int | None:
    stored = key_store.DYNAMODB.get(keys.hash_key(raw_key))
    assert stored is not None
    return stored.expires_at


def _hash_set(raw_keys: list[str]) -> set[str]:
    return {keys.hash_key(raw) for raw in raw_keys}


# ------------------------------------------------------------------------------ the cases


def _onboard(tenant: Tenant, tier: str = "basic") -> None:
    created = tenancy.create_tenant(CreateTenantRequest(name="Acme", tier=tier, tenant_id=tenant.tenant_id))
    tenant.raw_keys.append(created.api_key)


def _onboard_and_rotate(tenant: Tenant) -> None:
    _onboard(tenant)
    tenant.raw_keys.append(
        tenancy.issue_key(tenant.tenant_id, IssueKeyRequest(grace_seconds=3600), None).api_key
    )


def _usable(live: list[key_store.KeyRecord]) -> set[str]:
    now = time.time()
    return {key.key_hash for key in live if key.expires_at is None or key.expires_at > now}


def _rotation_left_pending(injector: fault_injection.FaultInjector) -> Tenant:
    """Tenant acme, onboarded, then a 60 s-grace rotation whose activation (its third UpdateItem,
    after registering the key and setting the older key's grace end) was refused."""
    tenant = Tenant("acme")
    _onboard(tenant)
    injector.fail_once("dynamodb", "UpdateItem", "AccessDeniedException", skip=2)  # register, grace, activate
    with pytest.raises(ClientError):
        tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=60), None)
    return tenant


def _onboard_again(tenant: Tenant) -> Any:
    """The same onboarding request again; when the first attempt had finished (only the answer of
    its last write was lost) it answers 409, and the documented recovery is a new key with no
    grace, which ends the key nobody saw at once."""
    try:
        return _onboard_pro(tenant)
    except Conflict as exc:
        assert exc.code == "tenant_exists"
        issued = tenancy.issue_key(tenant.tenant_id, IssueKeyRequest(grace_seconds=0), None)
        return CreatedTenant(tenant=tenancy.get_tenant(tenant.tenant_id), api_key=issued.api_key)


def _onboard_pro(tenant: Tenant) -> Any:
    return tenancy.create_tenant(
        CreateTenantRequest(
            name="Acme", tier="pro", tenant_id=tenant.tenant_id, config=TenantConfig(max_messages=5)
        )
    )


def _check_onboarded(tenant: Tenant) -> None:
    live = assert_consistent(tenant, tier="pro", status="active")
    # exactly one usable key, the one answered; a key of the failed attempt is gone or has ended
    assert _usable(live) == _hash_set([tenant.answer.api_key])
    assert tenant.answer.tenant.tier == "pro"
    assert tenancy.get_tenant(tenant.tenant_id).config == {"max_messages": 5}


def _check_rotated(tenant: Tenant, *, grace: int) -> None:
    live = assert_consistent(tenant, tier="basic", status="active")
    new_hash = keys.hash_key(tenant.answer.api_key)
    live_hashes = {key.key_hash for key in live}
    assert live_hashes >= _hash_set(tenant.raw_keys) | {new_hash}
    for key in live:
        if key.key_hash == new_hash:
            assert key.expires_at is None
        else:
            # the older keys (and a key whose answer was lost) end with the grace; a retry never
            # extends it
            assert key.expires_at is not None
            assert tenant.started + grace - 1 <= key.expires_at <= time.time() + grace + 1
    # and the answer says when the last older key stops, as recorded
    older_ends = [key.expires_at or 0 for key in live if key.key_hash != new_hash]
    assert (
        tenant.answer.older_keys_expire_at
        == tenancy.key_view(replace(live[0], expires_at=max(older_ends))).expires_at
    )


def _check_revoked(tenant: Tenant) -> None:
    live = assert_consistent(tenant, tier="basic", status="active")
    assert {key.key_hash for key in live} == _hash_set(tenant.raw_keys[1:])
    revoked = key_store.DYNAMODB.get(keys.hash_key(tenant.raw_keys[0]))
    assert revoked is not None and revoked.status == "revoked"
    assert tenant.answer.status == "revoked"


def _first_key_id(tenant: Tenant) -> str:
    item = key_store.DYNAMODB.get(keys.hash_key(tenant.raw_keys[0]))
    assert item is not None
    return item.key_id


def _rotate(grace: int, expires_in: int | None = None) -> Callable[[Tenant], Any]:
    def run(tenant: Tenant) -> Any:
        return tenancy.issue_key(
            tenant.tenant_id, IssueKeyRequest(grace_seconds=grace, expires_in_seconds=expires_in), None
        )

    return run


def _check_issued_expiring(tenant: Tenant) -> None:
    live = assert_consistent(tenant, tier="basic", status="active")
    new = key_store.DYNAMODB.get(keys.hash_key(tenant.answer.api_key))
    assert new is not None and new.status == "active"
    assert tenant.started + 600 - 1 <= (new.expires_at or 0) <= time.time() + 600
    assert tenant.answer.key.expires_at == tenancy.key_view(new).expires_at
    # No grace: only the new key is usable; each older key has expired (a retry may have found it
    # expired already and revoked it, deleting its API key)
    assert _usable(live) == {new.key_hash}
    for raw in tenant.raw_keys:
        older = key_store.DYNAMODB.get(keys.hash_key(raw))
        assert older is not None
        assert older.status == "revoked" or (older.expires_at or 0) <= time.time()


def _update(**fields: Any) -> Callable[[Tenant], Any]:
    return lambda tenant: tenancy.update_tenant(tenant.tenant_id, UpdateTenantRequest(**fields), None)


def _consistent(tier: str, status: str, limits: dict[str, int] | None = None) -> Callable[[Tenant], None]:
    def check(tenant: Tenant) -> None:
        assert_consistent(tenant, tier=tier, status=status, limits=limits)

    return check


OVERRIDES = {"requests_per_minute": 600, "burst": 40, "tokens_per_month": 5000}


def _override(tenant: Tenant) -> Any:
    return tenancy.update_tenant(
        tenant.tenant_id, UpdateTenantRequest(limits=LimitOverrides(**OVERRIDES)), None
    )


def _onboard_rotate_and_override(tenant: Tenant) -> None:
    _onboard_and_rotate(tenant)
    _override(tenant)


def _clear_edge_overrides(tenant: Tenant) -> Any:
    cleared = LimitOverrides(requests_per_minute=None, burst=None)
    return tenancy.update_tenant(tenant.tenant_id, UpdateTenantRequest(limits=cleared), None)


def _add_key(tenant: Tenant) -> Any:
    request = IssueKeyRequest(rotate=False, name="ci", scopes=["events:write"], expires_in_seconds=600)
    return tenancy.issue_key(tenant.tenant_id, request, None)


def _check_added(tenant: Tenant) -> None:
    live = assert_consistent(tenant, tier="basic", status="active", young_pending=True)
    # every older key still works, unchanged; the new one has its name, scopes and expiry. An
    # issue whose answer was lost after its key was activated leaves that key live (nobody got it:
    # it is listed under its name, to be revoked), as a second request for a key would
    answered = _hash_set(tenant.raw_keys) | {keys.hash_key(tenant.answer.api_key)}
    assert _usable(live) >= answered
    assert all(key.name == "ci" for key in live if key.key_hash not in answered)
    for raw in tenant.raw_keys:
        assert _expiry(raw) in (None, _expiry(tenant.raw_keys[0]))
    new = key_store.DYNAMODB.get(keys.hash_key(tenant.answer.api_key))
    assert new is not None and new.name == "ci" and new.scopes == frozenset({"events:write"})


def _suspended_with_two_keys(tenant: Tenant) -> None:
    _onboard_and_rotate(tenant)
    _update(status="suspended")(tenant)


CASES = [
    Case(
        "onboard", setup=lambda tenant: None, run=_onboard_pro, check=_check_onboarded, again=_onboard_again
    ),
    Case(
        "tier-change", setup=_onboard_and_rotate, run=_update(tier="pro"), check=_consistent("pro", "active")
    ),
    Case(
        "suspend",
        setup=_onboard_and_rotate,
        run=_update(status="suspended"),
        check=_consistent("basic", "suspended"),
    ),
    Case(
        "resume",
        setup=_suspended_with_two_keys,
        run=_update(status="active"),
        check=_consistent("basic", "active"),
    ),
    Case(
        "rotate", setup=_onboard, run=_rotate(3600), check=lambda tenant: _check_rotated(tenant, grace=3600)
    ),
    Case("issue-expiring", setup=_onboard_and_rotate, run=_rotate(0, 600), check=_check_issued_expiring),
    Case(
        "revoke",
        setup=_onboard_and_rotate,
        run=lambda tenant: tenancy.revoke_key(tenant.tenant_id, _first_key_id(tenant), None),
        check=_check_revoked,
    ),
    Case("add-key", setup=_onboard_and_rotate, run=_add_key, check=_check_added),
    Case(
        "limits-override",
        setup=_onboard_and_rotate,
        run=_override,
        check=_consistent("basic", "active", OVERRIDES),
    ),
    Case(
        "limits-clear",
        setup=_onboard_rotate_and_override,
        run=_clear_edge_overrides,
        check=_consistent("basic", "active", {"tokens_per_month": 5000}),
    ),
    Case(
        "tier-change-with-own-plan",
        setup=_onboard_rotate_and_override,
        run=_update(tier="pro"),
        check=_consistent("pro", "active", OVERRIDES),
    ),
]


# ------------------------------------------------------------------------------ the harness


@pytest.fixture
def injector(aws: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[fault_injection.FaultInjector]:
    monkeypatch.setattr(edge, "flush_authorizer_cache", lambda stage: True)  # moto has no such call
    # botocore's backoff before a call sent again is a real wait (up to 1 s); the outcome is tested
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    with fault_injection.activate("seed=1") as active:
        yield active


def _steps(trace: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [
        (service, operation)
        for service, operation in trace
        if (service == "dynamodb" and operation in DYNAMODB_WRITES)
        or (service == "apigateway" and operation in APIGATEWAY_WRITES)
    ]


def _record_steps(case: Case, injector: fault_injection.FaultInjector) -> list[tuple[str, str]]:
    tenant = Tenant("dry-run")
    case.setup(tenant)
    injector.trace.clear()
    injector.tracing = True
    try:
        case.run(tenant)
    finally:
        injector.tracing = False
    return _steps(injector.trace)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_a_failure_at_any_step_then_the_same_request_again_ends_right(
    case: Case, mode: str, injector: fault_injection.FaultInjector
) -> None:
    dynamodb_code, apigateway_code, applied = MODES[mode]
    steps = _record_steps(case, injector)
    assert len(steps) >= 2, steps
    for index, (service, operation) in enumerate(steps):
        # Given a fresh tenant set up for the operation, and its k-th step about to fail
        tenant = Tenant(f"t{index}-{case.name}")
        case.setup(tenant)
        earlier_same = steps[:index].count((service, operation))
        code = dynamodb_code if service == "dynamodb" else apigateway_code
        injector.fail_once(service, operation, code, skip=earlier_same, applied=applied)
        fired = sum(injector.injected.values())
        tenant.started = time.time()
        # When the operation runs, and, if it failed, the same request is sent again
        try:
            tenant.answer = case.run(tenant)
        except Exception:  # noqa: BLE001 - any failure the caller sees; the retry must mend it
            tenant.answer = (case.again or case.run)(tenant)
        # Then the step did fail, and the end state is the one a single clean run gives
        assert sum(injector.injected.values()) == fired + 1, (
            f"step {index} {service}:{operation} never failed"
        )
        try:
            case.check(tenant)
        except AssertionError as exc:
            raise AssertionError(
                f"{case.name}, {mode} failure at step {index} ({service}:{operation}): {exc}"
            ) from exc
    # And the sweep finds nothing to remove: no API key of any of these tenants is an orphan
    assert keysweep.find_orphans("test", min_age_seconds=0) == []


# ------------------------------------------------------------------------------ around the steps


def test_an_onboarding_without_an_id_that_fails_leaves_nothing_behind(
    injector: fault_injection.FaultInjector,
) -> None:
    # Given an onboarding without a tenant id (a retry gets a new id, so nothing may stay behind),
    # whose new API key is refused its usage-plan seat
    injector.fail_once("apigateway", "CreateUsagePlanKey", "AccessDeniedException")
    # When it runs
    with pytest.raises(ClientError):
        tenancy.create_tenant(CreateTenantRequest(name="Initech", tier="basic"))
    # Then no tenant, no key item and no API key is left
    assert tenancy.list_tenants(tier=None, status=None, limit=10, next_token=None).tenants == []
    assert clients.dynamodb_client().scan(TableName=key_store_table())["Count"] == 0
    assert list(edge.tagged_keys("test")) == []


def test_a_key_left_pending_is_neither_listed_nor_revocable_and_the_next_rotation_discards_it(
    injector: fault_injection.FaultInjector,
) -> None:
    # Given a rotation whose activation was refused (its key item and API key exist, pending)
    tenant = _rotation_left_pending(injector)
    (pending,) = [key for key in _items("acme") if key.status == key_store.PENDING]
    # Then the listing does not show it and revoking it is a 404
    assert [key.key_id for key in tenancy.list_keys("acme")] == [_first_key_id(tenant)]
    with pytest.raises(NotFound):
        tenancy.revoke_key("acme", pending.key_id, None)
    # And the next rotation discards it: its item, its place on the tenant, its API key
    tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=60), None)
    assert key_store.DYNAMODB.get(pending.key_hash) is None
    assert pending.key_hash not in _registered("acme")
    assert edge.keys_named(pending.key_id) == []
    assert len(_edge_keys_of("acme")) == 1  # the tenant's usage identity, whatever its keys


def test_activation_refuses_a_key_another_request_discarded(injector: fault_injection.FaultInjector) -> None:
    # Given a pending key that a concurrent rotation discarded before it was activated
    _onboard(Tenant("acme"))
    raw, item = tenancy._new_key(
        tenant_id="acme", tier="basic", role="tenant", status=key_store.PENDING, expires_at=None
    )
    key_store.DYNAMODB.put(item)
    key_store.DYNAMODB.delete(item.key_hash)
    # When its own request activates it, then it is a 409 (its secret is never answered)
    with pytest.raises(Conflict) as caught:
        key_store.DYNAMODB.activate(item.key_hash, edge_key_id="abc", status=key_store.ACTIVE)
    assert caught.value.code == "key_operation_conflict"
    assert raw


def test_onboarding_an_id_that_finished_onboarding_is_409_and_touches_nothing(
    injector: fault_injection.FaultInjector,
) -> None:
    # Given tenant A onboarded (its onboarding answered)
    tenant = Tenant("acme")
    _onboard(tenant)
    before = _edge_keys_of("acme")
    # When another onboarding names A's id, with other fields
    with pytest.raises(Conflict) as caught:
        tenancy.create_tenant(CreateTenantRequest(name="Mallory", tier="enterprise", tenant_id="acme"))
    # Then it is 409 tenant_exists, and A's item, key and API key are as they were
    assert caught.value.code == "tenant_exists"
    assert_consistent(tenant, tier="basic", status="active")
    assert tenancy.get_tenant("acme").name == "Acme"
    assert _edge_keys_of("acme").keys() == before.keys()
    assert _usable(_items("acme")) == _hash_set(tenant.raw_keys)


@pytest.mark.parametrize("still_onboarding", [True, False])
def test_a_generated_id_that_collides_gets_another_and_never_takes_over_the_other_tenant(
    injector: fault_injection.FaultInjector, monkeypatch: pytest.MonkeyPatch, still_onboarding: bool
) -> None:
    # Given tenant A under the id the next generated id would collide with (A still onboarding, or done)
    tenant = Tenant("initech-aaaaaa")
    _onboard(tenant)
    if still_onboarding:
        # (as an onboarding that never answered leaves it: the mark is still there)
        clients.table(os.environ["TENANTS_TABLE"]).update_item(
            Key={"tenant_id": "initech-aaaaaa"},
            UpdateExpression="SET #onboarding = :started",
            ExpressionAttributeNames={"#onboarding": tenant_store.ONBOARDING},
            ExpressionAttributeValues={":started": "2026-01-01T00:00:00Z"},
        )
    generated = iter(["initech-aaaaaa", "initech-aaaaaa", "initech-bbbbbb"])
    monkeypatch.setattr(tenancy, "_new_tenant_id", lambda name: next(generated))
    # When another onboarding without an id is named like A
    created = tenancy.create_tenant(CreateTenantRequest(name="Initech", tier="enterprise"))
    # Then it gets a fresh id, and A's item and keys are as they were
    assert created.tenant.tenant_id == "initech-bbbbbb"
    assert created.tenant.tier == "enterprise"
    assert tenancy.get_tenant("initech-aaaaaa").tier == "basic"
    assert _usable(_items("initech-aaaaaa")) == _hash_set(tenant.raw_keys)


def key_store_table() -> str:
    return os.environ["API_KEYS_TABLE"]


# ------------------------------------------------------------------------------ under load


# Seeds 2 and 16 throttle one call past every retry (a 503 the client sends again, half-way through
# an operation); all of 1-20 pass.
@pytest.mark.parametrize("seed", [2, 11, 16])
def test_admin_calls_under_20_percent_throttling_end_right(
    seed: int, aws: dict[str, str], lambda_context: Any, faults: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every DynamoDB call and every API Gateway key-management call throttled 20 % of the time,
    through the tenants function's handler: a client that sends a 503 ``service_busy`` again gets
    every admin operation done, never a 5xx of another kind, and the end state is right."""
    monkeypatch.setattr(edge, "flush_authorizer_cache", lambda stage: True)
    # botocore's backoff (up to 1, 2, 4 s) is a real wait; what is tested is the outcome
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    handler = load_function("tenants").lambda_handler
    statuses: Counter[int] = Counter()

    def call(method: str, path: str, body: Any = None) -> Any:
        for _ in range(5):
            response = handler(api_event(method, path, body=body, authorizer=admin_context()), lambda_context)
            statuses[response["statusCode"]] += 1
            if response["statusCode"] != 503:
                break
            assert response_json(response)["error"] == "service_busy"
        assert response["statusCode"] in (200, 201), response
        return response_json(response)

    injector = faults(f"throttle=20%,apigw=20%,seed={seed}")
    raw: dict[str, list[str]] = {}
    for name in ("alpha", "bravo", "charlie", "delta"):
        raw[name] = [call("POST", "/tenants", {"name": name, "tier": "basic", "tenant_id": name})["api_key"]]
        raw[name].append(call("POST", f"/tenants/{name}/keys", {"grace_seconds": 3600})["api_key"])
    for name in ("alpha", "bravo", "charlie", "delta"):
        call("PATCH", f"/tenants/{name}", {"tier": "pro"})
    call("PATCH", "/tenants/bravo", {"status": "suspended"})
    for name in ("charlie", "delta"):
        call("PATCH", f"/tenants/{name}", {"status": "suspended"})
        call("PATCH", f"/tenants/{name}", {"status": "active", "tier": "enterprise"})
    first = key_store.DYNAMODB.get(keys.hash_key(raw["delta"][0]))
    assert first is not None
    call("DELETE", f"/tenants/delta/keys/{first.key_id}")
    throttled = sum(count for fault, count in injector.injected.items() if "Exception" in fault)
    injector.spec = fault_injection.FaultSpec()  # the checks read without faults
    expected = {
        "alpha": ("pro", "active"),
        "bravo": ("pro", "suspended"),
        "charlie": ("enterprise", "active"),
        "delta": ("enterprise", "active"),
    }
    for name, (tier, status) in expected.items():
        live = assert_consistent(Tenant(name), tier=tier, status=status)
        owned = raw[name][1:] if name == "delta" else raw[name]
        assert {key.key_hash for key in live} == _hash_set(owned)
    assert throttled > 20  # the faults did happen
    assert set(statuses) <= {200, 201, 503}


def test_through_the_handler_a_half_done_tier_change_and_a_half_done_rotation_are_finished_by_a_retry(
    injector: fault_injection.FaultInjector, lambda_context: Any
) -> None:
    handler = load_function("tenants").lambda_handler

    def call(method: str, path: str, body: Any = None) -> Any:
        response = handler(api_event(method, path, body=body, authorizer=admin_context()), lambda_context)
        assert response["statusCode"] in (200, 201), response
        return response_json(response)

    tenant = Tenant("acme")
    _onboard_and_rotate(tenant)
    # Given a tier change that moved the first key's API key and failed to record it (the key
    # item's write refused: steps are the tenant item, the first key's two plan calls, its item)
    injector.fail_once("dynamodb", "UpdateItem", "AccessDeniedException", skip=1)
    with pytest.raises(ClientError):
        call("PATCH", "/tenants/acme", {"tier": "enterprise"})
    # And a rotation whose activation failed, leaving a pending key and its API key
    injector.fail_once("dynamodb", "UpdateItem", "AccessDeniedException", skip=3)  # register, 2 graces
    with pytest.raises(ClientError):
        call("POST", "/tenants/acme/keys", {"grace_seconds": 600})
    assert any(key.status == key_store.PENDING for key in _items("acme"))
    # When both are sent again
    call("PATCH", "/tenants/acme", {"tier": "enterprise"})
    tenant.raw_keys.append(call("POST", "/tenants/acme/keys", {"grace_seconds": 600})["api_key"])
    # Then every key is in the enterprise plan only, and the pending key and its API key are gone
    live = assert_consistent(tenant, tier="enterprise", status="active")
    assert {key.key_hash for key in live} == _hash_set(tenant.raw_keys)


def test_an_onboarding_whose_undo_failed_too_is_resumed_by_the_retry(
    injector: fault_injection.FaultInjector,
) -> None:
    # Given an onboarding whose key activation failed, and whose undo failed too (the API key could
    # not be deleted): the tenant item is still marked onboarding, with a pending key and its API key
    injector.fail_once("dynamodb", "UpdateItem", "AccessDeniedException", skip=1)  # register, activate
    injector.fail_once("apigateway", "DeleteApiKey", "AccessDeniedException")
    with pytest.raises(ClientError):
        tenancy.create_tenant(CreateTenantRequest(name="Acme", tier="basic", tenant_id="acme"))
    stored = tenant_store.DYNAMODB.get("acme")
    assert stored is not None and stored.is_onboarding
    assert len(_edge_keys_of("acme")) == 1
    # When the onboarding is sent again (here with another tier: the retry's fields win)
    created = tenancy.create_tenant(CreateTenantRequest(name="Acme Corp", tier="pro", tenant_id="acme"))
    # Then it resumed: one tenant, finished, in the new tier, with only the answered key
    tenant = Tenant("acme", raw_keys=[created.api_key], answer=created)
    live = assert_consistent(tenant, tier="pro", status="active")
    assert {key.key_hash for key in live} == _hash_set([created.api_key])
    assert tenancy.get_tenant("acme").name == "Acme Corp"
    assert keysweep.find_orphans("test", min_age_seconds=0) == []


def test_a_retried_rotation_never_extends_the_grace_and_says_when_it_ends(
    injector: fault_injection.FaultInjector, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a rotation with a 60 s grace whose activation was refused after the older key got its
    # grace end
    tenant = _rotation_left_pending(injector)
    first_end = _expiry(tenant.raw_keys[0])
    # When the same request is sent again 30 s later
    later = time.time() + 30
    monkeypatch.setattr(tenancy, "_now", lambda: later)
    issued = tenancy.issue_key("acme", IssueKeyRequest(grace_seconds=60), None)
    # Then the older key keeps the first grace end, and the answer names that moment
    assert _expiry(tenant.raw_keys[0]) == first_end
    assert issued.older_keys_expire_at == tenancy._iso(first_end or 0)
