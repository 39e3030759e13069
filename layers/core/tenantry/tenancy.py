"""Tenant management logic: onboarding, tiers, suspension, keys, offboarding.

Handlers call these functions with a validated request and the API stage; data access goes through
the stores, API Gateway through :mod:`tenantry.edge`.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from tenantry import deadline, edge, keys, limits, routes, settings, tasks, usage_identity
from tenantry.errors import Conflict, Forbidden, NotFound
from tenantry.models.tenants import (
    CreatedTenant,
    CreateTenantRequest,
    IssuedKey,
    IssueKeyRequest,
    KeyInfo,
    Me,
    OffboardResult,
    Tenant,
    TenantPage,
    UpdateTenantRequest,
)
from tenantry.models.tenants import KeyStatus as ShownKeyStatus
from tenantry.models.tenants import TenantStatus as ShownTenantStatus
from tenantry.observability import logger
from tenantry.stores import events as event_store
from tenantry.stores import keys as key_store
from tenantry.stores import purge
from tenantry.stores import tenants as tenant_store
from tenantry.tiers import MODEL_CHOICE, get_tier

ADMIN_TENANT_ID = "_admin"  # not a valid tenant id, so it can never collide with one
# The most keys a tenant may have live at once (not revoked, not ended): 409 key_limit_reached beyond.
MAX_LIVE_KEYS: Final = 50
# A registered key counts as live for this long until it is activated (a request lasts at most
# 29 s): one whose request died holds no place in the count for longer.
ABANDONED_PENDING_SECONDS: Final = 300


@dataclass(frozen=True, slots=True)
class Stores:
    """The stores the tenancy logic works through: DynamoDB's in the functions (:data:`DYNAMODB`),
    in-memory fakes (tests/fakes) in tests where DynamoDB is not the point."""

    tenants: tenant_store.TenantStore = tenant_store.DYNAMODB
    keys: key_store.KeyStore = key_store.DYNAMODB


DYNAMODB: Final = Stores()


def _now() -> float:
    return time.time()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def timestamp() -> str:
    """Now, as the stores keep a moment (``created_at``…): ISO 8601 in UTC to the second."""
    return _iso(_now())


def _new_tenant_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "tenant"
    if len(slug) < 3:
        slug = f"tenant-{slug}".strip("-")
    return f"{slug}-{secrets.token_hex(3)}"


def tenant_view(tenant: tenant_store.TenantRecord) -> Tenant:
    effective, sources = limits.view(tenant.tier, tenant.limits)
    return Tenant(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        tier=tenant.tier,
        status=_shown_tenant_status(tenant),
        config=dict(tenant.config),
        created_at=tenant.created_at,
        updated_at=tenant.updated_at,
        limits=effective,
        limit_sources=sources,
    )


def _shown_tenant_status(tenant: tenant_store.TenantRecord) -> ShownTenantStatus:
    """An offboarding tenant is gone for the API: it is never shown."""
    if tenant.status == tenant_store.OFFBOARDING:
        raise ValueError(f"tenant {tenant.tenant_id!r} is being offboarded: never shown")
    return "suspended" if tenant.status == tenant_store.SUSPENDED else "active"


_SHOWN_STATUS: Final[dict[key_store.KeyStatus, ShownKeyStatus]] = {
    key_store.ACTIVE: "active",
    key_store.SUSPENDED: "suspended",
    key_store.REVOKED: "revoked",
}


def key_view(key: key_store.KeyRecord, now: float | None = None) -> KeyInfo:
    status = _SHOWN_STATUS.get(key.status)
    if status is None:  # pending: its issuing has not answered, so it is not a key yet
        raise ValueError(f"key {key.key_id!r} is {key.status}: never shown")
    if status == key_store.ACTIVE and key.expires_at is not None and key.expires_at <= (now or _now()):
        status = "expired"
    return KeyInfo(
        key_id=key.key_id,
        tenant_id=key.tenant_id,
        role=key.role,
        status=status,
        hint=key.hint,
        created_at=key.created_at,
        expires_at=None if key.expires_at is None else _iso(key.expires_at),
        name=key.name or None,
        scopes=None if key.scopes is None else sorted(key.scopes),
    )


def _check_model_allowed(tier: str, config: dict[str, Any]) -> None:
    if config.get("model") and not get_tier(tier).has(MODEL_CHOICE):
        raise Forbidden(
            f"Tier {tier!r} does not include model choice; remove config.model or upgrade",
            code="model_choice_not_in_tier",
            field="config.model",
        )


def _new_key(
    *,
    tenant_id: str,
    tier: str,
    role: keys.Role,
    status: key_store.KeyStatus,
    expires_at: int | None,
    incarnation: str = "",
    usage_key: str = "",
    name: str | None = None,
    scopes: frozenset[str] | None = None,
) -> tuple[str, key_store.KeyRecord]:
    """A new raw key (shown once) and its record (only the hash of the key)."""
    raw_key = keys.generate(role)
    record = key_store.KeyRecord(
        key_hash=keys.hash_key(raw_key),
        key_id=keys.new_key_id(),
        tenant_id=tenant_id,
        role=role,
        tier=tier,
        status=status,
        hint=keys.display_hint(raw_key),
        created_at=_iso(_now()),
        expires_at=expires_at,
        incarnation=incarnation,
        usage_key=usage_key,
        name=name or "",
        scopes=scopes,
    )
    return raw_key, record


def _new_tenant_key(
    tenant: tenant_store.TenantRecord,
    *,
    expires_at: int | None,
    stores: Stores,
    name: str | None = None,
    scopes: frozenset[str] | None = None,
    cap: int = MAX_LIVE_KEYS,
) -> tuple[str, key_store.KeyRecord]:
    """Create a tenant key, left pending (unusable): the caller activates it (:func:`_activate`) as
    its last step, once nothing else can fail, so a key whose issuing failed half-way is never
    usable, and a retry knows to discard it (:func:`_discard_unfinished`). No API Gateway key is
    made: the key draws from the tenant's usage identity, whose value its item carries.

    Each step is safe to repeat and leaves a trace a retry finds: the hash is listed on the tenant
    first (no listing misses the key), counted against the cap on live keys in the same write, and
    the pending item names the key (``key_id``)."""
    # The tenant's incarnation goes on to the authorizer's context (offboarding races).
    raw_key, key = _new_key(
        tenant_id=tenant.tenant_id,
        tier=tenant.tier,
        role="tenant",
        status=key_store.PENDING,
        expires_at=expires_at,
        incarnation=tenant.incarnation,
        usage_key=tenant.usage_key,
        name=name,
        scopes=scopes,
    )
    # Pending, it counts for a while only: a registration whose request died never holds a place.
    pending_end = int(_now()) + ABANDONED_PENDING_SECONDS
    stores.tenants.register_key(
        tenant.tenant_id,
        key.key_hash,
        ends_at=pending_end if expires_at is None else min(expires_at, pending_end),
        cap=cap,
        seed=_live_seed(tenant, stores) if tenant.live_keys is None else None,
    )
    stores.keys.put(key)
    return raw_key, key


def _live_seed(tenant: tenant_store.TenantRecord, stores: Stores) -> dict[str, int]:
    """The live keys of a tenant whose item keeps no count yet (made before the cap existed)."""
    now = _now()
    return {
        key.key_hash: key.expires_at or 0
        for key in _tenant_keys(tenant, stores)
        if key.status != key_store.REVOKED and (key.expires_at is None or key.expires_at > now)
    }


def _activate(key: key_store.KeyRecord, tenant_status: str, stores: Stores) -> key_store.KeyRecord:
    """The key counts as live until its own end from now on (registered, it counted only for
    :data:`ABANDONED_PENDING_SECONDS`), then it becomes usable."""
    status = key_store.ACTIVE if tenant_status == "active" else key_store.SUSPENDED
    stores.tenants.end_key(key.tenant_id, key.key_hash, key.expires_at or 0)
    stores.keys.activate(key.key_hash, edge_key_id=None, status=status)
    return replace(key, status=status)


def _discard(key: key_store.KeyRecord, stores: Stores) -> None:
    """Remove a key that was never shown to anyone: its place in the tenant's list and count, its
    item (last: a retry finds the key by its item until then), and, for a key of the first
    scheme, its own API key (by id, or by name when the id was never recorded)."""
    stores.tenants.unregister_key(key.tenant_id, key.key_hash)
    edge_ids = {key.edge_key_id} if key.edge_key_id else set()
    if not key.usage_key:  # only the first scheme made an API key per tenant key
        edge_ids.update(str(found["id"]) for found in edge.keys_named(key.key_id))
    for edge_key_id in sorted(edge_ids):
        edge.delete_key(edge_key_id)
    stores.keys.delete(key.key_hash)


def _discard_unfinished(
    tenant_id: str, found: list[key_store.KeyRecord], stores: Stores, *, everything: bool = False
) -> list[key_store.KeyRecord]:
    """Discard the keys an earlier failed attempt left pending (or, for an onboarding that never
    answered, every key: none was ever shown); return the keys that remain."""
    kept = []
    for key in found:
        if everything or key.status == key_store.PENDING:
            _discard(key, stores)
            logger.info(
                "unfinished key discarded", extra={"audit_tenant_id": tenant_id, "key_id": key.key_id}
            )
        else:
            kept.append(key)
    return kept


def _tenant_keys(tenant: tenant_store.TenantRecord, stores: Stores) -> list[key_store.KeyRecord]:
    return stores.keys.list_for_tenant(tenant.tenant_id, tenant.key_hashes)


def create_tenant(request: CreateTenantRequest, stores: Stores = DYNAMODB) -> CreatedTenant:
    """Onboard a tenant, retry-safe: the tenant item is marked onboarding until the answer is
    ready, so the same request sent again after any failure resumes it (its keys from the failed
    attempt were never shown and are discarded) instead of answering 409."""
    config = request.config.model_dump(exclude_none=True) if request.config else {}
    _check_model_allowed(request.tier, config)
    now = _iso(_now())
    tenant = tenant_store.TenantRecord(
        tenant_id=request.tenant_id or _new_tenant_id(request.name),
        name=request.name,
        tier=request.tier,
        status=tenant_store.ACTIVE,
        config=config,
        created_at=now,
        updated_at=now,
        onboarding=now,
        incarnation=secrets.token_hex(8),
    )
    try:
        if request.tenant_id is None:
            tenant = _create_with_generated_id(tenant, stores)
        else:
            _create_record(tenant, stores)
    except Conflict:
        existing = stores.tenants.get(tenant.tenant_id)
        if existing is None or not existing.is_onboarding:
            raise
        # A retry of an onboarding that never answered: this request's fields win.
        _discard_unfinished(tenant.tenant_id, _tenant_keys(existing, stores), stores, everything=True)
        changes = tenant_store.TenantChanges(
            updated_at=now, name=tenant.name, tier=tenant.tier, status=tenant.status, config=tenant.config
        )
        tenant = stores.tenants.update(tenant.tenant_id, changes)
        # Its usage identity (if the failed attempt recorded one) follows the fields of this one.
        usage_identity.reconcile(tenant, placement=True, enabled=True)
        logger.info("onboarding resumed", extra={"audit_tenant_id": tenant.tenant_id})
    try:
        tenant = usage_identity.ensure(tenant, stores)
        raw_key, key = _new_tenant_key(tenant, expires_at=None, stores=stores)
        _activate(key, "active", stores)
        stores.tenants.finish_onboarding(tenant.tenant_id)
    except Exception:
        _undo_onboarding(tenant.tenant_id, stores)
        raise
    logger.info("tenant onboarded", extra={"audit_tenant_id": tenant.tenant_id, "audit_tier": tenant.tier})
    return CreatedTenant(tenant=tenant_view(tenant), api_key=raw_key)


def _create_with_generated_id(tenant: tenant_store.TenantRecord, stores: Stores) -> tenant_store.TenantRecord:
    """Insert the tenant under a fresh id when the generated one is taken (a 24-bit suffix can
    collide): the caller chose no id, so another tenant's id, onboarding or not, is never theirs to
    resume or to be refused for. Returns the tenant as inserted."""
    for _ in range(_GENERATED_ID_ATTEMPTS - 1):
        try:
            stores.tenants.create(tenant)
        except Conflict:
            tenant = replace(tenant, tenant_id=_new_tenant_id(tenant.name))
        else:
            return tenant
    stores.tenants.create(tenant)
    return tenant


_GENERATED_ID_ATTEMPTS = 5


def _create_record(tenant: tenant_store.TenantRecord, stores: Stores) -> None:
    """Insert the tenant's item (``Conflict`` when the id is taken). An id still being offboarded
    is refused until its final purge; once that is due, this request runs it (the scheduled run
    may be late, or lost locally)."""
    tenant_id = tenant.tenant_id
    try:
        stores.tenants.create(tenant)
    except Conflict:
        existing = stores.tenants.get(tenant_id)
        if existing is None:
            # The offboarding's marker went between the two calls (its final purge just finished):
            # the id is free. A Conflict now is another request's onboarding.
            stores.tenants.create(tenant)
            return
        if existing.status != tenant_store.OFFBOARDING:
            raise
        try:
            finished = finish_offboarding(tenant_id, stores, stop_at=time.monotonic() + REQUEST_PURGE_SECONDS)
        except tasks.PurgeUnfinishedError:
            finished, existing = None, replace(existing, purge_after=int(_now()) + CONTINUE_AFTER_SECONDS)
        if finished is None:
            wait = max(1, (existing.purge_after or 0) - int(_now()))
            raise Conflict(
                f"Tenant id {tenant_id!r} is being offboarded; it is free again once the final purge "
                f"has run, in about {wait} s",
                code="tenant_offboarding",
                headers={"Retry-After": str(wait)},
            ) from None
        stores.tenants.create(tenant)  # a Conflict now: onboarded by another request meanwhile


def _undo_onboarding(tenant_id: str, stores: Stores) -> None:
    """Best effort after a failed onboarding: nothing of it stays behind. If this fails too, the
    same request sent again resumes the onboarding, and ``tenantry keys sweep`` finds any API key
    left without its item."""
    try:
        tenant = stores.tenants.get(tenant_id)
        if tenant is None or not tenant.is_onboarding:
            return
        _discard_unfinished(tenant_id, _tenant_keys(tenant, stores), stores, everything=True)
        usage_identity.retire(tenant_id, tenant)
        stores.tenants.delete_unfinished(tenant_id)
    except Exception:  # noqa: BLE001 - the original failure is the one to report
        logger.warning(
            "undoing a failed onboarding failed; a retry resumes it", extra={"audit_tenant_id": tenant_id}
        )


def get_tenant(tenant_id: str, stores: Stores = DYNAMODB) -> Tenant:
    return tenant_view(tenant_store.require(stores.tenants, tenant_id))


def list_tenants(
    *, tier: str | None, status: str | None, limit: int, next_token: str | None, stores: Stores = DYNAMODB
) -> TenantPage:
    found, token = stores.tenants.list_page(tier=tier, status=status, limit=limit, next_token=next_token)
    return TenantPage(tenants=[tenant_view(tenant) for tenant in found], next_token=token)


def update_tenant(
    tenant_id: str, request: UpdateTenantRequest, stage: edge.Stage | None, stores: Stores = DYNAMODB
) -> Tenant:
    current = tenant_store.require(stores.tenants, tenant_id)
    new_tier = request.tier or current.tier
    config = dict(current.config)
    config_changed = request.config is not None
    if request.config is not None:
        for name, value in request.config.model_dump(exclude_unset=True).items():
            if value is None:
                config.pop(name, None)
            else:
                config[name] = value
    downgrade = new_tier != current.tier and not get_tier(new_tier).has(MODEL_CHOICE)
    if downgrade and request.config is None and "model" in config:
        # A downgrade drops a model choice the new tier does not allow.
        config.pop("model")
        config_changed = True
    _check_model_allowed(new_tier, config)
    new_status = request.status or current.status
    overrides = None
    if request.limits is not None:
        asked = {name: getattr(request.limits, name) for name in request.limits.model_fields_set}
        overrides = limits.merged(current.limits, asked)
        if limits.has_edge_overrides(overrides):
            # Edge limits need the tenant's usage identity (a tenant from before them gets it now)
            # and a plan of its own, made before anything is recorded: at API Gateway's quota of
            # usage plans this is a 409 and nothing changes.
            current = usage_identity.ensure(current, stores)
            usage_identity.prepare_plan(current, overrides, new_tier)
    changes = tenant_store.TenantChanges(
        updated_at=_iso(_now()),
        name=request.name,
        tier=new_tier if new_tier != current.tier else None,
        status=new_status if new_status != current.status else None,
        config=config if config_changed else None,
        limits=overrides if overrides is not None and overrides != current.limits else None,
    )

    # The tenant item first: it is the record of what was asked. The edge and the keys then follow
    # it, every time tier, status or limits are given (not only when they changed): a retry after a
    # failure half-way (some keys moved or disabled, some not) finishes the job; each step is safe
    # to repeat.
    updated = stores.tenants.update(tenant_id, changes)
    usage_identity.reconcile(
        updated,
        placement=request.tier is not None or request.limits is not None,
        enabled=request.status is not None,
    )
    if request.tier is not None or request.status is not None:
        _reconcile_keys(updated, stores, tier=request.tier is not None, status=request.status is not None)
    changed = sorted(changes.fields())
    logger.info("tenant updated", extra={"audit_tenant_id": tenant_id, "changed": changed})
    if request.tier is not None or request.status is not None:
        edge.flush_authorizer_cache(stage)
    return tenant_view(updated)


def _reconcile_keys(tenant: tenant_store.TenantRecord, stores: Stores, *, tier: bool, status: bool) -> None:
    """Bring every live key item of the tenant to the tenant's tier and status (the authorizer
    reads both from it); a key of the first scheme (its own API key) has its API key placed and
    enabled too. Pending keys are left to their own request."""
    enabled = tenant.status == tenant_store.ACTIVE
    key_status = key_store.ACTIVE if enabled else key_store.SUSPENDED
    for key in _tenant_keys(tenant, stores):
        if key.status in (key_store.REVOKED, key_store.PENDING):
            continue
        # The item is written after its API key is placed, so an item that already says the
        # target has its API key placed too (by the attempt that wrote it).
        new_tier = new_status = None
        if tier and key.tier != tenant.tier:
            if key.edge_key_id:
                edge.place_key(key.edge_key_id, tenant.tier)
            new_tier = tenant.tier
        if status and key.status != key_status:
            if key.edge_key_id:
                edge.set_enabled(key.edge_key_id, enabled)
            new_status = key_status
        if new_tier is not None or new_status is not None:
            stores.keys.set_tier_and_status(key.key_hash, tier=new_tier, status=new_status)


def issue_key(
    tenant_id: str, request: IssueKeyRequest, stage: edge.Stage | None, stores: Stores = DYNAMODB
) -> IssuedKey:
    """A new key now. With ``rotate`` (the default) the tenant's older keys stop after the grace
    period; without, they stay as they are. 409 key_limit_reached when the tenant has
    :data:`MAX_LIVE_KEYS` live keys already."""
    tenant = _with_usage_identity(tenant_store.require(stores.tenants, tenant_id), stores)
    now = _now()
    grace_end = int(now) + request.grace_seconds
    older: list[key_store.KeyRecord] = []
    if request.rotate:
        # Keys an earlier failed attempt left pending were never shown: discard, never grace,
        # them (a concurrent rotation's too: its activation then answers 409).
        remaining = _discard_unfinished(tenant_id, _tenant_keys(tenant, stores), stores)
        older = [key for key in remaining if key.status in (key_store.ACTIVE, key_store.SUSPENDED)]
        if tenant.live_keys is None:  # the discards may have changed what a first count holds
            tenant = tenant_store.require(stores.tenants, tenant_id)
    # An issue that does not rotate reads none of the tenant's keys (a tenant may have 50): a key
    # another request left pending stops counting once its pending window ends, unusable and
    # unlisted, and the next rotation (or the offboarding) deletes it.
    raw_key, new = _new_tenant_key(
        tenant,
        expires_at=None if request.expires_in_seconds is None else int(now) + request.expires_in_seconds,
        stores=stores,
        name=request.name,
        scopes=None if request.scopes is None else frozenset(request.scopes),
        # A rotation is never refused for the cap: the keys it replaces stop at the grace end.
        cap=MAX_LIVE_KEYS + len(older),
    )
    ends: list[int] = []  # when each older key still working stops
    for old in older:
        own_expiry = old.expires_at
        if own_expiry is not None and own_expiry <= now:
            # Already expired: its API Gateway twin only uses up the account's key quota.
            if old.edge_key_id:
                edge.delete_key(old.edge_key_id)
            stores.keys.revoke(old.key_hash, _iso(now))
            stores.tenants.end_key(tenant_id, old.key_hash)
            continue
        if own_expiry is None or own_expiry > grace_end:
            stores.keys.set_expiry(old.key_hash, grace_end)
        # (a retry keeps the earlier grace end its first attempt set: the answer says so)
        end = grace_end if own_expiry is None else min(own_expiry, grace_end)
        if tenant.live_keys is not None and tenant.live_keys.get(old.key_hash) != end:
            stores.tenants.end_key(tenant_id, old.key_hash, end)
        ends.append(end)
    # Last: only now can the new key be used (and its secret be answered).
    new = _activate(new, tenant.status, stores)
    # Always: API Gateway's cached answers for the older keys predate their new expiry. Flushed,
    # the next request re-authorizes and learns it, and the functions refuse the key at its grace
    # end (tenantry.http) rather than up to 300 s later.
    edge.flush_authorizer_cache(stage)
    logger.info(
        "key issued",
        extra={
            "audit_tenant_id": tenant_id,
            "key_id": new.key_id,
            "grace_seconds": request.grace_seconds if request.rotate else None,
            "scopes": routes.scopes_as_text(new.scopes) or "*",
        },
    )
    return IssuedKey(
        key=key_view(new, now),
        api_key=raw_key,
        older_keys_expire_at=_iso(max(ends)) if ends else None,
    )


def _with_usage_identity(tenant: tenant_store.TenantRecord, stores: Stores) -> tenant_store.TenantRecord:
    """The tenant with its usage identity, which every key issued from now on carries. A tenant
    onboarded before usage identities gets one now, and its keys are stamped with it (their own
    API Gateway keys stay until ``tenantry keys migrate`` deletes them: a cached authorizer answer
    may still name them for up to 300 s)."""
    if tenant.usage_key_id:
        return tenant
    tenant = usage_identity.ensure(tenant, stores)
    usage_identity.stamp_keys(tenant, _tenant_keys(tenant, stores), stores)
    return tenant


def list_keys(tenant_id: str, stores: Stores = DYNAMODB) -> list[KeyInfo]:
    tenant = tenant_store.require(stores.tenants, tenant_id)
    now = _now()
    return [
        key_view(key, now)
        for key in _tenant_keys(tenant, stores)
        if key.status != key_store.PENDING  # not a key yet: its issuing has not answered
    ]


def revoke_key(tenant_id: str, key_id: str, stage: edge.Stage | None, stores: Stores = DYNAMODB) -> KeyInfo:
    tenant = tenant_store.require(stores.tenants, tenant_id)
    match = next(
        (
            key
            for key in _tenant_keys(tenant, stores)
            if key.key_id == key_id and key.status != key_store.PENDING
        ),
        None,
    )
    if match is None:
        raise NotFound(f"No key {key_id!r} for tenant {tenant_id!r}", code="key_not_found")
    if match.status != key_store.REVOKED:
        revoked_at = _iso(_now())
        stores.keys.revoke(match.key_hash, revoked_at)
        match = replace(match, status=key_store.REVOKED, revoked_at=revoked_at)
    stores.tenants.end_key(tenant_id, match.key_hash)
    if match.edge_key_id:
        edge.delete_key(match.edge_key_id)
    edge.flush_authorizer_cache(stage)
    logger.info("key revoked", extra={"audit_tenant_id": tenant_id, "key_id": key_id})
    return key_view(match)


# How long DELETE /tenants/{id} purges before it answers; a purge that needs longer (a large
# tenant) goes on in the final purge, off the request path, and the answer is 202 "purging".
REQUEST_PURGE_SECONDS = 5.0
# What a task's run keeps back from its time budget to record its progress and schedule the next.
TASK_RESERVE_SECONDS = 4.0
CONTINUE_AFTER_SECONDS = 60


def offboard_tenant(
    tenant_id: str, stage: edge.Stage | None, task_target: str | None = None, stores: Stores = DYNAMODB
) -> OffboardResult:
    """Offboard: after this answers, nothing written for the tenant by a request authorized before
    it survives, and the id is refused until the final purge has run.

    In order, each step safe to repeat, so a retry after a failure at any step ends the same:
    mark the tenant ``offboarding`` (its writes condition on it from now on) with the time of the
    final purge; revoke and delete its keys and their API Gateway twins; flush the authorizer
    cache; close the event stream (delete HEAD: no append can land after it); schedule the final
    purge, for when every request authorized before the mark has ended (``task_target``: the
    function the schedule invokes); purge every tenant table but the tenant's own item, for at most
    :data:`REQUEST_PURGE_SECONDS`. What is left then (a large tenant) the final purge deletes, and
    the answer says ``purging``; a retry goes on purging and says where it stands. An unknown
    tenant answers zeros (a finished offboarding)."""
    purge_after = int(_now()) + settings.offboard_settle_seconds()
    tenant = stores.tenants.mark_offboarding(tenant_id, purge_after)
    revoked, edge_deleted = _delete_keys(tenant_id, tenant, stores)
    edge.flush_authorizer_cache(stage)
    closed = event_store.DYNAMODB.close_stream(tenant_id)
    if tenant is not None:
        tasks.schedule(tasks.FINISH_OFFBOARDING, tenant_id, purge_after, task_target)
    budget = min(REQUEST_PURGE_SECONDS, deadline.remaining() - TASK_RESERVE_SECONDS)
    progress = purge.purge_tenant(tenant_id, stop_at=time.monotonic() + max(budget, 0.0))
    deleted = progress.deleted
    deleted["EventsTable"] = deleted.get("EventsTable", 0) + closed
    logger.info(
        "tenant offboarded" if progress.complete else "tenant offboarded, purge goes on",
        extra={"audit_tenant_id": tenant_id, "keys_revoked": revoked, "items_deleted": deleted},
    )
    return OffboardResult(
        tenant_id=tenant_id,
        status="offboarded" if progress.complete else "purging",
        keys_revoked=revoked,
        edge_keys_deleted=edge_deleted,
        items_deleted=deleted,
        id_free_after=_iso(purge_after) if tenant is not None else None,
    )


def _delete_keys(tenant_id: str, tenant: tenant_store.TenantRecord | None, stores: Stores) -> tuple[int, int]:
    """Revoke and delete every key of the tenant, the tenant's usage identity and own usage plan,
    and any key's own API key of the first scheme: (revoked, API keys deleted)."""
    revoked = 0
    edge_deleted = 0
    registered = tenant.key_hashes if tenant is not None else frozenset[str]()
    for key in stores.keys.list_for_tenant(tenant_id, registered):
        if key.status != key_store.REVOKED:
            stores.keys.revoke(key.key_hash, _iso(_now()))
            revoked += 1
        # By id, or by name for a key whose issuing failed before its id was recorded.
        if key.edge_key_id:
            edge_ids = [key.edge_key_id]
        else:
            edge_ids = [str(found["id"]) for found in edge.keys_named(key.key_id)]
        edge_deleted += sum(edge.delete_key(edge_key_id) for edge_key_id in edge_ids)
        stores.keys.delete(key.key_hash)
    edge_deleted += usage_identity.retire(tenant_id, tenant)
    return revoked, edge_deleted


