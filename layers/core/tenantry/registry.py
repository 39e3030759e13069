"""The registry of tenant tables: every table that holds tenant data is listed here once.

Offboarding walks this registry, so a table added by a later feature is purged as soon as it is
registered. A unit test checks that every table in template.yaml keyed by ``tenant_id`` is here.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenantry import settings


@dataclass(frozen=True, slots=True)
class TenantTable:
    logical_id: str  # the table's resource name in template.yaml
    env_var: str  # the env var that carries its physical name
    sort_key: str | None  # None for a table with a hash key only


# ApiKeys is not here: its partition key is the key hash; keys are revoked and deleted through the
# by-tenant index by the key store before the tables are purged.
TENANT_TABLES: tuple[TenantTable, ...] = (
    TenantTable("UsageTable", settings.USAGE_TABLE, "period"),
    TenantTable("EventsTable", settings.EVENTS_TABLE, "position"),
    TenantTable("ConsumersTable", settings.CONSUMERS_TABLE, "name"),
    TenantTable("ConversationsTable", settings.CONVERSATIONS_TABLE, "sk"),
    TenantTable("IdempotencyTable", settings.IDEMPOTENCY_TABLE, "id"),
    # Later features register their tables here, above TenantsTable.
    TenantTable("TenantsTable", settings.TENANTS_TABLE, None),  # last: a retried offboarding still finds it
)


def registered_tables() -> tuple[TenantTable, ...]:
    return TENANT_TABLES
