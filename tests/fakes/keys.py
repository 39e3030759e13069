"""An in-memory :class:`tenantry.stores.keys.KeyStore`, for tests of the key logic where DynamoDB
is not the point (the DynamoDB one is tested against moto, and tests/unit/test_store_fakes.py
checks this one answers as it does)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from tenantry.stores.keys import (
    PENDING,
    REVOKED,
    KeyExistsError,
    KeyMissingError,
    KeyRecord,
    KeyStatus,
    abandoned,
)


class InMemoryKeys:
    def __init__(self) -> None:
        self.keys: dict[str, KeyRecord] = {}

    def put(self, key: KeyRecord) -> None:
        existing = self.keys.get(key.key_hash)
        if existing is None:
            self.keys[key.key_hash] = key
        elif (existing.key_id, existing.tenant_id) != (key.key_id, key.tenant_id):
            raise KeyExistsError(key.key_id)

    def get(self, key_hash: str) -> KeyRecord | None:
        return self.keys.get(key_hash)

    def list_for_tenant(self, tenant_id: str, registered: Collection[str] = ()) -> list[KeyRecord]:
        # An index that is never stale: ``registered`` adds nothing the tenant's keys lack.
        return sorted(
            (key for key in self.keys.values() if key.tenant_id == tenant_id),
            key=lambda key: (key.created_at, key.key_hash),
        )

    def activate(self, key_hash: str, *, edge_key_id: str | None, status: KeyStatus) -> None:
        current = self.keys.get(key_hash)
        if current is not None and current.status == PENDING:
            self.keys[key_hash] = replace(
                current, status=status, edge_key_id=edge_key_id or current.edge_key_id
            )
            return
        if current is not None and current.status == status and edge_key_id in (None, current.edge_key_id):
            return
        raise abandoned()

    def set_tier_and_status(
        self, key_hash: str, *, tier: str | None = None, status: KeyStatus | None = None
    ) -> None:
        if tier is None and status is None:
            raise ValueError("an update sets at least one attribute")
        current = self._existing(key_hash)
        self.keys[key_hash] = replace(
            current, tier=current.tier if tier is None else tier, status=status or current.status
        )

    def set_expiry(self, key_hash: str, expires_at: int) -> None:
        self.keys[key_hash] = replace(self._existing(key_hash), expires_at=expires_at)

    def revoke(self, key_hash: str, revoked_at: str) -> None:
        self.keys[key_hash] = replace(self._existing(key_hash), status=REVOKED, revoked_at=revoked_at)

    def set_usage_key(self, key_hash: str, usage_key: str) -> None:
        self.keys[key_hash] = replace(self._existing(key_hash), usage_key=usage_key)

    def forget_edge_key(self, key_hash: str) -> None:
        current = self.keys.get(key_hash)
        if current is not None:
            self.keys[key_hash] = replace(current, edge_key_id=None)

    def delete(self, key_hash: str) -> None:
        self.keys.pop(key_hash, None)

    def _existing(self, key_hash: str) -> KeyRecord:
        current = self.keys.get(key_hash)
        if current is None:
            raise KeyMissingError(key_hash)
        return current
