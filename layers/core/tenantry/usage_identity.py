"""A tenant's usage identity: the one API Gateway API key all its keys draw from (design §2).

Onboarding creates it (:func:`ensure`), a tier change or a limit override moves it and a suspension
disables it (:func:`reconcile`), offboarding deletes it (:func:`retire`). Issuing, rotating and
revoking tenant keys never touch it: a new key item carries the identity's value (``usage_key``),
which the authorizer answers as ``usageIdentifierKey``.

Where the value lives, and who can read it: API Gateway (like any API key's), the tenant's item
(``usage_key``: copied onto each new key item) and each key item of the tenant (the authorizer's
one read). No answer of the API shows it. Knowing it lets nobody call the API: the stage takes its
usage key from the authorizer (``ApiKeySourceType: AUTHORIZER``), never from a request's header,
so a client that sends it is only refused by the authorizer as a malformed key.

Every step is safe to repeat: the key is named after the tenant and its incarnation, so a retry
finds a key whose id was never recorded; the tenant item records it only if it has none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tenantry import edge, limits
from tenantry.observability import logger
from tenantry.stores import keys as key_store
from tenantry.stores import tenants as tenant_store

if TYPE_CHECKING:
    from tenantry.tenancy import Stores


def ensure(tenant: tenant_store.TenantRecord, stores: Stores) -> tenant_store.TenantRecord:
    """The tenant with its usage identity: made (enabled as the tenant is, in its plan) and
    recorded when it has none yet; a tenant that has one is returned as it is."""
    if tenant.usage_key_id:
        return tenant
    name = edge.usage_key_name(tenant.tenant_id, tenant.incarnation)
    found = edge.keys_named(name, with_values=True)
    if found:  # made by an earlier attempt that failed before recording it
        usage_key_id, value = str(found[0]["id"]), str(found[0]["value"])
    else:
        value = edge.new_usage_key_value()
        usage_key_id = edge.create_key(
            name=name, value=value, tenant_id=tenant.tenant_id, enabled=tenant.status == tenant_store.ACTIVE
        )
    # A failure from here on leaves the key for the retry to find by its name (its recording may
    # have happened with the answer lost); an onboarding's undo, or the sweep, deletes it otherwise.
    _place(tenant, usage_key_id, fresh=not found)
    if found:
        edge.set_enabled(usage_key_id, tenant.status == tenant_store.ACTIVE)
    recorded = stores.tenants.record_usage_key(tenant.tenant_id, usage_key_id, value)
    if recorded.usage_key_id != usage_key_id:
        edge.delete_key(usage_key_id)  # another request recorded its own first
    else:
        logger.info("usage identity created", extra={"audit_tenant_id": tenant.tenant_id})
    return recorded


def _place(tenant: tenant_store.TenantRecord, usage_key_id: str, *, fresh: bool = False) -> None:
    """The usage key into the tenant's own plan (edge limits overridden) or its tier's plan; out of
    every other; the tenant's own plan deleted once nothing needs it."""
    wanted = limits.plan_limits(tenant.tier, tenant.limits)
    own = (
        edge.ensure_tenant_plan(tenant.tenant_id, wanted) if wanted else edge.tenant_plan_id(tenant.tenant_id)
    )
    target = own if wanted and own else edge.plan_id(tenant.tier)
    leaving = edge.tier_plan_ids() + ([own] if own else [])
    edge.place_in_plan(usage_key_id, target, leaving=leaving, fresh=fresh)
    if own and not wanted:
        edge.delete_tenant_plan(tenant.tenant_id)


def reconcile(tenant: tenant_store.TenantRecord, *, placement: bool, enabled: bool) -> None:
    """Bring the usage key to what the tenant item says: its plan (``placement``: after a tier
    change or a limit override) and API Gateway's enabled flag (``enabled``: after a status
    change). Each step is safe to repeat, so a retry after a failure half-way finishes the job."""
    if not tenant.usage_key_id:
        return
    if placement:
        _place(tenant, tenant.usage_key_id)
    if enabled:
        edge.set_enabled(tenant.usage_key_id, tenant.status == tenant_store.ACTIVE)


def prepare_plan(tenant: tenant_store.TenantRecord, overrides: dict[str, int], tier: str) -> None:
    """Before a change of limits is recorded: make sure the tenant's own plan can exist (created
    now, with the new limits), so the usage-plan quota answers 409 while nothing is written yet."""
    wanted = limits.plan_limits(tier, overrides)
    if wanted is not None:
        edge.ensure_tenant_plan(tenant.tenant_id, wanted)


def stamp_keys(tenant: tenant_store.TenantRecord, found: list[key_store.KeyRecord], stores: Stores) -> int:
    """Every key of the tenant that is not revoked draws from its usage identity from now on;
    how many keys were stamped (the upgrade from one API Gateway key per tenant key)."""
    stamped = 0
    for key in found:
        if key.status != key_store.REVOKED and key.usage_key != tenant.usage_key:
            stores.keys.set_usage_key(key.key_hash, tenant.usage_key)
            stamped += 1
    return stamped


def retire(tenant_id: str, tenant: tenant_store.TenantRecord | None) -> int:
    """Offboarding: delete the usage key (by its recorded id, or by name for one whose recording
    failed) and the tenant's own plan; how many API keys were deleted."""
    edge_ids = {tenant.usage_key_id} if tenant is not None and tenant.usage_key_id else set()
    if tenant is not None:
        name = edge.usage_key_name(tenant_id, tenant.incarnation)
        edge_ids.update(str(found["id"]) for found in edge.keys_named(name))
    deleted = sum(edge.delete_key(edge_key_id) for edge_key_id in sorted(edge_ids))
    edge.delete_tenant_plan(tenant_id)
    return deleted
