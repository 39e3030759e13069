"""Tenant self-service keys: ``POST/GET /me/keys``, ``DELETE /me/keys/{key_id}`` (scope keys:write).

A tenant mints keys for its own uses (a CI job, a dashboard) without a ticket to the operator:

- a new key's scopes are a subset of the calling key's (omitted: the calling key's own), so a key
  can never hand out more than it holds;
- a new key never rotates the tenant's other keys;
- the key a request is made with cannot be revoked by that request (409 key_in_use): a tenant
  cannot lock itself out by mistake;
- at most :data:`tenantry.tenancy.MAX_LIVE_KEYS` keys are live at once (409 key_limit_reached);
- a revocation flushes API Gateway's authorizer cache, as an operator's does, so the key is
  refused at once rather than up to 300 s later.

The tenant is always the caller's (the authorizer's context), never a path or body field: another
tenant's key id is a 404, as an unknown one. The writes (a key item in the ApiKeys table, which is
keyed by hash and not by tenant; the tenant's own record of its keys and their count) are made with
the function's role, as an operator's are, not with the tenant's scoped session, whose IAM policy
lets it read its tenant record but never change it.
"""

from __future__ import annotations

from tenantry import aws, edge, routes, tenancy
from tenantry.errors import Conflict, Forbidden
from tenantry.models.tenants import IssuedKey, IssueKeyRequest, KeyInfo, MyKeyRequest


def _granted(requested: list[routes.Scope] | None, held: frozenset[str] | None) -> list[routes.Scope] | None:
    """The scopes the new key gets: those asked for, if the calling key holds them all."""
    if requested is None:
        return None if held is None else [scope for scope in routes.SCOPE_NAMES if scope in held]
    missing = sorted(set(requested) - held) if held is not None else []
    if missing:
        raise Forbidden(
            f"A key can only grant scopes it holds itself; the calling key lacks {', '.join(missing)}",
            code="scope_not_held",
            field="scopes",
        )
    return requested


def create_key(
    tenant_id: str,
    held: frozenset[str] | None,
    request: MyKeyRequest,
    stage: edge.Stage | None,
    stores: tenancy.Stores = tenancy.DYNAMODB,
) -> IssuedKey:
    """A new key of the calling tenant, scopes ⊆ ``held`` (the calling key's; None: all)."""
    issue = IssueKeyRequest(
        name=request.name,
        scopes=_granted(request.scopes, held),
        expires_in_seconds=request.expires_in_seconds,
        rotate=False,
    )
    with aws.tenant_scope(None):
        return tenancy.issue_key(tenant_id, issue, stage, stores)


def list_keys(tenant_id: str, stores: tenancy.Stores = tenancy.DYNAMODB) -> list[KeyInfo]:
    return tenancy.list_keys(tenant_id, stores)


def revoke_key(
    tenant_id: str,
    calling_key_id: str,
    key_id: str,
    stage: edge.Stage | None,
    stores: tenancy.Stores = tenancy.DYNAMODB,
) -> KeyInfo:
    if key_id == calling_key_id:
        raise Conflict(
            "This request is made with that key: revoke it with another key of the tenant",
            code="key_in_use",
            field="key_id",
        )
    with aws.tenant_scope(None):
        return tenancy.revoke_key(tenant_id, key_id, stage, stores)
