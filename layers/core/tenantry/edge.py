"""API Gateway's side of a tenant: its usage identity (an API key), usage plans, the authorizer cache.

Each tenant owns one API Gateway API key, its usage identity, whose value is a secret made here and
shown to nobody: the authorizer answers it for every key of the tenant, so all of them draw from one
token bucket and one quota (design §2). The key sits in the usage plan of the tenant's tier, or in a
plan of the tenant's own when an operator overrides its edge limits. Tier plans are found by name
(``<stack>-<tier>``, set by the template), a tenant's own plan by ``<stack>-tenant-<tenant id>``.

Under the first scheme every tenant key was an API key of its own with the same value; those are
still handled here (:func:`place_key` by tier, :func:`delete_key`) until ``tenantry keys migrate``
retires them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from tenantry import aws, caches, keys, retry, settings
from tenantry.errors import ApiError, Conflict, ServiceBusy
from tenantry.observability import logger
from tenantry.tiers import TIER_NAMES

if TYPE_CHECKING:
    from mypy_boto3_apigateway.type_defs import ApiStageTypeDef, PatchOperationTypeDef

STACK_TAG = "tenantry:stack"
KIND_TAG = "tenantry:kind"
USAGE_KEY_KIND = "usage"  # a tenant's usage identity
TENANT_PLAN_KIND = "tenant-plan"  # a plan of one tenant's own (limit overrides)
USAGE_KEY_PREFIX = "tntusage"
# API Gateway allows one UpdateUsagePlan every 20 s per account, and that quota cannot be raised
# (docs/operations.md, "Per-tenant limits").
PLAN_UPDATE_INTERVAL_SECONDS = 20


class EdgeError(ApiError):
    status = 502
    code = "edge_unavailable"


class EdgeQuotaReached(Conflict):
    """An API Gateway resource quota of the account and region is used up: the operator's to
    raise (or to free), never the server's fault."""

    code = "edge_quota_reached"


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """What a usage plan enforces: a token bucket (rate per second, burst) and a monthly quota."""

    rate_per_second: float
    burst: int
    quota_per_month: int


@dataclass(frozen=True, slots=True)
class Stage:
    """The API stage a request came through; its authorizer cache is the one to flush."""

    api_id: str
    stage: str


_plan_ids: dict[str, str] = {}


def plan_id(tier: str) -> str:
    name = settings.usage_plan_name(tier)
    if name not in _plan_ids:
        _plan_ids.clear()
        paginator = aws.apigateway().get_paginator("get_usage_plans")
        for page in paginator.paginate():
            for plan in page.get("items", []):
                _plan_ids[plan["name"]] = plan["id"]
    if name not in _plan_ids:
        raise EdgeError(f"Usage plan {name!r} for tier {tier!r} does not exist", code="usage_plan_missing")
    return _plan_ids[name]


def tagged_keys(stack: str) -> Iterator[dict[str, Any]]:
    """Every API key tagged with ``stack``, with its value (to find its hash)."""
    client = aws.apigateway()
    arguments: dict[str, Any] = {"includeValues": True, "limit": 500}
    while True:
        page = client.get_api_keys(**arguments)
        for key in page.get("items", []):
            if (key.get("tags") or {}).get(STACK_TAG) == stack:
                yield dict(key)
        if not page.get("position"):
            return
        arguments["position"] = page["position"]


@caches.register
def _forget_plans() -> None:
    _plan_ids.clear()


def new_usage_key_value() -> str:
    """A usage identity's value: random, alphanumeric (API Gateway's rule: 20-128 characters), and
    never a tenant key (no tenant-key prefix: the authorizer refuses it as malformed)."""
    return USAGE_KEY_PREFIX + keys.b58encode(secrets.token_bytes(keys.SECRET_BYTES))


def usage_key_name(tenant_id: str, incarnation: str) -> str:
    """The name of a tenant's usage key: a retry finds a key whose id was never recorded by it."""
    return f"usage-{tenant_id}-{incarnation}" if incarnation else f"usage-{tenant_id}"