def finish_offboarding(
    tenant_id: str, stores: Stores = DYNAMODB, stop_at: float | None = None
) -> dict[str, int] | None:
    """The final purge, once it is due: purge again (what requests in flight at the offboarding
    wrote after the first purge, and what a large tenant's first purge left), then delete the
    tenant's item, which frees the id. None when it is not due yet; an empty dict when there is
    nothing to finish. Raises ``PurgeUnfinishedError`` when ``stop_at`` (``time.monotonic()``)
    came first: the item stays, and a later run goes on. Safe to repeat."""
    tenant = stores.tenants.get(tenant_id)
    if tenant is None or tenant.status != tenant_store.OFFBOARDING:
        return {}
    if _now() < (tenant.purge_after or 0):
        return None
    _delete_keys(tenant_id, tenant, stores)  # a key a failed rotation recorded late
    closed = event_store.DYNAMODB.close_stream(tenant_id)
    progress = purge.purge_tenant(tenant_id, stop_at=stop_at)
    deleted = progress.deleted
    deleted["EventsTable"] = deleted.get("EventsTable", 0) + closed
    if not progress.complete:
        logger.info("tenant purge goes on", extra={"audit_tenant_id": tenant_id, "items_deleted": deleted})
        raise tasks.PurgeUnfinishedError(f"the final purge of {tenant_id!r} needs another run")
    stores.tenants.delete_offboarded(tenant_id, tenant.incarnation)
    logger.info("tenant purged", extra={"audit_tenant_id": tenant_id, "items_deleted": deleted})
    return deleted


