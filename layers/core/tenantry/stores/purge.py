"""Deletes every item a tenant owns in every registered tenant table (offboarding)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key

from tenantry import aws, settings
from tenantry.registry import TenantTable, registered_tables

# Keys per query page: small enough that a purge checks its time budget every few batch writes.
PAGE_SIZE = 500
_clock = time.monotonic  # what ``stop_at`` is measured on


@dataclass(frozen=True, slots=True)
class PurgeProgress:
    """Items deleted per table logical id, and whether nothing of the tenant's is left."""

    deleted: dict[str, int]
    complete: bool


def _delete_all(table: Any, key_names: list[str], pages: Any) -> int:
    deleted = 0
    with table.batch_writer() as batch:
        for page in pages:
            for item in page.get("Items", []):
                batch.delete_item(Key={name: item[name] for name in key_names})
                deleted += 1
    return deleted


def _pages(operation: Any, stop_at: float | None, cut_short: list[bool], **kwargs: Any) -> Any:
    while True:
        response = operation(**kwargs)
        yield response
        if "LastEvaluatedKey" not in response:
            return
        if stop_at is not None and _clock() >= stop_at:
            cut_short.append(True)
            return
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def purge_table(entry: TenantTable, tenant_id: str, stop_at: float | None = None) -> tuple[int, bool]:
    """(items deleted, whether the tenant's partition is empty): the first page always, then
    page after page until ``stop_at`` (``time.monotonic()``), leaving the rest for the next run."""
    name = settings.optional_table_name(entry.env_var)
    if name is None:
        return 0, True
    table = aws.data_table(name)
    key_names = ["tenant_id"] + ([entry.sort_key] if entry.sort_key else [])
    projection = {f"#k{index}": name for index, name in enumerate(key_names)}
    cut_short: list[bool] = []
    pages = _pages(
        table.query,
        stop_at,
        cut_short,
        KeyConditionExpression=Key("tenant_id").eq(tenant_id),
        # A write committed just before the purge started must be seen, or it would survive it.
        ConsistentRead=True,
        ProjectionExpression=", ".join(projection),
        ExpressionAttributeNames=projection,
        Limit=PAGE_SIZE,
    )
    return _delete_all(table, key_names, pages), not cut_short


def purge_tenant(tenant_id: str, stop_at: float | None = None) -> PurgeProgress:
    """Delete the tenant's items in every registered table, until ``stop_at`` (``time.monotonic()``)
    if given. Safe to repeat: a run after a complete one deletes nothing; a run after one cut short
    goes on where it stopped (what is deleted is gone, the rest is found again).

    The tenant's own item (Tenants table) is not purged here: offboarding keeps it as its marker
    until the final purge, and the tenant store deletes it."""
    deleted: dict[str, int] = {}
    complete = True
    for entry in registered_tables():
        if entry.env_var == settings.TENANTS_TABLE:
            continue
        # Every table's first page is read whatever the time: a small tenant is done in one.
        deleted[entry.logical_id], done = purge_table(entry, tenant_id, stop_at)
        complete = complete and done
    return PurgeProgress(deleted, complete)
