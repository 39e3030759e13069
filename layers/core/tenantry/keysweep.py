"""Orphaned API Gateway keys: keys this stack created whose ApiKeys item never got written (a
timeout between the two steps) or was revoked without its twin being deleted.

Such a key holds a secret and a usage-plan seat but no item, so the authorizer refuses it; it is
still an API key that should not exist. Keys are tagged with the stack at creation
(:data:`tenantry.edge.STACK_TAG`); ``tenantry keys sweep`` lists the tagged keys, hashes each
value and looks the hash up, consistently. Young keys are left alone: an onboarding in flight has
created its key and not yet recorded it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tenantry import edge, keys
from tenantry.stores import keys as key_store

DEFAULT_MIN_AGE_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Orphan:
    edge_key_id: str
    name: str
    tenant_id: str
    created_at: str
    reason: str


def _created(key: dict[str, Any]) -> datetime | None:
    value = key.get("createdDate")
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


def find_orphans(
    stack: str,
    *,
    min_age_seconds: int = DEFAULT_MIN_AGE_SECONDS,
    store: key_store.KeyStore = key_store.DYNAMODB,
) -> list[Orphan]:
    now = datetime.now(UTC)
    orphans: list[Orphan] = []
    for key in edge.tagged_keys(stack):
        created = _created(key)
        if created is not None and (now - created).total_seconds() < min_age_seconds:
            continue
        record = store.get(keys.hash_key(str(key.get("value", ""))))
        if record is None:
            reason = "no key item"
        elif record.status == key_store.REVOKED:
            reason = "revoked"
        elif record.status == key_store.PENDING:
            reason = "never activated (its issuing failed half-way)"
        elif record.edge_key_id != key["id"]:
            reason = "the key item names another API key"
        else:
            continue
        orphans.append(
            Orphan(
                edge_key_id=str(key["id"]),
                name=str(key.get("name", "")),
                tenant_id=str((key.get("tags") or {}).get("tenant_id", "")),
                created_at=created.isoformat() if created else "",
                reason=reason,
            )
        )
    return orphans


def sweep(orphans: list[Orphan]) -> int:
    """Delete the orphans' API keys (and so their usage-plan seats); how many were deleted."""
    return sum(1 for orphan in orphans if edge.delete_key(orphan.edge_key_id))