def create_key(
    *, name: str, value: str, tenant_id: str, enabled: bool = True, kind: str = USAGE_KEY_KIND
) -> str:
    """Create an API key (in no plan yet); return API Gateway's key id.

    Tagged at creation (the stack, the tenant, its kind), named ``name``: a key whose recording
    failed is found by that name (:func:`keys_named`) or by the sweep. A creation whose answer was
    lost and then sent again meets API Gateway's "API Key already exists" (values are unique): the
    key made by the first send is looked up by its name and used. At the account's quota of API
    keys (10,000 per region, not adjustable) the answer is :class:`EdgeQuotaReached`."""
    client = aws.apigateway()
    try:
        edge_key_id = retry.call(
            lambda: client.create_api_key(
                name=name,
                value=value,
                enabled=enabled,
                description=f"tenantry tenant {tenant_id}",
                tags={"tenant_id": tenant_id, STACK_TAG: settings.stack_name(), KIND_TAG: kind},
            )["id"]
        )
    except ClientError as exc:
        if aws.error_code(exc) == "LimitExceededException":
            raise EdgeQuotaReached(
                "API Gateway's quota of API keys in this account and region (10,000, not adjustable) "
                "is used up: offboard unused tenants, or place new tenants in another cell "
                "(docs/architecture.md)",
                code="api_key_quota_reached",
            ) from exc
        made = [key["id"] for key in keys_named(name, with_values=True) if key.get("value") == value]
        if aws.error_code(exc) != "ConflictException" or not made:
            raise
        edge_key_id = made[0]
    return str(edge_key_id)


def keys_named(key_id: str, *, with_values: bool = False) -> list[dict[str, Any]]:
    """The stack's API keys named ``key_id`` (the name is our key id): a key whose creation
    answered nothing, or whose id was never recorded, is found again this way."""
    client = aws.apigateway()
    arguments: dict[str, Any] = {"nameQuery": key_id, "includeValues": with_values, "limit": 500}
    found: list[dict[str, Any]] = []
    while True:
        page = client.get_api_keys(**arguments)
        found.extend(
            dict(key)
            for key in page.get("items", [])
            if key.get("name") == key_id and (key.get("tags") or {}).get(STACK_TAG) == settings.stack_name()
        )
        if not page.get("position"):
            return found
        arguments["position"] = page["position"]


def _in_plan(plan: str, edge_key_id: str) -> bool:
    try:
        aws.apigateway().get_usage_plan_key(usagePlanId=plan, keyId=edge_key_id)
    except ClientError as exc:
        if aws.error_code(exc) == "NotFoundException":
            return False
        raise
    return True


def place_key(edge_key_id: str, tier: str, *, fresh: bool = False) -> None:
    """Make the tier's usage plan the key's only tier plan (see :func:`place_in_plan`)."""
    place_in_plan(edge_key_id, plan_id(tier), leaving=[plan_id(other) for other in TIER_NAMES], fresh=fresh)


def place_in_plan(edge_key_id: str, target: str, *, leaving: Iterable[str], fresh: bool = False) -> None:
    """Make ``target`` the key's only plan among ``leaving`` and itself, whatever state a failed
    earlier attempt left (in the old plan, in none, already in the new one).

    API Gateway refuses a key in two plans of one API stage (every tier plan covers the API's
    stage), so the key leaves the other plans first; adding it where it already is answers
    ConflictException, which is success once the key is seen in the plan. ``fresh``: the key was
    just created and is in no plan yet. Between leaving one plan and joining the next the key is
    in none: API Gateway answers 403 to its requests for that moment (a few hundred milliseconds)."""
    client = aws.apigateway()
    for other in () if fresh else leaving:
        if other != target:
            _remove_from_plan(other, edge_key_id)
    try:
        retry.call(
            lambda: client.create_usage_plan_key(usagePlanId=target, keyId=edge_key_id, keyType="API_KEY")
        )
    except ClientError as exc:
        if aws.error_code(exc) != "ConflictException" or not _in_plan(target, edge_key_id):
            raise


def tier_plan_ids() -> list[str]:
    return [plan_id(tier) for tier in TIER_NAMES]


