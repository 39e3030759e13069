"""Orphaned API Gateway keys and usage plans: what this stack created that nothing refers to.

- A tenant's usage identity (tagged ``tenantry:kind=usage``) whose tenant is gone, or whose tenant
  item records another key (a creation whose recording failed, an onboarding whose undo failed).
- A tenant key's own API key of the first scheme (one per tenant key, with the key's value) whose
  item never got written, was revoked, or was left pending. A key item that already draws from its
  tenant's usage identity still names its old API key until ``tenantry keys migrate`` retires it
  after flushing the authorizer cache: that one is left to the migration.
- A usage plan of a tenant's own whose tenant is gone or overrides no edge limit any more.

Such a key holds a secret and a usage-plan seat that nothing uses; the authorizer never answers it.
Keys are tagged with the stack at creation (:data:`tenantry.edge.STACK_TAG`); ``tenantry keys sweep``
lists them and checks each against the tables, consistently. Young keys are left alone: an
onboarding in flight has created its key and not yet recorded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenantry import edge, keys, limits
from tenantry.stores import keys as key_store
from tenantry.stores import tenants as tenant_store

DEFAULT_MIN_AGE_SECONDS = 15 * 60
PLAN = "usage plan"
KEY = "API key"


@dataclass(frozen=True, slots=True)
class Orphan:
    edge_key_id: str  # the API key's id, or the usage plan's
    name: str
    tenant_id: str
    created_at: str
    reason: str
    kind: str = KEY


def _created(key: dict[str, Any]) -> datetime | None:
    value = key.get("createdDate")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def _usage_key_reason(key: dict[str, Any], tenant_id: str, tenants: tenant_store.TenantStore) -> str | None:
    tenant = tenants.get(tenant_id)
    if tenant is None:
        return "its tenant is gone"
    if tenant.usage_key_id != key["id"]:
        return "its tenant's item does not record it"
    return None


def _own_key_reason(key: dict[str, Any], store: key_store.KeyStore) -> str | None:
    record = store.get(keys.hash_key(str(key.get("value", ""))))
    if record is None:
        return "no key item"
    if record.status == key_store.REVOKED:
        return "revoked"
    if record.status == key_store.PENDING:
        return "never activated (its issuing failed half-way)"
    if record.edge_key_id != key["id"]:
        return "the key item names another API key"
    return None


def find_orphans(
    stack: str,
    *,
    min_age_seconds: int = DEFAULT_MIN_AGE_SECONDS,
    store: key_store.KeyStore = key_store.DYNAMODB,
    tenants: tenant_store.TenantStore = tenant_store.DYNAMODB,
) -> list[Orphan]:
    now = datetime.now(UTC)
    orphans: list[Orphan] = []
    for key in edge.tagged_keys(stack):
        created = _created(key)
        if created is not None and (now - created).total_seconds() < min_age_seconds:
            continue
        tags = key.get("tags") or {}
        tenant_id = str(tags.get("tenant_id", ""))
        if tags.get(edge.KIND_TAG) == edge.USAGE_KEY_KIND:
            reason = _usage_key_reason(key, tenant_id, tenants)
        else:
            reason = _own_key_reason(key, store)
        if reason is not None:
            orphans.append(
                Orphan(
                    edge_key_id=str(key["id"]),
                    name=str(key.get("name", "")),
                    tenant_id=tenant_id,
                    created_at=created.isoformat() if created else "",
                    reason=reason,
                )
            )
    orphans.extend(_orphaned_plans(stack, tenants))
    return orphans


def _orphaned_plans(stack: str, tenants: tenant_store.TenantStore) -> list[Orphan]:
    """Plans carry no creation date: a plan made a moment ago by a limit override still in flight
    may be reported; deleted, it is made again by that request (or its retry). A plan that still
    holds a key is never reported: its tenant's last change is half done, and sending it again
    moves the key out first."""
    found = []
    for plan in edge.tagged_plans(stack):
        if edge.plan_has_keys(str(plan["id"])):
            continue
        tenant_id = str((plan.get("tags") or {}).get("tenant_id", ""))
        tenant = tenants.get(tenant_id)
        if tenant is None:
            reason = "its tenant is gone"
        elif not limits.has_edge_overrides(tenant.limits):
            reason = "its tenant overrides no edge limit"
        else:
            continue
        found.append(Orphan(str(plan["id"]), str(plan.get("name", "")), tenant_id, "", reason, PLAN))
    return found


def sweep(orphans: list[Orphan]) -> int:
    """Delete the orphaned API keys (and so their usage-plan seats) and plans; how many."""
    deleted = sum(1 for orphan in orphans if orphan.kind == KEY and edge.delete_key(orphan.edge_key_id))
    for tenant_id in sorted({orphan.tenant_id for orphan in orphans if orphan.kind == PLAN}):
        deleted += edge.delete_tenant_plan(tenant_id)
    return deleted
