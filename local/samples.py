"""The sample events' own tenant, ``sample``, and the sample key, for ``tenantry invoke``.

Every file in ``events/`` acts as tenant ``sample`` (or, for the admin routes, on it), never on a
tenant a developer onboarded, and the authorizer sample carries :data:`SAMPLE_KEY`. That key is
public (it is in the repository), so it exists only where ``tenantry invoke`` puts it: the local
stack's state. Before running a sample, ``invoke`` makes sure tenant ``sample`` exists (tier pro)
and that the sample key is an active key of it, re-activating it if a sample rotation or a revoke
expired it. The one exception is ``POST /tenants`` (``events/tenant-create.json``), which creates
the tenant itself.
"""

from __future__ import annotations

from typing import Any

from local import aws_calls

SAMPLE_TENANT_ID = "sample"
SAMPLE_TENANT_NAME = "Sample tenant"
SAMPLE_TIER = "pro"
SAMPLE_KEY = "tnt_live_3KDrJTuedvq6zUekoYv3WPXzmcc2uKVBqo8P7MqNRqvb2YxJdr"
SAMPLE_KEY_ID = "key_sample000000000"


def needs_the_sample_tenant(event: dict[str, Any]) -> bool:
    """Whether ``event`` acts as or on tenant ``sample`` (and does not onboard it itself)."""
    if event.get("httpMethod") == "POST" and event.get("resource") == "/tenants":
        return False  # events/tenant-create.json onboards tenant sample itself
    context = (event.get("requestContext") or {}).get("authorizer") or {}
    path_parameters = event.get("pathParameters") or {}
    headers = {str(name).lower(): value for name, value in (event.get("headers") or {}).items()}
    return SAMPLE_TENANT_ID in (context.get("tenant_id"), path_parameters.get("tenant_id")) or (
        headers.get("x-api-key") == SAMPLE_KEY
    )


def ensure_sample_tenant() -> list[str]:
    """Create tenant ``sample`` and (re-)activate the sample key as needed; what was done. Runs in
    the caller's process, whose env names the tables and the embedded AWS (the functions' shared
    env), with the tenants function's calls and rights."""
    from tenantry import tenancy  # noqa: PLC0415 - after the env names the tables
    from tenantry.models.tenants import CreateTenantRequest  # noqa: PLC0415

    done: list[str] = []
    with aws_calls.acting_as("TenantsFunction"):
        stored = tenancy.DYNAMODB.tenants.get(SAMPLE_TENANT_ID)
        if stored is None:
            request = CreateTenantRequest(
                name=SAMPLE_TENANT_NAME, tier=SAMPLE_TIER, tenant_id=SAMPLE_TENANT_ID
            )
            tenancy.create_tenant(request)
            done.append(f"created tenant {SAMPLE_TENANT_ID} ({SAMPLE_TIER})")
        done += _ensure_sample_key()
    return done


def _ensure_sample_key() -> list[str]:
    """The sample key as an active key of tenant ``sample``, drawing from its usage identity (a
    sample key of the first scheme, with an API key of its own, is remade that way)."""
    from tenantry import edge, keys, tenancy, usage_identity  # noqa: PLC0415 - as above
    from tenantry.stores import keys as key_store  # noqa: PLC0415

    stores = tenancy.DYNAMODB
    sample = stores.tenants.get(SAMPLE_TENANT_ID)
    assert sample is not None, "ensure_sample_tenant creates it first"
    tenant = usage_identity.ensure(sample, stores)
    key_hash = keys.hash_key(SAMPLE_KEY)
    stored = stores.keys.get(key_hash)
    usable = stored is not None and stored.status == key_store.ACTIVE and stored.expires_at is None
    if usable and stored is not None and stored.usage_key == tenant.usage_key and stored.tier == tenant.tier:
        return []
    if stored is not None:
        # Rotated (an expiry) or revoked by an earlier sample: make it a plain active key again.
        stores.keys.delete(key_hash)
        if stored.edge_key_id:
            edge.delete_key(stored.edge_key_id)
    stores.keys.put(
        key_store.KeyRecord(
            key_hash=key_hash,
            key_id=SAMPLE_KEY_ID,
            tenant_id=SAMPLE_TENANT_ID,
            role="tenant",
            tier=tenant.tier,
            status=key_store.ACTIVE,
            hint=keys.display_hint(SAMPLE_KEY),
            created_at=tenancy.timestamp(),
            incarnation=tenant.incarnation,
            usage_key=tenant.usage_key,
        )
    )
    return ["activated the sample key" if stored is not None else "added the sample key"]