def run_task(event: dict[str, Any], task_target: str | None = None) -> dict[str, Any]:
    """A scheduled task's invocation (tenantry.tasks), within the invocation's time budget.
    Raises TaskNotDueError when early, so Lambda retries the asynchronous invocation later; a
    purge that runs out of time schedules its next round (``task_target``: this function)."""
    task = event.get(tasks.TASK_FIELD)
    tenant_id = str(event.get("tenant_id", ""))
    if task != tasks.FINISH_OFFBOARDING or not tenant_id:
        logger.error("unknown task", extra={"task": task})
        return {"done": False}
    try:
        deleted = finish_offboarding(
            tenant_id, stop_at=time.monotonic() + max(deadline.remaining() - TASK_RESERVE_SECONDS, 0.0)
        )
    except tasks.PurgeUnfinishedError:
        next_round = int(event.get(tasks.ROUND_FIELD) or 0) + 1
        at = _now() + CONTINUE_AFTER_SECONDS
        tasks.schedule(tasks.FINISH_OFFBOARDING, tenant_id, at, task_target, round_number=next_round)
        return {"done": False, "tenant_id": tenant_id, "continues_at": _iso(at)}
    if deleted is None:
        raise tasks.TaskNotDueError(f"the final purge of {tenant_id!r} is not due yet")
    return {"done": True, "tenant_id": tenant_id, "items_deleted": deleted}


def describe_me(
    tenant_id: str, key_id: str, stores: Stores = DYNAMODB, scopes: frozenset[str] | None = None
) -> Me:
    tenant = tenant_store.require(stores.tenants, tenant_id)
    tier = get_tier(tenant.tier)
    effective, sources = limits.view(tenant.tier, tenant.limits)
    return Me(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        tier=tier.name,
        status=_shown_tenant_status(tenant),
        limits=effective,
        limit_sources=sources,
        features=list(tier.features),
        key_id=key_id,
        scopes=None if scopes is None else sorted(scopes),
    )


def create_admin_key(expires_in_seconds: int | None = None, stores: Stores = DYNAMODB) -> tuple[str, KeyInfo]:
    """An admin key: reaches /tenants… and /stats, is in no usage plan. Return (raw key, info)."""
    expires_at = None if expires_in_seconds is None else int(_now()) + expires_in_seconds
    raw_key, key = _new_key(
        tenant_id=ADMIN_TENANT_ID, tier="admin", role="admin", status=key_store.ACTIVE, expires_at=expires_at
    )
    stores.keys.put(key)
    return raw_key, key_view(key)
