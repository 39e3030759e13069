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

from tenantry import aws, caches, settings
from tenantry.errors import ApiError
from tenantry.observability import logger

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
    """Create the API key and put it in the tier's usage plan; return API Gateway's key id."""
    client = aws.apigateway()
    created = client.create_api_key(
        name=key_id,
        value=value,
        enabled=enabled,
        description=f"tenantry tenant {tenant_id}",
        # The stack's tag lets `tenantry keys sweep` find keys whose recording failed (orphans).
        tags={"tenant_id": tenant_id, STACK_TAG: settings.stack_name()},
    )
    edge_key_id = created["id"]
    try:
        client.create_usage_plan_key(usagePlanId=plan_id(tier), keyId=edge_key_id, keyType="API_KEY")
    except Exception:
        delete_key(edge_key_id)
        raise
    return edge_key_id


def move_key(edge_key_id: str, *, from_tier: str, to_tier: str) -> None:
    client = aws.apigateway()
    try:
        client.delete_usage_plan_key(usagePlanId=plan_id(from_tier), keyId=edge_key_id)
    except ClientError as exc:
        if aws.error_code(exc) != "NotFoundException":
            raise
    client.create_usage_plan_key(usagePlanId=plan_id(to_tier), keyId=edge_key_id, keyType="API_KEY")


def set_enabled(edge_key_id: str, enabled: bool) -> None:
    aws.apigateway().update_api_key(
        apiKey=edge_key_id,
        patchOperations=[{"op": "replace", "path": "/enabled", "value": "true" if enabled else "false"}],
    )


def delete_key(edge_key_id: str) -> bool:
    """Delete an API key; False when it was already gone."""
    try:
        aws.apigateway().delete_api_key(apiKey=edge_key_id)
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