# ---------------------------------------------------------------- a tenant's own usage plan


def _plans_named(name: str) -> list[dict[str, Any]]:
    """Every usage plan called ``name``, oldest id first (names are not unique in API Gateway: a
    creation whose answer was lost and that was sent again makes two)."""
    found: list[dict[str, Any]] = []
    for page in aws.apigateway().get_paginator("get_usage_plans").paginate():
        found.extend(dict(plan) for plan in page.get("items", []) if plan.get("name") == name)
    return sorted(found, key=lambda plan: str(plan["id"]))


def tenant_plan_id(tenant_id: str) -> str | None:
    """The id of the tenant's own usage plan, or None when it has none."""
    plans = _plans_named(settings.tenant_plan_name(tenant_id))
    return str(plans[0]["id"]) if plans else None


def _as_limits(plan: dict[str, Any]) -> PlanLimits:
    throttle, quota = plan.get("throttle") or {}, plan.get("quota") or {}
    return PlanLimits(
        rate_per_second=float(throttle.get("rateLimit", 0)),
        burst=int(throttle.get("burstLimit", 0)),
        quota_per_month=int(quota.get("limit", 0)),
    )


def ensure_tenant_plan(tenant_id: str, limits: PlanLimits) -> str:
    """The tenant's own usage plan with ``limits``: created on the first call (covering the stages
    the tier plans cover), updated when its limits differ (at most one UpdateUsagePlan), left as it
    is otherwise; a second plan of the same name (a creation sent twice) is deleted. At the
    account's quota of usage plans the answer is :class:`EdgeQuotaReached` and nothing is made."""
    name = settings.tenant_plan_name(tenant_id)
    plans = _plans_named(name)
    if not plans:
        return _create_tenant_plan(tenant_id, name, limits)
    kept, *extra = plans
    for duplicate in extra:
        _delete_plan(duplicate)
    if _as_limits(kept) != limits:
        _update_plan_limits(str(kept["id"]), limits)
    return str(kept["id"])


def _create_tenant_plan(tenant_id: str, name: str, limits: PlanLimits) -> str:
    client = aws.apigateway()
    # The stages the tier plans cover (on AWS the API's one stage; none locally).
    tier_plans = _plans_named(settings.usage_plan_name(TIER_NAMES[0]))
    if not tier_plans:
        raise EdgeError(
            f"Usage plan {settings.usage_plan_name(TIER_NAMES[0])!r} does not exist",
            code="usage_plan_missing",
        )
    stages: list[ApiStageTypeDef] = [
        {"apiId": stage["apiId"], "stage": stage["stage"]} for stage in tier_plans[0].get("apiStages") or []
    ]
    try:
        created = retry.call(
            lambda: client.create_usage_plan(
                name=name,
                description=f"tenantry tenant {tenant_id}: limit overrides",
                apiStages=stages,
                throttle={"rateLimit": limits.rate_per_second, "burstLimit": limits.burst},
                quota={"limit": limits.quota_per_month, "period": "MONTH"},
                tags={"tenant_id": tenant_id, STACK_TAG: settings.stack_name(), KIND_TAG: TENANT_PLAN_KIND},
            )
        )
    except ClientError as exc:
        if aws.error_code(exc) == "LimitExceededException":
            raise EdgeQuotaReached(
                "API Gateway's quota of usage plans in this account and region is used up (300 by "
                "default; raise it in Service Quotas, or clear the edge overrides of tenants that no "
                "longer need them): nothing was changed",
                code="usage_plan_quota_reached",
                field="limits",
            ) from exc
        raise
    logger.info("tenant usage plan created", extra={"audit_tenant_id": tenant_id})
    return str(created["id"])


