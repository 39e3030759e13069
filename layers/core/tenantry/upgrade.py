"""The upgrade from one API Gateway key per tenant key to one usage identity per tenant.

A stack deployed with the first scheme has, for every tenant key, an API Gateway key with the same
value in the tier's usage plan (the key item's ``edge_key_id``), and no usage identity on its
tenants. After the new code is deployed those tenants keep working as they were: the authorizer
answers a key item without ``usage_key`` with the presented key, whose API key still exists.
:func:`migrate` (``tenantry keys migrate``) then, for every tenant, safe to run again at any point:

1. gives the tenant its usage identity (an API key in its plan, enabled as the tenant is) and
   stamps every key item that is not revoked with it: from the next authorization on, all of the
   tenant's keys draw from one bucket;
2. flushes API Gateway's authorizer cache, so no cached answer still names an old API key;
3. only if that flush succeeded, deletes each key's old API key and forgets its id (a cached
   answer naming a deleted API key would be refused for up to 300 s). Without a flush (it failed,
   or no API was named) the old keys stay, harmless and unused once the cache has turned over: run
   the command again to delete them.

Admin operations on a tenant not yet migrated give it its identity on the way (a new key, a limit
override), so nothing new is ever made under the first scheme.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenantry import edge, tenancy, usage_identity
from tenantry.observability import logger


@dataclass(frozen=True, slots=True)
class MigrationReport:
    tenants: int  # tenants seen
    identities_created: int  # tenants that got their usage identity now
    keys_stamped: int  # key items that now draw from their tenant's identity
    cache_flushed: bool
    old_keys_deleted: int  # API keys of the first scheme deleted
    old_keys_left: int  # ... left for a later run (no flush)


def migrate(stage: edge.Stage | None, stores: tenancy.Stores = tenancy.DYNAMODB) -> MigrationReport:
    seen = created = stamped = 0
    retiring = []
    token: str | None = None
    while True:
        page, token = stores.tenants.list_page(tier=None, status=None, limit=100, next_token=token)
        for listed in page:
            if listed.is_onboarding:
                continue  # its own request finishes it (and gives it an identity)
            seen += 1
            created += 0 if listed.usage_key_id else 1
            tenant = usage_identity.ensure(listed, stores)
            found = stores.keys.list_for_tenant(tenant.tenant_id, tenant.key_hashes)
            stamped += usage_identity.stamp_keys(tenant, found, stores)
            retiring += [key for key in found if key.edge_key_id]
        if token is None:
            break
    flushed = edge.flush_authorizer_cache(stage) if retiring else True
    deleted = 0
    if flushed:
        for key in retiring:
            deleted += edge.delete_key(key.edge_key_id or "")
            stores.keys.forget_edge_key(key.key_hash)
    report = MigrationReport(seen, created, stamped, flushed, deleted, 0 if flushed else len(retiring))
    logger.info("usage identities migrated", extra={"report": str(report)})
    return report
