"""An in-memory :class:`tenantry.stores.tenants.TenantStore`, for tests of the tenancy and usage
logic where DynamoDB is not the point (the DynamoDB one is tested against moto, and
tests/unit/test_store_fakes.py checks this one answers as it does)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime

from tenantry.errors import Conflict, NotFound
from tenantry.stores.pagination import decode_token, encode_token
from tenantry.stores.tenants import (
    OFFBOARDING,
    KeyLimitReached,
    TenantChanges,
    TenantMissingError,
    TenantRecord,
)


class InMemoryTenants:
    def __init__(self) -> None:
        self.tenants: dict[str, TenantRecord] = {}

    def create(self, tenant: TenantRecord) -> None:
        if tenant.tenant_id in self.tenants:
            raise Conflict(f"Tenant {tenant.tenant_id!r} already exists", code="tenant_exists")
        self.tenants[tenant.tenant_id] = tenant

    def get(self, tenant_id: str) -> TenantRecord | None:
        return self.tenants.get(tenant_id)

    def update(self, tenant_id: str, changes: TenantChanges) -> TenantRecord:
        current = self._live(tenant_id)
        updated = self.tenants[tenant_id] = replace(current, **changes.fields())
        return updated

    def register_key(
        self,
        tenant_id: str,
        key_hash: str,
        *,
        ends_at: int | None = None,
        cap: int | None = None,
        seed: Mapping[str, int] | None = None,
    ) -> None:
        current = self._live(tenant_id)
        if key_hash in current.key_hashes:
            return
        now = time.time()
        counted = dict(current.live_keys if current.live_keys is not None else seed or {})
        live = {other: ends for other, ends in counted.items() if not ends or ends > now}
        if cap is not None and len(live) >= cap:
            raise KeyLimitReached(f"Tenant {tenant_id!r} has {cap} live keys", field="keys")
        self.tenants[tenant_id] = replace(
            current, key_hashes=current.key_hashes | {key_hash}, live_keys={**live, key_hash: ends_at or 0}
        )

    def unregister_key(self, tenant_id: str, key_hash: str) -> None:
        current = self.tenants.get(tenant_id)
        if current is not None:
            self.tenants[tenant_id] = replace(current, key_hashes=current.key_hashes - {key_hash})
        self.end_key(tenant_id, key_hash)

    def end_key(self, tenant_id: str, key_hash: str, ends_at: int | None = None) -> None:
        current = self.tenants.get(tenant_id)
        if current is None or current.live_keys is None or key_hash not in current.live_keys:
            return
        live = dict(current.live_keys)
        if ends_at is None:
            del live[key_hash]
        else:
            live[key_hash] = ends_at
        self.tenants[tenant_id] = replace(current, live_keys=live)

    def record_usage_key(self, tenant_id: str, usage_key_id: str, usage_key: str) -> TenantRecord:
        current = self.tenants.get(tenant_id)
        if current is None:
            raise NotFound(f"No tenant {tenant_id!r}", code="tenant_not_found")
        if current.usage_key_id in ("", usage_key_id):
            current = self.tenants[tenant_id] = replace(
                current, usage_key_id=usage_key_id, usage_key=usage_key
            )
        return current

    def finish_onboarding(self, tenant_id: str) -> None:
        current = self.tenants.get(tenant_id)
        if current is None:
            raise TenantMissingError(tenant_id)
        self.tenants[tenant_id] = replace(current, onboarding=None)

    def delete_unfinished(self, tenant_id: str) -> None:
        current = self.tenants.get(tenant_id)
        if current is not None and current.onboarding is not None:
            del self.tenants[tenant_id]

    def list_page(
        self, *, tier: str | None, status: str | None, limit: int, next_token: str | None
    ) -> tuple[list[TenantRecord], str | None]:
        start = decode_token(next_token) or {}
        after = str(start.get("tenant_id", ""))
        # Scan order: by id here (DynamoDB's is by hash: a test compares what all pages hold).
        remaining = [tenant for tenant_id, tenant in sorted(self.tenants.items()) if tenant_id > after]
        matching = [
            tenant
            for tenant in remaining
            if (tier is None or tenant.tier == tier)
            and (tenant.status == status if status is not None else tenant.status != OFFBOARDING)
        ]
        page = matching[:limit]
        # As the filtered scan: a full page has a token when any item, matching or not, follows
        # it (so the next page may be empty); the last page none.
        full = len(page) == limit and remaining[-1] is not page[-1]
        token = encode_token({"tenant_id": page[-1].tenant_id}) if full else None
        return page, token

    def mark_offboarding(self, tenant_id: str, purge_after: int) -> TenantRecord | None:
        current = self.tenants.get(tenant_id)
        if current is None:
            return None
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        updated = self.tenants[tenant_id] = replace(
            current, status=OFFBOARDING, purge_after=purge_after, updated_at=now
        )
        return updated

    def delete_offboarded(self, tenant_id: str, incarnation: str) -> bool:
        current = self.tenants.get(tenant_id)
        if current is None or current.status != OFFBOARDING or current.incarnation != incarnation:
            return False
        del self.tenants[tenant_id]
        return True

    def _live(self, tenant_id: str) -> TenantRecord:
        current = self.tenants.get(tenant_id)
        if current is None or current.status == OFFBOARDING:
            raise NotFound(f"No tenant {tenant_id!r}", code="tenant_not_found")
        return current