def _patch_plan(plan: str, operations: list[PatchOperationTypeDef]) -> None:
    """UpdateUsagePlan, which API Gateway allows once every 20 s per account: throttled past every
    retry, it is a 503 that says when to come back (the tenant item already holds the request, so
    sending it again finishes the job)."""
    try:
        retry.call(lambda: aws.apigateway().update_usage_plan(usagePlanId=plan, patchOperations=operations))
    except ClientError as exc:
        if aws.error_code(exc) not in retry.THROTTLED_CODES:
            raise
        raise ServiceBusy(
            "API Gateway allows one usage plan update every 20 seconds per account; send the same "
            "request again then",
            code="usage_plan_update_throttled",
            headers={"Retry-After": str(PLAN_UPDATE_INTERVAL_SECONDS)},
        ) from exc


def _update_plan_limits(plan: str, limits: PlanLimits) -> None:
    _patch_plan(
        plan,
        [
            {"op": "replace", "path": "/throttle/rateLimit", "value": repr(limits.rate_per_second)},
            {"op": "replace", "path": "/throttle/burstLimit", "value": str(limits.burst)},
            {"op": "replace", "path": "/quota/limit", "value": str(limits.quota_per_month)},
        ],
    )


def delete_tenant_plan(tenant_id: str) -> int:
    """Delete the tenant's own plan(s) (its usage key must have left them); how many were deleted."""
    return sum(_delete_plan(plan) for plan in _plans_named(settings.tenant_plan_name(tenant_id)))


def _delete_plan(plan: dict[str, Any]) -> bool:
    """API Gateway deletes no plan that still covers an API stage: the stages go first. False when
    the plan was already gone (deleted by an earlier attempt)."""
    plan_id_ = str(plan["id"])
    stages = [f"{stage['apiId']}:{stage['stage']}" for stage in plan.get("apiStages") or []]

    def delete() -> None:
        if stages:
            _patch_plan(
                plan_id_, [{"op": "remove", "path": "/apiStages", "value": stage} for stage in stages]
            )
        retry.call(lambda: aws.apigateway().delete_usage_plan(usagePlanId=plan_id_))

    return _unless_gone(delete)


def _unless_gone(delete: Callable[[], object]) -> bool:
    """Run ``delete``; False when API Gateway answers that its target is already gone."""
    try:
        delete()
    except ClientError as exc:
        if aws.error_code(exc) == "NotFoundException":
            return False
        raise
    return True


def plan_has_keys(plan: str) -> bool:
    return bool(aws.apigateway().get_usage_plan_keys(usagePlanId=plan, limit=1).get("items"))


def tagged_plans(stack: str) -> Iterator[dict[str, Any]]:
    """Every tenant plan of ``stack`` (for the sweep)."""
    for page in aws.apigateway().get_paginator("get_usage_plans").paginate():
        for plan in page.get("items", []):
            tags = plan.get("tags") or {}
            if tags.get(STACK_TAG) == stack and tags.get(KIND_TAG) == TENANT_PLAN_KIND:
                yield dict(plan)


def _remove_from_plan(plan: str, edge_key_id: str) -> None:
    _unless_gone(
        lambda: retry.call(
            lambda: aws.apigateway().delete_usage_plan_key(usagePlanId=plan, keyId=edge_key_id)
        )
    )


def set_enabled(edge_key_id: str, enabled: bool) -> None:
    retry.call(
        lambda: aws.apigateway().update_api_key(
            apiKey=edge_key_id,
            patchOperations=[{"op": "replace", "path": "/enabled", "value": "true" if enabled else "false"}],
        )
    )


def delete_key(edge_key_id: str) -> bool:
    """Delete an API key; False when it was already gone."""
    return _unless_gone(lambda: retry.call(lambda: aws.apigateway().delete_api_key(apiKey=edge_key_id)))


def flush_authorizer_cache(stage: Stage | None) -> bool:
    """Drop API Gateway's cached authorizer answers, so a revocation takes effect now rather than
    within the 300 s TTL. A failure is logged, not raised: our table is already authoritative and
    the TTL bounds the exposure."""
    if stage is None or not stage.api_id:
        return False
    try:
        aws.apigateway().flush_stage_authorizers_cache(restApiId=stage.api_id, stageName=stage.stage)
    except ClientError as exc:
        logger.warning("authorizer cache flush failed", extra={"error_code": aws.error_code(exc)})
        return False
    return True
