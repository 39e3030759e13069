"""API Gateway's side of a tenant key: its API key, its usage-plan key, the authorizer cache.

Every tenant key is also an API Gateway API key with the same value, in the usage plan of the
tenant's tier, so throttling and quotas happen at the edge. Usage plans are found by name
(``<stack>-<tier>``), which the template sets.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from tenantry import aws, caches, retry, settings
from tenantry.errors import ApiError
from tenantry.observability import logger
from tenantry.tiers import TIER_NAMES

STACK_TAG = "tenantry:stack"


class EdgeError(ApiError):
    status = 502
    code = "edge_unavailable"


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


def create_key(*, key_id: str, value: str, tenant_id: str, tier: str, enabled: bool = True) -> str:
    """Create the API key and put it in the tier's usage plan; return API Gateway's key id.

    Tagged at creation (the stack and the tenant), named after our ``key_id``: a key whose
    recording failed is found by that name (:func:`keys_named`) or by the sweep. A creation whose
    answer was lost and then sent again meets API Gateway's "API Key already exists" (values are
    unique): the key made by the first send is looked up by its name and used."""
    client = aws.apigateway()
    try:
        edge_key_id = retry.call(
            lambda: client.create_api_key(
                name=key_id,
                value=value,
                enabled=enabled,
                description=f"tenantry tenant {tenant_id}",
                tags={"tenant_id": tenant_id, STACK_TAG: settings.stack_name()},
            )["id"]
        )
    except ClientError as exc:
        made = [key["id"] for key in keys_named(key_id, with_values=True) if key.get("value") == value]
        if aws.error_code(exc) != "ConflictException" or not made:
            raise
        edge_key_id = made[0]
    try:
        place_key(edge_key_id, tier, fresh=True)
    except Exception:
        delete_key(edge_key_id)
        raise
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
    """Make the tier's usage plan the key's only tier plan, whatever state a failed earlier attempt
    left (in the old plan, in none, already in the new one).

    API Gateway refuses a key in two plans of one API stage (every tier plan covers the API's
    stage), so the key leaves the other tier plans first; adding it where it already is answers
    ConflictException, which is success once the key is seen in the plan. ``fresh``: the key was
    just created and is in no plan yet."""
    client = aws.apigateway()
    target = plan_id(tier)
    for other in () if fresh else TIER_NAMES:
        if other != tier:
            _remove_from_plan(plan_id(other), edge_key_id)
    try:
        retry.call(
            lambda: client.create_usage_plan_key(usagePlanId=target, keyId=edge_key_id, keyType="API_KEY")
        )
    except ClientError as exc:
        if aws.error_code(exc) != "ConflictException" or not _in_plan(target, edge_key_id):
            raise


def _remove_from_plan(plan: str, edge_key_id: str) -> None:
    try:
        retry.call(lambda: aws.apigateway().delete_usage_plan_key(usagePlanId=plan, keyId=edge_key_id))
    except ClientError as exc:
        if aws.error_code(exc) != "NotFoundException":
            raise


def set_enabled(edge_key_id: str, enabled: bool) -> None:
    retry.call(
        lambda: aws.apigateway().update_api_key(
            apiKey=edge_key_id,
            patchOperations=[{"op": "replace", "path": "/enabled", "value": "true" if enabled else "false"}],
        )
    )


def delete_key(edge_key_id: str) -> bool:
    """Delete an API key; False when it was already gone."""
    try:
        retry.call(lambda: aws.apigateway().delete_api_key(apiKey=edge_key_id))
    except ClientError as exc:
        if aws.error_code(exc) == "NotFoundException":
            return False
        raise
    return True


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
