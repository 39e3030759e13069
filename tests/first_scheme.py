"""A tenant as the first scheme left it (before usage identities, issue 25), for the upgrade tests.

Under that scheme every tenant key was also an API Gateway key with the same value, in the usage
plan of the tenant's tier, and its key item named it (``edge_key_id``); the tenant item had no
usage identity and no count of live keys. This writes exactly that, with plain boto3 clients, so
it serves moto in process and the local stack's embedded AWS alike.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from tenantry import keys


@dataclass(frozen=True)
class FirstSchemeTenant:
    tenant_id: str
    raw_keys: list[str]
    edge_key_ids: list[str]


def onboard(
    dynamodb: Any,
    apigateway: Any,
    *,
    tenants_table: str,
    keys_table: str,
    stack: str,
    tenant_id: str,
    tier: str = "basic",
    key_count: int = 2,
    grace_seconds: int = 3600,
) -> FirstSchemeTenant:
    """Tenant ``tenant_id`` with ``key_count`` keys (the older ones in a rotation's grace period)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    incarnation = secrets.token_hex(8)
    plan = next(
        p["id"] for p in apigateway.get_usage_plans(limit=500)["items"] if p["name"] == f"{stack}-{tier}"
    )
    raw_keys: list[str] = []
    edge_ids: list[str] = []
    for index in range(key_count):
        raw = keys.generate()
        key_id = keys.new_key_id()
        edge_id = apigateway.create_api_key(
            name=key_id,
            value=raw,
            enabled=True,
            tags={"tenant_id": tenant_id, "tenantry:stack": stack},
        )["id"]
        apigateway.create_usage_plan_key(usagePlanId=plan, keyId=edge_id, keyType="API_KEY")
        item = {
            "key_hash": {"S": keys.hash_key(raw)},
            "key_id": {"S": key_id},
            "tenant_id": {"S": tenant_id},
            "role": {"S": "tenant"},
            "tier": {"S": tier},
            "status": {"S": "active"},
            "hint": {"S": keys.display_hint(raw)},
            "created_at": {"S": now},
            "edge_key_id": {"S": edge_id},
            "incarnation": {"S": incarnation},
        }
        if index < key_count - 1:  # the older keys: in the grace period of the last rotation
            item["expires_at"] = {"N": str(int(time.time()) + grace_seconds)}
        dynamodb.put_item(TableName=keys_table, Item=item)
        raw_keys.append(raw)
        edge_ids.append(edge_id)
    dynamodb.put_item(
        TableName=tenants_table,
        Item={
            "tenant_id": {"S": tenant_id},
            "name": {"S": tenant_id.title()},
            "tier": {"S": tier},
            "status": {"S": "active"},
            "config": {"M": {}},
            "created_at": {"S": now},
            "updated_at": {"S": now},
            "incarnation": {"S": incarnation},
            "key_hashes": {"SS": [keys.hash_key(raw) for raw in raw_keys]},
        },
    )
    return FirstSchemeTenant(tenant_id, raw_keys, edge_ids)
